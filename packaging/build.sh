#!/usr/bin/env bash
# Builds Shipshape's Linux packages into target/packaging/:
#   shipshape_<version>-1_<arch>.deb          the agent (binary, units, timer enabled)
#   shipshape-server_<version>-1_<arch>.deb   the server (hardened service, user, config)
#   shipshape-<version>-1.<arch>.rpm          the agent for RPM distributions
# Steps: release binaries (cargo build --release --locked), the agent's systemd
# units rendered by the built binary itself (`shipshape schedule render`, so
# the package ships exactly what `shipshape schedule install` would write),
# then cargo-deb and cargo-generate-rpm without rebuilding. The two cargo
# subcommands are installed at pinned versions when missing; dpkg-dev
# (dpkg-shlibdeps, for the .deb dependencies) is installed when run as root.
# Reuses target/ like any cargo build: a second run only repackages.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly CARGO_DEB_VERSION=3.8.0
readonly CARGO_GENERATE_RPM_VERSION=0.21.1
readonly out=target/packaging

# The crates.io tool `crate` at `version`, run as `cargo subcommand`.
ensure_tool() {
    local crate=$1 version=$2 subcommand=$3
    if [ "$(cargo "$subcommand" --version 2>/dev/null)" != "$crate $version" ]; then
        echo "==> installing $crate $version"
        cargo install --locked --quiet "$crate" --version "$version"
    fi
}

if ! command -v dpkg-shlibdeps >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing dpkg-dev (dpkg-shlibdeps works out the .deb dependencies)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
    else
        echo "packaging needs dpkg-shlibdeps: install dpkg-dev (sudo apt-get install dpkg-dev)" >&2
        exit 1
    fi
fi
ensure_tool cargo-deb "$CARGO_DEB_VERSION" deb
ensure_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" generate-rpm

echo "==> building release binaries"
cargo build --release --locked -p shipshape -p shipshape-server
# The package metadata names target/release/…, which both tools map to the
# real target directory (CARGO_TARGET_DIR too): the units go beside the binary.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
release=$target_dir/release

echo "==> rendering the agent's systemd units"
rm -rf "$release/systemd" "$out"
mkdir -p "$out"
"$release/shipshape" schedule render --os linux --system --binary /usr/bin/shipshape \
    --out "$release/systemd"
for unit in shipshape-report.service shipshape-report.timer; do
    [ -s "$release/systemd/$unit" ] || {
        echo "shipshape schedule render did not write $release/systemd/$unit" >&2
        exit 1
    }
done

echo "==> packaging"
cargo deb --no-build --locked -p shipshape --output "$out/"
cargo deb --no-build --locked -p shipshape-server --output "$out/"
cargo generate-rpm -p agent --output "$out/"

echo "==> packages"
find "$out" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.rpm' \) | sort
