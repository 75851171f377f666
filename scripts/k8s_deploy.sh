#!/usr/bin/env bash
# Release an image that is already in a registry to a Kubernetes cluster with an overlay of deploy/k8s,
# wait for the rollout, and roll back if it does not complete. Used by both deploy workflows when the
# repository variable DEPLOY_TARGET is `kubernetes` (the kubeconfig comes from the KUBECONFIG secret).
#   scripts/k8s_deploy.sh OVERLAY IMAGE_REF            apply and wait (kubectl rollout status)
#   scripts/k8s_deploy.sh --render OVERLAY IMAGE_REF   print the manifests it would apply, touch nothing
# IMAGE_REF must name its tag (the workflows pass :sha-<commit> or :tree-<tree>), never `latest`: a pod
# restarted next week must run the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-10m}

render_only=false
if [[ ${1:-} == --render ]]; then
  render_only=true
  shift
fi
usage="usage: k8s_deploy.sh [--render] OVERLAY IMAGE_REF"
overlay=${1:?$usage}
image=${2:?$usage}
overlay_dir=deploy/k8s/overlays/$overlay
[[ -f $overlay_dir/kustomization.yaml ]] || { echo "k8s_deploy: no overlay $overlay_dir" >&2; exit 2; }
last=${image##*/}
if [[ $last != *:* || ${last##*:} == latest || ${last##*:} == "" ]]; then
  echo "k8s_deploy: $image does not pin a tag (name:tag, not latest)" >&2
  exit 2
fi

# The overlay plus the image, as a kustomization of its own: the repository's files stay untouched.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/kustomization.yaml" << YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$work" "$overlay_dir")
patches:
  - target:
      kind: Deployment
      name: tilescan-api
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/image
        value: $image
YAML
"$KUBECTL" kustomize "$work" > "$work/manifests.yaml"
if $render_only; then
  cat "$work/manifests.yaml"
  exit 0
fi

# kustomize writes metadata keys sorted: the Deployment's namespace follows its name.
namespace=$(awk '/^kind: Deployment$/ {d = 1} d && /^  namespace: / {print $2; exit}' "$work/manifests.yaml")
"$KUBECTL" apply -f "$work/manifests.yaml"
if ! "$KUBECTL" rollout status deployment/tilescan-api --namespace "$namespace" --timeout "$ROLLOUT_TIMEOUT"; then
  echo "k8s_deploy: the rollout of $image did not complete in $ROLLOUT_TIMEOUT; rolling back" >&2
  "$KUBECTL" rollout undo deployment/tilescan-api --namespace "$namespace"
  "$KUBECTL" rollout status deployment/tilescan-api --namespace "$namespace" --timeout "$ROLLOUT_TIMEOUT" || true
  exit 1
fi
