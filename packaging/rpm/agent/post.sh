# shipshape %post ($1: 1 on install, 2 on upgrade): enable the hourly report
# timer on install; an upgrade keeps whatever the administrator chose.
# `systemctl enable` only writes symlinks, so it works without a running
# systemd; the timer is started only when systemd runs.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
if [ "$1" -eq 1 ]; then
    systemctl enable shipshape-report.timer || :
    if [ -d /run/systemd/system ]; then
        systemctl start shipshape-report.timer || :
    fi
elif [ -d /run/systemd/system ] && systemctl is-active --quiet shipshape-report.timer; then
    systemctl restart shipshape-report.timer || :
fi
