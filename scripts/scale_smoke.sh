#!/usr/bin/env bash
# `make scale-smoke`: the compose file's `scale` profile (REPLICAS api replicas behind HAProxy, health-
# checked on /readyz) brought up with docker compose, then two runs of bounded load through HAProxy:
#   1. one replica is stopped in the middle of the load (SIGNAL=TERM: `docker stop`, a graceful drain;
#      SIGNAL=KILL: `docker kill`, a crash);
#   2. a new model file is rolled out: each replica in turn is restarted (SIGTERM, drain, start, model
#      loaded, back in HAProxy) before the next, and then every replica must report the new version.
# Each run ends with `N requests, M failed` and fails unless M is 0. The stack is brought down at the end.
# Works without a Docker service or Docker Hub access: see scripts/lib/docker_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/docker_env.sh
source scripts/lib/docker_env.sh

REPLICAS=${REPLICAS:-3}
SIGNAL=${SIGNAL:-TERM}
CLIENTS=${CLIENTS:-4}
PYTHON=${PYTHON:-.venv/bin/python}
PROJECT=tilescan-scale
LB_PORT=${SCALE_LB_PORT:-18080}
STATS_PORT=${SCALE_STATS_PORT:-18404}
export TILESCAN_IMAGE=tilescan-service:scale TILESCAN_LB_IMAGE=tilescan-lb:scale
export TILESCAN_LB_PORT=$LB_PORT TILESCAN_LB_STATS_PORT=$STATS_PORT
[[ $SIGNAL == TERM || $SIGNAL == KILL ]] || { echo "scale-smoke: SIGNAL is TERM or KILL" >&2; exit 2; }

compose() { "${COMPOSE[@]}" -p "$PROJECT" --profile scale "$@"; }

remove_stack() {
  compose down --volumes --timeout 10 > /dev/null 2>&1
  docker rmi "$TILESCAN_IMAGE" "$TILESCAN_LB_IMAGE" > /dev/null 2>&1
  rm -rf "${TILESCAN_MODEL_DIR:-}"
}
docker_env_cleanup_hook=remove_stack

show_logs() {  # on failure: what the load balancer and the replicas said
  compose logs --no-color --tail 20 >&2 || true
}

replicas() { docker ps --quiet --filter "label=com.docker.compose.project=$PROJECT" \
  --filter label=com.docker.compose.service=replica | sort; }

servers_up() {  # replicas HAProxy sends traffic to
  "$PYTHON" - "http://127.0.0.1:$STATS_PORT/stats;csv" << 'PY'
import csv, sys, urllib.request
rows = csv.DictReader(line.lstrip("# ") for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines())
print(sum(r["pxname"] == "replicas" and r["svname"].startswith("replica") and r["status"] == "UP" for r in rows))
PY
}

wait_up() {  # wait_up COUNT: until HAProxy has exactly COUNT replicas up
  for _ in $(seq 120); do
    [[ $(servers_up 2> /dev/null) == "$1" ]] && return
    sleep 1
  done
  echo "scale-smoke: HAProxy never had $1 replicas up (has $(servers_up 2> /dev/null || echo '?'))" >&2
  show_logs
  exit 1
}

replica_model() {  # the model version a replica serves, asked inside its container (not through HAProxy)
  docker exec "$1" python3 -c "import json, urllib.request
print(json.load(urllib.request.urlopen('http://127.0.0.1:8000/model', timeout=5))['version'])" 2> /dev/null
}

load_start() {  # the load runs until load_stop; progress in $RUN_DIR/progress
  rm -f "$RUN_DIR/stop" "$RUN_DIR/progress"
  "$PYTHON" scripts/lb_load.py "http://127.0.0.1:$LB_PORT" --clients "$CLIENTS" \
    --stop-file "$RUN_DIR/stop" --progress-file "$RUN_DIR/progress" > "$RUN_DIR/load.out" &
  load_pid=$!
}

progress() { local sent; sent=$(cat "$RUN_DIR/progress" 2> /dev/null) || true; echo "${sent:-0}"; }

