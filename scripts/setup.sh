#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine for Lobu's full test suite:
# system packages (sandboxing, agent tools, Nix, headless Chromium), a local Redis,
# and the npm dependencies (which include Node 24 itself).
# Run as root (or with sudo). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh installs system packages: run it as root (sudo $0)" >&2
    exit 1
  fi
}

# nix-bin: Nix for agents' packages (tests build a local package set in a store of their own;
# as root without nix-setup-systemd, Lobu builds without build users).
PACKAGES=(bubblewrap ripgrep fd-find chromium e2fsprogs util-linux curl git redis-server nix-bin)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root
  echo "==> installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "apt-get update failed; trying with the cached package lists" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/lobu-test.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "==> installing npm dependencies (npm ci)"
npm ci --no-audit --no-fund
echo "==> ready: run \`npm test\`"
