//! The .deb on a booted Debian trixie node: install, enable, run, remove, purge, and upgrade to a
//! newer .deb under running workloads — as a user would. Needs `packaging/build.sh` to have run
//! (tests/run.sh does it first).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use podswarm_tests::ctl::{assert_pods_answer, deployment, running};
use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};

/// The package `packaging/build.sh` builds.
fn deb() -> Option<PathBuf> {
    deb_in("target/packages")
}

/// The same package at a higher version, which `packaging/build.sh` builds for the upgrade test.
fn newer_deb() -> Option<PathBuf> {
    deb_in("target/packages/upgrade")
}

fn deb_in(dir: &str) -> Option<PathBuf> {
    podswarm_tests::node::built_deb(dir, "the package test")
}

#[test]
fn the_deb_installs_enables_runs_and_purges_cleanly() {
    if nodes_or_skip("the_deb_installs_enables_runs_and_purges_cleanly").is_none() {
        return;
    }
    let Some(deb) = deb() else { return };
    let node = Node::boot("pkg", &BootOptions::default());
    node.import_busybox();
    node.install(&deb, "/root/podswarm.deb", 0o644);
    node.sh("dpkg -i /root/podswarm.deb");

    // Installed, not started: that is the administrator's call.
    assert_eq!(
        node.unit_property("podswarm.service", "UnitFileState"),
        "disabled"
    );
    assert_eq!(
        node.unit_property("podswarm.service", "ActiveState"),
        "inactive"
    );
    node.sh("getent group podswarm && getent passwd podswarm");
    node.sh("test -f /usr/share/man/man1/podswarmctl.1.gz && test -f /usr/share/man/man8/podswarmd.8.gz && test -f /usr/share/bash-completion/completions/podswarmctl");
    assert_eq!(
        node.sh("stat -c '%a %U:%G' /etc/podswarm /var/lib/podswarm"),
        "750 root:podswarm\n750 root:podswarm\n"
    );
    node.sh("podswarmd --validate");

    node.sh("systemctl enable --now podswarm");
    node.wait_for("podswarmd to answer", Duration::from_secs(60), || {
        node.exec(&["podswarmctl", "get", "nodes"]).status.success()
    });

    // Enabling podswarm brings up the gossip service too, unprivileged, and it creates the
    // cluster identity on its first start.
    assert_eq!(
        node.unit_property("podswarm-gossip.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        node.sh("ps -o user= -p $(systemctl show -P MainPID podswarm-gossip.service)")
            .trim(),
        "podswarm"
    );
    assert_eq!(
        node.sh("stat -c '%a %U' /etc/podswarm/cluster /etc/podswarm/cluster/cluster.json /var/lib/podswarm/gossip"),
        "700 podswarm\n600 podswarm\n700 podswarm\n"
    );
    let status = node.sh("podswarmctl cluster status");
    assert!(
        status.starts_with("cluster ") && status.contains("MEMBER"),
        "{status}"
    );
    // The token pins the CA `cluster status` shows.
    let token = node.sh("podswarmctl cluster join-token");
    assert!(token.starts_with("PSWTKN-2-"), "{token}");
    let pinned = token.split('-').nth(3).unwrap_or_default().to_owned();
    assert!(
        status.contains(&format!("ca      sha256:{pinned}\n")),
        "{status}"
    );
    // `systemd-analyze security`'s overall exposure of `unit`, and its verdict line.
    let exposure = |unit: &str| {
        let security = node.sh(&format!("systemd-analyze security {unit} | tail -n 1"));
        println!("{unit}: {}", security.trim());
        let exposure: f64 = security
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no exposure in {security:?}"));
        (exposure, security)
    };
    // The unprivileged siblings: their own user, only the capabilities they need, and hardening
    // that `systemd-analyze security` scores 4.0 or better.
    for unit in [
        "podswarm-gossip.service",
        "podswarm-dns.service",
        "podswarm-ingress.service",
    ] {
        assert_eq!(node.unit_property(unit, "ActiveState"), "active", "{unit}");
        assert_eq!(
            node.sh(&format!(
                "ps -o user= -p $(systemctl show -P MainPID {unit})"
            ))
            .trim(),
            "podswarm",
            "{unit}"
        );
        let (exposure, security) = exposure(unit);
        assert!(exposure <= 4.0, "{unit}: {security}");
    }
    // podswarmd runs as root (systemd over D-Bus, Podman, routes): no worse than it was.
    let (exposure, security) = exposure("podswarm.service");
    assert!(exposure <= 7.1, "podswarm.service: {security}");
    for unit in ["podswarm-dns.service", "podswarm-ingress.service"] {
        assert_eq!(
            node.sh(&format!(
                "grep ^CapEff /proc/$(systemctl show -P MainPID {unit})/status"
            )),
            "CapEff:\t0000000000000400\n",
            "{unit} keeps CAP_NET_BIND_SERVICE and nothing else"
        );
    }
    node.write(
        "/root/app.yaml",
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: hello}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {name: web, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/httpd, -f, -p, '8080', -h, /www], ports: [{name: http, containerPort: 8080}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: hello}\nspec:\n  selector: {app: hello}\n  ports: [{name: http, port: 80, targetPort: http}]\n",
    );
    node.sh("podswarmctl apply -f /root/app.yaml");
    node.wait_for("the pod's unit to run", Duration::from_secs(60), || {
        node.unit_property("podswarm-default_web.service", "ActiveState") == "active"
    });
    // The unit runs before the API's next look at it records the pod's address.
    let mut ip = String::new();
    node.wait_for(
        "the pod's address in the API",
        Duration::from_secs(30),
        || {
            ip = node
            .sh("podswarmctl get pod web -o json | sed -n 's/.*\"podIP\": \"\\([0-9.]*\\)\".*/\\1/p'")
            .trim()
            .to_owned();
            !ip.is_empty()
        },
    );
    let ip = ip.as_str();
    assert!(
        node.sh(&format!("curl -sf http://{ip}:8080/"))
            .contains("hello from podswarm")
    );
    check_dns(&node, ip);
    check_ingress(&node);
    // For docs/BENCHMARKS.md (the idle footprint is a benchmark figure, not a pass/fail line).
    println!(
        "resident memory after the checks:\n{}",
        node.sh(
            "for u in podswarm podswarm-gossip podswarm-dns podswarm-ingress; do \
             printf '%s.service %s\\n' $u \"$(grep -E '^(VmRSS|RssAnon|RssFile)' /proc/$(systemctl show -P MainPID $u.service)/status | tr -s ' \\t\\n' ' ')\"; done"
        )
    );

    // Removing the package stops podswarm, not the workloads.
    node.sh("dpkg -r podswarm");
    assert_ne!(
        node.unit_property("podswarm.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        node.unit_property("podswarm-default_web.service", "ActiveState"),
        "active",
        "dpkg -r must not stop workloads"
    );
    // Purging removes them and everything podswarm made.
    node.sh("dpkg -P podswarm");
    node.wait_for("the workload to stop", Duration::from_secs(30), || {
        node.unit_property("podswarm-default_web.service", "ActiveState") != "active"
    });
    node.sh("test ! -e /etc/containers/systemd/podswarm && test ! -e /var/lib/podswarm && test ! -e /etc/podswarm");
    let left = node.sh("systemctl list-units --no-legend --plain 'podswarm*'");
    assert!(left.trim().is_empty(), "left behind: {left}");

    // A minimal install (no Recommends) has no catatonit, which Podman needs for every pod's infra
    // container: the package must pull it in, so dpkg refuses it while catatonit is missing.
    node.sh("dpkg -r catatonit");
    let out = node.exec(&["dpkg", "-i", "/root/podswarm.deb"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("depends on catatonit"),
        "dpkg -i without catatonit: {said}"
    );
}

/// The cluster DNS as users meet it: `dig` against the node, and a pod resolving by short name.
fn check_dns(node: &Node, ip: &str) {
    let dig = |args: &str| node.sh(&format!("dig @127.0.0.1 +time=2 +tries=1 {args}"));
    node.wait_for("hello to resolve", Duration::from_secs(30), || {
        dig("+short hello.default.svc.cluster.local").trim() == ip
    });
    assert_eq!(dig("+short hello.default.cluster.local").trim(), ip);
    let srv = dig("+short SRV _http._tcp.hello.default.svc.cluster.local");
    let dashed = ip.replace('.', "-");
    assert_eq!(
        srv.trim(),
        format!("0 100 8080 {dashed}.default.pod.cluster.local."),
        "SRV carries the pod's real port"
    );
    let unknown = dig("nope.default.svc.cluster.local");
    assert!(unknown.contains("status: NXDOMAIN"), "{unknown}");

    // From inside the pod: the generator gave it the node's DNS server and the search domains.
    // busybox's nslookup tries every search domain and fails if any says NXDOMAIN, so its exit
    // status says little for a cluster name: what it printed does (stdout and stderr).
    let nslookup = |name: &str| {
        let out = node.exec(&["podman", "exec", "podswarm-default_web", "nslookup", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (_, inside) = nslookup("hello");
    assert!(
        inside.contains(&format!("Address: {ip}"))
            && inside.contains("hello.default.svc.cluster.local"),
        "{inside}"
    );
    let (_, full) = nslookup("hello.default.svc.cluster.local.");
    assert!(full.contains(&format!("Address: {ip}")), "{full}");

    // With the whitelist on, names outside it are refused, for pods and the node alike.
    node.sh("podswarmctl dns whitelist set --enabled true example.org");
    node.wait_for(
        "the whitelist to reach podswarm-dns",
        Duration::from_secs(30),
        || dig("debian.org").contains("status: REFUSED"),
    );
    let (resolved, out) = nslookup("debian.org");
    assert!(
        !resolved && out.to_ascii_uppercase().contains("REFUSED"),
        "{out}"
    );
    // Cluster names never depend on the whitelist.
    assert_eq!(dig("+short hello.default.svc.cluster.local").trim(), ip);
    node.sh("podswarmctl dns whitelist set --enabled false");
}

/// The ingress as users meet it: `curl -H 'Host: …'` through the node reaches the pod.
fn check_ingress(node: &Node) {
    node.write(
        "/root/ingress.yaml",
        br#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hello}
spec:
  rules:
  - host: hello.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: hello, port: {name: http}}}}
  - host: exact.example
    http:
      paths:
      - {path: /index.html, pathType: Exact, backend: {service: {name: hello, port: {number: 80}}}}
"#,
    );
    node.sh("podswarmctl apply -f /root/ingress.yaml");
    let curl = |host: &str, path: &str| {
        node.sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {host}' http://127.0.0.1{path}"
        ))
    };
    node.wait_for("the Ingress to route", Duration::from_secs(30), || {
        curl("hello.example", "/") == "200"
    });
    let page = node.sh("curl -sf -H 'Host: hello.example:80' http://127.0.0.1/index.html");
    assert!(page.contains("hello from podswarm"), "{page}");
    assert_eq!(curl("exact.example", "/index.html"), "200");
    assert_eq!(curl("exact.example", "/index.html/more"), "404");
    assert_eq!(curl("unknown.example", "/"), "404");
    let body = node.sh("curl -s -H 'Host: unknown.example' http://127.0.0.1/");
    assert!(body.contains("no Ingress rule matches"), "{body}");
}

