# %preun: $1 = 0 on erase.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now podswarm.target podswarm.service podswarm-gossip.service podswarm-dns.service podswarm-ingress.service >/dev/null 2>&1 || :
fi
