#!/usr/bin/env bash
# Runs podswarm for real on this machine: a single-node cluster in a booted Debian trixie node
# (systemd 257, Podman 5.4) under systemd-nspawn, installed the way the package installs it.
#
#   sudo ./tests/nodes/try.sh          build, boot, install, apply examples/hello.yaml, show it
#   sudo ./tests/nodes/try.sh --stop   shut the node down and remove it
#
# The node keeps running afterwards; the script prints how to use podswarmctl, systemctl and
# journalctl inside it. No network is needed beyond this machine's Debian mirror and crates.io the
# first time (tests/setup.sh: Debian packages, the node tree, the crates).
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=/var/lib/podswarm-test/try
name=podswarm-try

stop() {
    local pid child
    # Anchored: a shell whose command line merely mentions the node must not match.
    pid=$(pgrep -f "^systemd-nspawn -D $dir/merged " | head -n 1 || true)
    if [ -n "$pid" ]; then
        kill "$pid" # the node's systemd shuts down cleanly
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            # Still up after 20 s: cut the power (SIGKILL to the node's PID 1 ends everything in
            # it) rather than remove the tree under a running node.
            # shellcheck disable=SC2013 # the children files hold PIDs separated by spaces
            for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do kill -9 "$child" 2>/dev/null || true; done
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    mountpoint -q "$dir/merged" && umount "$dir/merged"
    rm -rf "$dir"
}

if [ "${1:-}" = "--stop" ]; then
    stop
    echo "stopped and removed $name"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "try.sh: run as root (it boots a systemd-nspawn node)" >&2; exit 1; }
# Installs what is missing (debootstrap, systemd-container, cmake, the pinned toolchain) and builds
# the node tree once; quick when all is there.
# shellcheck source=tests/setup.sh
. tests/setup.sh try

echo "== building podswarm (release)"
cargo build --release --locked --workspace --bins
target=${CARGO_TARGET_DIR:-target}
stop

root=${PODSWARM_NODE_CACHE:-/var/cache/podswarm-test}/trixie-root
mkdir -p "$dir"/{upper,work,merged,containers}
mount -t overlay overlay -o "lowerdir=$root,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
echo "$name" >"$dir/merged/etc/hostname"
# What the package installs: the binaries, podswarm's units, its user and directories.
for bin in podswarmd podswarmctl podswarm-gossip podswarm-dns podswarm-ingress; do
    install -m 0755 "$target/release/$bin" "$dir/merged/usr/bin/"
done
install -m 0644 packaging/systemd/*.service packaging/systemd/podswarm.target "$dir/merged/usr/lib/systemd/system/"
install -D -m 0644 packaging/sysusers/podswarm.conf "$dir/merged/usr/lib/sysusers.d/podswarm.conf"
install -D -m 0644 packaging/tmpfiles/podswarm.conf "$dir/merged/usr/lib/tmpfiles.d/podswarm.conf"
cp examples/hello.yaml "$dir/merged/root/"

SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$dir/merged" -b --register=no --keep-unit -M "$name" \
    --capability=all --system-call-filter='@keyring bpf' --private-network \
    --bind="$dir/containers:/var/lib/containers" >"$dir/console.log" 2>&1 &
nspawn=$!
leader=""
for _ in $(seq 1 100); do
    # nspawn's outer child exits once the container's PID 1 runs: wait for the one that is systemd.
    leader=""
    # shellcheck disable=SC2013 # the children files hold PIDs separated by spaces
    for pid in $(cat /proc/"$nspawn"/task/*/children 2>/dev/null); do
        [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd ] && leader=$pid
    done
    [ -n "$leader" ] && break
    sleep 0.1
done
[ -n "$leader" ] || { echo "try.sh: the node did not start; see $dir/console.log" >&2; exit 1; }
in_node() { nsenter -t "$leader" -a -- "$@"; }
for _ in $(seq 1 300); do
    state=$(in_node systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
done

echo "== importing a local busybox image (no registry is reachable here)"
# shellcheck disable=SC2016 # expanded by the node's shell
in_node sh -c 'set -e; d=$(mktemp -d /var/tmp/bb.XXXXXX); mkdir -p $d/bin $d/www; cp /usr/bin/busybox $d/bin/;
    for l in sh httpd nc wget cat echo sleep ls env printf; do ln -s busybox $d/bin/$l; done;
    tar -C $d -cf $d.tar .; podman import --change "CMD=[\"/bin/sh\"]" $d.tar localhost/busybox:latest >/dev/null; rm -rf $d $d.tar'

echo "== systemctl enable --now podswarm"
# What the package's postinst does (users, directories, the pods' subordinate ID ranges).
install -m 0755 debian/postinst "$dir/merged/root/podswarm.postinst"
in_node sh -c '/root/podswarm.postinst configure && systemctl daemon-reload && systemctl enable --now podswarm'
echo "== podswarmctl apply -f /root/hello.yaml"
in_node podswarmctl apply -f /root/hello.yaml
for _ in $(seq 1 120); do
    in_node podswarmctl get pods 2>/dev/null | grep -q ' 1/1 .*Running' && break
    sleep 0.5
done
# The ingress and the DNS server route to a pod once its readiness probe has passed there too, a
# few seconds after the pod shows READY: wait for both (at most 30 s) before showing them.
for _ in $(seq 1 60); do
    in_node curl -sf -o /dev/null -H 'Host: hello.example.com' http://127.0.0.1/ &&
        [ -n "$(in_node dig @127.0.0.1 +short +time=1 +tries=1 hello.default.svc.cluster.local 2>/dev/null)" ] && break
    sleep 0.5
done
echo "== podswarmctl get pods -o wide"
in_node podswarmctl get pods -o wide
echo "== systemctl list-units 'podswarm-*'"
in_node systemctl list-units --no-pager 'podswarm-*'
ip=$(in_node podswarmctl get pods -o json | sed -n 's/.*"ip": "\([0-9.]*\)".*/\1/p' | head -n 1)
echo "== curl http://$ip:8080/"
in_node curl -s "http://$ip:8080/" || true
echo "== through the ingress: curl -H 'Host: hello.example.com' http://127.0.0.1/"
in_node curl -s -H 'Host: hello.example.com' http://127.0.0.1/ || true
echo "== the cluster DNS: dig @127.0.0.1 hello.default.svc.cluster.local +short"
in_node dig @127.0.0.1 +short hello.default.svc.cluster.local || true
cat <<EOT

podswarm runs in node $name (PID $leader). Try, from this machine:
  nsenter -t $leader -a podswarmctl get deploy
  nsenter -t $leader -a podswarmctl describe pod NAME
  nsenter -t $leader -a systemctl status 'podswarm-default_hello-*'
  nsenter -t $leader -a journalctl -u podswarm -f
  nsenter -t $leader -a bash                       # a shell inside the node
Stop it with: sudo ./tests/nodes/try.sh --stop
EOT
