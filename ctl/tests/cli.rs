//! `podswarmctl` as a user runs it: real processes, real files, exit codes and stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ctl(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podswarmctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start podswarmctl: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // The process may exit before reading everything (e.g. an input over the size limit).
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn render_stdin(manifest: &str) -> Output {
    ctl(&["render", "-f", "-"], manifest.as_bytes())
}

/// Asserts a refusal: exit status 1, nothing on stdout, and stderr lines that each start with
/// `error: ` and together mention every fragment.
fn assert_refused(out: &Output, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refused manifest must render nothing"
    );
    assert!(!stderr.trim().is_empty());
    for line in stderr.lines() {
        assert!(line.starts_with("error: "), "unclear error line: {line:?}");
    }
    for f in fragments {
        assert!(stderr.contains(f), "stderr should mention {f:?}: {stderr}");
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: localhost/busybox:latest\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: localhost/busybox:latest\n";

#[test]
fn bad_name() {
    assert_refused(
        &render_stdin(&POD.replace("name: web", "name: Web_App")),
        &["metadata.name", "\"Web_App\" is not a valid name"],
    );
}

#[test]
fn path_traversal() {
    let m = POD.replace("spec:\n", "spec:\n  volumes:\n  - name: c\n    configMap:\n      name: c\n      items: [{key: k, path: ../../etc/cron.d/x}]\n");
    assert_refused(
        &render_stdin(&m),
        &["spec.volumes[0].configMap.items[0].path", "'..'"],
    );
    let m = POD
        .replace(
            "    image:",
            "    volumeMounts: [{name: v, mountPath: /x, subPath: ../../root}]\n    image:",
        )
        .replace("spec:\n", "spec:\n  volumes: [{name: v, emptyDir: {}}]\n");
    assert_refused(&render_stdin(&m), &["volumeMounts[0].subPath"]);
}

#[test]
fn missing_image() {
    assert_refused(
        &render_stdin(&POD.replace("    image: localhost/busybox:latest\n", "")),
        &["spec.containers[0].image", "required field is missing"],
    );
}

#[test]
fn negative_replicas() {
    assert_refused(
        &render_stdin(&DEPLOYMENT.replace("replicas: 2", "replicas: -1")),
        &[
            "Deployment \"web\"",
            "spec.replicas",
            "must be 0 or more, got -1",
        ],
    );
}

#[test]
fn host_path_root() {
    let m = POD.replace(
        "spec:\n",
        "spec:\n  volumes: [{name: root, hostPath: {path: /}}]\n",
    );
    assert_refused(
        &render_stdin(&m),
        &["hostPath.path", "hostPath \"/\" is refused"],
    );
    // An allow-list does not make `/` or a sibling prefix acceptable.
    let out = ctl(
        &["render", "-f", "-", "--host-path-allow", "/srv"],
        m.as_bytes(),
    );
    assert_refused(&out, &["allowed prefixes: /srv"]);
    let sibling = POD.replace(
        "spec:\n",
        "spec:\n  volumes: [{name: d, hostPath: {path: /srvx}}]\n",
    );
    assert_refused(
        &ctl(
            &["render", "-f", "-", "--host-path-allow", "/srv"],
            sibling.as_bytes(),
        ),
        &["/srvx"],
    );
}

#[test]
fn alias_bomb() {
    let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    let names = ["b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut prev = "a";
    for n in names {
        bomb.push_str(&format!("{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = n;
    }
    assert_refused(&render_stdin(&bomb), &["<stdin>", "invalid YAML"]);
}

#[test]
fn broken_yaml() {
    let out = render_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web\nspec: {}\n",
    );
    assert_refused(&out, &["<stdin>, line", "invalid YAML"]);
}

#[test]
fn unknown_kind() {
    assert_refused(
        &render_stdin(&POD.replace("kind: Pod", "kind: Pood")),
        &["unknown kind \"Pood\"", "supported kinds"],
    );
    assert_refused(
        &render_stdin("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {}\n"),
        &["kind StatefulSet (apps/v1) is not supported by podswarm"],
    );
}

#[test]
fn newline_in_env_name() {
    let m = POD.replace(
        "    image:",
        "    env: [{name: \"A\\nExecStartPre=/bin/sh\", value: x}]\n    image:",
    );
    assert_refused(
        &render_stdin(&m),
        &[
            "spec.containers[0].env[0].name",
            "not a valid environment variable name",
        ],
    );
}

#[test]
fn newline_in_image() {
    let m = POD.replace(
        "image: localhost/busybox:latest",
        "image: \"busybox\\n[Service]\\nExecStartPre=/bin/sh\"",
    );
    assert_refused(
        &render_stdin(&m),
        &["spec.containers[0].image", "not a valid image reference"],
    );
}

#[test]
fn empty_argument_without_command() {
    let m = POD.replace(
        "    image:",
        "    args: [\"--password\", \"\", \"--verbose\"]\n    image:",
    );
    assert_refused(
        &render_stdin(&m),
        &["spec.containers[0].args[1]", "needs an explicit command"],
    );
}

#[test]
fn unknown_field_and_many_problems_each_get_a_line() {
    let m = DEPLOYMENT
        .replace("replicas: 2", "replicas: -3\n  replicaz: 2")
        .replace("name: web\nspec", "name: Web\nspec");
    let out = render_stdin(&m);
    assert_refused(&out, &["spec.replicaz", "unknown field"]);
    let m = DEPLOYMENT
        .replace("replicas: 2", "replicas: -3")
        .replace("name: web\nspec", "name: Web\nspec");
    let out = render_stdin(&m);
    assert_refused(&out, &["metadata.name", "spec.replicas"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 2);
}

#[test]
fn oversized_non_utf8_and_missing_inputs() {
    assert_refused(
        &ctl(&["render", "-f", "-", "--max-bytes", "64"], POD.as_bytes()),
        &["over the limit of 64 bytes"],
    );
    assert_refused(
        &ctl(&["render", "-f", "-"], b"kind: Pod\nname: \xff\xfe\n"),
        &["not UTF-8"],
    );
    assert_refused(
        &ctl(&["render", "-f", "/nonexistent/app.yaml"], b""),
        &["cannot open /nonexistent/app.yaml"],
    );
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = empty.path().to_string_lossy().into_owned();
    assert_refused(
        &ctl(&["render", "-f", &dir], b""),
        &["holds no .yaml, .yml or .json files"],
    );
}

#[test]
fn render_prints_what_a_node_installs() {
    let input = format!(
        "{}/../generator/tests/golden/single-container/input.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = ctl(&["render", "-f", &input], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `EXPECTORATE=overwrite` regenerates the golden file.
    expectorate::assert_contents(
        format!(
            "{}/tests/golden/render-single-container.txt",
            env!("CARGO_MANIFEST_DIR")
        ),
        &String::from_utf8_lossy(&out.stdout),
    );
}

#[test]
fn render_out_writes_files_and_names_secrets_without_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = format!(
        "{}/../generator/tests/golden/realistic-app/input.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out_dir = dir.path().to_string_lossy().into_owned();
    let out = ctl(&["render", "-f", &input, "--out", &out_dir], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("podswarm.network").is_file());
    assert!(dir.path().join("podswarm-shop__db-data.volume").is_file());
    let secrets = std::fs::read_to_string(dir.path().join("secrets.txt")).unwrap_or_default();
    assert!(
        secrets.contains("podswarm-shop_db-credentials_password_"),
        "{secrets}"
    );
    assert!(!secrets.contains("hunter2"));
    let mut all = String::new();
    for entry in std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    assert!(
        !all.contains("hunter2"),
        "a secret value reached a unit file"
    );
    // The configMap data lands under data/ at the node path.
    assert!(dir.path().join("data/var/lib/podswarm/volumes").is_dir());
}

#[test]
fn completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ctl(&["completion", shell], b"");
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("podswarmctl"));
    }
}
