//! Every golden output, the injection corpus and a batch of random strings go through Podman 5.4's
//! real Quadlet generator (`podman-system-generator --dryrun` in the cached Debian trixie tree).
//! The generated `ExecStart=` is then read back with systemd's own grammar to prove that values
//! reach podman byte for byte and that no manifest text became a directive.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use podswarm_generator::{NodeContext, Objects, Options, PodNetwork, render_pod};
use podswarm_manifest::{Limits, Object, PodInstance, Policy, parse};
use podswarm_tests::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

const UNIT_EXTENSIONS: &[&str] = &["container", "pod", "volume", "network", "kube"];

fn golden_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../generator/tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path().join("expected"))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn unit_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| UNIT_EXTENSIONS.iter().any(|u| x == *u))
        })
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Keys Quadlet itself writes into a container's service; anything else would be injected.
const CONTAINER_SERVICE_KEYS: &[&str] = &[
    "Environment",
    "KillMode",
    "ExecStop",
    "ExecStopPost",
    "Delegate",
    "Type",
    "NotifyAccess",
    "SyslogIdentifier",
    "ExecStart",
    "Restart",
    "RestartSec",
    "RestartSteps",
    "RestartMaxDelaySec",
    "TimeoutStopSec",
];

fn check_accepted(case: &str, files: &[(String, Vec<u8>)], run: &DryRun) {
    assert!(
        run.success,
        "{case}: the Quadlet generator failed: {:?}",
        run.messages
    );
    assert!(
        run.messages.is_empty(),
        "{case}: the Quadlet generator complained: {:#?}",
        run.messages
    );
    let services: BTreeMap<&str, &str> = run
        .services
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    for (name, contents) in files.iter().filter(|(n, _)| !n.ends_with(".json")) {
        let service = podswarm_generator::service_of(name, &String::from_utf8_lossy(contents))
            .unwrap_or_else(|| panic!("{case}: {name} is no unit"));
        let text = services.get(service.as_str()).unwrap_or_else(|| {
            panic!(
                "{case}: {name} produced no {service}; got {:?}",
                services.keys()
            )
        });
        if name.ends_with(".container") {
            for key in section_keys(text, "Service") {
                assert!(
                    CONTAINER_SERVICE_KEYS.contains(&key.as_str()),
                    "{case}: {service} has an unexpected [Service] key {key}"
                );
            }
        }
        assert_eq!(
            text.matches("\n[Service]\n").count() + usize::from(text.starts_with("[Service]\n")),
            1,
            "{case}: {service} has more than one [Service] section"
        );
    }
}

#[test]
fn every_golden_output_is_accepted_by_real_quadlet() {
    let Some(root) = quadlet_root_or_skip("every_golden_output_is_accepted_by_real_quadlet") else {
        return;
    };
    let cases = golden_cases();
    assert!(cases.len() >= 10, "golden cases went missing");
    for case in cases {
        let files = unit_files(&case);
        assert!(!files.is_empty(), "{}: no unit files", case.display());
        let run = quadlet_dry_run(&root, &files);
        check_accepted(&case.display().to_string(), &files, &run);
    }
}

/// Kubernetes' `$(VAR)` expansion as the kubelet applies it to env values, command and args,
/// written here independently of the generator's: `$$` → `$`, `$(NAME)` of an earlier variable →
/// its value, anything else as written.
fn k8s_expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|(_, n)| *n) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('(') => match s[i + 2..].find(')') {
                Some(end) if vars.contains_key(&s[i + 2..i + 2 + end]) => {
                    out.push_str(&vars[&s[i + 2..i + 2 + end]]);
                    for _ in 0..end + 2 {
                        chars.next();
                    }
                }
                _ => out.push('$'),
            },
            _ => out.push('$'),
        }
    }
    out
}

/// The argument after `flag` in argv, for every occurrence.
fn flag_values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

/// podman's argv for the container in a generated service.
fn podman_argv(service: &str) -> Vec<String> {
    let exec =
        unit_value(service, "ExecStart").unwrap_or_else(|| panic!("no ExecStart in {service}"));
    systemd_argv(exec)
}

