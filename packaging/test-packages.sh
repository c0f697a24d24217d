#!/usr/bin/env bash
# Tests the packages packaging/build.sh made, for real, on this Debian machine
# (as root; it installs and removes them, so use a CI or throwaway machine):
#   agent .deb   dpkg -i; shipshape --version and a check; the file list;
#                systemd-analyze verify of the installed units; the timer's
#                enablement symlink; an upgrade keeps a disabled timer
#                disabled; dpkg -r leaves no unit and no symlink; a reinstall
#                enables the timer again; purge deletes the agent's state.
#   server .deb  dpkg -i; the system user; the conffile; systemd-analyze
#                verify and security of the hardened unit; the service's
#                command line run as its user serves /healthz from the
#                packaged config; dpkg -r leaves no unit and no symlink.
#   agent .rpm   rpm -qlp file list and scriptlets; rpm -K; installed, verified
#                and erased by rpm in a throwaway root: the same units as the .deb.
#   recipes      maintainer scripts, scriptlets and the macOS scripts parse
#                (sh -n, shellcheck); the macOS payload stages as documented.
# Works without systemd as PID 1 (containers): `systemctl enable` and
# `systemd-analyze verify` work offline; nothing is started.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly out=target/packaging
readonly unit_dirs=(/etc/systemd /usr/lib/systemd /lib/systemd)
checks=0

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() {
    checks=$((checks + 1))
    echo "  ok: $*"
}
# The one file matching a glob under target/packaging.
one() {
    local matches=()
    mapfile -t matches < <(find "$out" -maxdepth 1 -type f -name "$1")
    if [ ${#matches[@]} != 1 ]; then
        fail "expected one $out/$1, found ${#matches[@]}: ${matches[*]} (run packaging/build.sh first)"
    fi
    echo "${matches[0]}"
}
# Fails with a diff unless the two lists of lines agree.
same_list() {
    local what=$1 expected=$2 actual=$3
    diff -u <(echo "$expected") <(echo "$actual") >&2 || fail "$what differs from what is expected (- expected, + actual)"
}
# Fails if any unit file or symlink named shipshape* is left in systemd's directories.
no_units_left() {
    local left
    left=$(find "${unit_dirs[@]}" -name "$1" 2>/dev/null | sort -u)
    [ -z "$left" ] || fail "$2 left behind: $left"
}
# systemd-analyze verify, strictly: any complaint fails.
verify_units() {
    local report
    report=$(systemd-analyze verify --man=no "$@" 2>&1) || fail "systemd-analyze verify $*: $report"
    [ -z "$report" ] || fail "systemd-analyze verify $* complained: $report"
}
installed() {
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}
files_of() {
    dpkg -L "$1" | while read -r path; do [ -d "$path" ] || echo "$path"; done | sort
}

[ "$(id -u)" = 0 ] || fail "run it as root: it installs and removes the packages (sudo bash $0)"
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v rpm >/dev/null || need+=(rpm)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v curl >/dev/null || need+=(curl)
command -v setpriv >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    echo "installing for the package tests: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for package in shipshape shipshape-server; do
    case "$(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null || true)" in
        "" | not-installed) ;;
        *) fail "$package is already on this machine: this test installs and purges it, so run it where it is not" ;;
    esac
done

preexisting=$(find "${unit_dirs[@]}" -name 'shipshape*' 2>/dev/null | sort -u)
[ -z "$preexisting" ] || fail "shipshape units are already on this machine ($preexisting): the test could not tell what removal leaves"

agent_deb=$(one 'shipshape_*.deb')
server_deb=$(one 'shipshape-server_*.deb')
agent_rpm=$(one 'shipshape-*.rpm')
version=$(dpkg-deb -f "$agent_deb" Version)
upstream=${version%-*}
server_user_existed=false
getent passwd shipshape-server >/dev/null && server_user_existed=true
etc_existed=false
[ -d /etc/shipshape ] && etc_existed=true
server_pid=
work=$(mktemp -d)

# Leave the machine as it was, however the test ends.
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    dpkg --purge shipshape shipshape-server >/dev/null 2>&1 || true
    # What a failing maintainer script may have left (there was none before).
    find /etc/systemd -name 'shipshape*' -delete 2>/dev/null || true
    rm -f /etc/shipshape/policy.toml.test
    $etc_existed || rmdir /etc/shipshape 2>/dev/null || true
    if ! $server_user_existed && getent passwd shipshape-server >/dev/null; then
        rm -rf /var/lib/shipshape-server
        userdel shipshape-server >/dev/null 2>&1 || true
        if getent group shipshape-server >/dev/null; then groupdel shipshape-server >/dev/null 2>&1 || true; fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> agent: $agent_deb"
