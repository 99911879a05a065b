"""Authentication, authorisation and per-key rate limits for the gRPC server.

`build_security(config, registry)` returns None when `--auth-keys-file` is not given (and
logs that anyone can write), else a `Security` holding the keys store, the interceptor, the
metrics and the task that reloads the keys file when it changes.

Each RPC: the health service is always open; reflection is open unless
`--reflection-requires-auth`, then any valid key may use it; every other method needs
`authorization: Bearer <key>` metadata with a key whose role may call it, else
UNAUTHENTICATED or PERMISSION_DENIED with a `google.rpc.ErrorInfo` (without decoding the
request). Then the key's token bucket (its own `rate_limit`, else its role's
`--rate-limit-*`) is charged one token per call, or one per execution for RecordExecutions
(once the batch is decoded); an empty bucket answers RESOURCE_EXHAUSTED with a
`google.rpc.RetryInfo`. The agent's name is
set in `auth.current_agent` for the servicer, and Record calls update the agent's last-seen
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cugar_metrics import errors
from cugar_metrics.auth import (
    FAILURE_REASONS,
    METRICS_SERVICE,
    RECORD_METHODS,
    ROLES,
    AgentActivity,
    Identity,
    KeyStore,
    access_for,
    current_agent,
    role_allows,
)
from cugar_metrics.config import Config
from cugar_metrics.ratelimit import KeyedLimiter, RateLimit

log = logging.getLogger("cugar_metrics.auth")

_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class AuthMetrics:
    """cugar_auth_failures_total{reason} and cugar_rate_limited_total{role}, at zero from
    start-up, on the server's explicit registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "cugar_auth_failures",
            "RPCs refused by authentication or authorisation, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "cugar_rate_limited",
            "RPCs refused with RESOURCE_EXHAUSTED by a per-key rate limit, by the key's role.",
            ["role"],
            registry=registry,
        )
        for reason in FAILURE_REASONS:
            self.failures.labels(reason.lower())
        for role in ROLES:
            self.rate_limited.labels(role)


class KeysCollector(Collector):
    """cugar_agent_last_seen_timestamp_seconds{agent}, cugar_auth_keys{state} and
    cugar_auth_keys_reloads_total{result}, built from the store and activity at each scrape.
    Agent names come from the keys file, so the series are bounded by it."""

    def __init__(self, store: KeyStore, activity: AgentActivity) -> None:
        self._store = store
        self._activity = activity

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "cugar_agent_last_seen_timestamp_seconds",
            "When each agent (a name in the keys file) last made an authorised Record call.",
            labels=["agent"],
        )
        for agent, t in sorted(self._activity.last_seen.items()):
            last.add_metric([agent], t)
        yield last
        keys = GaugeMetricFamily(
            "cugar_auth_keys", "API keys in the keys file, by state.", labels=["state"]
        )
        entries = self._store.keys.entries
        revoked = sum(1 for e in entries if e.revoked)
        keys.add_metric(["active"], len(entries) - revoked)
        keys.add_metric(["revoked"], revoked)
        yield keys
        reloads = CounterMetricFamily(
            "cugar_auth_keys_reloads",
            "Reloads of the keys file, by result (a failed reload keeps the previous keys).",
            labels=["result"],
        )
        for result, n in self._store.reloads.items():
            reloads.add_metric([result], n)
        yield reloads


def _unread(data: bytes) -> None:
    """The deserializer of a refused call: its body is never decoded."""
    return None


def _refusing(handler: grpc.RpcMethodHandler, status: grpc.Status) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that answers `status` without decoding the
    request (a caller without a valid key costs no parsing, and garbage cannot raise)."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)

    kwargs = {
        "request_deserializer": _unread,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)