#[test]
fn injection_corpus_reaches_podman_intact() {
    let Some(root) = quadlet_root_or_skip("injection_corpus_reaches_podman_intact") else {
        return;
    };
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../generator/tests/golden/injection");
    let input = std::fs::read_to_string(case.join("input.yaml")).unwrap();
    let manifest = parse(&input, "input.yaml", &Limits::default(), &Policy::default()).unwrap();
    let mut config = BTreeMap::new();
    let mut pod = None;
    for o in &manifest.objects {
        match &o.object {
            Object::ConfigMap(cm) => config.extend(cm.data.clone().unwrap_or_default()),
            Object::Pod(p) => pod = p.spec.clone(),
            _ => {}
        }
    }
    let spec = pod.unwrap_or_else(|| panic!("no pod in the injection corpus"));
    let c = &spec.containers[0];

    let files = unit_files(&case.join("expected"));
    let run = quadlet_dry_run(&root, &files);
    check_accepted("injection", &files, &run);
    let (_, service) = run
        .services
        .iter()
        .find(|(n, _)| n == "podswarm-default_injection.service")
        .unwrap_or_else(|| panic!("no service"));
    let argv = podman_argv(service);

    let envs: BTreeSet<&str> = flag_values(&argv, "--env").into_iter().collect();
    let mut vars = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => k8s_expand(e.value.as_deref().unwrap_or_default(), &vars),
            Some(from) => {
                let key = from
                    .config_map_key_ref
                    .as_ref()
                    .map(|r| r.key.clone())
                    .unwrap_or_default();
                config.get(&key).cloned().unwrap_or_default()
            }
        };
        vars.insert(e.name.clone(), value.clone());
        let expected = format!("{}={value}", e.name);
        assert!(
            envs.contains(expected.as_str()),
            "env {:?} did not reach podman intact; podman got {envs:#?}",
            e.name
        );
    }
    assert_eq!(
        envs.len(),
        c.env.as_ref().map_or(0, Vec::len),
        "podman got extra --env arguments"
    );

    // With a command, command and args travel together as the JSON entrypoint.
    let image_at = argv
        .iter()
        .rposition(|a| a == "localhost/busybox:latest")
        .unwrap_or_else(|| panic!("no image in {argv:?}"));
    assert_eq!(
        argv.len(),
        image_at + 1,
        "nothing may follow the image when the entrypoint holds the args"
    );
    let entrypoint: Vec<String> =
        serde_json::from_str(flag_values(&argv, "--entrypoint")[0]).unwrap();
    let expected: Vec<String> = c
        .command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .map(|a| k8s_expand(a, &vars))
        .collect();
    assert_eq!(entrypoint, expected, "command and args changed on the way");
    assert_eq!(
        flag_values(&argv, "--workdir"),
        [c.working_dir.as_deref().unwrap_or_default()]
    );
    let health: Vec<String> = serde_json::from_str(flag_values(&argv, "--health-cmd")[0]).unwrap();
    let probe = c
        .liveness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone());
    assert_eq!(Some(health), probe);
    assert!(
        !service.contains("pwned") || !service.lines().any(|l| l.starts_with("ExecStartPre")),
        "a directive was injected"
    );
}

fn node() -> NodeContext {
    let network = PodNetwork {
        subnet: "10.244.9.0/24".parse().unwrap(),
    };
    NodeContext {
        node_name: "node1".to_owned(),
        node_ip: None,
        dns_server: Some(IpAddr::V4(network.gateway())),
        network,
        cluster_domain: "cluster.local".to_owned(),
    }
}

/// Random text, weighted toward what unit grammars care about, in env values and args: whatever
/// the generator accepts must reach podman unchanged.
#[test]
fn random_strings_reach_podman_intact() {
    let Some(root) = quadlet_root_or_skip("random_strings_reach_podman_intact") else {
        return;
    };
    let special = proptest::string::string_regex(
        "[ -~\\n\\t\\r\\x01-\\x1f\\x7f\\u{80}-\\u{9f}\\u{2028}\\u{2029}é日🚀%$\"'\\\\]{0,24}",
    )
    .unwrap();
    let any = proptest::arbitrary::any::<String>();
    let mut runner = TestRunner::deterministic();
    let mut values = Vec::new();
    for i in 0..160 {
        let tree = if i % 2 == 0 {
            special.new_tree(&mut runner)
        } else {
            any.new_tree(&mut runner)
        };
        let s = tree.unwrap().current();
        // NUL cannot be in argv at all, and a lone empty argument needs a command (see below).
        let s = s.replace('\0', "");
        values.push(if s.is_empty() { "x".to_owned() } else { s });
    }
    let (env_values, args) = values.split_at(80);
    let container = Container {
        name: "app".to_owned(),
        image: Some("localhost/busybox:latest".to_owned()),
        args: Some(args.to_vec()),
        env: Some(
            env_values
                .iter()
                .enumerate()
                .map(|(i, v)| EnvVar {
                    name: format!("V{i}"),
                    value: Some(v.clone()),
                    value_from: None,
                })
                .collect(),
        ),
        ..Container::default()
    };
    let pod = PodInstance {
        namespace: "default".to_owned(),
        name: "random".to_owned(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        spec: PodSpec {
            containers: vec![container],
            ..PodSpec::default()
        },
        owner: None,
    };
    let rendered = render_pod(
        &pod,
        Some(Ipv4Addr::new(10, 244, 9, 2)),
        &node(),
        &Options::default(),
        &Objects::default(),
    )
    .unwrap();
    let network = podswarm_generator::render_network(&node().network).unwrap();
    let files: Vec<(String, Vec<u8>)> = rendered
        .units
        .iter()
        .chain([&network])
        .map(|u| (u.file_name.clone(), u.contents.clone().into_bytes()))
        .collect();
    let run = quadlet_dry_run(&root, &files);
    check_accepted("random", &files, &run);
    let (_, service) = run
        .services
        .iter()
        .find(|(n, _)| n == "podswarm-default_random.service")
        .unwrap_or_else(|| panic!("no service"));
    let argv = podman_argv(service);
    let envs: BTreeSet<&str> = flag_values(&argv, "--env").into_iter().collect();
    let mut vars = BTreeMap::new();
    for (i, v) in env_values.iter().enumerate() {
        let v = k8s_expand(v, &vars);
        assert!(
            envs.contains(format!("V{i}={v}").as_str()),
            "V{i}={v:?} did not reach podman intact"
        );
        vars.insert(format!("V{i}"), v);
    }
    let image_at = argv
        .iter()
        .rposition(|a| a == "localhost/busybox:latest")
        .unwrap_or_else(|| panic!("no image"));
    let expected: Vec<String> = args.iter().map(|a| k8s_expand(a, &vars)).collect();
    assert_eq!(&argv[image_at + 1..], expected);
}
