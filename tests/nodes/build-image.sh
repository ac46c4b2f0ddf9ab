#!/usr/bin/env bash
# Builds (once) the Debian trixie root tree used by the Quadlet checks and the booted test nodes.
#
# Why trixie: it ships Podman 5 with Quadlet and systemd 257, while the host (Debian 12) has neither.
# The tree is cached under $PODSWARM_NODE_CACHE (default /var/cache/podswarm-test) so later runs on the
# same machine reuse it; a half-built tree is never left behind (built in a temp dir, then renamed).
set -euo pipefail

cache=${PODSWARM_NODE_CACHE:-/var/cache/podswarm-test}
root="$cache/trixie-root"
mirror=${PODSWARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# catatonit: podman's pause process for pod infra containers (Debian's podman only recommends it).
packages=systemd,systemd-sysv,dbus,podman,crun,catatonit,iproute2,netavark,aardvark-dns,passt,nftables,procps,busybox-static,curl,bind9-dnsutils
# The cache is keyed on what goes into the tree: change the list or the setup below, bump this.
image_version="2:$packages"

if [ -x "$root/usr/lib/systemd/system-generators/podman-system-generator" ] &&
    [ "$(cat "$root/.podswarm-image" 2>/dev/null)" = "$image_version" ]; then
    echo "node image: cached at $root"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "node image: building the trixie root needs root (debootstrap)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "node image: debootstrap is not installed" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "node image: debootstrap trixie into $work (about a minute)"
debootstrap --variant=minbase --include="$packages" trixie "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}
mkdir -p "$work/root/etc/containers/containers.conf.d"
# The nodes' cgroup tree has no controllers delegated, so pids limits cannot be applied there.
printf '[containers]\npids_limit = 0\n' >"$work/root/etc/containers/containers.conf.d/50-test.conf"
# Loading kernel modules is the host's business; in a container the unit only fails.
ln -sf /dev/null "$work/root/etc/systemd/system/systemd-modules-load.service"
echo "$image_version" >"$work/root/.podswarm-image"
rm -rf "$root"
mv "$work/root" "$root"
echo "node image: ready at $root"
