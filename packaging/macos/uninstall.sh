#!/bin/sh
# Removes what the Shipshape pkg installed: the launchd daemon, the binary,
# the reference policies and the pkg receipt. With --purge also the agent's
# configuration and state (/Library/Application Support/Shipshape: the
# enrollment, outbox and caches) and its logs (/Library/Logs/Shipshape).
# Retire the machine on the server too: `shipshape-server device revoke ID`.
#   sudo sh /usr/local/share/shipshape/uninstall.sh [--purge]
set -e

if [ "$(id -u)" != 0 ]; then
    echo "run it as root: sudo sh $0 $*" >&2
    exit 1
fi
case "${1-}" in
    ""|--purge) ;;
    *) echo "usage: sudo sh $0 [--purge]" >&2; exit 2 ;;
esac

if [ -x /usr/local/bin/shipshape ]; then
    /usr/local/bin/shipshape schedule remove --system
fi
rm -f /usr/local/bin/shipshape
rm -rf /usr/local/share/shipshape
pkgutil --forget com.shipshape.agent >/dev/null 2>&1 || true
if [ "${1-}" = --purge ]; then
    rm -rf "/Library/Application Support/Shipshape" /Library/Logs/Shipshape
fi
echo "Shipshape is removed."
