//! A full disk under podswarm-gossip's state directory (a 64 KiB tmpfs mounted over it): a write
//! is refused with the reason and not acknowledged, the replica file on disk stays exactly as it
//! was with no temp file left holding space, and once space is freed writes are stored again,
//! the refused one included (it was applied in memory). Mounting needs root: without it the test
//! prints `SKIPPED <test>: <reason>` and passes, unless `PODSWARM_REQUIRE_NODES=1` (CI).

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use podswarm_gossip::control::client::{Client, FailureKind};
use serde_json::json;

/// A tmpfs mounted for the length of a test; unmounted when dropped, whatever happened.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it open: detach it now, it goes once released.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// `size` of tmpfs over `dir`, or `None` after saying why the test skips.
fn tmpfs_or_skip(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let problem = if uid != Some(0) {
        Some("mounting a tmpfs needs root".to_owned())
    } else {
        match Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
        {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run mount: {e}")),
        }
    };
    match problem {
        None => Some(Tmpfs(dir.to_owned())),
        Some(p) if std::env::var("PODSWARM_REQUIRE_NODES").is_ok_and(|v| v == "1") => {
            panic!("{test}: PODSWARM_REQUIRE_NODES=1 but {p}")
        }
        Some(p) => {
            println!("SKIPPED {test}: {p}");
            None
        }
    }
}

/// Fills the filesystem of `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    path
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_the_reason_and_keeps_what_was_stored() {
    let test = "a_full_disk_refuses_writes_with_the_reason_and_keeps_what_was_stored";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let Some(_mount) = tmpfs_or_skip(test, &state, "64k") else {
        return;
    };
    let (node, socket) = podswarm_gossip::control::serve_test_node(dir.path())
        .await
        .unwrap();
    let client = Client::new(socket);
    client
        .put("objects/Pod/default/a", json!({"v": 1}))
        .await
        .unwrap();
    let file = state.join("replica.json");
    let before = std::fs::read(&file).unwrap();

    let filler = fill(&state);
    let e = client
        .put("objects/Pod/default/b", json!({"v": 2}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(FailureKind::NotDurable), "{e}");
    let message = e.to_string();
    assert!(
        message.contains("replica.json") && message.contains("No space left on device"),
        "the reason, naming the file: {message}"
    );
    // What was stored is untouched and whole, and no partial temp file holds space.
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(serde_json::from_slice::<serde_json::Value>(&before).is_ok());
    assert!(temp_files(&state).is_empty(), "{:?}", temp_files(&state));

    std::fs::remove_file(&filler).unwrap();
    client
        .put("objects/Pod/default/c", json!({"v": 3}))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    for key in [
        "objects/Pod/default/a",
        "objects/Pod/default/b",
        "objects/Pod/default/c",
    ] {
        assert!(text.contains(key), "{key} is on disk: {text}");
    }
    node.shutdown().await;
}
