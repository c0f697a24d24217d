# shipshape %postun ($1: 0 on erase, 1 on upgrade): let systemd forget the
# removed units. The agent's state in /var/lib/shipshape and its enrollment
# in /etc/shipshape/agent.toml stay, as RPM leaves data it did not install;
# delete them to forget this machine's enrollment.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -eq 0 ]; then
        systemctl reset-failed shipshape-report.service shipshape-report.timer 2>/dev/null || :
    fi
fi
