# shellcheck shell=bash
# Sourced by scripts/docker_smoke.sh and scripts/scale_smoke.sh: a Docker daemon, a base image and a compose
# command, on machines that have none of them ready.
#
# * no daemon answering -> start Debian's dockerd on a private socket (no default bridge, no iptables
#   rules on the host; compose's own networks, their DNS and published ports still work), stop it at exit;
# * the real base image cannot be pulled -> build a stand-in from Debian packages (debootstrap: python3,
#   python3-venv) once, keep it in the private daemon's store, and build with it;
# * neither `docker compose` nor `docker-compose` -> Debian's docker-compose (1.29).
# Needs root for a private daemon; installs docker.io, debootstrap and docker-compose with apt-get.
#
# Use: source it, set `docker_env_cleanup_hook` to a function that removes what the caller made (run
# first at exit, while the daemon still answers), then call `docker_env_start`. It sets DOCKER_HOST (private
# daemon), BASE (the base image to build on) and the array COMPOSE.

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
STANDIN=tilescan-smoke-base:bookworm
# The daemon's image store survives between runs (the stand-in base is built once); its sockets do not.
STATE=${DOCKER_SMOKE_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/tilescan-docker-smoke}
RUN_DIR=$(mktemp -d /tmp/tilescan-docker.XXXXXX)
dockerd_pid=""
docker_env_cleanup_hook=""
BASE=""
COMPOSE=()

log() { printf '== %s\n' "$*"; }

docker_env_cleanup() {
  local status=$?
  if [[ -n $docker_env_cleanup_hook ]] && docker info > /dev/null 2>&1; then
    "$docker_env_cleanup_hook" || true
  fi
  if [[ -n $dockerd_pid ]]; then
    # The classic builder leaves build stages behind as untagged images; the private store keeps only
    # the stand-in base between runs.
    docker image prune --force > /dev/null 2>&1 || true
    log "stopping the private dockerd ($dockerd_pid)"
    kill "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
    # dockerd leaves its network namespaces mounted under the exec root.
    awk -v dir="$RUN_DIR" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
  fi
  rm -rf "$RUN_DIR"
  exit "$status"
}
trap docker_env_cleanup EXIT

need() {  # need COMMAND DEBIAN_PACKAGE
  command -v "$1" > /dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    log "installing Debian's $2 for $1"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" > /dev/null
  else
    echo "$0: $1 is missing: install Debian's $2" >&2
    exit 1
  fi
}

start_private_daemon() {
  need dockerd docker.io
  mkdir -p "$STATE"
  export DOCKER_HOST="unix://$RUN_DIR/docker.sock"
  log "no Docker daemon answers: starting a private one on $DOCKER_HOST (store: $STATE)"
  dockerd --host "$DOCKER_HOST" --data-root "$STATE" --exec-root "$RUN_DIR/exec" \
    --pidfile "$RUN_DIR/dockerd.pid" --bridge none --iptables=false --ip6tables=false \
    > "$RUN_DIR/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info > /dev/null 2>&1 && break; sleep 1; done
  docker info > /dev/null 2>&1 || { cat "$RUN_DIR/dockerd.log" >&2; exit 1; }
}

build_standin() {
  need debootstrap debootstrap
  local mirror rootfs start=$SECONDS
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2> /dev/null | head -n 1)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "cannot pull $BASE_IMAGE; building a stand-in from Debian bookworm packages ($mirror)"
  rootfs="$RUN_DIR/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
    > "$RUN_DIR/debootstrap.log" 2>&1 || { tail -n 20 "$RUN_DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # The stand-in trusts what this host trusts (a TLS-inspecting proxy's CA, say), and pip is told so.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' - "$STANDIN" > /dev/null
  log "stand-in $STANDIN built in $((SECONDS - start)) s"
}

pick_compose() {
  if docker compose version > /dev/null 2>&1; then
    COMPOSE=(docker compose)
  else
    need docker-compose docker-compose
    COMPOSE=(docker-compose)
  fi
  log "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2> /dev/null || echo unknown))"
}

docker_env_start() {
  need docker docker.io
  docker info > /dev/null 2>&1 || start_private_daemon
  BASE=$BASE_IMAGE
  if docker image inspect "$BASE" > /dev/null 2>&1 || docker pull --quiet "$BASE" > /dev/null 2>&1; then
    log "base image: $BASE"
  else
    BASE=$STANDIN
    if docker image inspect "$STANDIN" > /dev/null 2>&1; then
      log "cannot pull $BASE_IMAGE; using the stand-in built earlier: $STANDIN"
    else
      build_standin
    fi
  fi
  pick_compose
}

build_image() {  # build_image DOCKERFILE TAG
  local start=$SECONDS
  log "building $2 from $1"
  # The classic builder: Debian's engine has no buildx plugin, and the Dockerfiles need no BuildKit feature.
  DOCKER_BUILDKIT=0 docker build --network host --file "$1" --build-arg BASE_IMAGE="$BASE" \
    --build-arg REVISION="$(git rev-parse HEAD)" --tag "$2" . > "$RUN_DIR/build.log" 2>&1 ||
    { tail -n 40 "$RUN_DIR/build.log" >&2; exit 1; }
  log "built in $((SECONDS - start)) s: $(docker image inspect --format '{{.Size}}' "$2" | numfmt --to=iec) \
user $(docker image inspect --format '{{.Config.User}}' "$2")"
}
