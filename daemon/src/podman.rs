//! The few things podswarmd asks podman directly (everything else goes through Quadlet units):
//! secrets, volume removal, the version (to choose `.pod` or `.kube` units).

use std::collections::BTreeSet;
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
}

#[derive(Debug, Clone)]
pub struct PodmanCli {
    pub binary: PathBuf,
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
}

/// In-memory podman for unit tests.
#[derive(Debug, Default)]
pub struct FakePodman {
    pub secrets: Mutex<BTreeSet<String>>,
    pub removed_volumes: Mutex<Vec<String>>,
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
}
