//! Booted test nodes: Debian trixie (systemd 257, Podman 5.4) in systemd-nspawn, one overlay per
//! node over the cached tree, so a node boots in seconds and leaves nothing behind.
//!
//! The recipe is `../shared/docs/TESTING.md`'s. Two additions: the node's `/run/dbus` is a host
//! directory, so tests can talk to the node's systemd over its real system bus; and every node dir
//! carries the test process's PID, so nodes left by a killed test run are cleaned up by the next.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::node_root;

const NODES_DIR: &str = "/var/lib/podswarm-test/nodes";

/// A running node. Dropping it shuts the node down and removes its files.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    dir: PathBuf,
    nspawn: Child,
    leader: u32,
    options: BootOptions,
}

#[derive(Debug, Clone, Default)]
pub struct BootOptions {
    /// Attach `host0` to this host bridge instead of a private network namespace.
    pub bridge: Option<String>,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

/// Removes nodes whose test process is gone (a killed or crashed run).
fn clean_stale() {
    clean_stale_cgroups();
    for entry in std::fs::read_dir(NODES_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        // Its nspawn may still run if only the test process died.
        let out = run(Command::new("pgrep").arg("-f").arg(format!(
            "systemd-nspawn -D {}",
            dir.join("merged").display()
        )));
        for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = run(Command::new("kill").arg("-9").arg(p));
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = run(Command::new("umount").arg("-l").arg(dir.join("merged")));
        remove_cgroups(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

impl Node {
    pub fn boot(name: &str, options: &BootOptions) -> Node {
        clean_stale();
        let dir = PathBuf::from(NODES_DIR).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["upper", "work", "merged", "containers", "dbus"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let merged = dir.join("merged");
        let lower = node_root();
        let mount = run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                dir.join("upper").display(),
                dir.join("work").display()
            ))
            .arg(&merged));
        assert!(
            mount.status.success(),
            "overlay mount failed: {}",
            String::from_utf8_lossy(&mount.stderr)
        );
        std::fs::write(merged.join("etc/hostname"), format!("{name}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let (nspawn, leader) = start_nspawn(name, &dir, options);
        let node = Node {
            name: name.to_owned(),
            dir,
            nspawn,
            leader,
            options: options.clone(),
        };
        node.wait_running();
        node
    }

    /// Boots a node again on its own disk after [`Node::kill_hard`] (a power cut): what it had
    /// written survives, what it held in memory does not. Its address is set again with
    /// [`Node::set_address`] by the caller.
    pub fn boot_again(&mut self) {
        let _ = run(Command::new("ip").args(["link", "del", &self.host_veth()]));
        let (nspawn, leader) = start_nspawn(&self.name, &self.dir, &self.options);
        self.nspawn = nspawn;
        self.leader = leader;
        self.wait_running();
    }

    /// Waits until the node's systemd has booted.
    fn wait_running(&self) {
        // Until PID 1 listens, `--wait` itself fails ("offline"): ask again until it answers.
        let start = Instant::now();
        loop {
            let out = self.exec(&["timeout", "90", "systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "node {} did not boot: {state}; {:?}",
                self.name,
                self.exec(&["systemctl", "--failed", "--no-legend"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node's root as seen from the host (its `/tmp` and `/run` are private tmpfs mounts).
    pub fn root(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The address of the node's system bus, reachable from the host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}",
            self.dir.join("dbus/system_bus_socket").display()
        )
    }

    /// Runs a command inside the node (all namespaces of its PID 1).
    pub fn exec(&self, argv: &[&str]) -> Output {
        run(Command::new("nsenter")
            .arg("-t")
            .arg(self.leader.to_string())
            .arg("-a")
            .arg("--")
            .args(argv))
    }

    /// Runs a shell script inside the node: whether it succeeded, and its output (stdout and
    /// stderr together), for scripts expected to fail.
    pub fn try_sh(&self, script: &str) -> (bool, String) {
        let out = self.exec(&["sh", "-c", &format!("{script} 2>&1")]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs a shell script inside the node; panics with its output if it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "in {}: `{script}` failed:\n{}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies a host file into the node.
    pub fn install(&self, from: &Path, to: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let target = self.root().join(to.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::copy(from, &target)
            .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), target.display()));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes a file into the node.
    pub fn write(&self, to: &str, contents: &[u8]) {
        let target = self.root().join(to.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&target, contents).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    }

    /// Builds `localhost/busybox:latest` inside the node from its busybox-static: no registry is
    /// reachable from test machines. It has sh, httpd, nc, wget and friends, and serves `/www`.
    pub fn import_busybox(&self) {
        self.sh(
            "set -e; d=$(mktemp -d /var/tmp/bb.XXXXXX); mkdir -p $d/bin $d/www $d/tmp; cp /usr/bin/busybox $d/bin/busybox; \
             for l in sh httpd nc wget cat echo sleep ls env printf test mkdir id hostname nslookup true false kill; do ln -s busybox $d/bin/$l; done; \
             echo '<h1>hello from podswarm</h1>' > $d/www/index.html; tar -C $d -cf $d.tar .; \
             podman import --change 'CMD=[\"/bin/sh\"]' $d.tar localhost/busybox:latest >/dev/null; rm -rf $d $d.tar",
        );
    }
}

impl Node {
    /// Kills the node at once: SIGKILL to its PID 1 takes every process of its PID namespace
    /// with it, and nothing shuts down. (Killing only nspawn would leave the node running.)
    pub fn kill_hard(&mut self) {
        let _ = run(Command::new("kill").args(["-9", &self.leader.to_string()]));
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }

    /// Gives the node's bridge link (`host0`) an address, now and at every later boot before the
    /// network is online, as a configured machine has it: a node booted again after a power cut
    /// must not start podswarm without its address (its first pass waits for a state exchange,
    /// its boot for that pass). nspawn may still be moving the link into the node just after
    /// boot, so its absence is waited out for a few seconds.
    pub fn set_address(&self, cidr: &str) {
        let up = format!(
            "for i in $(seq 50); do ip link show host0 >/dev/null 2>&1 && break; sleep 0.2; done; \
             ip addr replace {cidr} dev host0 && ip link set host0 up"
        );
        let unit = format!(
            "[Unit]\nDescription=test node address\nDefaultDependencies=no\n\
             Before=network-online.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart=/bin/sh -c '{}'\n\n[Install]\nWantedBy=network-online.target\n",
            // systemd expands `$` in command lines itself.
            up.replace('$', "$$")
        );
        self.write("/etc/systemd/system/test-address.service", unit.as_bytes());
        self.sh(&format!(
            "systemctl daemon-reload && systemctl enable --quiet test-address.service && {up}"
        ));
    }

    /// The host end of the node's veth on a `--network-bridge` (nspawn names it `vb-<machine>`).
    pub fn host_veth(&self) -> String {
        format!("vb-{}", self.name).chars().take(15).collect()
    }
}

/// A host bridge for nodes that must reach each other; no address on the host side, so only the
/// nodes' own namespaces talk over it. Removed on drop.
#[derive(Debug)]
pub struct Bridge {
    pub name: String,
}

impl Bridge {
    pub fn create(name: &str) -> Bridge {
        let _ = run(Command::new("ip").args(["link", "del", name]));
        let out = run(Command::new("ip").args(["link", "add", name, "type", "bridge"]));
        assert!(
            out.status.success(),
            "ip link add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(Command::new("ip").args(["link", "set", name, "up"]));
        assert!(out.status.success());
        Bridge {
            name: name.to_owned(),
        }
    }

    /// Plugs a node's link into this bridge, out of whichever it was on: moving some nodes to a
    /// second bridge splits the cluster into two halves that each still see their own side;
    /// moving them back heals it.
    pub fn attach(&self, node: &Node) {
        let out =
            run(Command::new("ip").args(["link", "set", &node.host_veth(), "master", &self.name]));
        assert!(
            out.status.success(),
            "{} to {}: {}",
            node.host_veth(),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Takes a node's link down (a partition) or up again (heal).
    pub fn set_link(&self, node: &Node, up: bool) {
        let out = run(Command::new("ip").args([
            "link",
            "set",
            &node.host_veth(),
            if up { "up" } else { "down" },
        ]));
        assert!(
            out.status.success(),
            "{}: {}",
            node.host_veth(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["link", "del", &self.name]));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed test shows what podswarm and systemd said on the node, so a failure in CI
        // (where the node is gone afterwards) can be understood from its log alone.
        if std::thread::panicking() {
            let out = self.exec(&[
                "sh",
                "-c",
                "journalctl --no-pager -o short-monotonic -n 300 -u podswarm.service \
                 -u podswarm-gossip.service -u podswarm-dns.service -u podswarm-ingress.service 2>&1",
            ]);
            eprintln!(
                "---- {}: the last of podswarm's and systemd's journal ----\n{}",
                self.name,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        // SIGTERM makes the node's systemd shut down cleanly; give it a while, then insist.
        let _ = run(Command::new("kill").arg(self.nspawn.id().to_string()));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        // A node killed outright can leave its veth behind (its network namespace outlives it
        // while anything still holds it); the next boot of that name would fail on it.
        let _ = run(Command::new("ip").args(["link", "del", &self.host_veth()]));
        let _ = run(Command::new("umount").arg(self.dir.join("merged")));
        remove_cgroups(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts systemd-nspawn on a node's directory (its overlay mounted on `merged`); returns the
/// nspawn process and the node's PID 1.
fn start_nspawn(name: &str, dir: &Path, options: &BootOptions) -> (Child, u32) {
    // nspawn starts in a cgroup of the node's own (see `node_cgroups`): a shell moves itself
    // there, then becomes nspawn.
    let cgroups = node_cgroups(dir);
    for cg in &cgroups {
        std::fs::create_dir_all(cg).unwrap_or_else(|e| panic!("{}: {e}", cg.display()));
    }
    let enter: String = cgroups
        .iter()
        .map(|cg| format!("echo $$ > '{}/cgroup.procs' && ", cg.display()))
        .collect();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{enter}exec systemd-nspawn \"$@\""))
        .arg("sh");
    cmd.env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
        .arg("-D")
        .arg(dir.join("merged"))
        .args([
            "-b",
            "--register=no",
            "--keep-unit",
            "-M",
            name,
            "--capability=all",
            "--system-call-filter=@keyring bpf",
        ])
        // Podman's storage cannot sit on overlayfs; the bus socket is shared with the host.
        .arg(format!(
            "--bind={}:/var/lib/containers",
            dir.join("containers").display()
        ))
        .arg(format!("--bind={}:/run/dbus", dir.join("dbus").display()));
    match &options.bridge {
        Some(bridge) => {
            let veth: String = format!("vb-{name}").chars().take(15).collect();
            let _ = run(Command::new("ip").args(["link", "del", &veth]));
            cmd.arg(format!("--network-bridge={bridge}"))
        }
        None => cmd.arg("--private-network"),
    };
    let console = std::fs::File::create(dir.join("console.log")).unwrap_or_else(|e| panic!("{e}"));
    let console_err = console.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let nspawn = cmd
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(console_err)
        .spawn()
        .unwrap_or_else(|e| panic!("systemd-nspawn: {e}"));
    let start = Instant::now();
    // nspawn forks an outer child that exits once the container's PID 1 runs; only a child
    // that has become `systemd` is the node.
    let leader = loop {
        let pid = children(nspawn.id()).into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "systemd")
        });
        if let Some(pid) = pid {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the node never started; see {}",
            dir.join("console.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (nspawn, leader)
}

/// The cgroups (one per hierarchy that tracks processes: the unified one, and systemd's named
/// one on a hybrid host) a node's nspawn runs in: children of this process's own, one per node.
/// With `--keep-unit` nspawn puts the node's systemd in `payload/` under its own cgroup, so nodes
/// started from one cgroup would share `payload/system.slice/<unit>`, and `systemctl kill
/// podswarm.service` on one node would kill that unit's processes on every node (seen: the chaos
/// test's kills took down podswarmd and podswarm-gossip of single-node tests running beside it).
fn node_cgroups(dir: &Path) -> Vec<PathBuf> {
    let leaf = format!(
        "podswarm-node-{}",
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    cgroup_parents()
        .into_iter()
        .map(|parent| parent.join(&leaf))
        .collect()
}

/// This process's own cgroups, under which the nodes' go (see [`node_cgroups`]).
fn cgroup_parents() -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    own.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let mount = match controllers {
                "" if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() => {
                    "/sys/fs/cgroup/unified"
                }
                "" => "/sys/fs/cgroup",
                "name=systemd" => "/sys/fs/cgroup/systemd",
                _ => return None,
            };
            Some(Path::new(mount).join(path.trim_start_matches('/')))
        })
        .collect()
}

/// Removes a node's cgroups once it is gone: empty directories, innermost first. The last of its
/// processes may still be exiting, so it tries for a few seconds; what is left then goes with
/// the next [`clean_stale`].
fn remove_cgroups(dir: &Path) {
    fn remove(cg: &Path) -> bool {
        for sub in std::fs::read_dir(cg).into_iter().flatten().flatten() {
            if sub.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&sub.path());
            }
        }
        std::fs::remove_dir(cg).is_ok() || !cg.exists()
    }
    for cg in node_cgroups(dir) {
        for _ in 0..20 {
            if remove(&cg) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Cgroups of nodes whose test process is gone (`podswarm-node-<name>-<pid>`).
fn clean_stale_cgroups() {
    for parent in cgroup_parents() {
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(node) = name.strip_prefix("podswarm-node-") else {
                continue;
            };
            let gone = node
                .rsplit('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if gone {
                remove_cgroups(Path::new(node));
            }
        }
    }
}

/// Whether booted nodes can run here; `None` (after saying why) means skip.
pub fn nodes_or_skip(test: &str) -> Option<()> {
    crate::quadlet_root_or_skip(test)?;
    let missing: Vec<&str> = ["systemd-nspawn", "nsenter", "mount"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    let p = format!("missing tools: {}", missing.join(", "));
    if std::env::var("PODSWARM_REQUIRE_NODES").is_ok_and(|v| v == "1") {
        panic!("{test}: PODSWARM_REQUIRE_NODES=1 but {p}");
    }
    println!("SKIPPED {test}: {p}");
    None
}

/// A workspace binary (podswarmd, podswarmctl) next to the test executable's directory.
/// Forms one cluster of `nodes` as a user would: `cluster init` on the first, advertising `addr`,
/// then `cluster join` of each other node through it with the join token.
pub fn form_cluster(nodes: &[Node], addr: &str) {
    let Some((first, others)) = nodes.split_first() else {
        return;
    };
    first.sh(&format!("podswarmctl cluster init --advertise-addr {addr}"));
    let token = first.sh("podswarmctl cluster join-token").trim().to_owned();
    for node in others {
        node.sh(&format!("podswarmctl cluster join {addr} --token {token}"));
    }
}

/// The `.deb` that `packaging/build.sh` left in `dir` (relative to the workspace root); `None`
/// (after saying why `test` skips) when there is none, which fails the test instead when
/// `PODSWARM_REQUIRE_NODES=1`.
pub fn built_deb(dir: &str, test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let found = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    if found.is_none() {
        let why = format!("no .deb in {} (run packaging/build.sh)", dir.display());
        assert!(
            std::env::var("PODSWARM_REQUIRE_NODES").as_deref() != Ok("1"),
            "PODSWARM_REQUIRE_NODES=1 but {why}"
        );
        println!("SKIPPED {test}: {why}");
    }
    found
}

pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no target dir for {}", exe.display()));
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

/// What the package puts in /usr/bin.
pub const PACKAGED_BINARIES: [&str; 5] = [
    "podswarmd",
    "podswarmctl",
    "podswarm-gossip",
    "podswarm-dns",
    "podswarm-ingress",
];

impl Node {
    /// Installs the binaries and units as the package does, and starts podswarm.
    pub fn install_podswarm(&self) {
        for bin in PACKAGED_BINARIES {
            self.install(&workspace_binary(bin), &format!("/usr/bin/{bin}"), 0o755);
        }
        let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging");
        for (from, to) in [
            (
                "systemd/podswarm.service",
                "/usr/lib/systemd/system/podswarm.service",
            ),
            (
                "systemd/podswarm-gossip.service",
                "/usr/lib/systemd/system/podswarm-gossip.service",
            ),
            (
                "systemd/podswarm-dns.service",
                "/usr/lib/systemd/system/podswarm-dns.service",
            ),
            (
                "systemd/podswarm-ingress.service",
                "/usr/lib/systemd/system/podswarm-ingress.service",
            ),
            (
                "systemd/podswarm.target",
                "/usr/lib/systemd/system/podswarm.target",
            ),
            (
                "sysusers/podswarm.conf",
                "/usr/lib/sysusers.d/podswarm.conf",
            ),
            (
                "tmpfiles/podswarm.conf",
                "/usr/lib/tmpfiles.d/podswarm.conf",
            ),
        ] {
            self.install(&packaging.join(from), to, 0o644);
        }
        // What the package does on install (users, directories, the pods' subordinate ID ranges).
        self.install(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../debian/postinst"),
            "/root/podswarm.postinst",
            0o755,
        );
        self.sh("/root/podswarm.postinst configure");
        self.sh("systemctl daemon-reload && systemctl enable --now podswarm.service");
        self.wait_for("podswarmd to answer", Duration::from_secs(60), || {
            self.exec(&["podswarmctl", "get", "nodes"]).status.success()
        });
    }

    /// Polls `check` every 250 ms until it holds; panics with `what` after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            if start.elapsed() > limit {
                let journal = self.exec(&["journalctl", "-b", "--no-pager", "-n", "60"]);
                panic!(
                    "{}: gave up waiting for {what} after {limit:?}; recent journal:\n{}",
                    self.name,
                    String::from_utf8_lossy(&journal.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A unit property (`systemctl show -p NAME --value`).
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        String::from_utf8_lossy(
            &self
                .exec(&["systemctl", "show", "-p", property, "--value", unit])
                .stdout,
        )
        .trim()
        .to_owned()
    }

    /// The resident memory of `unit`'s main process, in KiB (0 when it has none).
    pub fn unit_rss_kib(&self, unit: &str) -> u64 {
        self.sh(&format!(
            "grep VmRSS /proc/$(systemctl show -p MainPID --value {unit})/status"
        ))
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
    }
}
