# The GPU training environment the CML runner uses (.github/workflows/experiment.yml): CUDA torch, the
# training and shared packages' dependencies (DVC with S3 support among them), git and make. The code comes from the
# job's checkout (`make install` there installs it editable over these dependencies: VENV is set below, so
# every make target uses this environment), so the image changes only when dependencies do.
#   docker build -f docker/training.Dockerfile -t tilescan-training .
#   docker run --gpus all --rm tilescan-training python -c "import torch; print(torch.cuda.is_available())"
# torch's CUDA wheels carry their own CUDA libraries; the base brings a matching runtime for everything else.
ARG BASE_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

# Matches README's `make install TORCH=...` for CUDA hosts.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG DEBIAN_FRONTEND=noninteractive

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# git for DVC experiments and CML, make for the project's targets, g++ and the Python headers for
# torch.compile (train.compile builds its kernels with them), tcmalloc (the train stage runs under it where
# present); the base image fixes the distro release (Ubuntu 24.04 names tcmalloc's package ...t64).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ git make ca-certificates \
        libtcmalloc-minimal4t64 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /tmp/deps
COPY constraints.txt ./
COPY shared/pyproject.toml shared/
COPY shared/src shared/src
COPY training/pyproject.toml training/
COPY training/src training/src
# Installing the two packages pulls in their pinned dependencies; the packages themselves are removed again,
# so the image holds no project code and its name (a hash of the dependency files) tells what is inside.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir --disable-pip-version-check "${TORCH_SPEC}" --index-url "${TORCH_INDEX}" \
    && pip install --no-cache-dir --disable-pip-version-check --constraint constraints.txt \
        "./shared[cpu]" "./training[train,test]" \
    && pip uninstall --yes tilescan-shared tilescan-training \
    && rm -rf /tmp/deps

WORKDIR /
