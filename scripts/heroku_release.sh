#!/usr/bin/env bash
# Release a container image that is already in a registry to a Heroku app's web process, then print the
# app's URL. Used by both deploy workflows, so dev and prod release the same way.
#   scripts/heroku_release.sh APP IMAGE_REF      (HEROKU_API_KEY in the environment)
# The image is re-tagged, not rebuilt: Heroku runs the very bytes that were tested.
set -euo pipefail

app=${1:?usage: heroku_release.sh APP IMAGE_REF}
image=${2:?usage: heroku_release.sh APP IMAGE_REF}
: "${HEROKU_API_KEY:?HEROKU_API_KEY must be set}"
target="registry.heroku.com/${app}/web"

docker pull --quiet "$image"
docker tag "$image" "$target"
docker login --username=_ --password-stdin registry.heroku.com <<<"$HEROKU_API_KEY"
docker push --quiet "$target"
image_id=$(docker inspect --format '{{.Id}}' "$target")

# Platform API release (what `heroku container:release web` does), so the runner needs no Heroku CLI.
curl --fail-with-body --silent --show-error -X PATCH "https://api.heroku.com/apps/${app}/formation" \
  -H "Authorization: Bearer ${HEROKU_API_KEY}" \
  -H "Accept: application/vnd.heroku+json; version=3.docker-releases" \
  -H "Content-Type: application/json" \
  -d "{\"updates\": [{\"type\": \"web\", \"docker_image\": \"${image_id}\"}]}" >/dev/null

curl --fail-with-body --silent --show-error "https://api.heroku.com/apps/${app}" \
  -H "Authorization: Bearer ${HEROKU_API_KEY}" \
  -H "Accept: application/vnd.heroku+json; version=3" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["web_url"].rstrip("/"))'
