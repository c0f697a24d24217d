#!/usr/bin/env bash
# Builds the macOS installer for the Shipshape agent:
#   target/packaging/macos/shipshape-<version>.pkg
# It installs /usr/local/bin/shipshape, the reference policies and an
# uninstaller in /usr/local/share/shipshape, and its postinstall runs
# `shipshape schedule install --system` (the launchd daemon
# /Library/LaunchDaemons/com.shipshape.report.plist).
#
# On a Mac, with Xcode's command line tools:
#   cargo build --release --locked -p shipshape --target aarch64-apple-darwin
#   cargo build --release --locked -p shipshape --target x86_64-apple-darwin
#   lipo -create -output target/shipshape-universal \
#       target/aarch64-apple-darwin/release/shipshape target/x86_64-apple-darwin/release/shipshape
#   bash packaging/macos/build-pkg.sh --binary target/shipshape-universal \
#       [--sign "Developer ID Installer: Example Corp (TEAMID)"]
#
# --stage-only lays out the payload, scripts and distribution file in
# target/packaging/macos/stage without pkgbuild (CI checks it on Linux).
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=target/release/shipshape
sign=
stage_only=false
while (($#)); do
    case "$1" in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --sign) sign=${2:?--sign needs an identity}; shift 2 ;;
        --stage-only) stage_only=true; shift ;;
        *) echo "usage: $0 [--binary PATH] [--sign IDENTITY] [--stage-only]" >&2; exit 2 ;;
    esac
done
[ -x "$binary" ] || { echo "no executable agent at $binary: build it first (see the top of $0)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "cannot read the workspace version from Cargo.toml" >&2; exit 1; }
if command -v lipo >/dev/null; then
    archs=$(lipo -archs "$binary" | tr ' ' ',')
else
    archs=arm64,x86_64
fi

out=target/packaging/macos
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/root/usr/local/bin" "$stage/root/usr/local/share/shipshape/policies" "$stage/scripts"
install -m 0755 "$binary" "$stage/root/usr/local/bin/shipshape"
install -m 0644 policies/default.toml policies/strict.toml "$stage/root/usr/local/share/shipshape/policies/"
install -m 0755 packaging/macos/uninstall.sh "$stage/root/usr/local/share/shipshape/uninstall.sh"
install -m 0755 packaging/macos/scripts/postinstall "$stage/scripts/postinstall"
sed -e "s/@VERSION@/$version/g" -e "s/@ARCHS@/$archs/g" packaging/macos/distribution.xml >"$stage/distribution.xml"

if $stage_only; then
    echo "staged in $stage"
    exit 0
fi

pkgbuild --root "$stage/root" --scripts "$stage/scripts" --identifier com.shipshape.agent \
    --version "$version" --install-location / "$stage/shipshape-component.pkg"
# macOS's bash 3.2 calls an empty "${array[@]}" unbound under set -u.
sign_args=()
[ -n "$sign" ] && sign_args=(--sign "$sign")
productbuild --distribution "$stage/distribution.xml" --package-path "$stage" \
    ${sign_args[@]+"${sign_args[@]}"} "$out/shipshape-$version.pkg"
echo "$out/shipshape-$version.pkg"
