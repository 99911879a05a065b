"""Server lifecycle: gRPC server, health, reflection, interceptors, the HTTP metrics port,
signal handling and drain. No business logic."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import __version__, otlp
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.auth import exposure_warning
from cugar_metrics.auth_interceptor import Security, build_security
from cugar_metrics.cluster import (
    PeerMetrics,
    Peers,
    PeerServicer,
    add_peer_service,
    own_addresses,
)
from cugar_metrics.config import Config
from cugar_metrics.connection_limits import StreamCaps, connection_options
from cugar_metrics.exposition import metrics_app
from cugar_metrics.files import write_atomically
from cugar_metrics.http_auth import BasicAuthUsers, require_basic_auth
from cugar_metrics.interceptors import CallTracker, MetricsInterceptor, RequestGuard, RpcMetrics
from cugar_metrics.labels import LabelPolicy, load_rules
from cugar_metrics.service import MAX_BATCH, MetricsService, add_to_server
from cugar_metrics.statefile import CheckpointCollector, Checkpointer, restore
from cugar_metrics.tls import grpc_server_credentials, metrics_server_class
from cugar_metrics.validation import Limits
from cugar_metrics.watch import WatchHub

log = logging.getLogger("cugar_metrics")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MetricsService"].full_name
#: Room for a full batch of large executions.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_LANDING = """<!doctype html>
<html><head><title>cugar-metrics</title></head><body>
<h1>cugar-metrics {version}</h1>
<p>Replica <code>{replica}</code>. gRPC service <code>{service}</code> on port {grpc_port}.</p>
<p><a href="/metrics">/metrics</a>: Prometheus exposition of this replica.</p>
</body></html>
"""


class PortInUseError(OSError):
    """A port could not be bound; the message names it."""


#: A metrics-port client that sends nothing for this long is disconnected, so idle or slow
#: connections cannot hold the port's threads.
HTTP_READ_TIMEOUT_SECONDS = 10


class _QuietHandler(WSGIRequestHandler):
    timeout = HTTP_READ_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _http_app(metrics_app: Callable[..., Iterable[bytes]], landing: bytes) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: see /metrics\n"]

    return app


@dataclass
class RunningServer:
    config: Config
    grpc_server: grpc.aio.Server
    grpc_port: int
    metrics_port: int
    aggregator: Aggregator
    registry: CollectorRegistry
    health: health.aio.HealthServicer
    _http: ThreadingWSGIServer
    _http_thread: threading.Thread
    checkpointer: Checkpointer | None = None
    security: Security | None = None
    calls: CallTracker | None = None
    traces: otlp.TraceIngest | None = None
    #: The port of its own the OTLP receiver listens on (None: the gRPC port only).
    otlp_port: int | None = None
    #: Background work that ends with the server (the OTLP assembler's expiry).
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    service: MetricsService | None = None
    peers: Peers | None = None
    #: After the drain: OTLP spans that were still waiting for their agent, as (model calls
    #: recorded alone, tool calls dropped); None without the OTLP receiver.
    otlp_drained: tuple[int, int] | None = None

    async def stop(self, grace: float | None = None, delay: float | None = None) -> None:
        """Drain: NOT_SERVING; keep serving for `delay`; then refuse new RPCs and let the
        in-flight ones finish within `grace`. Dashboard watchers are told to reconnect at
        once."""
        if self.service is not None:
            self.service.drain()
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(self.config.shutdown_delay if delay is None else delay)
        stopping = asyncio.ensure_future(
            self.grpc_server.stop(self.config.shutdown_grace if grace is None else grace)
        )
        if self.calls is not None:
            # Once no call is left, what remains are connections without one (e.g. a
            # handshake that never completes): close them now rather than after the grace.
            await asyncio.sleep(0.05)
            while not stopping.done() and self.calls.busy():
                await asyncio.wait({stopping}, timeout=0.05)
            if not stopping.done():
                log.info("no call in flight: closing the remaining connections")
                await self.grpc_server.stop(0)
        await stopping
        for task in self.tasks:
            task.cancel()
        if self.traces is not None:
            # Spans still waiting for their agent: model calls recorded alone, tool calls
            # dropped; before the final checkpoint so the state file has them. The final log
            # line tells how many.
            out = self.traces.drain()
            alone = len(out.lone_model_calls)
            self.otlp_drained = (alone, out.counts["evicted"] - alone)
        if self.checkpointer is not None:
            await self.checkpointer.close()  # the in-flight RPCs have finished
        self._http.shutdown()
        self._http.server_close()
        self._http_thread.join(timeout=5)
        if self.security is not None:
            await self.security.stop()
        if self.peers is not None:
            await self.peers.close()


async def create_server(config: Config, clock: Callable[[], float] = time.time) -> RunningServer:
    """Builds and starts the server on its ports; returns it SERVING, with the bound ports."""
    aggregator = Aggregator(
        start_time=clock(),
        caps=config.caps,
        dedup_horizon=config.dedup_horizon,
        dedup_max_entries=config.dedup_max_entries,
    )
    # Collectors that describe nothing (built at each scrape) still answer /metrics?name[]=.
    registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
    rpc_metrics = RpcMetrics(registry)
    rpc_metrics.initialize(
        SERVICE_NAME, list(pb.DESCRIPTOR.services_by_name["MetricsService"].methods_by_name)
    )
    checkpointer = None
    if config.state_file:
        path = Path(config.state_file)
        # Before the server reports SERVING.
        restored, problems = restore(aggregator, path, clock())
        checkpointer = Checkpointer(
            aggregator,
            path,
            config.checkpoint_interval,
            clock,
            restored=restored,
            restore_problems=problems,
        )
        registry.register(CheckpointCollector(checkpointer))
    if config.auth_keys_file is None and not config.no_auth:
        log.warning(
            "protected mode: neither --auth-keys-file nor --no-auth, so the server serves on "
            "loopback only (%s); anyone on this machine can record and read. Create keys "
            "with 'cugar-metrics keys create' and pass --auth-keys-file to serve other hosts",
            config.host,
        )
    if config.auth_keys_file is not None:
        exposed = exposure_warning(config.auth_keys_file)
        if exposed is not None:
            log.warning("%s", exposed)
        if config.metrics_basic_auth_file is None:
            log.warning(
                "--metrics-open: /metrics serves profiles, tools and agent names to anyone who "
                "reaches the metrics port, while API keys guard the gRPC port; give it "
                "--metrics-basic-auth-file (or bind it to loopback with --metrics-host)"
            )
    security = build_security(config, registry, clock)
    guard = RequestGuard(
        (SERVICE_NAME, otlp.SERVICE_NAME),
        config.max_concurrent_rpcs,
        StreamCaps("health Watch", config.max_watch_streams, config.max_streams_per_connection),
        StreamCaps("reflection", config.max_reflection_streams, config.max_streams_per_connection),
        registry,
    )

    calls = CallTracker()
    server = grpc.aio.server(
        interceptors=[
            calls,  # outermost: every call, from its arrival, so a drain knows when none is left
            MetricsInterceptor(rpc_metrics),  # refused calls are counted too
            *([security.interceptor] if security is not None else []),
            guard,  # innermost: callers without a key were refused before it, undecoded
        ],
        options=[
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            *connection_options(config),
        ],
    )
    limits = Limits(max_duration=config.max_duration)
    watch = WatchHub(config.max_watchers, config.max_watchers_per_key, registry)
    peer_metrics = PeerMetrics(registry)
    add_peer_service(PeerServicer(aggregator, config.replica, clock), server)
    pending_peers: list[Peers] = []
    # Its peers are set once the gRPC port is bound (a replica leaves itself out).
    labels = LabelPolicy(
        load_rules(config.labels_file) if config.labels_file is not None else {},
        config.max_values_per_agent,
        registry,
    )
    if checkpointer is not None:
        if restored is not None:
            labels.restore(restored.agent_values)
        checkpointer.agent_values = labels.export
    metrics_service = MetricsService(
        aggregator, limits, config.replica, clock, watch=watch, labels=labels
    )
    add_to_server(metrics_service, server)
    assembler = otlp.Assembler(
        max_spans=config.otlp_max_pending_spans,
        timeout=config.otlp_assembly_timeout,
        profile_attribute=config.otlp_profile_attribute,
    )
    traces = otlp.TraceIngest(
        aggregator, assembler, limits, otlp.OtlpMetrics(registry, assembler), clock, labels
    )
    otlp.add_to_server(traces, server)
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, otlp.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
        )

    def listen(port: int, flag: str) -> int:
        address = f"{config.host}:{port}"
        try:
            bound: int
            if config.tls_cert and config.tls_key:
                bound = server.add_secure_port(
                    address,
                    grpc_server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca),
                )
            else:
                bound = server.add_insecure_port(address)
            return bound
        except RuntimeError as e:
            raise PortInUseError(
                f"cannot listen for gRPC on {address}: the port is in use or the "
                f"address is not local (choose another with {flag})"
            ) from e

    grpc_port = listen(config.grpc_port, "--grpc-port")
    if config.peers:
        peers = Peers(
            config.peers,
            own=own_addresses(config.host, grpc_port),
            replica=config.replica,
            timeout=config.peer_timeout,
            metrics=peer_metrics,
            key=_read_key(config.peer_key_file) if config.peer_key_file else None,
            secure=peer_credentials(config),
        )
        metrics_service.set_peers(peers)
        pending_peers.append(peers)
    otlp_port = None if config.otlp_port is None else listen(config.otlp_port, "--otlp-port")
    metrics_host = config.effective_metrics_host
    try:
        http = make_server(
            metrics_host,
            config.metrics_port,
            lambda e, s: [],
            metrics_server_class(config.metrics_tls_cert, config.metrics_tls_key),
            handler_class=_QuietHandler,
        )
    except OSError as e:
        raise PortInUseError(
            f"cannot listen for metrics on {metrics_host}:{config.metrics_port}:"
            f" {e.strerror} (choose another with --metrics-port)"
        ) from e
    metrics_port = http.server_port
    app = _http_app(
        metrics_app(aggregator.snapshot, clock, registry),
        _LANDING.format(
            version=__version__,
            replica=config.replica,
            service=SERVICE_NAME,
            grpc_port=grpc_port,
        ).encode(),
    )
    if config.metrics_basic_auth_file:
        app = require_basic_auth(app, BasicAuthUsers(config.metrics_basic_auth_file))
    http.set_app(app)
    http_thread = threading.Thread(
        target=http.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
    )
    http_thread.start()

    await server.start()
    if checkpointer is not None:
        checkpointer.start()
    if security is not None:
        security.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def expire_traces() -> None:
        while True:
            await asyncio.sleep(min(10.0, config.otlp_assembly_timeout))
            traces.expire()

    return RunningServer(
        config,
        server,
        grpc_port,
        metrics_port,
        aggregator,
        registry,
        health_servicer,
        http,
        http_thread,
        checkpointer=checkpointer,
        security=security,
        calls=calls,
        traces=traces,
        otlp_port=otlp_port,
        tasks=[asyncio.create_task(expire_traces())],
        service=metrics_service,
        peers=pending_peers[0] if pending_peers else None,
    )


def _read_key(path: str) -> str:
    """The admin key this replica sends to its peers: the file's first line."""
    with open(path, encoding="utf-8") as f:
        return f.readline().strip()


