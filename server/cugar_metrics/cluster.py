"""Cluster dashboards: the peers of a replica, the PeerService that serves a replica's window
state to them, and the fan-out that merges their states into one dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import peer_service_pb2 as peer_pb
from cugar.metrics.v1 import peer_service_pb2_grpc as peer_grpc
from cugar_metrics import errors, validation
from cugar_metrics.aggregator import (
    CHECKPOINT_SECONDS,
    MAX_WINDOW_SECONDS,
    Aggregator,
    WindowState,
)
from cugar_metrics.aggregator.persist import StateFormatError
from cugar_metrics.aggregator.windowwire import (
    WINDOW_FORMAT_VERSIONS,
    BodyCache,
    decode_window,
    encode_body,
    encode_window,
)

log = logging.getLogger(__name__)

PEER_SERVICE = "cugar.metrics.v1.PeerService"
MIN_WINDOW_SECONDS = 60
#: The largest window state a replica accepts from a peer (the server's message limit).
MAX_STATE_BYTES = 16 * 1024 * 1024
#: How often a `dns:///` peer name is resolved again.
RESOLVE_SECONDS = 5.0
#: Encoded window-state bodies a replica keeps for its peers (see PeerServicer).
BODY_CACHE = 16


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"peer {target!r} is not host:port")
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_peers(spec: str) -> tuple[list[str], str | None]:
    """`--peers`: (static host:port list, dns name:port or None). Raises ValueError."""
    items = [p.strip() for p in spec.split(",") if p.strip()]
    dns = [p for p in items if p.startswith("dns:///")]
    if dns:
        if len(items) != 1:
            raise ValueError("a dns:/// name cannot be mixed with other peers")
        name = dns[0].removeprefix("dns:///")
        _split(name)
        return [], name
    for p in items:
        _split(p)
    return items, None


def own_addresses(host: str, port: int) -> set[str]:
    """The addresses under which this replica's gRPC port may be listed as a peer."""
    hosts = {host, "127.0.0.1", "localhost", "::1", socket.gethostname()}
    with contextlib.suppress(OSError):
        hosts.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return {_join(h, port) for h in hosts}


class PeerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fanout = Histogram(
            "cugar_peer_fanout_seconds",
            "Time a cluster dashboard waited for its peers' window states.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=registry,
        )
        self.errors = Counter(
            "cugar_peer_errors",
            "Peers that did not answer a cluster dashboard in time or answered an error.",
            ["peer"],
            registry=registry,
        )


@dataclass(frozen=True)
class PeerAnswer:
    #: replica names that answered, with their states
    states: list[tuple[str, WindowState]]
    #: peer addresses that did not answer in time or failed
    missing: list[str]


class Peers:
    """The other replicas, and the fan-out to them."""

    def __init__(
        self,
        spec: str,
        *,
        own: set[str],
        replica: str,
        timeout: float,
        metrics: PeerMetrics,
        key: str | None = None,
        secure: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._static, self._dns = parse_peers(spec)
        self._own = own
        self._replica = replica
        self.timeout = timeout
        self._metrics = metrics
        self._metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self._secure = secure
        self._resolved: list[str] = []
        self._resolved_at = -1e9
        self._channels: dict[str, grpc.aio.Channel] = {}
        #: addresses that answered with this replica's own name
        self._selves: set[str] = set()
        #: per peer, the last state body decoded (not decoded again while it is the same)
        self._bodies: dict[str, BodyCache] = {}

    async def targets(self) -> list[str]:
        if self._dns is None:
            found = self._static
        else:
            if time.monotonic() - self._resolved_at >= RESOLVE_SECONDS:
                host, port = _split(self._dns)
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        host, port, type=socket.SOCK_STREAM
                    )
                    self._resolved = sorted({_join(str(i[4][0]), port) for i in infos})
                except OSError as e:
                    log.warning("cannot resolve peers %s: %s", self._dns, e)
                self._resolved_at = time.monotonic()
            found = self._resolved
        return [t for t in found if t not in self._own and t not in self._selves]

    def _stub(self, target: str) -> peer_grpc.PeerServiceStub:
        channel = self._channels.get(target)
        if channel is None:
            options = [("grpc.max_receive_message_length", MAX_STATE_BYTES)]
            channel = (
                grpc.aio.secure_channel(target, self._secure, options=options)
                if self._secure is not None
                else grpc.aio.insecure_channel(target, options=options)
            )
            self._channels[target] = channel
        return peer_grpc.PeerServiceStub(channel)

    async def _one(
        self, target: str, request: peer_pb.GetWindowStateRequest
    ) -> tuple[str, WindowState] | None:
        reply = await self._stub(target).GetWindowState(
            request, timeout=self.timeout, metadata=self._metadata
        )
        if reply.replica == self._replica:
            self._selves.add(target)
            return None
        if reply.version not in request.versions:
            raise StateFormatError(
                f"window state version {reply.version}, not one of {list(request.versions)}"
            )
        cache = self._bodies.setdefault(target, BodyCache())
        return reply.replica, decode_window(reply.state, reply.version, cache)

    async def fetch(
        self, seconds: float | None, end: float, profile: str, domain: str, model: str
    ) -> PeerAnswer:
        """Every peer's state for the window of `seconds` ending at `end`, concurrently;
        those that do not answer within the timeout are named as missing."""
        targets = await self.targets()
        request = peer_pb.GetWindowStateRequest(
            profile=profile, domain=domain, model=model, versions=WINDOW_FORMAT_VERSIONS
        )
        if seconds is not None:
            request.window.FromNanoseconds(round(seconds * 1e9))
        end_ts = timestamp_pb2.Timestamp()
        end_ts.FromNanoseconds(round(end * 1e9))
        request.end_time.CopyFrom(end_ts)
        started = time.monotonic()
        results = await asyncio.gather(
            *(asyncio.wait_for(self._one(t, request), self.timeout) for t in targets),
            return_exceptions=True,
        )
        self._metrics.fanout.observe(time.monotonic() - started)
        states: list[tuple[str, WindowState]] = []
        missing: list[str] = []
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                self._metrics.errors.labels(target).inc()
                log.info("peer %s did not answer: %s", target, _describe(result))
                missing.append(target)
            elif result is not None:
                states.append(result)
        return PeerAnswer(sorted(states, key=lambda s: s[0]), sorted(missing))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    return repr(e)


