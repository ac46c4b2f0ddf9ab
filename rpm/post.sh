# %post: $1 = 1 on install, 2 on upgrade. Nothing is started without `systemctl enable --now`.
systemd-sysusers podswarm.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create podswarm.conf >/dev/null 2>&1 || :
# Pods' user namespaces (UserNS=auto) take their IDs from the `containers` ranges; one is added
# only where there is none (as the .deb does; see debian/postinst).
for f in /etc/subuid /etc/subgid; do
    grep -qs '^containers:' "$f" || echo 'containers:2147483647:2147483648' >>"$f"
done
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    # An upgrade restarts those of podswarm's own units that run (try-restart), as the .deb
    # does; workloads are units of their own and keep running.
    if [ "$1" -ge 2 ]; then
        systemctl try-restart podswarm-gossip.service podswarm-dns.service podswarm-ingress.service podswarm.service >/dev/null 2>&1 || :
    fi
fi
