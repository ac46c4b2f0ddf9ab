//! Golden tests: each folder under `tests/golden/` holds a manifest (`input.yaml`, or `corpus.txt`
//! naming a file of the shared compatibility corpus), optionally `mode.txt` (`kube`), and `expected/`, the exact files a node would
//! install. They are compared with `expectorate`; regenerate with
//! `EXPECTORATE=overwrite cargo nextest run -p podswarm-generator --test golden` and review the
//! diff: every changed byte is a change users will see in their units.
//!
//! The same `expected/` folders are fed to Podman's real Quadlet generator by `tests/quadlet.rs`
//! in the workspace's `tests` crate.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use podswarm_generator::{NodeContext, Options, PodNetwork, render_node};
use podswarm_manifest::{Limits, Policy, parse};

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The node every golden case is rendered for.
fn node() -> (NodeContext, Options, Policy) {
    let network = PodNetwork {
        subnet: "10.244.7.0/24".parse().unwrap(),
    };
    let node = NodeContext {
        node_name: "node1".to_owned(),
        node_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        dns_server: Some(IpAddr::V4(network.gateway())),
        network,
        cluster_domain: "cluster.local".to_owned(),
    };
    let options = Options {
        host_path_allow: vec!["/srv".to_owned()],
        ..Options::default()
    };
    let policy = Policy {
        host_path_allow: vec!["/srv".to_owned()],
        allow_host_users: true,
    };
    (node, options, policy)
}

fn render_case(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let (source, text) = match std::fs::read_to_string(dir.join("corpus.txt")) {
        Ok(name) => {
            let name = name.trim();
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/corpus")
                .join(name);
            (
                name.to_owned(),
                std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            )
        }
        Err(_) => (
            "input.yaml".to_owned(),
            std::fs::read_to_string(dir.join("input.yaml"))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display())),
        ),
    };
    let (node, mut options, policy) = node();
    // `mode.txt` with `kube` renders multi-container pods as .kube units (Podman 4.x).
    if std::fs::read_to_string(dir.join("mode.txt")).is_ok_and(|m| m.trim() == "kube") {
        options.multi_container = podswarm_generator::MultiContainer::Kube;
    }
    let manifest = parse(&text, &source, &Limits::default(), &policy)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let objects: Vec<_> = manifest.objects.iter().map(|o| o.object.clone()).collect();
    let rendered =
        render_node(&objects, &node, &options).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = BTreeMap::new();
    for unit in rendered.units {
        files.insert(unit.file_name, unit.contents.into_bytes());
    }
    for data in rendered.data_files {
        files.insert(format!("data{}", data.path), data.contents);
        files.insert(
            format!("data{}.mode", data.path),
            format!("{:04o}\n", data.mode).into_bytes(),
        );
    }
    let lines = |items: Vec<String>| {
        items
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let mut warnings: Vec<String> = manifest.warnings.iter().map(ToString::to_string).collect();
    warnings.extend(rendered.warnings);
    if !warnings.is_empty() {
        files.insert("warnings.txt".to_owned(), lines(warnings));
    }
    if !rendered.secrets.is_empty() {
        // Names and sizes only: a golden file is no place for secret values.
        files.insert(
            "secrets.txt".to_owned(),
            lines(
                rendered
                    .secrets
                    .iter()
                    .map(|s| format!("{} ({} bytes)", s.name, s.data.len()))
                    .collect(),
            ),
        );
    }
    if !rendered.missing.is_empty() {
        files.insert("missing.txt".to_owned(), lines(rendered.missing));
    }
    files
}

/// Whether this run regenerates the golden files (expectorate's own switch).
fn overwrite() -> bool {
    std::env::var_os("EXPECTORATE").is_some_and(|v| v == "overwrite")
}

/// The files under `root`, as paths relative to it.
fn file_names(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// Compares one rendered file with its golden file (or rewrites it), and returns whether it
/// matched. Text goes through `expectorate`, which prints a diff; it normalises CRLF, so files
/// that are not UTF-8 or hold a CR (e.g. a PNG in a ConfigMap) are compared byte for byte.
fn check_file(path: &Path, bytes: &[u8]) -> bool {
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.contains('\r')
    {
        return std::panic::catch_unwind(|| expectorate::assert_contents(path, text)).is_ok();
    }
    if overwrite() {
        std::fs::write(path, bytes).unwrap();
        return true;
    }
    let matched = std::fs::read(path).is_ok_and(|expected| expected == bytes);
    if !matched {
        eprintln!(
            "{}: binary contents differ ({} bytes rendered)",
            path.display(),
            bytes.len()
        );
    }
    matched
}

#[test]
fn rendered_units_match_golden_files() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_root())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "golden cases went missing");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = render_case(case);
        let expected_dir = case.join("expected");
        if overwrite() {
            // Files no longer rendered go too.
            let _ = std::fs::remove_dir_all(&expected_dir);
        }
        for name in file_names(&expected_dir) {
            if !actual.contains_key(&name) {
                failures.push(format!(
                    "{}/{name} is no longer rendered",
                    expected_dir.display()
                ));
            }
        }
        for (name, bytes) in &actual {
            let path = expected_dir.join(name);
            if overwrite() {
                std::fs::create_dir_all(path.parent().unwrap_or(&expected_dir)).unwrap();
            }
            if !check_file(&path, bytes) {
                failures.push(format!("{} differs", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches (diffs above; EXPECTORATE=overwrite regenerates, then review the \
         diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
