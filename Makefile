# tilescan's front door. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default. GPU hosts: make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH ?= torch==2.13.0
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --constraint constraints.txt
# uv installs the packages (a fresh .venv in under a minute instead of ~2.5); pip installs uv itself and
# torch, whose CPU build this machine's pip configuration may point at (uv does not read pip's).
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python --constraint constraints.txt

DEV_STAMP := $(VENV)/.dev-installed
DEV_DEPS := constraints.txt shared/pyproject.toml training/pyproject.toml service/pyproject.toml
# `make serve` installs only what the API needs (no torch), behind its own stamp.
SERVE_STAMP := $(VENV)/.serve-installed
SERVE_DEPS := constraints.txt shared/pyproject.toml service/pyproject.toml
# The delivery tools (data, pull-data, gate, promote, check-served, models, rollback) need no torch either.
GATE_STAMP := $(VENV)/.gate-installed
GATE_DEPS := constraints.txt shared/pyproject.toml training/pyproject.toml

.PHONY: help install serve bench drift-report test test-fast lint train data pull-data report gate promote check-served docker-smoke models rollback shadow-report scale-smoke gpu-check label-install label-studio label-export label-upload label-import flywheel-smoke

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEV_STAMP): $(BIN)/python $(DEV_DEPS)
	scripts/ensure_debian_packages.sh train
	$(PIP) uv
	$(PIP) $(TORCH)
	$(UV) -e "shared[cpu]" -e "training[train,test,lint]" -e "service[test]"
	touch $(GATE_STAMP) $@

install: $(DEV_STAMP)  ## create .venv with everything for training and tests

$(GATE_STAMP): $(BIN)/python $(GATE_DEPS)
	$(PIP) uv
	$(UV) -e "shared[cpu]" -e training
	touch $@

$(SERVE_STAMP): $(BIN)/python $(SERVE_DEPS)
	$(PIP) uv
	$(UV) -e "shared[cpu]" -e "service[cpu]"
	touch $@

# Label Studio and its SDK live in their own environment (labelling/constraints.txt: they need other
# numpy and opencv pins than the project's).
LABEL_VENV ?= .venv-label
LABEL_BIN := $(LABEL_VENV)/bin
LABEL_STAMP := $(LABEL_VENV)/.installed
LABEL_DIR ?= label
$(LABEL_STAMP): $(BIN)/python labelling/constraints.txt labelling/pyproject.toml shared/pyproject.toml
	$(PIP) uv
	$(BIN)/uv venv --quiet --allow-existing --python $(BIN)/python $(LABEL_VENV)
	$(BIN)/uv pip install --quiet --python $(LABEL_BIN)/python --constraint labelling/constraints.txt \
	  -e shared -e "labelling[server,test]"
	touch $@

serve: $(SERVE_STAMP)  ## run the API on 127.0.0.1:8000 (PORT=8080 make serve to move it)
	$(BIN)/tilescan-serve

BENCH_ARGS ?=
bench: $(SERVE_STAMP)  ## time the runtime vs the HTTP service on the test images, per precision (BENCH_ARGS=--precision-only)
	$(UV) onnx pyyaml py-spy  # py-spy: cpu_by_thread.py names the threads; the shadow's tiny model and the precision comparison's re-stamped copy; the pod's memory limit
	$(BIN)/python service/benchmarks/bench.py $(BENCH_ARGS)

URL ?= http://127.0.0.1:8000
shadow-report: $(SERVE_STAMP)  ## summarise the shadow comparison of the primary service at URL (its /metrics)
	$(BIN)/python scripts/shadow_report.py "$(URL)"

CAPTURES ?=
drift-report: $(SERVE_STAMP)  ## which inputs drifted from the training data: the service at URL, or CAPTURES= (a capture store)
	$(BIN)/python scripts/drift_report.py $(if $(CAPTURES),--captures "$(CAPTURES)",--url "$(URL)")

test: $(DEV_STAMP) $(LABEL_STAMP)  ## run every test (unit, integration, browser, alert rules, labelling; installs Debian's chromium, promtool, tcmalloc if missing)
	scripts/ensure_debian_packages.sh test
	$(BIN)/python -m pytest
	$(LABEL_BIN)/python -m pytest labelling/tests

test-fast: $(DEV_STAMP) $(LABEL_STAMP)  ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"
	$(LABEL_BIN)/python -m pytest -m "not slow" labelling/tests

lint: $(DEV_STAMP)  ## ruff, actionlint, shellcheck, hadolint, compose schema, k8s overlays (strict schema)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/actionlint  # finds shellcheck on PATH for `run:` steps
	$(BIN)/shellcheck scripts/*.sh scripts/lib/*.sh
	$(BIN)/hadolint docker/*.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	for overlay in deploy/k8s/overlays/*/; do \
	  $(BIN)/kubectl kustomize "$$overlay" | $(BIN)/kubernetes-validate --strict --quiet - || exit 1; \
	done

train: $(DEV_STAMP)  ## reproduce the DVC pipeline (ingest -> ... -> evaluate): writes models/candidate.onnx
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

data: $(GATE_STAMP)  ## ingest and split the dataset (data/): the tiles the gate scores models on
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro split