def peer_credentials(config: Config) -> grpc.ChannelCredentials | None:
    """With TLS, peers are called over TLS, trusting the client CA if any, else the system
    roots (and presenting this replica's certificate when clients must show one)."""
    if not (config.tls_cert and config.tls_key):
        return None
    ca = None
    if config.tls_client_ca:
        with open(config.tls_client_ca, "rb") as f:
            ca = f.read()
    if config.tls_client_ca:
        with open(config.tls_cert, "rb") as f:
            cert = f.read()
        with open(config.tls_key, "rb") as f:
            key = f.read()
        return grpc.ssl_channel_credentials(ca, key, cert)
    return grpc.ssl_channel_credentials(ca)


def _write_ready_file(path: str, running: RunningServer) -> None:
    info = {
        "grpc_port": running.grpc_port,
        "metrics_port": running.metrics_port,
        "pid": os.getpid(),
        **({"otlp_port": running.otlp_port} if running.otlp_port is not None else {}),
    }
    write_atomically(path, json.dumps(info).encode(), mode=0o644)


def _tune_gc() -> None:
    """Start-up objects are frozen out of collection, and collections are rarer: a batch
    allocates hundreds of thousands of small objects (mostly freed by reference counting),
    and with the default thresholds the collections they trigger (full ones walk every
    object) held the event loop for tens of milliseconds at a time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)


async def serve(config: Config) -> None:
    """Runs until SIGTERM or SIGINT, then drains. Raises PortInUseError when a port is taken."""
    # Handlers first: a signal that arrives while starting (even right after the ready file
    # is written) drains the server instead of killing the process.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    started: list[RunningServer] = []

    def on_hangup() -> None:
        # SIGHUP's default action ends the process with no drain; it means "reload" here.
        if not started:
            log.info("SIGHUP during start-up: the files are read as the server starts")
        elif started[0].security is not None:
            started[0].security.reload()
        else:
            log.info(
                "SIGHUP: nothing to reload without --auth-keys-file (certificates and the "
                "metrics users file are re-read when they change)"
            )

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    running = await create_server(config)
    started.append(running)
    _tune_gc()
    transport = "mutual TLS" if config.tls_client_ca else "TLS" if config.tls_cert else "plaintext"
    log.info(
        "cugar-metrics %s serving: gRPC %s:%d (%s, reflection %s), metrics %s://%s:%d/metrics,"
        " replica %s",
        __version__,
        config.host,
        running.grpc_port,
        transport,
        "on" if config.reflection else "off",
        "https" if config.metrics_tls_cert else "http",
        config.effective_metrics_host,
        running.metrics_port,
        config.replica,
    )
    if config.ready_file:
        _write_ready_file(config.ready_file, running)
    await stop.wait()
    log.info(
        "%s received: NOT_SERVING; serving %gs more, then draining in-flight RPCs (grace %gs)",
        received[0],
        config.shutdown_delay,
        config.shutdown_grace,
    )
    t0 = time.monotonic()
    await running.stop()
    ingest = running.aggregator.snapshot(time.time()).ingest
    otlp_waiting = ""
    if running.otlp_drained is not None:
        alone, dropped = running.otlp_drained
        otlp_waiting = (
            f"; OTLP spans still waiting: {alone} model calls recorded alone,"
            f" {dropped} tool calls dropped"
        )
    log.info(
        "drained in %.2fs; final counts: accepted=%d duplicate=%d rejected=%d%s",
        time.monotonic() - t0,
        ingest["accepted"],
        ingest["duplicate"],
        ingest["rejected"],
        otlp_waiting,
    )


__all__ = ["MAX_BATCH", "SERVICE_NAME", "PortInUseError", "RunningServer", "create_server", "serve"]
