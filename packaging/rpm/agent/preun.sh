# shipshape %preun ($1: 0 on erase, 1 on upgrade): on erase, stop and disable
# the report timer so that no unit or enablement symlink remains.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now shipshape-report.timer || :
        systemctl stop shipshape-report.service || :
    else
        systemctl disable shipshape-report.timer || :
    fi
fi
