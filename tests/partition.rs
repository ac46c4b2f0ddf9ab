//! Partitions on booted nodes with the package's binaries.
//!
//! Four nodes: a Deployment applied the moment
//! the joins return gets four pods with four distinct addresses that every node reaches, then the
//! cluster is split 2/2 (two bridges, as a failed switch would split it) for 60 s with writes on
//! both sides, and healed. Afterwards every node sees all four nodes, every write from both sides
//! is present (the later of two writes to one key wins), and systemd on the nodes runs exactly the
//! desired pods, each once.
//!
//! Three nodes, one of them isolated for `PODSWARM_ISOLATION_SECS` (30 s by default; the soak,
//! `tests/soak.sh`, takes 600): long enough that the others give up on it as a member (foca
//! forgets a down member after a while, so only the reconnect loop over the node records can find
//! it again) and that both sides' writes include a delete. Once its link is back it rejoins
//! within the documented bound, and both sides' writes are all there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podswarm_tests::ctl::{
    active_pods, assert_pods_answer, census, deployment, deployments, nodes_of, ready_nodes,
    running,
};
use podswarm_tests::node::{BootOptions, Bridge, Node, form_cluster, nodes_or_skip};

const SUBNET: &str = "10.97.0";
const NAMES: [&str; 4] = ["p1", "p2", "p3", "p4"];

/// Boots `names` with the workspace's binaries at `<subnet>.1`, `.2`, … and forms one cluster.
fn boot_cluster(names: &[&str], subnet: &str, options: &BootOptions) -> Vec<Node> {
    let nodes: Vec<Node> = names.iter().map(|n| Node::boot(n, options)).collect();
    for (i, node) in nodes.iter().enumerate() {
        node.set_address(&format!("{subnet}.{}/24", i + 1));
        node.import_busybox();
        node.install_podswarm();
    }
    form_cluster(&nodes, &format!("{subnet}.1"));
    nodes
}

