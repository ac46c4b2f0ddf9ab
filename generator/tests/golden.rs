//! Golden tests: each folder under `tests/golden/` holds a manifest (`input.yaml`, or `corpus.txt`
//! naming a file of the shared compatibility corpus), optionally `mode.txt` (`kube`), and `expected/`, the exact files a node would
//! install. Regenerate with `PODSWARM_BLESS=1 cargo nextest run -p podswarm-generator --test golden`
//! and review the diff: every changed byte is a change users will see in their units.
//!
//! The same `expected/` folders are fed to Podman's real Quadlet generator by `tests/quadlet.rs`
//! in the workspace's `tests` crate.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
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

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
                out.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn rendered_units_match_golden_files() {
    let bless = std::env::var_os("PODSWARM_BLESS").is_some();
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
        if bless {
            let _ = std::fs::remove_dir_all(&expected_dir);
            for (name, bytes) in &actual {
                let path = expected_dir.join(name);
                std::fs::create_dir_all(path.parent().unwrap_or(&expected_dir)).unwrap();
                std::fs::write(&path, bytes).unwrap();
            }
            continue;
        }
        let expected = read_tree(&expected_dir);
        let names: std::collections::BTreeSet<&String> =
            actual.keys().chain(expected.keys()).collect();
        for name in names {
            match (actual.get(name), expected.get(name)) {
                (Some(a), Some(e)) if a == e => {}
                (Some(a), Some(e)) => failures.push(format!(
                    "{}/{name} differs:\n--- expected\n{}\n--- actual\n{}",
                    case.display(),
                    String::from_utf8_lossy(e),
                    String::from_utf8_lossy(a)
                )),
                (Some(_), None) => failures.push(format!(
                    "{}/{name} is new (not in expected/)",
                    case.display()
                )),
                (None, _) => {
                    failures.push(format!("{}/{name} is no longer rendered", case.display()))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches (PODSWARM_BLESS=1 regenerates; review the diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
