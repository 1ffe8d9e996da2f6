#!/usr/bin/env bash
# A private Docker engine for the container tests, on a Debian machine that
# reaches only its apt mirror and the npm registry (no container registry).
# Run as root.
#
#   .ci/docker.sh up     install docker.io + docker-compose if missing, start a
#                        dockerd of our own (own mount namespace, no bridge, no
#                        iptables rules), make the base images locally, build
#                        the project's images; prints the DOCKER_HOST to use
#   .ci/docker.sh down   remove our containers and stop that dockerd (the images
#                        stay in $VOICECALL_DOCKER_DIR/data for the next run)
#
# VOICECALL_DOCKER_DIR: where the engine keeps its data (default: the cache folder).
set -euo pipefail
cd "$(dirname "$0")/.."
DK=${VOICECALL_DOCKER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openclaw-voice-call/docker}
export DOCKER_HOST=unix://$DK/docker.sock
APT=(apt-get -o Acquire::Check-Valid-Until=false)
say() { printf '[docker +%ss] %s\n' "$SECONDS" "$*"; }

# The image names the tests and docker-compose.yml use.
PBX_IMAGE=voicecall-asterisk:local
LAB_IMAGE=voicecall-asterisk-lab:local
SERVICE_IMAGE=voicecall:local
SID_IMAGE=local/debian:sid
NODE_IMAGE=local/node:20-bookworm-slim
KAMAILIO_IMAGE=voicecall-kamailio:local
# Where there is no registry: PostgreSQL from Debian bookworm behind the official image's settings.
POSTGRES_IMAGE=local/postgres:15

install_packages() {
  if command -v dockerd >/dev/null && command -v docker-compose >/dev/null && command -v debootstrap >/dev/null; then return; fi
  say "installing docker.io, docker-compose and debootstrap from the Debian mirror"
  # Without systemd, docker.io's postinst would start a default dockerd (docker0 bridge,
  # iptables NAT) through /etc/init.d: a policy-rc.d that answers 101 prevents it.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1; fi
  "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends docker.io docker-compose debootstrap >/dev/null
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then say "dockerd already answers on $DOCKER_HOST"; return; fi
  mkdir -p "$DK/data" "$DK/exec"
  rm -f "$DK/docker.sock"
  say "starting dockerd (data in $DK)"
  # Its own mount namespace keeps overlay and netns mounts out of the host's mount table;
  # no bridge and no iptables: containers use the host network and change nothing on it.
  setsid unshare --mount --propagation private \
    dockerd --data-root "$DK/data" --exec-root "$DK/exec" -H "$DOCKER_HOST" --pidfile "$DK/dockerd.pid" \
      --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
      </dev/null >"$DK/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && { say "dockerd up (pid $(cat "$DK/dockerd.pid"))"; return; }
    sleep 0.5
  done
  tail -20 "$DK/dockerd.log" >&2
  return 1
}

rootfs() { # rootfs SUITE DIR: a debootstrap minbase tree whose apt accepts the mirror's Release files
  local suite=$1 dir=$2
  [ -f "$dir/.done" ] && return
  rm -rf --one-file-system "$dir"
  say "debootstrap $suite (about 30 s, once)"
  debootstrap --variant=minbase "$suite" "$dir" "$(bash asterisk/lab/debian-mirror.sh)" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; return 1; }
  echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99no-check-valid-until"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir/etc/resolv.conf"
  touch "$dir/.done"
}

base_images() {
  if ! docker image inspect "$SID_IMAGE" >/dev/null 2>&1; then
    rootfs sid "$DK/rootfs-sid"
    say "importing $SID_IMAGE"
    tar -C "$DK/rootfs-sid" --exclude=./.done -c . | docker import -c 'CMD ["bash"]' - "$SID_IMAGE" >/dev/null
  fi
  if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    rootfs bookworm "$DK/rootfs-bookworm"
    # This machine's Node and npm, and its CA bundle (npm then trusts whatever TLS proxy this
    # machine's registry traffic passes through).
    local r=$DK/rootfs-bookworm npmdir
    npmdir=$(npm root -g)/npm
    cp -L "$(command -v node)" "$r/usr/bin/node"
    mkdir -p "$r/usr/lib/node_modules" && rm -rf "$r/usr/lib/node_modules/npm" && cp -a "$npmdir" "$r/usr/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/bin/npx"
    mkdir -p "$r/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
    say "importing $NODE_IMAGE (node $(node -v))"
    tar -C "$r" --exclude=./.done -c . |
      docker import -c 'CMD ["node"]' -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' - "$NODE_IMAGE" >/dev/null
  fi
}

build() { # build TAG [docker build args...]: --network host, as there is no bridge to build on
  local tag=$1 t0=$SECONDS; shift
  say "building $tag"
  local log="$DK/build-${tag//[:\/]/_}.log"
  if ! DOCKER_BUILDKIT=0 docker build --network host -t "$tag" "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    return 1
  fi
  say "built $tag in $((SECONDS - t0)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
}

build_images() {
  build "$PBX_IMAGE" --build-arg "BASE_IMAGE=$SID_IMAGE" asterisk
  build "$LAB_IMAGE" --build-arg "PBX_IMAGE=$PBX_IMAGE" -f asterisk/lab/Dockerfile asterisk
  build "$SERVICE_IMAGE" --build-arg "NODE_IMAGE=$NODE_IMAGE" .
  # docker-compose.cluster.yml's: Kamailio, and the PostgreSQL stand-in (both on the bookworm base).
  build "$KAMAILIO_IMAGE" --build-arg "BASE_IMAGE=$NODE_IMAGE" kamailio
  build "$POSTGRES_IMAGE" --build-arg "BASE_IMAGE=$NODE_IMAGE" .ci/postgres
}

stop_all() {
  if docker info >/dev/null 2>&1; then
    local ids; ids=$(docker ps -aq)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
  fi
  if [ -f "$DK/dockerd.pid" ]; then
    local pid; pid=$(cat "$DK/dockerd.pid")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping dockerd (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$DK/dockerd.pid"
  fi
}

case "${1:-}" in
  up) install_packages; start_dockerd; base_images; build_images; say "ready: DOCKER_HOST=$DOCKER_HOST" ;;
  down) stop_all ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
