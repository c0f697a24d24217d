#!/usr/bin/env bash
# Runs the packages packaging/build.sh made under a real systemd, even where
# systemd is not PID 1 (a VM or container with another init, like CI here):
# it boots this machine's own system read-only, with its changes in memory, as
# a container (systemd-nspawn: an overlay of / on a tmpfs, a private network,
# basic.target only), and in it
#   - installs the server .deb: shipshape-server.service, with all its
#     sandboxing, is started by the package and answers /healthz;
#   - installs the agent .deb: the package enables and starts the timer;
#   - enrolls the agent with that server and starts shipshape-report.service:
#     the sandboxed unit checks the machine and its report is delivered;
#   - shipshape schedule status sees the timer and that last run;
#   - removes both packages while systemd runs: the units are stopped and
#     gone from systemd, and no file of theirs is left.
# Nothing of it touches this machine: the container's writes go to the tmpfs,
# which is unmounted afterwards. Needs root; installs systemd-container when
# missing. Without CI=true, a machine that cannot boot the container skips
# this test (and says why); with CI=true that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly out=target/packaging
checks=0

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() {
    checks=$((checks + 1))
    echo "  ok: $*"
}
skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        fail "$*"
    fi
    echo "skipped: the packages were not run under systemd: $*"
    exit 0
}

[ "$(id -u)" = 0 ] || skip_or_fail "it needs root (sudo bash $0)"
agent_deb=$(find "$out" -maxdepth 1 -name 'shipshape_*.deb' | head -n 1)
server_deb=$(find "$out" -maxdepth 1 -name 'shipshape-server_*.deb' | head -n 1)
if [ -z "$agent_deb" ] || [ -z "$server_deb" ]; then
    fail "no packages in $out: run packaging/build.sh first"
fi
if ! command -v systemd-nspawn >/dev/null; then
    echo "installing for the systemd test: systemd-container"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-container >/dev/null
fi
[ -x /usr/lib/systemd/systemd ] || [ -x /lib/systemd/systemd ] || skip_or_fail "systemd is not installed"
if dpkg-query -W -f '${db:Status-Status}\n' shipshape shipshape-server 2>/dev/null | grep -qx installed; then
    fail "a Shipshape package is installed on this machine: the container would start with it"
fi

work=$(mktemp -d)
root=$work/root
nspawn_pid=
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$nspawn_pid" 2>/dev/null || break
            sleep 0.5
        done
        # A container that will not shut down: its init, then nspawn.
        pkill -KILL -P "$nspawn_pid" 2>/dev/null || true
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    mountpoint -q "$root" && umount "$root"
    mountpoint -q "$work/mem" && umount "$work/mem"
    rm -rf "$work"
}
trap cleanup EXIT

# This machine's root file system as the lower layer (its mounts — /dev,
# /proc, /tmp… — are not part of it), every change in memory.
mkdir -p "$work/mem" "$root"
mount -t tmpfs -o mode=0755 shipshape-test "$work/mem"
mkdir "$work/mem/upper" "$work/mem/work"
mount -t overlay shipshape-test -o "lowerdir=/,upperdir=$work/mem/upper,workdir=$work/mem/work" "$root" ||
    skip_or_fail "cannot mount an overlay of / (no overlayfs?)"
mkdir -p "$root/root/packages"
cp "$agent_deb" "$server_deb" "$root/root/packages/"
agent_deb=/root/packages/${agent_deb##*/}
server_deb=/root/packages/${server_deb##*/}

echo "==> booting this machine's system in a container (systemd-nspawn, basic.target)"
systemd-nspawn --directory="$root" --private-network --register=no --keep-unit --quiet \
    --boot systemd.unit=basic.target >"$work/console" 2>&1 &
nspawn_pid=$!
# The container's init: nspawn's child, once it has become systemd.
systemd_exe=$(readlink -f /usr/lib/systemd/systemd)
init_pid=
for _ in $(seq 1 300); do
    child=$(pgrep -P "$nspawn_pid" || true)
    if [ -n "$child" ] && [ "$(readlink "/proc/$child/exe" 2>/dev/null)" = "$systemd_exe" ]; then
        init_pid=$child
        break
    fi
    kill -0 "$nspawn_pid" 2>/dev/null || skip_or_fail "systemd-nspawn cannot boot here: $(tail -n 5 "$work/console")"
    sleep 0.1
done
[ -n "$init_pid" ] || skip_or_fail "systemd-nspawn started no systemd: $(tail -n 5 "$work/console")"
# Runs a command in the container (its mounts, processes, network).
inside() {
    nsenter --target "$init_pid" --all -- "$@"
}
# Until its bus is up systemctl cannot connect; then --wait waits for the boot.
state=
for _ in $(seq 1 240); do
    state=$(timeout 120 nsenter --target "$init_pid" --all -- systemctl is-system-running --wait 2>&1 || true)
    case "$state" in
        *"Failed to connect"* | offline) sleep 0.5 ;;
        *) break ;;
    esac
