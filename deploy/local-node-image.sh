#!/usr/bin/env bash
# Makes a Debian 12 + Node 24 base image without pulling from an image
# registry (where none is reachable): a debootstrap root filesystem, the Node 24
# binary and npm that `npm ci` installed into this repository, and the host's
# CA bundle (for TLS-intercepting proxies). Then:
#   docker build -f deploy/gateway.Dockerfile --build-arg NODE_IMAGE=lobu-local/node:24-bookworm -t lobu/gateway:0.1.0 .
# Needs root, debootstrap and docker; the Debian mirror must be reachable.
set -euo pipefail
TAG="${1:-lobu-local/node:24-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
NODE_BIN="$(readlink -f "$REPO/node_modules/node/bin/node")"
NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -x "$NODE_BIN" ] || { echo "run npm ci in $REPO first (it installs Node 24)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
install -m 0755 "$NODE_BIN" "$work/rootfs/usr/local/bin/node"
mkdir -p "$work/rootfs/usr/local/lib/node_modules"
cp -r "$NPM_DIR" "$work/rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
mkdir -p "$work/rootfs/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/host-ca.crt"
tar -C "$work/rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt' \
  --change 'ENV npm_config_cafile=/etc/ssl/certs/host-ca.crt' \
  - "$TAG"
echo "made $TAG ($("$NODE_BIN" --version))"
