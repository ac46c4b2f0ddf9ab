//! Issue 11, fault 6: one node's clock jumps an hour ahead, then is set back. Three nodes' hybrid
//! clocks and stores, driven with the wall time each node reads, write and exchange their states as
//! anti-entropy does (each applies what the other holds newer, observing its versions).
//!
//! What holds (and what `docs/RELIABILITY.md` says):
//! - every node ends with the same map, every key ever written present (none lost), each holding
//!   the write with the highest version;
//! - versions never go back on any node: after the fast node's clock is set back its hybrid clock
//!   stays ahead (it only counts up), so its later writes still win over its earlier ones;
//! - once a node has heard from the fast node, its own clock runs ahead too (hybrid clocks follow
//!   the highest time seen), so a write it makes after that wins over the fast node's earlier
//!   ones. Only a write made before any contact with the fast node loses against a fast write to
//!   the same key made earlier in real time: last-writer-wins by clock, the known price;
//! - the tombstone horizon follows the wall clock: a jump smaller than the tombstone time-to-live
//!   (7 days by default) never lets the fast node refuse a write from the others.

use podswarm_cluster::{Clock, Entry, Store};
use serde_json::{Value, json};

const HOUR: u64 = 3_600_000;
const WEEK: u64 = 7 * 24 * HOUR;

struct Node {
    clock: Clock,
    store: Store,
    /// How far this node's wall clock is ahead, in milliseconds.
    ahead: u64,
}

impl Node {
    fn new(id: u64) -> Node {
        Node {
            clock: Clock::new(id),
            store: Store::default(),
            ahead: 0,
        }
    }

    fn write(&mut self, now: u64, key: &str, value: Value) -> Entry {
        let entry = Entry {
            version: self.clock.tick(now + self.ahead),
            value: Some(value),
        };
        self.store.apply(key, entry.clone());
        entry
    }
}

/// A full exchange between two nodes, both ways, as anti-entropy makes it.
fn exchange(nodes: &mut [Node], a: usize, b: usize, now: u64) {
    for (from, to) in [(a, b), (b, a)] {
        let newer = nodes[from].store.newer_than(&nodes[to].store.digest());
        let node = &mut nodes[to];
        for (key, entry) in newer {
            node.clock.observe(entry.version, now + node.ahead);
            node.store.apply(&key, entry);
        }
    }
}

fn converge(nodes: &mut [Node], now: u64) {
    for _ in 0..2 {
        exchange(nodes, 0, 1, now);
        exchange(nodes, 1, 2, now);
        exchange(nodes, 0, 2, now);
    }
}

#[test]
fn a_clock_an_hour_ahead_and_set_back_loses_no_write() {
    let mut now = 1_795_000_000_000_u64;
    let mut nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let mut written: Vec<(String, Entry)> = Vec::new();
    let mut write = |nodes: &mut Vec<Node>, n: usize, now: u64, key: &str, v: Value| {
        let e = nodes[n].write(now, key, v);
        written.push((key.to_owned(), e));
    };

    // Before the jump, everyone writes and converges.
    for n in 0..3 {
        write(&mut nodes, n, now, &format!("before/{n}"), json!(n));
    }
    converge(&mut nodes, now);

    // Node 0 jumps an hour ahead and writes; node 1 writes the same key a second later in real
    // time, before it has heard from node 0: node 0's write wins (its clock says it is later).
    nodes[0].ahead = HOUR;
    now += 1000;
    write(&mut nodes, 0, now, "shared/a", json!("fast, earlier"));
    now += 1000;
    write(
        &mut nodes,
        1,
        now,
        "shared/a",
        json!("slow, later, no contact yet"),
    );
    converge(&mut nodes, now);
    assert_eq!(
        nodes[2].store.value("shared/a"),
        Some(&json!("fast, earlier"))
    );
    // After contact, node 1's clock runs ahead as well: its next write wins.
    now += 1000;
    write(&mut nodes, 1, now, "shared/a", json!("slow, after contact"));
    converge(&mut nodes, now);
    for node in &nodes {
        assert_eq!(
            node.store.value("shared/a"),
            Some(&json!("slow, after contact"))
        );
    }

    // Node 0's clock is set back. Its versions do not go back: its new write to a key it wrote
    // while ahead still wins.
    write(&mut nodes, 0, now, "fast/own", json!(1));
    nodes[0].ahead = 0;
    now += 1000;
    write(&mut nodes, 0, now, "fast/own", json!(2));
    let last = nodes[0]
        .store
        .entry("fast/own")
        .map(|e| e.version)
        .unwrap_or_default();
    assert!(
        last.millis >= now + HOUR - 10_000,
        "the hybrid clock stays ahead: {last}"
    );
    for n in 0..3 {
        write(&mut nodes, n, now, &format!("after/{n}"), json!(n));
    }
    // Garbage collection runs on every node by its own wall clock, with the default TTL.
    for node in &mut nodes {
        let wall = now + node.ahead;
        node.store.collect_garbage(wall, WEEK);
    }
    converge(&mut nodes, now);

    // Every node holds the same map; every key written is there, with its newest write.
    let prints: Vec<[u8; 32]> = nodes.iter().map(|n| n.store.fingerprint()).collect();
    assert!(
        prints.windows(2).all(|w| w[0] == w[1]),
        "the nodes disagree"
    );
    let mut newest: std::collections::BTreeMap<&str, &Entry> = std::collections::BTreeMap::new();
    for (key, entry) in &written {
        let slot = newest.entry(key.as_str()).or_insert(entry);
        if entry.version > slot.version {
            *slot = entry;
        }
    }
    for node in &nodes {
        for (key, entry) in &newest {
            assert_eq!(node.store.value(key), entry.value.as_ref(), "{key}");
        }
    }
    assert_eq!(nodes[1].store.value("fast/own"), Some(&json!(2)));
}

/// A jump further ahead than the tombstone time-to-live: the fast node's horizon passes the
/// others' clocks, and it refuses a new key they write before they have heard from it. The others
/// hold the key, anti-entropy offers it again, and the fast node refuses it again. This is the
/// limit `docs/RELIABILITY.md` states (keep clocks within the TTL, 7 days by default).
#[test]
fn a_jump_beyond_the_tombstone_ttl_is_the_documented_limit() {
    let now = 1_795_000_000_000_u64;
    let mut nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    nodes[0].ahead = 2 * WEEK;
    let wall = now + nodes[0].ahead;
    nodes[0].store.collect_garbage(wall, WEEK);
    nodes[1].write(now, "new/key", json!("from a node with a right clock"));
    exchange(&mut nodes, 0, 1, now);
    assert_eq!(nodes[0].store.value("new/key"), None);
    assert!(nodes[1].store.value("new/key").is_some());
}