DVC_REMOTE_URL ?=
pull-data: $(GATE_STAMP)  ## fetch data/ from the DVC remote (DVC_REMOTE_URL) unless it is here: CI runners
	if [ ! -f data/split.csv ]; then \
	  $(BIN)/dvc remote add --local --force --default ci "$(DVC_REMOTE_URL)"; \
	  $(BIN)/dvc pull --allow-missing split; \
	fi

BASE ?= HEAD
report: $(DEV_STAMP)  ## write report.md: workspace vs BASE (git rev, default HEAD): metrics, params, gate, plots
	$(BIN)/python -m tilescan_training.promotion.report --base "$(BASE)"

# gate, promote and check-served score models on data/'s test split: `make data` here, `dvc pull` in workflows.
MODEL ?=
gate: $(GATE_STAMP)  ## exit 0 if the served model (or MODEL=) may replace BASE's, both scored on data/'s test split
	$(BIN)/python -m tilescan_training.promotion.gate --base "$(BASE)" $(if $(MODEL),--model "$(MODEL)")

promote: $(GATE_STAMP)  ## gate models/candidate.onnx against the served model; if it passes, serve it
	$(BIN)/python -m tilescan_training.promotion.promote

check-served: $(GATE_STAMP)  ## fail if the served model changed to one the gate rejects against the one before it
	$(BIN)/python -m tilescan_training.promotion.served

# The loop from the plant back into training (README, "Learning from the plant").
label-install: $(LABEL_STAMP)  ## the labelling environment (.venv-label): Label Studio, its SDK, tilescan-label

LABEL_PORT ?= 8080
label-studio: $(LABEL_STAMP)  ## run Label Studio on 127.0.0.1:LABEL_PORT, serving the tiles label-export wrote to LABEL_DIR
	mkdir -p $(LABEL_DIR)
	LABEL_STUDIO_BASE_DATA_DIR=$(abspath $(LABEL_DIR))/studio LOCAL_FILES_SERVING_ENABLED=true LATEST_VERSION_CHECK=false \
	LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=$(abspath $(LABEL_DIR)) \
	  $(LABEL_BIN)/label-studio start --no-browser --internal-host 127.0.0.1 --port $(LABEL_PORT)

LABEL_ARGS ?=
label-export: $(LABEL_STAMP)  ## captures (CAPTURES=) -> Label Studio tasks in LABEL_DIR, uncertain first (LABEL_ARGS=--coco: CVAT too)
	@test -n "$(CAPTURES)" || { echo "usage: make label-export CAPTURES=<capture store: a folder or s3://...>"; exit 2; }
	$(LABEL_BIN)/tilescan-label export --captures "$(CAPTURES)" --out $(LABEL_DIR) $(LABEL_ARGS)

label-upload: $(LABEL_STAMP)  ## a new Label Studio project with LABEL_DIR's tasks (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)
	$(LABEL_BIN)/tilescan-label upload --out $(LABEL_DIR)

label-import: $(LABEL_STAMP) $(GATE_STAMP)  ## a Label Studio JSON export (FILE=) -> a new batch in data/plant/, dvc add-ed
	@test -n "$(FILE)" -a -n "$(CAPTURES)" || { echo "usage: make label-import FILE=<export.json> CAPTURES=<capture store>"; exit 2; }
	batch=$$(date -u +%Y%m%dT%H%M%SZ); \
	$(LABEL_BIN)/tilescan-label import --captures "$(CAPTURES)" --file "$(FILE)" --plant data/plant --batch $$batch && \
	$(BIN)/dvc add --quiet data/plant/$$batch && \
	echo "next: git commit data/plant (dvc add staged it), dvc push, make train"

flywheel-smoke: $(DEV_STAMP) $(LABEL_STAMP)  ## service with capture -> Label Studio -> a person's correction -> ingest and split
	$(LABEL_BIN)/python -m tilescan_labelling.smoke --project-python $(BIN)/python

docker-smoke: $(DEV_STAMP)  ## build docker/service.Dockerfile, compose up `api`, check /readyz, /model, /predict (root)
	PYTHON=$(BIN)/python scripts/docker_smoke.sh

models: $(GATE_STAMP)  ## the model registry (GTO tags): versions, the stages they hold, their test metrics
	$(BIN)/python scripts/model_registry.py show

rollback: $(GATE_STAMP)  ## put VERSION back in prod, no rebuild: VERSION=v0.3.0 IMAGE_REPO= (scripts/rollback.sh)
	@test -n "$(VERSION)" || { echo "usage: make rollback VERSION=v0.3.0 (see make models)"; exit 2; }
	PYTHON=$(BIN)/python scripts/rollback.sh "$(VERSION)"

# SIGNAL=KILL: the replica stopped under load is killed instead of drained. REPLICAS=N: how many.
scale-smoke: $(DEV_STAMP)  ## compose `scale` profile: replicas behind HAProxy; stop one, roll a model, 0 failed (root)
	PYTHON=$(BIN)/python scripts/scale_smoke.sh

gpu-check: $(DEV_STAMP)  ## on a GPU box: build the GPU image, CUDA provider, CPU/GPU mask parity, smoke test
	PYTHON=$(BIN)/python scripts/gpu_check.sh
