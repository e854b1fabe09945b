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
# as root without nix-setup-systemd, Lobu builds without build users). strace: the SQLite
# store's durability test reads the order of the gateway's writes and fsyncs.
PACKAGES=(bubblewrap ripgrep fd-find chromium e2fsprogs util-linux curl git redis-server nix-bin strace)
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

# The docker sandbox driver's tests: a Docker Engine (Debian's docker.io when no dockerd is
# installed) with gVisor's runsc registered as a runtime (ptrace platform: no KVM needed).
if ! command -v dockerd >/dev/null 2>&1; then
  need_root
  echo "==> installing the Docker Engine"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "apt-get update failed; trying with the cached package lists" >&2
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# runsc is Debian trixie's (a static binary, pinned by its package's sha256), not bookworm's:
# that one (2022) answers EINVAL to statx with AT_NO_AUTOMOUNT, so ls fails and Node dies.
# It lives in a versioned folder of its own (no dpkg install: bookworm's package may be there).
RUNSC_DEB_VERSION="0.0~20240729.0-4+b7"
RUNSC="/usr/local/lib/lobu/runsc-20240729.0/runsc"
arch="$(dpkg --print-architecture 2>/dev/null || echo unknown)"
case "$arch" in
  amd64) runsc_sha256=3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a ;;
  arm64) runsc_sha256=8e13e0625a094f962da3edcaf81ab0ed779726b6335e385a8148919f2c217c8e ;;
  *) runsc_sha256="" ;;
esac
if [ -n "$runsc_sha256" ] && [ ! -x "$RUNSC" ]; then
  need_root
  echo "==> installing gVisor's runsc ${RUNSC_DEB_VERSION} (Debian trixie's package)"
  tmp="$(mktemp -d)"
  curl -fsSL --retry 3 -o "$tmp/runsc.deb" \
    "https://deb.debian.org/debian/pool/main/g/golang-gvisor-gvisor/runsc_${RUNSC_DEB_VERSION}_${arch}.deb"
  echo "$runsc_sha256  $tmp/runsc.deb" | sha256sum -c --quiet -
  dpkg-deb -x "$tmp/runsc.deb" "$tmp/x"
  install -D -m 0755 "$tmp/x/usr/bin/runsc" "$RUNSC"
  rm -rf "$tmp"
elif [ -z "$runsc_sha256" ]; then
  echo "no pinned runsc for $arch: the docker driver's gVisor tests will be skipped" >&2
fi
# Registered in daemon.json: written when absent or when it is an earlier setup.sh's (which
# pointed at bookworm's /usr/bin/runsc); an operator's own file is left alone.
daemon_json="$(cat <<JSON
{
  "runtimes": {
    "runsc": {
      "path": "$RUNSC",
      "runtimeArgs": ["--platform=ptrace", "--network=none", "--host-uds=open"]
    }
  }
}
JSON
)"
daemon_json_changed=0
if [ "$(id -u)" -eq 0 ] && [ -x "$RUNSC" ]; then
  current="$(cat /etc/docker/daemon.json 2>/dev/null || true)"
  if [ -z "$current" ] || [ "$current" = "${daemon_json//$RUNSC//usr/bin/runsc}" ]; then
    mkdir -p /etc/docker
    printf '%s\n' "$daemon_json" >/etc/docker/daemon.json
    daemon_json_changed=1
  elif [ "$current" != "$daemon_json" ]; then
    echo "/etc/docker/daemon.json is not setup.sh's: register $RUNSC as the runsc runtime there" >&2
  fi
fi
if ! docker version >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "==> starting dockerd"
  PATH="$PATH:/usr/sbin" setsid nohup dockerd </dev/null >/var/log/lobu-dockerd.log 2>&1 &
  for _ in $(seq 1 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
elif [ "$daemon_json_changed" = 1 ]; then
  # dockerd reloads its runtimes on SIGHUP: no restart, running containers keep running.
  echo "==> dockerd: reloading /etc/docker/daemon.json"
  kill -HUP "$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd)"
  for _ in $(seq 1 50); do
    docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null | grep -qF "$RUNSC" && break
    sleep 0.2
  done
  docker info --format '{{json .Runtimes.runsc}}' | grep -qF "$RUNSC" ||
    echo "dockerd did not take the new runsc: restart it (systemctl restart docker)" >&2
fi

# The Compose deployment's test (packages/cli/test/compose-up.test.ts): `docker compose`
# (Compose v2) and debootstrap for its local base images. Bookworm packages only Compose v1;
# trixie's docker-compose 2.26 is a static Go binary needing only libc6 >= 2.34, so it runs
# here. Pinned by version and sha256.
COMPOSE_DEB=docker-compose_2.26.1-4_amd64.deb
COMPOSE_SHA256=47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea
if ! dpkg -s debootstrap >/dev/null 2>&1; then
  need_root
  echo "==> installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "apt-get update failed; trying with the cached package lists" >&2
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
if ! docker compose version >/dev/null 2>&1 && [ "$(dpkg --print-architecture)" = amd64 ]; then
  need_root
  echo "==> installing Docker Compose v2 ($COMPOSE_DEB, from Debian trixie)"
  deb="$(mktemp --suffix=.deb)"
  curl -fsSL -o "$deb" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}/pool/main/d/docker-compose/$COMPOSE_DEB"
  echo "$COMPOSE_SHA256  $deb" | sha256sum -c --quiet
  dpkg -i "$deb" >/dev/null
  rm -f "$deb"
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
