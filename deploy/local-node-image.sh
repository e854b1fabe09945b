#!/usr/bin/env bash
# Makes the base images the Dockerfiles in deploy/ build on, without pulling
# from an image registry (where none is reachable):
#   lobu-local/debian:bookworm  a debootstrap (minbase) root filesystem, imported;
#                               kept, so later runs skip debootstrap (minutes)
#   lobu-local/node:24-bookworm that + the Node 24 binary and npm `npm ci` installed
#                               into this repository + the host's CA bundle (for
#                               TLS-intercepting proxies)
#   lobu-local/redis:bookworm   only with --redis: that + Debian's redis-server
#                               (deploy/redis.Dockerfile), a stand-in for redis:7.4-alpine
# Then:
#   docker build -f deploy/gateway.Dockerfile --build-arg NODE_IMAGE=lobu-local/node:24-bookworm -t lobu/gateway:0.1.0 .
# Needs root, debootstrap and docker; the Debian mirror must be reachable.
# Usage: deploy/local-node-image.sh [--redis] [node-image-tag]
set -euo pipefail
redis=0
if [ "${1:-}" = "--redis" ]; then
  redis=1
  shift
fi
TAG="${1:-lobu-local/node:24-bookworm}"
DEBIAN_TAG="${LOBU_DEBIAN_IMAGE:-lobu-local/debian:bookworm}"
REDIS_TAG="${LOBU_REDIS_IMAGE:-lobu-local/redis:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
NODE_BIN="$(readlink -f "$REPO/node_modules/node/bin/node")"
NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -x "$NODE_BIN" ] || { echo "run npm ci in $REPO first (it installs Node 24)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$DEBIAN_TAG" >/dev/null 2>&1; then
  debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
  # debootstrap writes only the release itself: add its updates and security fixes.
  cat >"$work/rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
EOF
  tar -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    - "$DEBIAN_TAG"
  rm -rf "$work/rootfs"
fi

# Node and npm go in as layers on the kept Debian image (seconds).
mkdir -p "$work/node"
install -m 0755 "$NODE_BIN" "$work/node/node"
cp -r "$NPM_DIR" "$work/node/npm"
cp /etc/ssl/certs/ca-certificates.crt "$work/node/host-ca.crt"
cat >"$work/node/Dockerfile" <<EOF
FROM $DEBIAN_TAG
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
RUN ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt npm_config_cafile=/etc/ssl/certs/host-ca.crt
CMD ["node"]
EOF
docker build -q -t "$TAG" "$work/node" >/dev/null
echo "made $TAG ($("$NODE_BIN" --version))"

if [ "$redis" = 1 ]; then
  docker build -q --build-arg "DEBIAN_IMAGE=$DEBIAN_TAG" -t "$REDIS_TAG" - <"$REPO/deploy/redis.Dockerfile" >/dev/null
  echo "made $REDIS_TAG"
fi
