# HAProxy in front of the API replicas: `docker compose --profile scale up` (docker/haproxy.cfg says how).
# BASE_IMAGE: any Debian bookworm image; `make scale-smoke` passes the one `make docker-smoke` builds on.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# Debian's haproxy (2.6 on bookworm); the base image fixes the release, so its security updates set the version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin lb
COPY docker/haproxy.cfg /etc/haproxy/haproxy.cfg
USER 10002
EXPOSE 8080 8404
# -W: master-worker, -db: stay in the foreground and log to stdout (the container's log).
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
