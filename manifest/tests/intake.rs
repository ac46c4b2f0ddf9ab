//! Manifest intake as a user meets it: real files in, accepted objects or located errors out.

use std::time::{Duration, Instant};

use podswarm_manifest::{Error, Limits, Object, Policy, parse, pods_of};

fn ok(input: &str) -> podswarm_manifest::Manifest {
    match parse(input, "test.yaml", &Limits::default(), &Policy::default()) {
        Ok(m) => m,
        Err(e) => panic!("expected success, got: {e}"),
    }
}

fn err(input: &str) -> String {
    match parse(input, "test.yaml", &Limits::default(), &Policy::default()) {
        Ok(m) => panic!("expected an error, got {} objects", m.objects.len()),
        Err(e) => e.to_string(),
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: localhost/busybox:latest\n";

#[test]
fn a_separator_inside_a_block_scalar_is_text() {
    let m = ok(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  doc: |\n    a\n    ---\n    b\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
    );
    assert_eq!(m.objects.len(), 2);
    let Object::ConfigMap(cm) = &m.objects[0].object else {
        panic!("not a ConfigMap")
    };
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("doc"))
            .map(String::as_str),
        Some("a\n---\nb\n")
    );
}

#[test]
fn json_values_streams_and_lists() {
    let m = ok(r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}]}
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#);
    let names: Vec<&str> = m.objects.iter().map(|o| o.object.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(m.objects[1].origin.item, Some(1));
}

#[test]
fn missing_namespace_means_default() {
    let m = ok(POD);
    assert_eq!(m.objects[0].object.namespace(), "default");
}

#[test]
fn empty_documents_are_skipped() {
    assert_eq!(ok(&format!("---\n{POD}---\n")).objects.len(), 1);
}

#[test]
fn unknown_fields_warn_or_vanish_when_the_caller_says_so() {
    use podswarm_manifest::{FieldValidation, UNKNOWN_FIELD, parse_with};
    let input = POD.replace("    image:", "    imagee: x\n    image:");
    let warned = parse_with(
        &input,
        "test.yaml",
        &Limits::default(),
        &Policy::default(),
        FieldValidation::Warn,
    )
    .unwrap();
    assert_eq!(warned.objects.len(), 1);
    let warning = &warned.warnings[0];
    assert_eq!(warning.path, "spec.containers[0].imagee");
    assert_eq!(warning.message, UNKNOWN_FIELD);
    let ignored = parse_with(
        &input,
        "test.yaml",
        &Limits::default(),
        &Policy::default(),
        FieldValidation::Ignore,
    )
    .unwrap();
    assert!(ignored.warnings.is_empty(), "{:?}", ignored.warnings);
    assert_eq!(ignored.objects[0].object, warned.objects[0].object);
}

#[test]
fn unknown_fields_are_errors_with_their_path() {
    let e = err(&POD.replace("    image:", "    imagee: x\n    image:"));
    assert!(e.contains("spec.containers[0].imagee"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn unsupported_fields_are_warnings_never_silence() {
    let m = ok(&POD.replace("spec:\n", "spec:\n  priorityClassName: high\n"));
    let w: Vec<String> = m.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("spec.priorityClassName") && w.contains("does not support")),
        "{w:?}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let e = err(&POD.replace(
        "  - name: app\n",
        "  - name: app\n    ports:\n    - containerPort: eighty\n",
    ));
    assert!(
        e.contains("spec.containers[0].ports[0].containerPort"),
        "{e}"
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n");
    assert!(e.contains("line "), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn all_problems_are_collected() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Web\nspec:\n  replicas: -1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n";
    let Err(Error::Invalid { problems }) =
        parse(input, "t", &Limits::default(), &Policy::default())
    else {
        panic!("expected problems");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"metadata.name"), "{paths:?}");
    assert!(paths.contains(&"spec.replicas"), "{paths:?}");
    assert!(
        paths.contains(&"spec.template.spec.containers[0].image"),
        "{paths:?}"
    );
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .into_iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!(
            "{}: &{} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n",
            i,
            i,
            p = prev
        ));
    }
    let start = Instant::now();
    let e = err(&bomb);
    // A guard against exponential expansion (which would take minutes), not a speed target.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let e = parse(&"#".repeat(101), "big.yaml", &limits, &Policy::default())
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        e,
        Err("big.yaml is 101 bytes, over the limit of 100 bytes".to_owned())
    );
}

#[test]
fn duplicates_are_refused() {
    let e = err(&format!("{POD}---\n{POD}"));
    assert!(e.contains("duplicate object"), "{e}");
}

#[test]
fn deployment_pods_have_stable_names() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";
    let a = pods_of(&ok(input).objects[0].object);
    let b = pods_of(&ok(input).objects[0].object);
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    assert!(
        a[0].name.starts_with("web-") && a[0].name.ends_with("-0"),
        "{}",
        a[0].name
    );
    assert_eq!(a[0].labels.get("app").map(String::as_str), Some("web"));
    let changed = pods_of(&ok(&input.replace("image: nginx", "image: nginx:2")).objects[0].object);
    assert_ne!(
        a[0].name, changed[0].name,
        "a new template must give new pod names"
    );
}

/// The compatibility corpus in ../shared/corpus, with what its README says podswarm must do.
mod corpus {
    use super::*;

    fn read(name: &str) -> String {
        let path = format!("{}/../../shared/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse_file(name: &str) -> Result<podswarm_manifest::Manifest, Error> {
        parse(&read(name), name, &Limits::default(), &Policy::default())
    }

    #[test]
    fn guestbook_accepts_with_a_nodeport_warning() {
        let m = parse_file("guestbook-all-in-one.yaml").unwrap();
        assert!(m.objects.iter().all(|o| o.object.namespace() == "default"));
        assert!(
            m.warnings
                .iter()
                .any(|w| w.path == "spec.type" && w.message.contains("NodePort")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn podinfo_files_accept() {
        for f in [
            "podinfo-deployment.yaml",
            "podinfo-service.yaml",
            "podinfo-cache-deployment.yaml",
            "seed-example-deployment.yaml",
            "seed-routing-example.yaml",
        ] {
            if let Err(e) = parse_file(f) {
                panic!("{f}: {e}");
            }
        }
    }

    #[test]
    fn unsupported_kinds_are_named() {
        for (f, kind) in [
            ("podinfo-hpa.yaml", "HorizontalPodAutoscaler"),
            ("podinfo-db-statefulset.yaml", "StatefulSet"),
        ] {
            let e = parse_file(f).map(|_| ()).map_err(|e| e.to_string());
            let Err(e) = e else {
                panic!("{f} was accepted")
            };
            assert!(
                e.contains(&format!("kind {kind}")) && e.contains("not supported"),
                "{f}: {e}"
            );
        }
    }
}

#[test]
fn leading_zero_modes_are_octal_as_in_kubectl() {
    let m = ok(&POD.replace(
        "spec:\n",
        "spec:\n  volumes:\n  - name: v\n    configMap:\n      name: c\n      defaultMode: 0440\n",
    ));
    let Object::Pod(pod) = &m.objects[0].object else {
        panic!("not a Pod")
    };
    let mode = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v[0].config_map.as_ref())
        .and_then(|c| c.default_mode);
    assert_eq!(mode, Some(0o440));
}