#[test]
fn a_two_two_split_with_writes_on_both_sides_heals_to_exactly_the_desired_pods() {
    if nodes_or_skip("a_two_two_split_with_writes_on_both_sides_heals_to_exactly_the_desired_pods")
        .is_none()
    {
        return;
    }
    let id = std::process::id() % 10_000;
    let left = Bridge::create(&format!("pswl{id}"));
    let right = Bridge::create(&format!("pswr{id}"));
    let options = BootOptions {
        bridge: Some(left.name.clone()),
    };
    let nodes = boot_cluster(&NAMES, SUBNET, &options);
    let all: Vec<&Node> = nodes.iter().collect();
    let (p1, p3) = (&nodes[0], &nodes[2]);
    // Applied at once, before the joined nodes have settled their pod subnets: every node held
    // the same /24 as a one-node cluster, and no two live pods may ever share an address.
    p1.write("/root/web.yaml", deployment("web", 4).as_bytes());
    p1.sh("podswarmctl apply -f /root/web.yaml");
    let started = Instant::now();
    // Placement is sticky: pods placed before the other nodes' subnet claims stood stay where they
    // started, so where they run is not asserted; that they are four, each with its own address
    // and reachable from every node, is.
    p1.wait_for(
        "four pods running, each with its own address",
        Duration::from_secs(180),
        || {
            let pods = running(p1);
            let mut ips: Vec<&str> = pods.iter().map(|(_, _, ip)| ip.as_str()).collect();
            ips.sort();
            let n = ips.len();
            ips.dedup();
            assert_eq!(ips.len(), n, "two running pods share an address: {pods:?}");
            n == 4 && ready_nodes(p1) == NAMES
        },
    );
    println!(
        "four pods running on {:?} {:.1} s after the apply",
        nodes_of(&running(p1)),
        started.elapsed().as_secs_f64()
    );
    // Processes and units agree with the API: one systemd unit per pod. Until the pods' status
    // records are out (a second or so), placement has nothing to keep them where they started and
    // a pod may still move once; so this waits for a listing that holds still.
    p1.wait_for(
        "one active unit per pod, the listing settled",
        Duration::from_secs(30),
        || {
            let before = running(p1);
            std::thread::sleep(Duration::from_secs(2));
            census(&all, &["web"]) == BTreeMap::from([("web".to_owned(), 4)])
                && running(p1) == before
        },
    );
    assert_pods_answer(p1, &nodes);

    // Split: p3 and p4 move to the other bridge. Each half sees only itself.
    let cut = Instant::now();
    right.attach(&nodes[2]);
    right.attach(&nodes[3]);
    for (i, node) in nodes.iter().enumerate() {
        let side: &[&str] = if i < 2 { &NAMES[..2] } else { &NAMES[2..] };
        node.wait_for("its half alone", Duration::from_secs(60), || {
            ready_nodes(node) == side
        });
    }
    // Writes on both sides: a new Deployment each, and both scale `web` (p3 later, so it wins).
    p1.write("/root/a.yaml", deployment("a", 1).as_bytes());
    p1.sh("podswarmctl apply -f /root/a.yaml && podswarmctl scale deploy/web --replicas 6");
    p3.write("/root/b.yaml", deployment("b", 2).as_bytes());
    p3.sh("podswarmctl apply -f /root/b.yaml && podswarmctl scale deploy/web --replicas 3");
    p1.wait_for(
        "the left half runs its view",
        Duration::from_secs(90),
        || {
            census(&all[..2], &["web", "a"])
                == BTreeMap::from([("a".to_owned(), 1), ("web".to_owned(), 6)])
        },
    );
    p3.wait_for(
        "the right half runs its view",
        Duration::from_secs(90),
        || {
            census(&all[2..], &["web", "b"])
                == BTreeMap::from([("b".to_owned(), 2), ("web".to_owned(), 3)])
        },
    );
    std::thread::sleep(Duration::from_secs(60).saturating_sub(cut.elapsed()));

    left.attach(&nodes[2]);
    left.attach(&nodes[3]);
    let healed = Instant::now();
    for node in &nodes {
        node.wait_for(
            "all four nodes ready again",
            Duration::from_secs(30),
            || ready_nodes(node) == NAMES,
        );
    }
    println!(
        "the halves merged {:.1} s after the split healed",
        healed.elapsed().as_secs_f64()
    );
    let want: BTreeMap<String, i64> = [("a", 1), ("b", 2), ("web", 3)]
        .map(|(n, r)| (n.to_owned(), r))
        .into();
    for node in &nodes {
        node.wait_for(
            "every write from both halves",
            Duration::from_secs(30),
            || deployments(node) == want,
        );
    }
    let expected: BTreeMap<String, usize> =
        want.iter().map(|(k, v)| (k.clone(), *v as usize)).collect();
    let mut last = BTreeMap::new();
    p1.wait_for(
        "exactly the desired pods, each once",
        Duration::from_secs(120),
        || {
            let now = census(&all, &["web", "a", "b"]);
            if now != last {
                println!(
                    "{:.1} s: {now:?}; units {:?}",
                    healed.elapsed().as_secs_f64(),
                    all.iter()
                        .map(|n| (n.name.clone(), active_pods(n, "*")))
                        .collect::<Vec<_>>()
                );
                last = now.clone();
            }
            now == expected
        },
    );
    println!(
        "exactly the desired pods {:.1} s after the split healed",
        healed.elapsed().as_secs_f64()
    );
    for node in &nodes {
        node.wait_for(
            "the API shows the same running pods on every node",
            Duration::from_secs(60),
            || running(node).len() == 6,
        );
    }
    drop(nodes);
    drop(left);
    drop(right);
}