def check_window(
    request: peer_pb.GetWindowStateRequest | pb.GetDashboardRequest,
    fields: Sequence[str] = ("profile", "domain", "model"),
) -> tuple[float | None, list[validation.Violation]]:
    """The window of a dashboard or window-state request in seconds, and its violations."""
    violations: list[validation.Violation] = []
    for name in fields:
        violations += validation.check_name_filter(name, getattr(request, name))
    seconds: float | None = None
    if request.HasField("window"):
        w = request.window
        seconds = w.seconds + w.nanos / 1e9
        if not -999_999_999 <= w.nanos <= 999_999_999 or (w.seconds * w.nanos < 0):
            violations.append(
                validation.Violation(
                    "window",
                    f"is not a valid Duration (seconds={w.seconds}, nanos={w.nanos})",
                    "OUT_OF_RANGE",
                )
            )
        elif not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
            violations.append(
                validation.Violation(
                    "window",
                    f"is {seconds:g}s: a window is from {MIN_WINDOW_SECONDS}s to "
                    f"{MAX_WINDOW_SECONDS}s (1 minute to 1 hour); leave it unset for "
                    "everything since the server started",
                    "OUT_OF_RANGE",
                )
            )
    return seconds, violations


class PeerServicer(peer_grpc.PeerServiceServicer):
    """Serves this replica's window states. The body of a format-version-2 state (its
    counters and distributions) is encoded once and reused for every request of the same
    window start, within the same 10-s tick of this replica's clock, while its counts do not
    change (no execution, rejection or model call recorded since): several replicas and
    their dashboard watchers ask for the same state. Only the header (window end, gauges) is
    written per request."""

    def __init__(
        self, aggregator: Aggregator, replica: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._aggregator = aggregator
        self._replica = replica
        self._clock = clock
        self._bodies: dict[tuple[float, int, int, int], bytes] = {}
        #: bodies encoded, and reused, since start (for tests and the benchmark)
        self.encoded = 0
        self.reused = 0

    def _body(self, state: WindowState, tick: int) -> bytes:
        s = state.current
        # Every record, rejection or model call adds to the window's ingest or model-call
        # counts, which only grow for a given start within a tick.
        key = (state.start, tick, sum(s.ingest.values()), sum(s.model_calls.values()))
        body = self._bodies.get(key)
        if body is not None:
            self.reused += 1
            return body
        body = encode_body(s)
        self.encoded += 1
        if len(self._bodies) >= BODY_CACHE:
            self._bodies = {k: v for k, v in self._bodies.items() if k[1] == tick}
            if len(self._bodies) >= BODY_CACHE:
                self._bodies.clear()
        self._bodies[key] = body
        return body

    async def GetWindowState(
        self, request: peer_pb.GetWindowStateRequest, context: grpc.aio.ServicerContext
    ) -> peer_pb.GetWindowStateResponse:
        now = self._clock()
        seconds, violations = check_window(request)
        if violations:
            await context.abort_with_status(
                errors.invalid_argument(
                    "invalid window state request", violations, "INVALID_WINDOW_STATE_REQUEST"
                )
            )
        end = now
        if request.HasField("end_time"):
            end = min(now, request.end_time.ToNanoseconds() / 1e9)
        version = max(set(request.versions) & set(WINDOW_FORMAT_VERSIONS), default=1)
        state = self._aggregator.window(end, seconds)
        if version == 1:
            data = encode_window(state, 1)
        else:
            tick = int(now // CHECKPOINT_SECONDS)
            # Cached only when the window ends in this tick: the aggregator then has moved
            # to it (an end in an earlier tick may find it before or after the move).
            same_tick = int(end // CHECKPOINT_SECONDS) == tick
            body = self._body(state, tick) if same_tick else None
            data = encode_window(state, version, body)
        return peer_pb.GetWindowStateResponse(version=version, replica=self._replica, state=data)


def add_peer_service(servicer: PeerServicer, server: grpc.aio.Server) -> None:
    peer_grpc.add_PeerServiceServicer_to_server(servicer, server)


__all__ = [
    "PEER_SERVICE",
    "PeerAnswer",
    "PeerMetrics",
    "PeerServicer",
    "Peers",
    "add_peer_service",
    "check_window",
    "own_addresses",
    "parse_peers",
]
