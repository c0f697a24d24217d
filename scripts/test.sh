#!/usr/bin/env bash
# The whole Shipshape test suite, as README.md gives it and CI runs it.
# Installs what the live Linux tests need (ssh-keygen, nft, ip) and the
# browser test needs (Debian's chromium and chromedriver) when it can;
# otherwise says which tests will be skipped. With CI=true those tests fail
# instead of skipping, so CI never skips them.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/bin/ssh-keygen ] || need+=(openssh-client)
[ -x /usr/sbin/nft ] || need+=(nftables)
[ -x /usr/sbin/iptables ] || need+=(iptables)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing for the live tests: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "some tests will be skipped: missing ${need[*]} (install them, or run this as root)"
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "live nftables tests will be skipped: they create network namespaces, which needs root"
fi

# The end-to-end tests in tests/ run the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