dpkg -i "$agent_deb" >/dev/null
installed shipshape || fail "dpkg -i $agent_deb did not leave shipshape installed"
[ "$(shipshape --version)" = "shipshape $upstream" ] || fail "shipshape --version says '$(shipshape --version)', not 'shipshape $upstream'"
ok "shipshape --version: shipshape $upstream"
same_list "the agent package's files" "$(
    cat <<'EOF'
/usr/bin/shipshape
/usr/lib/systemd/system/shipshape-report.service
/usr/lib/systemd/system/shipshape-report.timer
/usr/share/doc/shipshape/README.md
/usr/share/doc/shipshape/copyright
/usr/share/shipshape/policies/default.toml
/usr/share/shipshape/policies/strict.toml
EOF
)" "$(files_of shipshape)"
ok "files: the binary, two units, two policies, docs"
shipshape schedule render --os linux --system --binary /usr/bin/shipshape --out "$work/units" >/dev/null
for unit in shipshape-report.service shipshape-report.timer; do
    cmp -s "/usr/lib/systemd/system/$unit" "$work/units/$unit" ||
        fail "the installed $unit is not what the installed shipshape schedule render writes"
done
grep -qx 'ExecStart=/usr/bin/shipshape report' /usr/lib/systemd/system/shipshape-report.service ||
    fail "shipshape-report.service does not run /usr/bin/shipshape report"
verify_units /usr/lib/systemd/system/shipshape-report.service /usr/lib/systemd/system/shipshape-report.timer
ok "systemd-analyze verify: shipshape-report.service, shipshape-report.timer"
wants=/etc/systemd/system/timers.target.wants/shipshape-report.timer
[ -L "$wants" ] || fail "the timer is not enabled: no $wants"
[ "$(basename "$(readlink "$wants")")" = shipshape-report.timer ] || fail "$wants points to $(readlink "$wants")"
[ "$(systemctl is-enabled shipshape-report.timer)" = enabled ] || fail "systemctl is-enabled shipshape-report.timer: $(systemctl is-enabled shipshape-report.timer)"
ok "timer enabled: $wants"
status=0
shipshape check --format json >"$work/check.json" || status=$?
[ "$status" = 0 ] || [ "$status" = 1 ] || fail "shipshape check exited $status (2 is an error)"
grep -q '"schema": 1' "$work/check.json" || fail "shipshape check --format json printed no schema-1 report"
[ -d /var/lib/shipshape ] || fail "shipshape check as root kept no state in /var/lib/shipshape"
ok "shipshape check as root judged this machine (exit $status) and keeps state in /var/lib/shipshape"

systemctl disable --quiet shipshape-report.timer
dpkg -i "$agent_deb" >/dev/null
[ ! -e "$wants" ] || fail "an upgrade enabled the timer the administrator had disabled"
ok "an upgrade keeps a disabled timer disabled"
systemctl enable --quiet shipshape-report.timer

mkdir -p /etc/shipshape
echo 'name = "IT placed this"' >/etc/shipshape/policy.toml.test
dpkg -r shipshape >/dev/null
[ ! -e /usr/bin/shipshape ] || fail "dpkg -r left /usr/bin/shipshape"
no_units_left 'shipshape-report*' "after dpkg -r shipshape, a unit or symlink was"
ok "dpkg -r: no unit, no symlink, no binary left"
[ -d /var/lib/shipshape ] || fail "dpkg -r deleted the agent's state (only purge may)"
dpkg -i "$agent_deb" >/dev/null
[ -L "$wants" ] || fail "reinstalling after dpkg -r did not enable the timer again"
ok "reinstalled after dpkg -r: the timer is enabled again"
dpkg --purge shipshape >/dev/null
no_units_left 'shipshape-report*' "after dpkg --purge shipshape, a unit or symlink was"
[ ! -e /var/lib/shipshape ] || fail "dpkg --purge left the agent's state in /var/lib/shipshape"
[ -e /etc/shipshape/policy.toml.test ] || fail "dpkg --purge deleted a file IT placed in /etc/shipshape"
rm /etc/shipshape/policy.toml.test
ok "dpkg --purge: the agent's state is gone, IT's own files in /etc/shipshape stay"

echo "==> server: $server_deb"
dpkg -i "$server_deb" >/dev/null
installed shipshape-server || fail "dpkg -i $server_deb did not leave shipshape-server installed"
[ "$(shipshape-server --version)" = "shipshape-server $upstream" ] || fail "shipshape-server --version says '$(shipshape-server --version)'"
ok "shipshape-server --version: shipshape-server $upstream"
same_list "the server package's files" "$(
    cat <<'EOF'
