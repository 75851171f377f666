#!/usr/bin/env bash
# `make gpu-check`, on a GPU box (NVIDIA driver for CUDA 13 + the NVIDIA container toolkit, Docker Hub
# reachable for the nvidia/cuda base): everything the GPU service path needs, in one command.
#   1. build docker/service-gpu.Dockerfile;
#   2. in that image, on the GPU: onnxruntime offers CUDAExecutionProvider, a session really runs on it,
#      and its masks on the example tiles match the CPU's (tilescan_service.gpu_parity);
#   3. the service from that image answers /readyz, /model and a real /predict (tilescan_service.smoke),
#      and /model says it runs on CUDAExecutionProvider.
# Leaves nothing running; the image stays (tilescan-service-gpu:check) for a `docker run --gpus all`.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${GPU_IMAGE:-tilescan-service-gpu:check}
CONTAINER=tilescan-gpu-check
PORT=${GPU_CHECK_PORT:-18001}
PYTHON=${PYTHON:-.venv/bin/python}

log() { printf '== %s\n' "$*"; }
cleanup() { docker rm -f "$CONTAINER" > /dev/null 2>&1 || true; }
trap cleanup EXIT

log "building $IMAGE from docker/service-gpu.Dockerfile"
docker build --file docker/service-gpu.Dockerfile --build-arg REVISION="$(git rev-parse HEAD)" --tag "$IMAGE" .

log "providers and CPU/GPU parity of the masks, in the image, on the GPU"
docker run --rm --gpus all --volume "$PWD/evaluation/examples:/checks/examples:ro" --entrypoint python3 \
  "$IMAGE" -m tilescan_service.gpu_parity --model /app/models/tilescan.onnx --examples /checks/examples

log "the service on the GPU, port $PORT"
docker run --detach --name "$CONTAINER" --gpus all --publish "127.0.0.1:$PORT:8000" "$IMAGE" > /dev/null
if ! "$PYTHON" -m tilescan_service.smoke "http://127.0.0.1:$PORT" --wait 180; then
  docker logs "$CONTAINER" 2>&1 | tail -n 30 >&2
  exit 1
fi
"$PYTHON" - "http://127.0.0.1:$PORT/model" << 'PY'
import json, sys, urllib.request
providers = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))["providers"]
print(f"/model providers: {providers}")
sys.exit(0 if providers[0] == "CUDAExecutionProvider" else "FAIL: the service does not run on CUDA")
PY
log "gpu-check passed"
