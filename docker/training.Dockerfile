# The GPU training environment the CML runner uses (.github/workflows/experiment.yml): CUDA torch, the
# training and shared packages' dependencies, DVC with S3 support, git and make. The code itself comes from
# the job's checkout (`pip install --no-deps -e shared -e training` there), so the image changes only when
# dependencies do.
#   docker build -f docker/training.Dockerfile -t tilescan-training .
#   docker run --gpus all --rm tilescan-training python -c "import torch; print(torch.cuda.is_available())"
# torch's CUDA wheels carry their own CUDA libraries; the base brings a matching runtime for everything else.
ARG BASE_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

# Matches README's `make install TORCH=...` for CUDA hosts.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG DVC_S3_VERSION=3.3.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DEBIAN_FRONTEND=noninteractive

# git for DVC experiments and CML, make for the project's targets; the base image fixes the distro release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv git make ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tilescan
COPY constraints.txt ./
COPY shared/pyproject.toml shared/
COPY shared/src shared/src
COPY training/pyproject.toml training/
COPY training/src training/src
# The packages are installed once for their dependencies; the job reinstalls them editable, without deps.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir --disable-pip-version-check "${TORCH_SPEC}" --index-url "${TORCH_INDEX}" \
    && pip install --no-cache-dir --disable-pip-version-check --constraint constraints.txt \
        "./shared[cpu]" "./training[test]" "dvc-s3==${DVC_S3_VERSION}"