/etc/shipshape/server.toml
/usr/bin/shipshape-server
/usr/lib/systemd/system/shipshape-server.service
/usr/share/doc/shipshape-server/README.md
/usr/share/doc/shipshape-server/copyright
EOF
)" "$(files_of shipshape-server)"
ok "files: the binary, the unit, the config, docs"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd shipshape-server) || fail "postinst created no shipshape-server user"
[ "$uid" -lt 1000 ] || fail "shipshape-server is not a system user (uid $uid)"
[ "$shell" = /usr/sbin/nologin ] || fail "shipshape-server can log in (shell $shell)"
[ "$home" = /var/lib/shipshape-server ] || fail "shipshape-server's home is $home"
getent group shipshape-server >/dev/null || fail "postinst created no shipshape-server group"
[ "$(stat -c %U:%G:%a /var/lib/shipshape-server)" = shipshape-server:shipshape-server:750 ] ||
    fail "/var/lib/shipshape-server is $(stat -c %U:%G:%a /var/lib/shipshape-server), not shipshape-server:shipshape-server:750"
ok "system user shipshape-server (uid $uid, nologin), its state directory 0750"
grep -qx /etc/shipshape/server.toml /var/lib/dpkg/info/shipshape-server.conffiles ||
    fail "/etc/shipshape/server.toml is not a conffile"
cmp -s /etc/shipshape/server.toml packaging/server/server.toml || fail "/etc/shipshape/server.toml is not packaging/server/server.toml"
[ "$(stat -c %U:%G:%a /etc/shipshape/server.toml)" = root:shipshape-server:640 ] ||
    fail "/etc/shipshape/server.toml is $(stat -c %U:%G:%a /etc/shipshape/server.toml), not root:shipshape-server:640"
ok "/etc/shipshape/server.toml is a conffile, readable by root and the service only"
unit=/usr/lib/systemd/system/shipshape-server.service
verify_units "$unit"
ok "systemd-analyze verify: shipshape-server.service"
# The exposure score, 0 (locked down) to 10 (unprotected); the threshold is in tenths.
exposure=$(systemd-analyze security --offline=true --threshold=15 "$unit" 2>&1) ||
    fail "shipshape-server.service is exposed above 1.5: $exposure"
ok "systemd-analyze security: $(echo "$exposure" | grep -o 'Overall exposure level.*')"
server_wants=/etc/systemd/system/multi-user.target.wants/shipshape-server.service
[ -L "$server_wants" ] || fail "the service is not enabled: no $server_wants"
ok "service enabled: $server_wants"

# The unit's command line, as its user, with the packaged config: the config
# parses, the database is where the service may write, and the server answers.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/shipshape-server serve --config /etc/shipshape/server.toml" ] ||
    fail "unexpected ExecStart=$exec_start"
as_service=(setpriv --reuid=shipshape-server --regid=shipshape-server --init-groups --)
(cd /var/lib/shipshape-server && "${as_service[@]}" /usr/bin/shipshape-server --config /etc/shipshape/server.toml token create --admin) >"$work/admin-token" ||
    fail "token create --admin as shipshape-server with /etc/shipshape/server.toml failed"
[ "$(stat -c %U /var/lib/shipshape-server/shipshape.db)" = shipshape-server ] ||
    fail "the database is not at /var/lib/shipshape-server/shipshape.db owned by shipshape-server"
