#!/usr/bin/env bash
# Builds (once) the Debian trixie root tree used by the Quadlet checks and the booted test nodes.
#
# Why trixie: it ships Podman 5 with Quadlet and systemd 257, while the host (Debian 12) has neither.
# The tree is cached under $PODSWARM_NODE_CACHE (default /var/cache/podswarm-test) so later runs on the
# same machine reuse it; a half-built tree is never left behind (built in a temp dir, then renamed).
#
#   tests/nodes/build-image.sh                 build the tree unless it is cached
#   tests/nodes/build-image.sh --print-mirror  print the Debian mirror it would use
#
# The mirror is the one this machine's apt already uses (the first `deb` entry for a Debian release
# with `main` in /etc/apt/sources.list, sources.list.d/*.list or sources.list.d/*.sources), so no
# host is named here; PODSWARM_DEBIAN_MIRROR=URL overrides it.
set -euo pipefail

cache=${PODSWARM_NODE_CACHE:-/var/cache/podswarm-test}
root="$cache/trixie-root"
apt_etc=${PODSWARM_APT_ETC:-/etc/apt}   # only for checking the detection against other sources

# Prints "URI SUITE COMPONENTS..." for every enabled `deb` entry of the apt sources, one-line
# (*.list) and deb822 (*.sources) alike.
apt_entries() {
    local f
    for f in "$apt_etc/sources.list" "$apt_etc"/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '{
            sub(/#.*/, "")
            if ($1 != "deb") next
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }   # [ options ]
            line = ""
            for (; i <= NF; i++) line = line (line == "" ? "" : " ") $i
            if (line != "") print line
        }' "$f"
    done
    for f in "$apt_etc"/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
        {
            delete v; key = ""
            for (i = 1; i <= NF; i++) {
                line = $i
                if (line ~ /^#/) continue
                if (line ~ /^[ \t]/) { if (key != "") v[key] = v[key] " " line; continue }
                key = tolower(substr(line, 1, index(line, ":") - 1))
                v[key] = substr(line, index(line, ":") + 1)
            }
            if (tolower(v["enabled"]) ~ /no/) next
            if ((" " v["types"] " ") !~ /[ \t]deb[ \t]/) next
            nu = split(v["uris"], uris, /[ \t]+/); ns = split(v["suites"], suites, /[ \t]+/)
            for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
                if (uris[u] != "" && suites[s] != "") print uris[u], suites[s], v["components"]
        }' "$f"
    done
}

# The first entry for a Debian release (a codename or stable/testing/unstable, not -updates or
# -security) with the main component: what debootstrap needs to fetch trixie.
debian_mirror() {
    local uri suite components file
    while read -r uri suite components; do
        case "$suite" in
        buster | bullseye | bookworm | trixie | forky | duke | sid | oldoldstable | oldstable | stable | testing | unstable) ;;
        *) continue ;;
        esac
        case " $components " in *" main "*) ;; *) continue ;; esac
        case "$uri" in
        mirror+file:*)
            # Debian's cloud images list their mirrors in a file: take its first one.
            file=${uri#mirror+file:}
            file=/${file##*//}
            uri=$(sed -n 's/^[ \t]*\([^# \t][^ \t]*\).*/\1/p' "$file" 2>/dev/null | head -n 1)
            ;;
        esac
        case "$uri" in
        http://* | https://* | ftp://* | file:/*)
            echo "${uri%/}"
            return 0
            ;;
        esac
    done < <(apt_entries)
    return 1
}

if [ "${1:-}" = "--print-mirror" ]; then
    mirror=${PODSWARM_DEBIAN_MIRROR:-$(debian_mirror || true)}
    [ -n "$mirror" ] || { echo "node image: no Debian mirror in $apt_etc/sources.list*; set PODSWARM_DEBIAN_MIRROR" >&2; exit 1; }
    echo "$mirror"
    exit 0
fi

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
command -v debootstrap >/dev/null || { echo "node image: debootstrap is not installed (sudo ./tests/setup.sh installs it)" >&2; exit 1; }
mirror=${PODSWARM_DEBIAN_MIRROR:-$(debian_mirror || true)}
if [ -z "$mirror" ]; then
    echo "node image: found no Debian mirror in $apt_etc/sources.list or $apt_etc/sources.list.d/; set PODSWARM_DEBIAN_MIRROR=URL" >&2
    exit 1
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "node image: debootstrap trixie from $mirror into $work (about a minute)"
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
