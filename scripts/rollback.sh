#!/usr/bin/env bash
# Put an earlier registered model version back in prod: the image that passed dev for it is released again
# (nothing is rebuilt), smoke-tested against that version's own model, tagged :prod, and the registry's
# prod stage is reassigned to it (a new GTO tag, pushed to origin).
#   scripts/rollback.sh VERSION      e.g. v0.3.0 (`make models` lists them)
# Environment: IMAGE_REPO (ghcr.io/<owner>/<repo>/service), DEPLOY_TARGET (heroku, the default, or
# kubernetes) and what scripts/release.sh needs for it (HEROKU_APP and HEROKU_API_KEY, or K8S_URL and the
# cluster's credentials); GITHUB_TOKEN in CI for the tag push. deploy-prod.yml runs it for `rollback_to`;
# `make rollback` locally.
set -euo pipefail

version=${1:?usage: rollback.sh VERSION}
: "${IMAGE_REPO:?IMAGE_REPO must be set}"
here=$(dirname "$0")
python=${PYTHON:-python3}

image=$("$python" "$here/model_registry.py" image "$version" --image-repo "$IMAGE_REPO")
if ! docker manifest inspect "$image" >/dev/null 2>&1; then
    echo "error: $image is not in the registry" >&2
    exit 1
fi
url=$("$here/release.sh" "${DEPLOY_TARGET:-heroku}" prod "$image")

# The served model must be this version's: check it against the model file committed with it.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git show "tilescan@${version}:models/tilescan.onnx" >"$work/model.onnx"
git archive "tilescan@${version}" evaluation/examples | tar -x -C "$work"
# The smoke test's packages from this checkout (a bare runner has only its few dependencies).
PYTHONPATH="$here/../shared/src:$here/../service/src${PYTHONPATH:+:$PYTHONPATH}" \
  "$python" -m tilescan_service.smoke "$url" --model "$work/model.onnx" --examples "$work/evaluation/examples" \
    --wait "${SMOKE_WAIT:-300}"

docker buildx imagetools create --tag "${IMAGE_REPO}:prod" "$image"
"$python" "$here/model_registry.py" assign prod "$version" --push
