"""BatchRecorder: record() returns at once; a background thread sends batches."""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb

from ._client import MAX_BATCH, Client
from ._errors import code_of, status_details
from ._model import Execution, ExecutionLike, RecordResult
from ._retry import RATE_LIMIT_RETRIES, check_retries, retry_delay
from ._run import Run, track_sync
from ._tls import TlsConfig

logger = logging.getLogger("cugar_metrics_client")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters of a BatchRecorder since it was created. Every recorded execution ends up in
    exactly one of accepted, duplicate, rejected, dropped_failed, or is still buffered or in
    flight."""

    recorded: int
    """Executions ``record()`` took into the buffer."""
    accepted: int
    """Executions the server recorded."""
    duplicate: int
    """Executions the server acknowledged as duplicates."""
    rejected: int
    """Executions that failed validation (by the server, or unconvertible locally)."""
    dropped_full: int
    """``record()`` calls refused because the buffer was full."""
    dropped_failed: int
    """Executions in batches the server never answered for, after retries (unreachable,
    deadline exceeded), or still buffered when ``close()`` gave up."""
    dropped_closed: int
    """``record()`` calls after ``close()``."""
    buffered: int
    """Executions waiting in the buffer."""
    in_flight: int
    """Executions taken from the buffer whose batch has not been answered yet."""
    batches_sent: int
    """RecordExecutions calls that succeeded."""
    batches_failed: int
    """RecordExecutions calls that failed after retries."""
    batches_rate_limited: int = 0
    """RecordExecutions calls refused by a rate limit (RESOURCE_EXHAUSTED with RetryInfo)
    whose batch was kept and sent again after the server's delay."""

    @property
    def dropped(self) -> int:
        """Executions lost without reaching the server."""
        return self.dropped_full + self.dropped_failed + self.dropped_closed