load_wait_for() {  # load_wait_for N: until N more requests have been sent than now
  local target=$(($(progress) + $1))
  for _ in $(seq 600); do
    (($(progress) >= target)) && return
    kill -0 "$load_pid" 2> /dev/null || break
    sleep 0.2
  done
  echo "scale-smoke: the load stalled before $target requests" >&2
  exit 1
}

load_stop() {  # load_stop WHAT: stop the load, print its line, fail unless 0 failed
  touch "$RUN_DIR/stop"
  local status=0
  wait "$load_pid" || status=$?
  log "$1: $(cat "$RUN_DIR/load.out")"
  ((status == 0)) || { show_logs; exit 1; }
}

[[ -f models/tilescan.onnx ]] || { echo "scale-smoke: no models/tilescan.onnx (make train)" >&2; exit 1; }
docker_env_start
# The replicas serve this folder (not the repository's models/): the rollout replaces the file in it.
TILESCAN_MODEL_DIR=$(mktemp -d /tmp/tilescan-scale-models.XXXXXX)
export TILESCAN_MODEL_DIR
cp models/tilescan.onnx "$TILESCAN_MODEL_DIR/"
chmod 755 "$TILESCAN_MODEL_DIR"  # the replicas run as uid 10001
build_image docker/service.Dockerfile "$TILESCAN_IMAGE"
build_image docker/lb.Dockerfile "$TILESCAN_LB_IMAGE"

log "compose up: $REPLICAS replicas behind HAProxy on port $LB_PORT"
start=$SECONDS
compose up --detach --no-build --scale "replica=$REPLICAS" replica lb
wait_up "$REPLICAS"
log "all $REPLICAS replicas up in HAProxy after $((SECONDS - start)) s"

# 1. One replica goes away in the middle of the load.
load_start
load_wait_for 100
victim=$(replicas | head -n 1)
if [[ $SIGNAL == TERM ]]; then
  log "SIGTERM to replica ${victim:0:12} (docker stop: drain, then exit)"
  docker stop --time 30 "$victim" > /dev/null
else
  log "SIGKILL to replica ${victim:0:12} (docker kill)"
  docker kill --signal KILL "$victim" > /dev/null
fi
wait_up $((REPLICAS - 1))
load_wait_for 100
load_stop "replica stopped with SIG$SIGNAL under load"
docker start "$victim" > /dev/null
wait_up "$REPLICAS"

# 2. A new model file, rolled out one replica at a time under load. A re-stamped copy of the committed
# model: the same weights under a new version, so the answers stay right and the version tells them apart.
old_version=$(replica_model "$victim")
"$PYTHON" - "$TILESCAN_MODEL_DIR/tilescan.onnx" << 'PY'
import dataclasses, sys, onnx
from tilescan_shared.model_info import read_info, stamp
model = onnx.load(sys.argv[1])
info = read_info(model)
stamp(model, dataclasses.replace(info, version=info.version + "-rollout"))
onnx.save(model, sys.argv[1] + ".new")
PY
chmod 644 "$TILESCAN_MODEL_DIR/tilescan.onnx.new"
mv "$TILESCAN_MODEL_DIR/tilescan.onnx.new" "$TILESCAN_MODEL_DIR/tilescan.onnx"  # atomic: no replica reads half a file
new_version="$old_version-rollout"
log "rolling model $old_version -> $new_version out to $REPLICAS replicas, one at a time"
load_start
load_wait_for 50
for replica in $(replicas); do
  start=$SECONDS
  docker stop --time 30 "$replica" > /dev/null
  docker start "$replica" > /dev/null
  for _ in $(seq 120); do
    [[ $(replica_model "$replica") == "$new_version" ]] && break
    sleep 1
  done
  [[ $(replica_model "$replica") == "$new_version" ]] || { echo "scale-smoke: ${replica:0:12} never served $new_version" >&2; exit 1; }
  wait_up "$REPLICAS"
  log "  ${replica:0:12}: serves $new_version, back in HAProxy after $((SECONDS - start)) s"
  load_wait_for 20
done
load_wait_for 50
load_stop "rolling model update under load"
for replica in $(replicas); do
  [[ $(replica_model "$replica") == "$new_version" ]] || { echo "scale-smoke: ${replica:0:12} serves the old model" >&2; exit 1; }
done
log "scale-smoke passed"
