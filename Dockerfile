# syntax=docker/dockerfile:1
# cugar-metrics server image.
#   docker build -t cugar-metrics:0.1.0 .
#   docker run --rm -p 127.0.0.1:50051:50051 -e CUGAR_METRICS_NO_AUTH=true cugar-metrics:0.1.0
# The server needs an authentication choice: CUGAR_METRICS_AUTH_KEYS_FILE (a mounted keys
# file, with CUGAR_METRICS_METRICS_BASIC_AUTH_FILE or CUGAR_METRICS_METRICS_OPEN=true for the
# metrics port) or CUGAR_METRICS_NO_AUTH=true.
# Ports: 50051 gRPC (MetricsService, grpc.health.v1, reflection), 9464 Prometheus /metrics.

# --- grpc_health_probe, for the HEALTHCHECK (Kubernetes uses its native gRPC probes) -------
FROM golang:1.26.8-bookworm AS health-probe
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.62
RUN CGO_ENABLED=0 GOBIN=/out go install \
      "github.com/grpc-ecosystem/grpc-health-probe@${GRPC_HEALTH_PROBE_VERSION}"

# --- the server and its runtime dependencies, in a virtualenv ------------------------------
FROM python:3.11.13-slim-bookworm AS build
WORKDIR /src
# requirements.lock pins every version; as a constraint it installs only what the server,
# its generated stubs and the client library (for `cugar-metrics demo` and `dashboard`) need
# at run time (no test or lint tools).
COPY requirements.lock pyproject.toml README.md ./
COPY proto-python ./proto-python
COPY clients/python ./clients/python
COPY server ./server
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      --constraint requirements.lock ./proto-python ./clients/python ".[client]"

# --- runtime -------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="cugar-metrics" \
      org.opencontainers.image.description="Records AI agent executions over gRPC and serves golden signals to Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CUGAR_METRICS_GRPC_PORT=50051 \
    CUGAR_METRICS_METRICS_PORT=9464 \
    CUGAR_METRICS_SHUTDOWN_GRACE=10s \
    CUGAR_METRICS_STATE_FILE=/var/lib/cugar-metrics/state
RUN groupadd --system --gid 10001 cugar \
 && useradd --system --uid 10001 --gid cugar --no-create-home --shell /usr/sbin/nologin cugar \
 && mkdir -p /var/lib/cugar-metrics \
 && chown 10001:10001 /var/lib/cugar-metrics
COPY --from=build /opt/venv /opt/venv
COPY --from=health-probe /out/grpc-health-probe /usr/local/bin/grpc_health_probe
USER 10001:10001
# The state file (counters, sketches, dedup ids), checkpointed every 30 s and on drain and
# restored at start-up: mount a volume here, one per replica, to keep totals across restarts.
VOLUME ["/var/lib/cugar-metrics"]
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/sh", "-c", "exec grpc_health_probe -addr=127.0.0.1:${CUGAR_METRICS_GRPC_PORT} -service=cugar.metrics.v1.MetricsService"]
# Exec form: the server is PID 1 and receives SIGTERM itself, then drains (health goes
# NOT_SERVING, in-flight RPCs get CUGAR_METRICS_SHUTDOWN_GRACE) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["cugar-metrics"]
CMD ["serve", "--host", "0.0.0.0"]