# shellcheck disable=SC2086 # ExecStart's words, as systemd splits them
(cd /var/lib/shipshape-server && exec "${as_service[@]}" $exec_start --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err") &
server_pid=$!
address=
for _ in $(seq 1 100); do
    address=$(sed -n 's|^listening on \(http://.*\)$|\1|p' "$work/serve.out")
    [ -n "$address" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "shipshape-server serve exited: $(cat "$work/serve.err")"
    sleep 0.1
done
[ -n "$address" ] || fail "shipshape-server serve did not say where it listens: $(cat "$work/serve.err")"
curl -fsS "$address/healthz" >/dev/null || fail "GET $address/healthz failed"
curl -fsS -H "Authorization: Bearer $(cat "$work/admin-token")" "$address/v1/fleet" >/dev/null ||
    fail "GET $address/v1/fleet with the admin token failed"
kill -TERM "$server_pid"
wait "$server_pid" || fail "shipshape-server did not stop cleanly on SIGTERM: $(cat "$work/serve.err")"
server_pid=
ok "ExecStart as shipshape-server with the packaged config serves $address/healthz and the fleet, stops on SIGTERM"

dpkg -r shipshape-server >/dev/null
[ ! -e /usr/bin/shipshape-server ] || fail "dpkg -r left /usr/bin/shipshape-server"
no_units_left 'shipshape-server*' "after dpkg -r shipshape-server, a unit or symlink was"
[ -e /etc/shipshape/server.toml ] || fail "dpkg -r deleted the conffile (only purge may)"
ok "dpkg -r: no unit, no symlink, no binary left; config and database kept"
dpkg --purge shipshape-server >/dev/null 2>&1
[ ! -e /etc/shipshape/server.toml ] || fail "dpkg --purge left /etc/shipshape/server.toml"
[ -e /var/lib/shipshape-server/shipshape.db ] || fail "dpkg --purge deleted the fleet database"
ok "dpkg --purge: config gone, the fleet database kept (as documented)"

echo "==> agent rpm: $agent_rpm"
same_list "rpm -qlp $agent_rpm" "$(
    cat <<'EOF'
/usr/bin/shipshape
/usr/lib/systemd/system/shipshape-report.service
/usr/lib/systemd/system/shipshape-report.timer
/usr/share/doc/shipshape/README.md
/usr/share/shipshape/policies/default.toml
/usr/share/shipshape/policies/strict.toml
EOF
)" "$(rpm -qlp "$agent_rpm" 2>/dev/null | sort)"
ok "rpm -qlp: the binary, two units, two policies, docs"
[ "$(rpm -qp --qf '%{NAME} %{VERSION}' "$agent_rpm" 2>/dev/null)" = "shipshape $upstream" ] ||
    fail "the rpm is not shipshape $upstream"
scripts=$(rpm -qp --scripts "$agent_rpm" 2>/dev/null)
for expected in 'postinstall scriptlet' 'systemctl enable shipshape-report.timer' \
    'preuninstall scriptlet' 'systemctl disable --now shipshape-report.timer' 'postuninstall scriptlet'; do
    grep -qF "$expected" <<<"$scripts" || fail "the rpm's scriptlets lack '$expected': $scripts"
done
ok "rpm scriptlets: %post enables, %preun disables the timer"
rpm -K "$agent_rpm" >/dev/null || fail "rpm -K: the rpm's digests do not match"
# rpm itself unpacks it, into a throwaway root with its own database (the
# scriptlets need the target system: they are not run here).
root=$work/rpm-root
rpm_in_root() { rpm --root "$root" "$@" 2>>"$work/rpm.err" || fail "rpm $*: $(cat "$work/rpm.err")"; }
rpm_in_root --initdb
rpm_in_root -i --nodeps --noscripts "$agent_rpm"
rpm_in_root -V --nodeps shipshape
for unit in shipshape-report.service shipshape-report.timer; do
    cmp -s "$root/usr/lib/systemd/system/$unit" "$work/units/$unit" ||
        fail "the rpm's $unit differs from the .deb's"
done
[ "$(stat -c %a "$root/usr/bin/shipshape")" = 755 ] || fail "the rpm's /usr/bin/shipshape is not 0755"
"$root/usr/bin/shipshape" --version >/dev/null || fail "the rpm's binary does not run"
cp "$root/usr/bin/shipshape" "$work/shipshape-from-rpm"
rpm_in_root -e --noscripts shipshape
left=$(cd "$root" && find usr -type f)
[ -z "$left" ] || fail "rpm -e left files behind: $left"
ok "rpm -K, then rpm -i, -V, -e in a throwaway root: the same units as the .deb, an executable agent, nothing left"

echo "==> recipes"
for script in packaging/deb/*/* packaging/rpm/agent/*.sh packaging/macos/scripts/postinstall packaging/macos/uninstall.sh; do
    sh -n "$script" || fail "$script does not parse"
done
for script in packaging/build.sh packaging/test-packages.sh packaging/macos/build-pkg.sh; do
    bash -n "$script" || fail "$script does not parse"
done
shellcheck -s sh packaging/deb/*/* packaging/rpm/agent/*.sh packaging/macos/scripts/postinstall packaging/macos/uninstall.sh
shellcheck packaging/build.sh packaging/test-packages.sh packaging/macos/build-pkg.sh
ok "maintainer scripts, scriptlets and the macOS scripts parse and pass shellcheck"
bash packaging/macos/build-pkg.sh --stage-only --binary "$work/shipshape-from-rpm" >/dev/null
stage=$out/macos/stage
same_list "the macOS payload" "$(
    cat <<'EOF'
root/usr/local/bin/shipshape
root/usr/local/share/shipshape/policies/default.toml
root/usr/local/share/shipshape/policies/strict.toml
root/usr/local/share/shipshape/uninstall.sh
scripts/postinstall
EOF
)" "$(cd "$stage" && find root scripts -type f | sort)"
[ -x "$stage/scripts/postinstall" ] || fail "the pkg's postinstall is not executable"
grep -q "pkg-ref id=\"com.shipshape.agent\" version=\"$upstream\"" "$stage/distribution.xml" ||
    fail "the pkg's distribution.xml does not carry version $upstream"
ok "macOS pkg payload, postinstall and distribution.xml stage as documented"

echo "all $checks package checks passed"
