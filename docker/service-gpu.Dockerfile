# The tilescan API on an NVIDIA GPU: shared + service + onnxruntime-gpu, with the model inside.
#   docker build -f docker/service-gpu.Dockerfile -t tilescan-service-gpu .
#   docker run --gpus all -p 8000:8000 tilescan-service-gpu
# PyPI's onnxruntime-gpu wheels are built for CUDA 13 and cuDNN 9, hence this base; the host needs a driver
# for CUDA 13 and the NVIDIA container toolkit. Without a GPU the service falls back to CPU (see /model).
ARG BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${BASE_IMAGE} AS build
# The distro's python3 and venv module; the base image fixes the distro release, so apt versions are
# whatever its security updates carry.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY shared/pyproject.toml shared/
COPY shared/src shared/src
COPY service/pyproject.toml service/
COPY service/src service/src
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels \
        ./shared ./service

FROM ${BASE_IMAGE}
ARG REVISION=unknown
# onnxruntime-gpu is not in constraints.txt (the dev environment has the CPU build); pinned here.
ARG ONNXRUNTIME_GPU_VERSION=1.31.1
LABEL org.opencontainers.image.title="tilescan-service-gpu" \
      org.opencontainers.image.description="tilescan defect-segmentation API (CUDA, onnxruntime-gpu)" \
      org.opencontainers.image.revision="${REVISION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    TILESCAN_HOST=0.0.0.0 \
    PORT=8000 \
    TILESCAN_MODEL_PATH=/app/models/tilescan.onnx \
    TILESCAN_PROVIDERS=auto

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir --disable-pip-version-check --constraint /tmp/constraints.txt \
        /tmp/wheels/*.whl "onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}" \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tilescan

WORKDIR /app
COPY models/tilescan.onnx /app/models/tilescan.onnx

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["tilescan-serve"]