#[test]
fn an_isolated_node_rejoins_with_every_write_from_both_sides() {
    if nodes_or_skip("an_isolated_node_rejoins_with_every_write_from_both_sides").is_none() {
        return;
    }
    const SUBNET: &str = "10.93.0";
    const NAMES: [&str; 3] = ["i1", "i2", "i3"];
    let isolated_for = Duration::from_secs(
        std::env::var("PODSWARM_ISOLATION_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let bridge = Bridge::create(&format!("pswi{}", std::process::id() % 10_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let nodes = boot_cluster(&NAMES, SUBNET, &options);
    let all: Vec<&Node> = nodes.iter().collect();
    let (i1, i3) = (&nodes[0], &nodes[2]);
    i1.wait_for("three nodes ready", Duration::from_secs(60), || {
        ready_nodes(i1) == NAMES
    });
    let mut manifest = deployment("web", 3);
    manifest.push_str("---\n");
    manifest.push_str(&deployment("old", 1));
    i1.write("/root/start.yaml", manifest.as_bytes());
    i1.sh("podswarmctl apply -f /root/start.yaml >/dev/null");
    i1.wait_for("web and old running", Duration::from_secs(120), || {
        census(&all, &["web", "old"])
            == BTreeMap::from([("old".to_owned(), 1), ("web".to_owned(), 3)])
    });

    // Isolate i3. The majority writes at once: a new Deployment, a scale, and a delete (whose
    // tombstone must win over i3's older copy); i3 writes last, so its scale of `web` wins.
    let cut = Instant::now();
    bridge.set_link(i3, false);
    i1.wait_for("the majority without i3", Duration::from_secs(60), || {
        ready_nodes(i1) == NAMES[..2]
    });
    i3.wait_for("i3 alone", Duration::from_secs(60), || {
        ready_nodes(i3) == NAMES[2..]
    });
    i1.write("/root/maj.yaml", deployment("maj", 1).as_bytes());
    i1.sh(
        "podswarmctl apply -f /root/maj.yaml >/dev/null && podswarmctl scale deploy/web --replicas 4 \
         && podswarmctl delete deploy/old",
    );
    i1.wait_for(
        "the majority runs its view",
        Duration::from_secs(120),
        || {
            census(&all[..2], &["web", "maj", "old"])
                == BTreeMap::from([
                    ("maj".to_owned(), 1),
                    ("old".to_owned(), 0),
                    ("web".to_owned(), 4),
                ])
        },
    );
    std::thread::sleep(isolated_for.saturating_sub(cut.elapsed() + Duration::from_secs(10)));
    i3.write("/root/iso.yaml", deployment("iso", 1).as_bytes());
    i3.sh("podswarmctl apply -f /root/iso.yaml >/dev/null && podswarmctl scale deploy/web --replicas 2");
    i3.wait_for("i3 runs its view", Duration::from_secs(120), || {
        census(&all[2..], &["web", "iso"])
            == BTreeMap::from([("iso".to_owned(), 1), ("web".to_owned(), 2)])
    });
    std::thread::sleep(isolated_for.saturating_sub(cut.elapsed()));

    bridge.set_link(i3, true);
    let healed = Instant::now();
    for node in &nodes {
        node.wait_for("all three ready again", Duration::from_secs(30), || {
            ready_nodes(node) == NAMES
        });
    }
    println!(
        "isolated for {:.0} s; rejoined {:.1} s after its link came back",
        cut.elapsed().saturating_sub(healed.elapsed()).as_secs_f64(),
        healed.elapsed().as_secs_f64()
    );
    let want: BTreeMap<String, i64> = [("iso", 1), ("maj", 1), ("web", 2)]
        .map(|(n, r)| (n.to_owned(), r))
        .into();
    for node in &nodes {
        node.wait_for(
            "every write from both sides, the delete and the later scale winning",
            Duration::from_secs(30),
            || deployments(node) == want,
        );
    }
    let expected: BTreeMap<String, usize> = [("iso", 1), ("maj", 1), ("old", 0), ("web", 2)]
        .map(|(n, r)| (n.to_owned(), r))
        .into();
    i1.wait_for(
        "exactly the desired pods, each once",
        Duration::from_secs(120),
        || census(&all, &["iso", "maj", "old", "web"]) == expected,
    );
    println!(
        "exactly the desired pods {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    );
    for node in &nodes {
        node.wait_for(
            "the API shows the same four running pods on every node",
            Duration::from_secs(60),
            || running(node).len() == 4,
        );
    }
    assert_pods_answer(i1, &nodes);
}
