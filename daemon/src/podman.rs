//! The few things podswarmd asks podman directly (everything else goes through Quadlet units):
//! secrets, volume removal, the version (to choose `.pod` or `.kube` units), and what went wrong
//! when a unit failed: whether its image is there, and podman's own error line in the journal.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
#[error("podman {args}: {message}")]
pub struct PodmanError {
    pub args: String,
    pub message: String,
}

pub trait Podman: Send + Sync + 'static {
    /// Names of podman secrets that podswarm made (`podswarm-` prefix).
    fn secrets(&self) -> impl Future<Output = Result<BTreeSet<String>, PodmanError>> + Send;
    fn create_secret(
        &self,
        name: &str,
        data: &[u8],
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;
    fn remove_secret(&self, name: &str) -> impl Future<Output = Result<(), PodmanError>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), PodmanError>> + Send;
    /// Whether the image is in local storage (`podman image exists`).
    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool, PodmanError>> + Send;
    /// podman's last `Error: …` line (without the prefix) that a run of a unit wrote to the
    /// journal: what podman wrote, not its container (no `CONTAINER_NAME=`), in that invocation.
    fn unit_error(
        &self,
        unit: &str,
        invocation_id: &str,
    ) -> impl Future<Output = Result<Option<String>, PodmanError>> + Send;
}

#[derive(Debug, Clone)]
pub struct PodmanCli {
    pub binary: PathBuf,
    /// journalctl, for what podman wrote in a unit's journal.
    pub journalctl: PathBuf,
}

impl PodmanCli {
    async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, PodmanError> {
        let err = |message: String| PodmanError {
            args: args.join(" "),
            message,
        };
        let mut child = Command::new(&self.binary)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).await.map_err(|e| err(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| err(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
        }
    }

    /// Podman's major version, e.g. 5.
    pub async fn major_version(&self) -> Result<u32, PodmanError> {
        let out = self
            .run(&["version", "--format", "{{.Client.Version}}"], None)
            .await?;
        out.trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| PodmanError {
                args: "version".into(),
                message: format!("unexpected version {:?}", out.trim()),
            })
    }
}

impl Podman for PodmanCli {
    async fn secrets(&self) -> Result<BTreeSet<String>, PodmanError> {
        let out = self
            .run(&["secret", "ls", "--format", "{{.Name}}"], None)
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with("podswarm-"))
            .map(str::to_owned)
            .collect())
    }

    async fn create_secret(&self, name: &str, data: &[u8]) -> Result<(), PodmanError> {
        // `-` reads the value from stdin: it never appears in argv or in a file.
        self.run(&["secret", "create", "--replace", name, "-"], Some(data))
            .await
            .map(|_| ())
    }

    async fn remove_secret(&self, name: &str) -> Result<(), PodmanError> {
        self.run(&["secret", "rm", "--ignore", name], None)
            .await
            .map(|_| ())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), PodmanError> {
        self.run(&["volume", "rm", "--force", "--ignore", name], None)
            .await
            .map(|_| ())
    }

    async fn image_exists(&self, image: &str) -> Result<bool, PodmanError> {
        let err = |message: String| PodmanError {
            args: format!("image exists {image}"),
            message,
        };
        let out = Command::new(&self.binary)
            .args(["image", "exists", image])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| err(e.to_string()))?;
        // 0: there, 1: not there, anything else: podman could not tell.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned())),
        }
    }

    async fn unit_error(
        &self,
        unit: &str,
        invocation_id: &str,
    ) -> Result<Option<String>, PodmanError> {
        let err = |message: String| PodmanError {
            args: format!("journal of {unit}"),
            message,
        };
        if invocation_id.is_empty() {
            return Ok(None);
        }
        let out = Command::new(&self.journalctl)
            .args([
                "--no-pager",
                "--quiet",
                "--output=json",
                "--output-fields=MESSAGE,CONTAINER_NAME",
            ])
            // The invocation identifies the run; systemd gives every start a new one.
            .arg(format!("_SYSTEMD_INVOCATION_ID={invocation_id}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        Ok(last_error_line(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// podman's last `Error: …` line in journalctl's JSON output, skipping what containers wrote.
fn last_error_line(json_lines: &str) -> Option<String> {
    json_lines
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|entry| entry.get("CONTAINER_NAME").is_none())
        .find_map(|entry| {
            entry
                .get("MESSAGE")?
                .as_str()?
                .trim()
                .strip_prefix("Error: ")
                .map(str::to_owned)
        })
}

/// In-memory podman for unit tests.
#[derive(Debug, Default)]
pub struct FakePodman {
    pub secrets: Mutex<BTreeSet<String>>,
    pub removed_volumes: Mutex<Vec<String>>,
    /// Images not in local storage (every other image is).
    pub missing_images: Mutex<BTreeSet<String>>,
    /// podman's error line per unit, as [`Podman::unit_error`] finds it.
    pub unit_errors: Mutex<BTreeMap<String, String>>,
}

impl Podman for FakePodman {
    async fn secrets(&self) -> Result<BTreeSet<String>, PodmanError> {
        Ok(self.secrets.lock().map(|s| s.clone()).unwrap_or_default())
    }
    async fn create_secret(&self, name: &str, _data: &[u8]) -> Result<(), PodmanError> {
        if let Ok(mut s) = self.secrets.lock() {
            s.insert(name.to_owned());
        }
        Ok(())
    }
    async fn remove_secret(&self, name: &str) -> Result<(), PodmanError> {
        if let Ok(mut s) = self.secrets.lock() {
            s.remove(name);
        }
        Ok(())
    }
    async fn remove_volume(&self, name: &str) -> Result<(), PodmanError> {
        if let Ok(mut v) = self.removed_volumes.lock() {
            v.push(name.to_owned());
        }
        Ok(())
    }
    async fn image_exists(&self, image: &str) -> Result<bool, PodmanError> {
        Ok(!self
            .missing_images
            .lock()
            .map(|m| m.contains(image))
            .unwrap_or(false))
    }
    async fn unit_error(
        &self,
        unit: &str,
        _invocation_id: &str,
    ) -> Result<Option<String>, PodmanError> {
        Ok(self
            .unit_errors
            .lock()
            .ok()
            .and_then(|e| e.get(unit).cloned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn podmans_error_line_is_found_among_the_containers_output() {
        let journal = r#"{"MESSAGE":"Error: said by the container","CONTAINER_NAME":"podswarm-default_p"}
{"MESSAGE":"Trying to pull localhost/nope:1..."}
{"MESSAGE":"Error: localhost/nope:1: image not known"}
{"MESSAGE":"podswarm-default_p.service: Failed with result 'exit-code'."}
"#;
        assert_eq!(
            super::last_error_line(journal).as_deref(),
            Some("localhost/nope:1: image not known")
        );
        assert_eq!(super::last_error_line("{\"MESSAGE\":\"hello\"}\n"), None);
    }
}