def _as_agent(
    handler: grpc.RpcMethodHandler,
    identity: Identity,
    charge: Callable[[int], grpc.Status | None] | None = None,
) -> grpc.RpcMethodHandler:
    """Runs a unary handler with `auth.current_agent` set to the caller's agent name; with
    `charge`, first charges the rate limit one token per execution of the decoded batch."""
    if handler.unary_unary is None:
        return handler
    behavior = handler.unary_unary

    async def with_agent(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if charge is not None:
            executions = getattr(request, "executions", None)
            refusal = charge(max(1, len(executions)) if executions is not None else 1)
            if refusal is not None:
                await context.abort_with_status(refusal)
        token = current_agent.set(identity.name)
        try:
            return await behavior(request, context)
        finally:
            current_agent.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        with_agent,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        store: KeyStore,
        metrics: AuthMetrics,
        activity: AgentActivity,
        role_limits: dict[str, RateLimit],
        reflection_requires_auth: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._activity = activity
        self._role_limits = role_limits
        self._limiter = KeyedLimiter()
        self._reflection_requires_auth = reflection_requires_auth
        self._clock = clock
        self._monotonic = monotonic
        self._failures = {r: metrics.failures.labels(r.lower()) for r in FAILURE_REASONS}
        self._limited = {r: metrics.rate_limited.labels(r) for r in ROLES}

    def forget_removed_keys(self) -> None:
        """Drops buckets and last-seen times of keys and agents no longer in the file."""
        keys = self._store.keys
        self._limiter.retain(e.id for e in keys.entries)
        self._activity.retain(keys.names)

    async def intercept_service(
        self, continuation: _Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None:
            return handler
        access = access_for(method, self._reflection_requires_auth)
        if access == "open":
            return handler
        authorization = None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                authorization = value if isinstance(value, str) else value.decode("latin-1")
                break
        identity = self._store.keys.authenticate(authorization)
        if not isinstance(identity, Identity):
            self._failures[identity.reason].inc()
            return _refusing(handler, errors.unauthenticated(identity.message, identity.reason))
        if access == "roles" and not role_allows(identity.role, method):
            self._failures["ROLE_NOT_ALLOWED"].inc()
            return _refusing(
                handler,
                errors.permission_denied(
                    f"agent {identity.name!r} has role {identity.role!r}, which may not call "
                    f"{method.lstrip('/')}",
                    "ROLE_NOT_ALLOWED",
                    {"role": identity.role, "method": method.lstrip("/")},
                ),
            )
        limit = identity.rate_limit or self._role_limits.get(identity.role)
        service, _, name = method.lstrip("/").rpartition("/")
        per_execution = service == METRICS_SERVICE and name == "RecordExecutions"
        if limit is not None and not per_execution:
            refusal = self._charge(identity, limit, 1)
            if refusal is not None:
                return _refusing(handler, refusal)
        if service == METRICS_SERVICE and name in RECORD_METHODS:
            self._activity.seen(identity.name, self._clock())
        if per_execution and limit is not None:
            return _as_agent(handler, identity, lambda n: self._charge(identity, limit, n))
        return _as_agent(handler, identity)

    def _charge(self, identity: Identity, limit: RateLimit, n: int) -> grpc.Status | None:
        """Takes `n` tokens from the key's bucket, or returns the RESOURCE_EXHAUSTED status."""
        wait = self._limiter.take(identity.key_id, limit, self._monotonic(), n)
        if wait <= 0:
            return None
        self._limited[identity.role].inc()
        what = f" for {n} executions" if n != 1 else ""
        return errors.rate_limited(
            f"rate limit {limit} of key {identity.key_id} (agent {identity.name!r}) "
            f"exceeded{what}: retry in {wait:.3f}s",
            wait,
            {"key_id": identity.key_id, "limit": str(limit)},
        )


class Security:
    """Authentication for one server: the interceptor, and the keys file's reload task."""

    def __init__(
        self, config: Config, registry: CollectorRegistry, clock: Callable[[], float] = time.time
    ) -> None:
        assert config.auth_keys_file is not None
        self.store = KeyStore(config.auth_keys_file)
        self.activity = AgentActivity()
        self.metrics = AuthMetrics(registry)
        registry.register(KeysCollector(self.store, self.activity))
        role_limits = {
            role: limit
            for role, limit in (
                ("recorder", config.rate_limit_recorder),
                ("reader", config.rate_limit_reader),
                ("admin", config.rate_limit_admin),
            )
            if limit is not None
        }
        self.interceptor = AuthInterceptor(
            self.store,
            self.metrics,
            self.activity,
            role_limits,
            config.reflection_requires_auth,
            clock,
        )
        self._interval = config.auth_reload_interval
        self._task: asyncio.Task[None] | None = None

    def reload(self) -> bool:
        """Reloads the keys file now (SIGHUP); a file that fails to load changes nothing."""
        changed = self.store.reload()
        if changed:
            self.interceptor.forget_removed_keys()
        return changed

    def poll(self) -> bool:
        changed = self.store.reload_if_changed()
        if changed:
            self.interceptor.forget_removed_keys()
        return changed

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.poll()
            except Exception:  # a surprise must not end the watch; the next poll retries
                log.exception("checking the keys file failed")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._watch(), name="cugar-metrics-keys-watch"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def build_security(
    config: Config, registry: CollectorRegistry, clock: Callable[[], float] = time.time
) -> Security | None:
    """The server's authentication, or None (logged as a warning) when it is off."""
    if config.auth_keys_file is None:
        log.warning(
            "authentication is off: anyone who can reach the gRPC port can record executions "
            "and read the dashboard; turn it on with --auth-keys-file "
            "(create keys with 'cugar-metrics keys create')"
        )
        return None
    security = Security(config, registry, clock)
    entries = security.store.keys.entries
    log.info(
        "authentication on: %d active keys from %s (reloaded on change and SIGHUP)",
        sum(1 for e in entries if not e.revoked),
        config.auth_keys_file,
    )
    return security


__all__ = ["AuthInterceptor", "AuthMetrics", "KeysCollector", "Security", "build_security"]