done
case "$state" in
    running | degraded) ;;
    *) skip_or_fail "systemd did not finish booting in the container (state: ${state:-none}): $(tail -n 5 "$work/console")" ;;
esac
[ "$(inside readlink /proc/1/exe)" = "$systemd_exe" ] || fail "PID 1 in the container is not systemd"
ok "systemd is PID 1 in the container ($state)"

echo "==> server"
inside dpkg -i "$server_deb" >"$work/dpkg.log" 2>&1 || fail "dpkg -i $server_deb: $(cat "$work/dpkg.log")"
active=$(inside systemctl is-active shipshape-server.service || true)
[ "$active" = active ] || fail "shipshape-server.service is $active after install: $(inside journalctl -u shipshape-server --no-pager -n 20)"
health=
for _ in $(seq 1 50); do
    health=$(inside curl -fsS http://127.0.0.1:8443/healthz 2>/dev/null || true)
    [ -n "$health" ] && break
    sleep 0.1
done
[ -n "$health" ] || fail "the service answers no /healthz on 127.0.0.1:8443: $(inside journalctl -u shipshape-server --no-pager -n 20)"
ok "the package started shipshape-server.service, sandboxed as shipped, and it answers /healthz"
admin=(runuser -u shipshape-server -- shipshape-server --config /etc/shipshape/server.toml)
enroll_token=$(inside "${admin[@]}" token create --enroll --uses 1 2>/dev/null) || fail "token create --enroll as shipshape-server failed"

echo "==> agent"
inside dpkg -i "$agent_deb" >"$work/dpkg.log" 2>&1 || fail "dpkg -i $agent_deb: $(cat "$work/dpkg.log")"
[ "$(inside systemctl is-active shipshape-report.timer || true)" = active ] || fail "the package did not start shipshape-report.timer"
[ "$(inside systemctl is-enabled shipshape-report.timer || true)" = enabled ] || fail "the package did not enable shipshape-report.timer"
ok "the package enabled and started shipshape-report.timer"
inside shipshape enroll --server http://127.0.0.1:8443 --token "$enroll_token" >"$work/enroll.log" 2>&1 ||
    fail "shipshape enroll: $(cat "$work/enroll.log")"
inside systemctl start shipshape-report.service ||
    fail "shipshape-report.service failed: $(inside journalctl -u shipshape-report --no-pager -n 30)"
result=$(inside systemctl show shipshape-report.service -p Result --value)
[ "$result" = success ] || fail "shipshape-report.service ended with $result: $(inside journalctl -u shipshape-report --no-pager -n 30)"
inside journalctl -u shipshape-report --no-pager | grep -q "delivered to http://127.0.0.1:8443" ||
    fail "the sandboxed run delivered no report: $(inside journalctl -u shipshape-report --no-pager -n 30)"
devices=$(($(inside "${admin[@]}" fleet --format csv | wc -l) - 1))
[ "$devices" = 1 ] || fail "the server's fleet lists $devices devices, not the one enrolled"
ok "enrolled; shipshape-report.service, sandboxed as shipped, delivered its report to the server"
status=$(inside shipshape schedule status 2>&1 || true)
if ! grep -q "active: active" <<<"$status" || ! grep -q "last run" <<<"$status"; then
    fail "shipshape schedule status does not see the packaged timer and its run: $status"
fi
ok "shipshape schedule status: $(grep -m 1 -o 'active:.*' <<<"$status")"

echo "==> removal while systemd runs"
inside dpkg -r shipshape >"$work/dpkg.log" 2>&1 || fail "dpkg -r shipshape: $(cat "$work/dpkg.log")"
inside dpkg -r shipshape-server >"$work/dpkg.log" 2>&1 || fail "dpkg -r shipshape-server: $(cat "$work/dpkg.log")"
loaded=$(inside systemctl list-units --all --no-legend 'shipshape*' || true)
[ -z "$loaded" ] || fail "systemd still has units after dpkg -r: $loaded"
left=$(inside find /etc/systemd /usr/lib/systemd -name 'shipshape*')
[ -z "$left" ] || fail "dpkg -r left unit files or symlinks: $left"
! inside pgrep -x shipshape-serve >/dev/null || fail "shipshape-server still runs after dpkg -r"
ok "dpkg -r stopped both, and systemd knows no shipshape unit any more"

inside systemctl poweroff >/dev/null 2>&1 || true
echo "all $checks systemd checks passed"