class BatchRecorder:
    """Records executions in the background, in batches, never blocking the agent.

    ``record()`` appends to a bounded buffer and returns at once; it never raises and never
    waits for the network. A background thread sends RecordExecutions calls of up to
    ``max_batch`` executions as soon as that many are buffered, and whatever is buffered
    every ``flush_interval`` seconds, with up to ``max_in_flight`` calls outstanding. When the
    buffer holds ``max_buffer`` executions, further ones are dropped; batches that still fail
    after the client's retries are dropped too. Drops are counted in ``stats()`` and logged
    at most once per ``flush_interval``.

    A batch refused by a rate limit (RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo``) is
    kept and sent again once the server's delay (at most 30 s) has passed, up to
    ``rate_limit_retries`` times; nothing is sent during the delay, and ``record()`` still
    returns at once (the buffer fills, and drops when full are counted).

    ``close()`` (or leaving the ``with`` block, or interpreter exit) sends what is buffered.
    ``target`` is a ``host:port`` (the recorder then owns its channel, made with ``tls`` or
    ``credentials`` and ``api_key`` if given) or a ``Client``.
    """

    def __init__(
        self,
        target: str | Client,
        *,
        max_batch: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_in_flight: int = 2,
        timeout: float = 5.0,
        tls: TlsConfig | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be 1..{MAX_BATCH}, got {max_batch}")
        if max_buffer < max_batch:
            raise ValueError(f"max_buffer ({max_buffer}) must be at least max_batch")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if isinstance(target, Client):
            if tls is not None or credentials is not None or api_key is not None:
                raise ValueError("tls, credentials and api_key apply to a target, not a Client")
            self._client, self._owns_client = target, False
        else:
            client = Client(
                target, timeout=timeout, tls=tls, credentials=credentials, api_key=api_key
            )
            self._client, self._owns_client = client, True
        self._call: Any = self._client.stub.RecordExecutions
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._interval = flush_interval
        self._rate_limit_retries = check_retries(rate_limit_retries)

        self._buffer: deque[ExecutionLike] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._abort = threading.Event()
        self._closed = False
        self._flush_requests = 0
        self._slots = threading.BoundedSemaphore(max_in_flight)
        # Guards the counters below; record() takes it only when it drops.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._taken = 0
        self._unfinished = 0
        self._accepted = 0
        self._duplicate = 0
        self._rejected = 0
        self._dropped_full = 0
        self._dropped_failed = 0
        self._dropped_closed = 0
        self._batches_sent = 0
        self._batches_failed = 0
        self._batches_rate_limited = 0
        # Batches refused by a rate limit, to send again (request, executions, retries so
        # far), and the monotonic time before which nothing is sent.
        self._retries: deque[tuple[pb.RecordExecutionsRequest, int, int]] = deque()
        self._resume_at = 0.0
        self._last_error = ""
        self._last_rejection = ""
        self._logged = (0, 0)

        self._thread = threading.Thread(
            target=self._loop, name="cugar-metrics-recorder", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    # The agent's side.

    def record(self, execution: ExecutionLike) -> bool:
        """Buffer one finished execution for sending; False if it had to be dropped.

        Never blocks on the network and never raises.
        """
        buffer = self._buffer
        if self._closing or len(buffer) >= self._max_buffer:
            with self._lock:
                if self._closing:
                    self._dropped_closed += 1
                else:
                    self._dropped_full += 1
            return False
        buffer.append(execution)
        if len(buffer) >= self._max_batch and not self._wake.is_set():
            self._wake.set()
        return True

    def _sink(self, execution: Execution) -> RecordResult | None:
        self.record(execution)
        return None

    def run(self, profile: str, *, execution_id: str | None = None, trace_id: str = "") -> Run:
        """Measure one execution with a ``with`` block and buffer it when the block ends."""
        return Run(self._sink, profile, execution_id=execution_id, trace_id=trace_id)

    def track(self, profile: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator (functions and coroutine functions): one execution per call."""
        return track_sync(lambda: self.run(profile))

    def stats(self) -> RecorderStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            buffered = len(self._buffer)
            return RecorderStats(
                recorded=self._taken + buffered,
                accepted=self._accepted,
                duplicate=self._duplicate,
                rejected=self._rejected,
                dropped_full=self._dropped_full,
                dropped_failed=self._dropped_failed,
                dropped_closed=self._dropped_closed,
                buffered=buffered,
                in_flight=self._unfinished,
                batches_sent=self._batches_sent,
                batches_failed=self._batches_failed,
                batches_rate_limited=self._batches_rate_limited,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now and wait for the answers; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flush_requests += 1
        self._wake.set()
        with self._idle:
            while self._buffer or self._unfinished:
                wait = 0.05
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                self._idle.wait(wait)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is buffered (for at most ``timeout`` seconds), then stop.

        Executions that could not be sent in time are counted as dropped. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._wake.set()
            self._thread.join(1.0)
        with self._idle:
            while self._unfinished and time.monotonic() < deadline:
                self._idle.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        self._drop_buffered()
        if self._owns_client:
            self._client.close()
        with self._idle:
            # Calls cancelled by closing the channel have answered by now or never will.
            self._idle.wait_for(lambda: not self._unfinished, timeout=1.0)
        self._log_drops()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # The background thread's side.

    def _loop(self) -> None:
        interval = self._interval
        next_due = time.monotonic() + interval
        served = 0
        abort = self._abort
        while True:
            # Cleared before looking at the state: a change after this wakes the wait below.
            self._wake.clear()
            now = time.monotonic()
            due = now >= next_due
            if due:
                next_due = now + interval
                self._log_drops()
            requested = self._flush_requests
            if not abort.is_set() and not self._paused():
                drain_all = due or self._closing or requested != served
                self._send_retries()
                while (
                    not abort.is_set()
                    and not self._paused()
                    and (len(self._buffer) >= self._max_batch or (drain_all and self._buffer))
                ):
                    self._send(self._take())
                if not self._buffer:
                    served = requested
            if self._closing and (abort.is_set() or self._settled()):
                return
            timeout = max(0.0, next_due - time.monotonic())
            pause = self._resume_at - time.monotonic()
            if pause > 0:
                # Rate limited: send nothing until the server's delay has passed.
                abort.wait(min(pause, timeout))
            else:
                self._wake.wait(timeout)

    def _paused(self) -> bool:
        return time.monotonic() < self._resume_at

    def _settled(self) -> bool:
        """Nothing buffered, waiting to be sent again, or in flight."""
        with self._lock:
            return not self._buffer and not self._retries and not self._unfinished

    def _send_retries(self) -> None:
        while not self._abort.is_set() and not self._paused():
            with self._lock:
                if not self._retries:
                    return
                request, count, retries = self._retries.popleft()
            self._send_request(request, count, retries)

    def _take(self) -> list[ExecutionLike]:
        buffer = self._buffer
        with self._lock:
            count = min(len(buffer), self._max_batch)
            self._taken += count
            self._unfinished += count
        return [buffer.popleft() for _ in range(count)]

    def _send(self, batch: list[ExecutionLike]) -> None:
        request = pb.RecordExecutionsRequest()
        executions = request.executions
        invalid = sending = 0
        for item in batch:
            try:
                if isinstance(item, pb.Execution):
                    executions.append(item)
                else:
                    item.fill(executions.add())
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                if len(executions) > sending:
                    del executions[-1]
                invalid += 1
                self._last_rejection = f"not convertible: {error}"
            sending = len(executions)
        if invalid:
            self._finish(invalid, rejected=invalid)
        if sending:
            self._send_request(request, sending, 0)

    def _send_request(
        self, request: pb.RecordExecutionsRequest, sending: int, retries: int
    ) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self._abort.is_set():
                self._finish(sending, failed=sending)
                return
        if self._paused():
            # A rate limit answered another call while this one waited for its slot.
            self._slots.release()
            with self._lock:
                self._retries.appendleft((request, sending, retries))
            return
        try:
            future = self._call.future(request, timeout=self._timeout)
        except Exception as error:  # the channel is closed or broken: count, never raise
            self._slots.release()
            self._last_error = repr(error)
            self._finish(sending, failed=sending, batch_failed=True)
            return
        future.add_done_callback(functools.partial(self._on_done, request, sending, retries))

    def _on_done(
        self, request: pb.RecordExecutionsRequest, sending: int, retries: int, future: Any
    ) -> None:
        try:
            response: pb.RecordExecutionsResponse = future.result()
        except grpc.RpcError as error:
            delay = retry_delay(error)
            if (
                delay is not None
                and retries < self._rate_limit_retries
                and not self._abort.is_set()
            ):
                # Rate limited: keep the batch, send it again after the server's delay.
                with self._lock:
                    self._batches_rate_limited += 1
                    self._resume_at = max(self._resume_at, time.monotonic() + delay)
                    self._retries.append((request, sending, retries + 1))
                self._wake.set()
                return
            self._last_error = _describe(error)
            if self._closing:
                # The server is gone while closing: do not wait for retries of every batch.
                self._abort.set()
            self._finish(sending, failed=sending, batch_failed=True)
        except Exception as error:  # cancelled future, or a bug in gRPC: count, never raise
            self._last_error = type(error).__name__
            self._finish(sending, failed=sending, batch_failed=True)
        else:
            if response.rejected_executions:
                first = response.rejected_executions[0]
                violation = first.field_violations[0] if first.field_violations else None
                self._last_rejection = (
                    f"{violation.field}: {violation.description}" if violation else "rejected"
                )
            self._finish(
                sending,
                accepted=response.accepted_count,
                duplicate=response.duplicate_count,
                rejected=response.rejected_count,
                batch_sent=True,
            )
        finally:
            self._slots.release()
            if self._closing:
                self._wake.set()  # the loop waits for the last answers before it stops

    def _finish(
        self,
        count: int,
        *,
        accepted: int = 0,
        duplicate: int = 0,
        rejected: int = 0,
        failed: int = 0,
        batch_sent: bool = False,
        batch_failed: bool = False,
    ) -> None:
        with self._idle:
            self._unfinished -= count
            self._accepted += accepted
            self._duplicate += duplicate
            self._rejected += rejected
            self._dropped_failed += failed
            self._batches_sent += batch_sent
            self._batches_failed += batch_failed
            if not self._unfinished:
                self._idle.notify_all()

    def _drop_buffered(self) -> None:
        buffer = self._buffer
        with self._idle:
            left = len(buffer)
            buffer.clear()
            self._taken += left
            self._dropped_failed += left
            # Batches still waiting for a rate limit's delay were taken: no longer in flight.
            waiting = sum(count for _, count, _ in self._retries)
            self._retries.clear()
            self._unfinished -= waiting
            self._dropped_failed += waiting
            self._idle.notify_all()

    def _log_drops(self) -> None:
        with self._lock:
            dropped = self._dropped_full + self._dropped_failed + self._dropped_closed
            rejected = self._rejected
            full, failed, closed = self._dropped_full, self._dropped_failed, self._dropped_closed
        last_dropped, last_rejected = self._logged
        if dropped != last_dropped:
            logger.warning(
                "cugar-metrics: %d executions dropped since the last report "
                "(totals: buffer full %d, send failed %d, after close %d; last error: %s)",
                dropped - last_dropped,
                full,
                failed,
                closed,
                self._last_error or "none",
            )
        if rejected != last_rejected:
            logger.warning(
                "cugar-metrics: %d executions rejected as invalid since the last report (last: %s)",
                rejected - last_rejected,
                self._last_rejection or "unknown",
            )
        self._logged = (dropped, rejected)


def _describe(error: grpc.RpcError) -> str:
    """The status code of a failed call, with the server's ErrorInfo reason if it gave one."""
    if not hasattr(error, "code"):
        return type(error).__name__
    reason = status_details(error).reason
    name = code_of(error).name
    return f"{name} ({reason})" if reason else name
