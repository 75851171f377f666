# The tilescan API on CPU: shared + service + onnxruntime + OpenVINO (no torch), with the model inside.
#   docker build -f docker/service.Dockerfile --build-arg REVISION="$(git rev-parse HEAD)" -t tilescan-service .
# BASE_IMAGE: any Debian-like image with python3 (>= 3.11) and its venv module; `make docker-smoke` passes
# a stand-in built from Debian packages where the real one cannot be pulled.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY shared/pyproject.toml shared/
COPY shared/src shared/src
COPY service/pyproject.toml service/
COPY service/src service/src
# Wheels of our two packages only; their dependencies are installed from the pins in the final stage.
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels \
        ./shared ./service

FROM ${BASE_IMAGE}
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tilescan-service" \
      org.opencontainers.image.description="tilescan defect-segmentation API (CPU, onnxruntime and OpenVINO)" \
      org.opencontainers.image.revision="${REVISION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    TILESCAN_HOST=0.0.0.0 \
    PORT=8000 \
    TILESCAN_MODEL_PATH=/app/models/tilescan.onnx

COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
# onnxruntime and openvino are the `cpu` extra spelled out, s3fs the `s3` one (extras do not combine with
# wheel paths): a plant's capture store is a bucket (TILESCAN_CAPTURE_URL=s3://...). The constraints file
# pins them and every transitive dependency.
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir --disable-pip-version-check --constraint /tmp/constraints.txt \
        /tmp/wheels/*.whl onnxruntime openvino s3fs \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tilescan

WORKDIR /app
# The model and its int8 sibling where int8 passed evaluation (the service times the precisions it may
# run and serves the fastest); the wildcard lets a model without one build too.
COPY models/tilescan*.onnx /app/models/

USER 10001
EXPOSE 8000
# /readyz is 200 only once the model is loaded and its warm-up inference passed. Python, not curl:
# slim bases have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"]
# tilescan-serve reads PORT (Heroku sets it) and TILESCAN_* from the environment.
CMD ["tilescan-serve"]
