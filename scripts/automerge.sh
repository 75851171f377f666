#!/usr/bin/env bash
# Gated auto-merge of an experiment's pull request into dev: when the experiment's candidate model
# (models/candidate.onnx) passes `make gate` against BASE's served model (default origin/dev), the pull
# request is set to merge by itself as soon as dev's required checks pass (`gh pr merge --auto`);
# otherwise it is labelled `gate-rejected` and the verdict is commented on it, so nobody merges it by
# accident.
#   scripts/automerge.sh PR_URL      (GH_TOKEN in the environment; experiment.yml runs it)
set -euo pipefail

pr=${1:?usage: automerge.sh PR_URL}
base=${BASE:-origin/dev}
verdict=$(mktemp)
trap 'rm -f "$verdict"' EXIT

if make --no-print-directory gate BASE="$base" MODEL=models/candidate.onnx >"$verdict"; then
    cat "$verdict"
    gh pr merge "$pr" --auto --merge
    echo "auto-merge enabled for $pr: the gate passed against $base"
else
    cat "$verdict"
    gh label create gate-rejected --force --color B60205 \
        --description "the model did not pass make gate against dev"
    gh pr edit "$pr" --add-label gate-rejected
    {
        echo "Not merged automatically: the model does not pass \`make gate\` against \`$base\`."
        echo
        cat "$verdict"
    } | gh pr comment "$pr" --body-file -
    echo "$pr labelled gate-rejected: the gate failed against $base"
fi
