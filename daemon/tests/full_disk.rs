//! A full disk under `/var/lib/podswarm` (a 64 KiB tmpfs mounted over a test's state directory):
//! podswarmd's API answers a write podswarm-gossip cannot store with 507 and the reason, its own
//! state file stays whole with no temp file left, and everything works again once space is freed.
//! Mounting needs root: without it the tests print `SKIPPED <test>: <reason>` and pass, unless
//! `PODSWARM_REQUIRE_NODES=1` (CI).

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::BodyExt;
use podswarm_daemon::api::{self, Api, Peer};
use podswarm_daemon::link::Link;
use podswarm_daemon::reconcile::PodViews;
use podswarm_daemon::state::{CATCH_UP_SECS, Clock, State, StateError};
use podswarm_manifest::{Limits, Policy};
use serde_json::Value;

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
    std::fs::create_dir_all(dir).unwrap();
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

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
}

fn objects(yaml: &str) -> Vec<podswarm_manifest::Object> {
    podswarm_manifest::parse(yaml, "test", &Limits::default(), &Policy::default())
        .unwrap()
        .objects
        .into_iter()
        .map(|p| p.object)
        .collect()
}

/// A POST through the real Unix-socket router (this process is root, so it is admitted).
async fn post(socket: &Path, path: &str, body: String) -> (u16, Value) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, "localhost")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_node_cannot_store_is_answered_507_with_the_reason() {
    let test = "a_write_the_node_cannot_store_is_answered_507_with_the_reason";
    let dir = tempfile::tempdir().unwrap();
    // podswarm-gossip's state directory of `serve_test_node`.
    let gossip_state = dir.path().join("state");
    let Some(_mount) = tmpfs_or_skip(test, &gossip_state, "64k") else {
        return;
    };
    let (node, gossip) = podswarm_gossip::control::serve_test_node(dir.path())
        .await
        .unwrap();
    let podswarmd = dir.path().join("podswarmd");
    std::fs::create_dir_all(&podswarmd).unwrap();
    let state = Arc::new(
        State::open(
            &podswarmd,
            &Policy::default(),
            podswarm_daemon::state::system_clock(),
        )
        .unwrap(),
    );
    let link = Link::new(
        gossip,
        "n1".to_owned(),
        Arc::clone(&state),
        Policy::default(),
    );
    let views = PodViews::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(Arc::clone(&link).run(views.clone(), stopped));
    assert!(link.synced(Duration::from_secs(10)).await);
    let api = Arc::new(Api::without_reconciler(
        state,
        link,
        views,
        PathBuf::from("/bin/false"),
    ));
    let socket = dir.path().join("api.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let app = api::unix_router(api, 1 << 20).into_make_service_with_connect_info::<Peer>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (status, body) = post(&socket, "/api/v1/manifests", config_map("one")).await;
    assert_eq!(status, 200, "{body}");

    let filler = fill(&gossip_state);
    let (status, body) = post(&socket, "/api/v1/manifests", config_map("two")).await;
    assert_eq!(status, 507, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("replica.json") && error.contains("No space left on device"),
        "the reason, naming the file: {body}"
    );
    assert!(
        body["details"][0]
            .as_str()
            .is_some_and(|d| d.contains("free space")),
        "what to do: {body}"
    );
    assert!(temp_files(&gossip_state).is_empty());

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = post(&socket, "/api/v1/manifests", config_map("two")).await;
    assert_eq!(status, 200, "{body}");
    let replica = gossip_state.join("replica.json");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !std::fs::read_to_string(&replica)
            .unwrap_or_default()
            .contains("objects/ConfigMap/default/two")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the write is on disk once there is room");
    let _ = stop.send(true);
    node.shutdown().await;
}

#[test]
fn podswarmds_state_file_on_a_full_disk_stays_whole_and_catches_up() {
    let test = "podswarmds_state_file_on_a_full_disk_stays_whole_and_catches_up";
    let dir = tempfile::tempdir().unwrap();
    let podswarmd = dir.path().join("podswarmd");
    let Some(_mount) = tmpfs_or_skip(test, &podswarmd, "64k") else {
        return;
    };
    let now = Arc::new(AtomicU64::new(1000));
    let read = Arc::clone(&now);
    let clock: Clock = Arc::new(move || read.load(Ordering::Relaxed));
    let state = State::open(&podswarmd, &Policy::default(), clock).unwrap();
    state.sync_objects(objects(&config_map("one"))).unwrap();
    let file = podswarmd.join("state.json");
    let before = std::fs::read(&file).unwrap();

    let filler = fill(&podswarmd);
    let both = format!("{}---\n{}", config_map("one"), config_map("two"));
    let e = state.sync_objects(objects(&both)).unwrap_err();
    let chain = podswarm_daemon::config::process::error_chain(&e);
    assert!(
        matches!(e, StateError::Write { .. }) && chain.contains("No space left on device"),
        "{chain}"
    );
    assert!(chain.contains("state.json"), "{chain}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "untouched");
    assert!(
        temp_files(&podswarmd).is_empty(),
        "{:?}",
        temp_files(&podswarmd)
    );
    assert_eq!(
        state.entries().len(),
        2,
        "the reconciler follows the cluster"
    );

    std::fs::remove_file(&filler).unwrap();
    now.fetch_add(CATCH_UP_SECS, Ordering::Relaxed);
    state.touch();
    drop(state);
    let reopened = State::open(
        &podswarmd,
        &Policy::default(),
        podswarm_daemon::state::system_clock(),
    )
    .unwrap();
    assert_eq!(reopened.entries().len(), 2, "the file caught up");
}
