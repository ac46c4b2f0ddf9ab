//! Helpers shared by podswarm's integration tests: the cached Debian trixie node tree (Podman 5,
//! systemd 257) and an independent reading of systemd's command-line grammar.
//!
//! Tests that need the node tree skip with a reason when it is missing, unless
//! `PODSWARM_REQUIRE_NODES=1` (set by `.ci/run`), where a missing tree is a failure: CI must never
//! pass by skipping the real-systemd layer.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The node root built by `tests/nodes/build-image.sh`.
pub fn node_root() -> PathBuf {
    std::env::var_os("PODSWARM_NODE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/podswarm-test/trixie-root"))
}

pub const QUADLET: &str = "/usr/lib/systemd/system-generators/podman-system-generator";

/// The node root if it is usable here; `None` (after saying why) when the test should skip.
pub fn quadlet_root_or_skip(test: &str) -> Option<PathBuf> {
    let root = node_root();
    let required = std::env::var("PODSWARM_REQUIRE_NODES").is_ok_and(|v| v == "1");
    let problem = if !root.join(QUADLET.trim_start_matches('/')).exists() {
        Some(format!(
            "no Quadlet generator under {} (build it with tests/nodes/build-image.sh)",
            root.display()
        ))
    } else if !is_root() {
        Some("running the node tree's Quadlet generator needs root (chroot)".to_owned())
    } else {
        None
    };
    match problem {
        None => Some(root),
        Some(p) if required => panic!("{test}: PODSWARM_REQUIRE_NODES=1 but {p}"),
        Some(p) => {
            println!("SKIPPED {test}: {p}");
            eprintln!("SKIPPED {test}: {p}");
            None
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// What `podman-system-generator --dryrun` printed for a set of unit files.
#[derive(Debug)]
pub struct DryRun {
    pub success: bool,
    /// Generated service name → its text.
    pub services: Vec<(String, String)>,
    /// Generator messages other than "Loading source unit file".
    pub messages: Vec<String>,
}

/// Runs the real Quadlet generator of the node tree over `files` (name, contents).
///
/// The files stay outside the tree: booted test nodes use it as their overlay lower directory,
/// which must not change while they run. They are bind-mounted onto the tree's `/mnt` in a private
/// mount namespace that only this command sees.
pub fn quadlet_dry_run(root: &Path, files: &[(String, Vec<u8>)]) -> DryRun {
    let dir = tempfile::Builder::new()
        .prefix("podswarm-quadlet-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2/mnt" && exec chroot "$2" env QUADLET_UNIT_DIRS=/mnt "$3" --dryrun"#)
        .arg("sh")
        .arg(dir.path())
        .arg(root)
        .arg(QUADLET)
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut services = Vec::new();
    let mut messages = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines().chain(stderr.lines()) {
        if let Some(name) = line.strip_prefix("---").and_then(|l| l.strip_suffix("---")) {
            services.extend(current.take());
            current = Some((name.to_owned(), String::new()));
        } else if line.starts_with("quadlet-generator[") {
            if !line.contains("Loading source unit file") {
                messages.push(line.to_owned());
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    services.extend(current);
    DryRun {
        success: output.status.success(),
        services,
        messages,
    }
}

/// The value of the last `key=` line in a unit text.
pub fn unit_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Keys that appear in one `[section]` of a unit text.
pub fn section_keys(text: &str, section: &str) -> Vec<String> {
    let mut inside = false;
    let mut keys = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && let Some((key, _)) = line.split_once('=') {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// systemd's reading of an `ExecStart=` command line (`extract_first_word` with unquoting and C
/// unescaping, then `%%` → `%` and `$$` → `$`). Written independently of podswarm's escaper, from
/// systemd.service(5) and systemd.syntax(7), to serve as the oracle. A lone `%x` specifier or `$`
/// reference, which systemd would expand, comes out as the marker `⟨%x⟩` / `⟨$⟩`: Quadlet's own
/// arguments use specifiers (`%t/%N.cid`), and a user value that carried one would then differ
/// from what the test expects.
pub fn systemd_argv(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut argv = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() {
            return argv;
        }
        let mut word: Vec<u8> = Vec::new();
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            match (b, quote) {
                (b' ', None) => break,
                (b'"' | b'\'', None) => quote = Some(b),
                (q, Some(open)) if q == open => quote = None,
                (b'\\', _) => {
                    let e = bytes.get(i).copied().unwrap_or(b'\\');
                    i += 1;
                    match e {
                        b'n' => word.push(b'\n'),
                        b't' => word.push(b'\t'),
                        b'r' => word.push(b'\r'),
                        b'a' => word.push(7),
                        b'b' => word.push(8),
                        b'f' => word.push(12),
                        b'v' => word.push(11),
                        b's' => word.push(b' '),
                        b'x' => {
                            let hex = std::str::from_utf8(&bytes[i..i + 2]).unwrap_or("00");
                            word.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                            i += 2;
                        }
                        b'u' | b'U' => {
                            let n = if e == b'u' { 4 } else { 8 };
                            let hex = std::str::from_utf8(&bytes[i..i + n]).unwrap_or("0");
                            let c = char::from_u32(u32::from_str_radix(hex, 16).unwrap_or(0))
                                .unwrap_or('\u{fffd}');
                            word.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            i += n;
                        }
                        other => word.push(other),
                    }
                }
                (b'%' | b'$', _) if bytes.get(i) == Some(&b) => {
                    i += 1;
                    word.push(b);
                }
                (b'%', _) => {
                    let spec = bytes.get(i).copied().unwrap_or(b' ');
                    i += 1;
                    word.extend_from_slice(format!("⟨%{}⟩", spec as char).as_bytes());
                }
                (b'$', _) => word.extend_from_slice("⟨$⟩".as_bytes()),
                (other, _) => word.push(other),
            }
        }
        argv.push(
            String::from_utf8(word).unwrap_or_else(|e| panic!("not UTF-8 after unescaping: {e}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_oracle_reads_systemd_quoting() {
        assert_eq!(
            systemd_argv(r#"a "b c" 'd e' f\x20g "h\"i" 100%% $$HOME"#),
            ["a", "b c", "d e", "f g", "h\"i", "100%", "$HOME"]
        );
        assert_eq!(
            systemd_argv("--cidfile=%t/%N.cid $HOME"),
            ["--cidfile=⟨%t⟩/⟨%N⟩.cid", "⟨$⟩HOME"]
        );
    }
}

pub mod ctl;
#[path = "node.rs"]
pub mod node;

/// A child process that is killed (and reaped) when dropped: a server a test or benchmark runs.
#[derive(Debug)]
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The environment a packaged unit (`packaging/systemd/<unit>`) gives its binary (its malloc
/// settings), so that a test or benchmark runs it as the package does.
pub fn unit_environment(unit: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/systemd")
        .join(unit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .flat_map(str::split_whitespace)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// For the benchmarks: `program` pinned to one CPU with `taskset` (where it exists), so the server
/// under test and the load generator do not trade places on a small machine; `None` leaves it
/// wherever the scheduler puts it (the benchmarks' both-cores tables).
pub fn pinned(
    cpu: impl Into<Option<u32>>,
    program: impl AsRef<std::ffi::OsStr>,
) -> std::process::Command {
    let Some(cpu) = cpu.into() else {
        return std::process::Command::new(program);
    };
    if std::path::Path::new("/usr/bin/taskset").exists() {
        let mut c = std::process::Command::new("taskset");
        c.arg("-c").arg(cpu.to_string()).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}
