#!/usr/bin/env bash
# `make docker-smoke`: build docker/service.Dockerfile, run it, and smoke-test /readyz, /model and a real
# /predict with scripts/smoke_test.py; clean up afterwards.
#
# Works on machines without a Docker service and without access to Docker Hub:
# * no daemon answering -> start Debian's dockerd on a private socket (no bridge, no iptables; builds and
#   the container use the host network), and stop it at the end;
# * the real base image cannot be pulled -> build a stand-in from Debian packages (debootstrap: python3,
#   python3-venv) once, keep it in the private daemon's store, and build with it.
# Needs root for a private daemon; installs docker.io and debootstrap with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
STANDIN=tilescan-smoke-base:bookworm
IMAGE=tilescan-service:smoke
CONTAINER=tilescan-smoke
PORT=${SMOKE_PORT:-18000}
PYTHON=${PYTHON:-.venv/bin/python}
# The daemon's image store survives between runs (the stand-in base is built once); its sockets do not.
STATE=${DOCKER_SMOKE_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/tilescan-docker-smoke}
RUN_DIR=$(mktemp -d /tmp/tilescan-docker.XXXXXX)
dockerd_pid=""

log() { printf '== %s\n' "$*"; }

cleanup() {
  local status=$?
  if [[ -n ${DOCKER_HOST:-} ]] && docker info > /dev/null 2>&1; then
    docker rm -f "$CONTAINER" > /dev/null 2>&1 || true
    docker rmi "$IMAGE" > /dev/null 2>&1 || true
  fi
  if [[ -n $dockerd_pid ]]; then
    # The classic builder leaves the build stage behind as an untagged image; the private store keeps
    # only the stand-in base between runs.
    docker image prune --force > /dev/null 2>&1 || true
    log "stopping the private dockerd ($dockerd_pid)"
    kill "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
    # dockerd leaves its default network namespace mounted under the exec root.
    awk -v dir="$RUN_DIR" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
  fi
  rm -rf "$RUN_DIR"
  exit "$status"
}
trap cleanup EXIT

need() {  # need COMMAND DEBIAN_PACKAGE
  command -v "$1" > /dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    log "installing Debian's $2 for $1"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" > /dev/null
  else
    echo "docker-smoke: $1 is missing: install Debian's $2" >&2
    exit 1
  fi
}

[[ -f models/tilescan.onnx ]] || { echo "docker-smoke: no models/tilescan.onnx (make train)" >&2; exit 1; }

need docker docker.io
if ! docker info > /dev/null 2>&1; then
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
fi

base=$BASE_IMAGE
if docker image inspect "$base" > /dev/null 2>&1 || docker pull --quiet "$base" > /dev/null 2>&1; then
  log "base image: $base"
else
  base=$STANDIN
  if docker image inspect "$STANDIN" > /dev/null 2>&1; then
    log "cannot pull $BASE_IMAGE; using the stand-in built earlier: $STANDIN"
  else
    need debootstrap debootstrap
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2> /dev/null | head -n 1)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "cannot pull $BASE_IMAGE; building a stand-in from Debian bookworm packages ($mirror)"
    start=$SECONDS
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
  fi
fi

log "building $IMAGE from docker/service.Dockerfile"
start=$SECONDS
# The classic builder: Debian's engine has no buildx plugin, and the Dockerfile needs no BuildKit feature.
DOCKER_BUILDKIT=0 docker build --network host --file docker/service.Dockerfile \
  --build-arg BASE_IMAGE="$base" --build-arg REVISION="$(git rev-parse HEAD)" --tag "$IMAGE" . \
  > "$RUN_DIR/build.log" 2>&1 || { tail -n 40 "$RUN_DIR/build.log" >&2; exit 1; }
log "built in $((SECONDS - start)) s: $(docker image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) \
user $(docker image inspect --format '{{.Config.User}}' "$IMAGE")"

log "running it on port $PORT"
# A short health interval so the image's own HEALTHCHECK (a /readyz probe) reports within seconds.
docker run --detach --name "$CONTAINER" --network host --env PORT="$PORT" --health-interval 3s "$IMAGE" \
  > /dev/null
if ! "$PYTHON" scripts/smoke_test.py "http://127.0.0.1:$PORT" --wait 120; then
  docker logs "$CONTAINER" 2>&1 | tail -n 30 >&2
  exit 1
fi
for _ in $(seq 30); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$CONTAINER")
  [[ $health == starting ]] || break
  sleep 1
done
log "container health: $health"
[[ $health == healthy ]]
log "docker-smoke passed"
