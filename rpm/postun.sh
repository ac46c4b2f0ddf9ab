# %postun: $1 = 0 on erase. Workloads stop and their generated units go; state in /var/lib/podswarm
# and /etc/podswarm stays (RPM has no purge), remove it by hand to start afresh.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop 'podswarm-*' >/dev/null 2>&1 || :
    fi
    rm -rf /etc/containers/systemd/podswarm /run/podswarm
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl reset-failed 'podswarm-*' >/dev/null 2>&1 || :
fi
