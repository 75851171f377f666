#!/usr/bin/env bash
# `make docker-smoke`: build docker/service.Dockerfile, bring up the compose file's `api` service with
# `docker compose up` (what the README tells users to run), and smoke-test /readyz, /model and a real
# /predict with tilescan_service.smoke; the container must also report itself healthy and be able to capture
# to s3://. Cleans up afterwards.
# Works without a Docker service or Docker Hub access: see scripts/lib/docker_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/docker_env.sh
source scripts/lib/docker_env.sh

IMAGE=tilescan-service:smoke
PROJECT=tilescan-smoke
PORT=${SMOKE_PORT:-18000}
PYTHON=${PYTHON:-.venv/bin/python}

remove_stack() {
  TILESCAN_IMAGE=$IMAGE "${COMPOSE[@]}" -p "$PROJECT" down --volumes --timeout 10 > /dev/null 2>&1
  docker rmi "$IMAGE" > /dev/null 2>&1
}
docker_env_cleanup_hook=remove_stack

[[ -f models/tilescan.onnx ]] || { echo "docker-smoke: no models/tilescan.onnx (make train)" >&2; exit 1; }
docker_env_start
build_image docker/service.Dockerfile "$IMAGE"

log "docker compose up api, published on port $PORT"
export TILESCAN_IMAGE=$IMAGE TILESCAN_API_PORT=$PORT
"${COMPOSE[@]}" -p "$PROJECT" up --detach --no-build api
container=$("${COMPOSE[@]}" -p "$PROJECT" ps -q api)
if ! "$PYTHON" -m tilescan_service.smoke "http://127.0.0.1:$PORT" --wait 120; then
  docker logs "$container" 2>&1 | tail -n 30 >&2
  exit 1
fi
# The compose healthcheck (a /readyz probe every 10 s) must agree.
for _ in $(seq 30); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$container")
  [[ $health == starting ]] || break
  sleep 1
done
log "container health: $health"
[[ $health == healthy ]]
# A plant's capture store is a bucket: the image must carry s3fs (the service's `s3` extra).
docker exec "$container" python3 -c "import fsspec; fsspec.filesystem('s3')" \
  || { echo "docker-smoke: the image cannot write captures to s3:// (no s3fs)" >&2; exit 1; }
log "image size: $(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
log "docker-smoke passed"