/// podswarm's own units: an upgrade restarts these, with the new binaries.
const OWN_UNITS: [&str; 4] = [
    "podswarm.service",
    "podswarm-gossip.service",
    "podswarm-dns.service",
    "podswarm-ingress.service",
];

/// Every active `podswarm-*` unit that is not podswarm's own (pods, their containers, the pod
/// network), with its InvocationID: a new one means systemd started the unit again.
fn workload_invocations(node: &Node) -> BTreeMap<String, String> {
    node.sh("systemctl list-units --no-legend --plain --state=active 'podswarm-*'")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|unit| !OWN_UNITS.contains(unit))
        .map(|unit| (unit.to_owned(), node.unit_property(unit, "InvocationID")))
        .collect()
}

fn installed_version(node: &Node) -> String {
    node.sh("dpkg-query -W -f '${Version}' podswarm")
}

#[test]
fn upgrading_the_deb_restarts_podswarm_and_no_workload() {
    if nodes_or_skip("upgrading_the_deb_restarts_podswarm_and_no_workload").is_none() {
        return;
    }
    let (Some(deb), Some(newer)) = (deb(), newer_deb()) else {
        return;
    };
    let node = Node::boot("upg", &BootOptions::default());
    node.import_busybox();
    node.install(&deb, "/root/podswarm.deb", 0o644);
    node.install(&newer, "/root/podswarm-newer.deb", 0o644);
    node.sh("dpkg -i /root/podswarm.deb && systemctl enable --now podswarm");
    node.wait_for("podswarmd to answer", Duration::from_secs(60), || {
        node.exec(&["podswarmctl", "get", "nodes"]).status.success()
    });
    node.write("/root/app.yaml", deployment("app", 2).as_bytes());
    node.sh("podswarmctl apply -f /root/app.yaml");
    node.wait_for("two pods running", Duration::from_secs(120), || {
        running(&node).len() == 2
    });
    let pods: Vec<String> = running(&node).into_iter().map(|(name, ..)| name).collect();
    let workloads = workload_invocations(&node);
    assert!(
        pods.iter().all(|pod| workloads
            .keys()
            .any(|unit| unit.starts_with(&format!("podswarm-default_{pod}")))),
        "a running pod without an active unit: {pods:?} {workloads:?}"
    );
    println!("workload units: {:?}", workloads.keys().collect::<Vec<_>>());
    let own: Vec<String> = OWN_UNITS
        .iter()
        .map(|unit| node.unit_property(unit, "InvocationID"))
        .collect();
    let before = installed_version(&node);

    let started = Instant::now();
    let out = node.sh("dpkg -i /root/podswarm-newer.deb 2>&1");
    println!(
        "dpkg -i of the newer package took {:?}:\n{out}",
        started.elapsed()
    );
    // systemctl's complaints (a unit that failed to restart, a unit file changed on disk) would
    // show up here: an upgrade says nothing alarming.
    assert!(!out.contains("Failed") && !out.contains("Warning"), "{out}");
    let after = installed_version(&node);
    assert_ne!(after, before);
    node.sh(&format!("dpkg --compare-versions '{after}' gt '{before}'"));

    // podswarm's own units run again, as new processes of the new files: nothing is left
    // running a binary dpkg replaced (the kernel marks those "(deleted)").
    for (unit, old) in OWN_UNITS.iter().zip(&own) {
        assert_eq!(node.unit_property(unit, "ActiveState"), "active", "{unit}");
        assert_ne!(
            &node.unit_property(unit, "InvocationID"),
            old,
            "{unit} was not restarted by the upgrade"
        );
        let exe = node.sh(&format!(
            "readlink /proc/$(systemctl show -P MainPID {unit})/exe"
        ));
        assert!(!exe.contains("(deleted)"), "{unit} runs {exe}");
    }
    // The workloads were not touched: the same units, never restarted. podswarmd is Type=notify
    // and says ready only after its first pass has adopted what runs, and try-restart (so dpkg)
    // waits for that: this already covers the new podswarmd's look at them.
    assert_eq!(
        workload_invocations(&node),
        workloads,
        "the upgrade restarted, stopped or started workload units"
    );
    // And the user sees the same pods running and serving.
    node.wait_for(
        "the same pods running in podswarmctl get pods",
        Duration::from_secs(30),
        || running(&node).iter().map(|(name, ..)| name).eq(pods.iter()),
    );
    assert_pods_answer(&node, [&node]);
    assert_eq!(workload_invocations(&node), workloads);

    // A node without the ingress (port 80 is another program's): a stopped unit would come
    // back with podswarm.service's restart, which starts what it Wants= like `systemctl restart
    // podswarm` does; a masked one stays off, and the upgrade still restarts the others (here
    // a reinstall of the same version, which takes the same path).
    node.sh("systemctl mask --now podswarm-ingress.service");
    let own: Vec<String> = OWN_UNITS
        .iter()
        .map(|unit| node.unit_property(unit, "InvocationID"))
        .collect();
    let out = node.sh("dpkg -i /root/podswarm-newer.deb 2>&1");
    println!("dpkg -i again, the ingress masked:\n{out}");
    assert!(!out.contains("Failed") && !out.contains("Warning"), "{out}");
    for (unit, old) in OWN_UNITS.iter().zip(&own) {
        if *unit == "podswarm-ingress.service" {
            assert_eq!(node.unit_property(unit, "ActiveState"), "inactive");
        } else {
            assert_eq!(node.unit_property(unit, "ActiveState"), "active", "{unit}");
            assert_ne!(&node.unit_property(unit, "InvocationID"), old, "{unit}");
        }
    }
    assert_eq!(workload_invocations(&node), workloads);
}
