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
from ._retry import check_cap, retry_delay
from ._run import Run, track_sync
from ._spec import (
    ATTEMPT_DEADLINE,
    BATCH_SIZE,
    BUFFER_SIZE,
    CLOSE_TIMEOUT,
    FLUSH_INTERVAL,
    RECORDER_RETRY_BACKOFF_MULTIPLIER,
    RECORDER_RETRY_INITIAL_BACKOFF,
    RECORDER_RETRY_MAX_BACKOFF,
    RECORDER_RETRYABLE_CODES,
    RETRY_INFO_CAP,
)
from ._tls import TlsConfig

logger = logging.getLogger("cugar_metrics_client")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters of a BatchRecorder since it was created. Every execution ``record()`` took ends
    up in exactly one of accepted, duplicate, rejected, dropped_full, dropped_failed, or is
    still buffered or in flight (sent, or waiting to be sent again)."""

    recorded: int
    """Executions given to ``record()`` before ``close()``."""
    accepted: int
    """Executions the server recorded."""
    duplicate: int
    """Executions the server acknowledged as duplicates."""
    rejected: int
    """Executions that failed validation (by the server, or unconvertible locally)."""
    dropped_full: int
    """Executions dropped because the buffer was full: the oldest one not in flight makes
    room for the new one (or the new one, when every held execution is in flight)."""
    dropped_failed: int
    """Executions not delivered when ``close()`` reached its timeout, and those of batches
    failed with a code that is not retried (UNAUTHENTICATED, PERMISSION_DENIED, ...)."""
    dropped_closed: int
    """``record()`` calls after ``close()``."""
    buffered: int
    """Executions waiting in the buffer."""
    in_flight: int
    """Executions taken from the buffer whose batch has not been delivered yet (sent, or
    waiting to be sent again)."""
    batches_sent: int
    """RecordExecutions calls that succeeded."""
    batches_failed: int
    """RecordExecutions calls whose batch was dropped (a code that is not retried, or the
    channel closed)."""
    batches_rate_limited: int = 0
    """RecordExecutions calls refused by a rate limit (RESOURCE_EXHAUSTED with RetryInfo)
    whose batch was kept and sent again after the server's delay."""
    batches_retried: int = 0
    """RecordExecutions calls that failed with another retryable code (UNAVAILABLE,
    DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED without RetryInfo) whose batch was kept and sent
    again after a backoff."""

    @property
    def dropped(self) -> int:
        """Executions lost without reaching the server."""
        return self.dropped_full + self.dropped_failed + self.dropped_closed


class BatchRecorder:
    """Records executions in the background, in batches, never blocking the agent.

    It follows the delivery contract of ``clients/README.md``, with the defaults of
    ``clients/spec.yaml``:

    - ``record()`` appends to a bounded buffer and returns at once; it never raises and never
      waits for the network. The recorder holds at most ``max_buffer`` executions (buffered,
      in flight, or waiting to be sent again); when full, the oldest one not in flight is
      dropped and counted.
    - A background thread sends RecordExecutions calls of up to ``max_batch`` executions as
      soon as that many are buffered, and whatever is buffered every ``flush_interval``
      seconds, with up to ``max_in_flight`` calls outstanding, each with a deadline of
      ``timeout`` seconds.
    - A batch that fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED is kept and
      sent again, with the same execution ids, after a backoff (0.2 s, doubling, at most 2 s)
      or the server's ``google.rpc.RetryInfo`` delay (at most ``retry_info_cap``): until it
      is delivered, the buffer overflows, or ``close()`` reaches its timeout. Nothing is sent
      during the wait. Other failures drop the batch.
    - ``close()`` (or leaving the ``with`` block, or interpreter exit) sends what is held and
      keeps retrying for up to ``close_timeout`` seconds, then returns how many executions
      were dropped in all, as ``stats().dropped`` says and a log line of the
      ``cugar_metrics_client`` logger reports.

    Drops are counted in ``stats()`` and logged at most once per ``flush_interval``.
    ``target`` is a ``host:port`` (the recorder then owns its channel, made with ``tls`` or
    ``credentials`` and ``api_key`` if given) or a ``Client``.
    """

    def __init__(
        self,
        target: str | Client,
        *,
        max_batch: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_buffer: int = BUFFER_SIZE,
        max_in_flight: int = 2,
        timeout: float = ATTEMPT_DEADLINE,
        close_timeout: float = CLOSE_TIMEOUT,
        tls: TlsConfig | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        retry_info_cap: float = RETRY_INFO_CAP,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be 1..{MAX_BATCH}, got {max_batch}")
        if max_buffer < max_batch:
            raise ValueError(f"max_buffer ({max_buffer}) must be at least max_batch")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be at least 0, got {close_timeout}")
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
        self._close_timeout = close_timeout
        self._retry_info_cap = check_cap(retry_info_cap)

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
        self._batches_retried = 0
        # Batches that failed with a retryable code, oldest first, to send again: [request,
        # executions in it]; the monotonic time before which nothing is sent; and the
        # failures in a row since the last delivery, which set the backoff.
        self._retries: deque[list[Any]] = deque()
        self._resume_at = 0.0
        self._failures = 0
        # The RecordExecutions calls in flight, cancelled when close() reaches its timeout.
        self._calls: set[Any] = set()
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
        """Buffer one finished execution for sending; False if it was dropped.

        When the recorder already holds ``max_buffer`` executions, the oldest one not in
        flight is dropped to make room (counted in ``stats().dropped_full``); the new one is
        dropped instead only when every held execution is in flight, or after ``close()``.
        Never blocks on the network and never raises.
        """
        buffer = self._buffer
        if self._closing:
            with self._lock:
                self._dropped_closed += 1
            return False
        if len(buffer) + self._unfinished >= self._max_buffer:
            with self._lock:
                if len(buffer) + self._unfinished >= self._max_buffer and not self._drop_oldest():
                    self._taken += 1
                    self._dropped_full += 1
                    return False
        buffer.append(execution)
        if len(buffer) >= self._max_batch and not self._wake.is_set():
            self._wake.set()
        return True

    def _drop_oldest(self) -> bool:
        """Drops the oldest held execution not in flight; False if there is none. Holds the
        lock."""
        if self._retries:
            entry = self._retries[0]
            del entry[0].executions[0]
            entry[1] -= 1
            if not entry[1]:
                self._retries.popleft()
            self._unfinished -= 1
            if not self._unfinished:
                self._idle.notify_all()
        elif self._buffer:
            self._buffer.popleft()
            self._taken += 1
        else:
            return False
        self._dropped_full += 1
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
                batches_retried=self._batches_retried,
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

    def close(self, timeout: float | None = None) -> int:
        """Send what is held, retrying for at most ``timeout`` seconds (the recorder's
        ``close_timeout`` by default), then stop.

        Returns how many executions were dropped since the recorder was created (as
        ``stats().dropped``): those still undelivered at the timeout, those dropped when the
        buffer was full, and those recorded after ``close()``. The same number is logged, as
        a WARNING when it is not 0, with the extra attribute ``cugar_dropped_total``.
        Idempotent: a second call returns the same count.
        """
        if self._closed:
            return self.stats().dropped
        self._closed = True
        atexit.unregister(self.close)
        if timeout is None:
            timeout = self._close_timeout
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
        self._abort.set()  # a call that fails from now on is dropped, not kept
        self._drop_buffered()
        with self._lock:
            calls = list(self._calls)
        for call in calls:  # their batches count as undelivered (the server may have them)
            call.cancel()
        with self._idle:
            self._idle.wait_for(lambda: not self._calls, timeout=1.0)
        self._drop_buffered()  # anything kept by a call that failed meanwhile
        if self._owns_client:
            self._client.close()
        return self._log_close()

    def _log_close(self) -> int:
        stats = self.stats()
        with self._lock:
            self._logged = (stats.dropped, stats.rejected)
        logger.log(
            logging.WARNING if stats.dropped else logging.INFO,
            "cugar-metrics: recorder closed: %d executions dropped in all (buffer full %d, "
            "undelivered %d, after close %d); %d accepted, %d duplicate, %d rejected; "
            "last error: %s",
            stats.dropped,
            stats.dropped_full,
            stats.dropped_failed,
            stats.dropped_closed,
            stats.accepted,
            stats.duplicate,
            stats.rejected,
            self._last_error or "none",
            extra={"cugar_dropped_total": stats.dropped},
        )
        return stats.dropped

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
                request, count = self._retries.popleft()
            self._send_request(request, count)

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
            self._send_request(request, sending)

    def _send_request(self, request: pb.RecordExecutionsRequest, sending: int) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self._abort.is_set():
                self._finish(sending, failed=sending)
                return
        if self._paused():
            # A rate limit answered another call while this one waited for its slot.
            self._slots.release()
            with self._lock:
                self._retries.appendleft([request, sending])
            return
        try:
            future = self._call.future(request, timeout=self._timeout)
        except Exception as error:  # the channel is closed or broken: count, never raise
            self._slots.release()
            self._last_error = repr(error)
            self._finish(sending, failed=sending, batch_failed=True)
            return
        with self._lock:
            self._calls.add(future)
        future.add_done_callback(functools.partial(self._on_done, request, sending))

    def _backoff(self) -> float:
        """The wait after the current run of failures (holds the lock)."""
        exponent = max(0, self._failures - 1)
        delay = RECORDER_RETRY_INITIAL_BACKOFF * RECORDER_RETRY_BACKOFF_MULTIPLIER**exponent
        return float(min(delay, RECORDER_RETRY_MAX_BACKOFF))

    def _on_done(self, request: pb.RecordExecutionsRequest, sending: int, future: Any) -> None:
        try:
            response: pb.RecordExecutionsResponse = future.result()
        except grpc.RpcError as error:
            self._last_error = _describe(error)
            if _retryable(error) and not self._abort.is_set():
                # Keep the batch (its executions keep their ids), send it again after the
                # server's RetryInfo delay or the backoff; nothing is sent meanwhile.
                delay = retry_delay(error, self._retry_info_cap)
                with self._lock:
                    self._failures += 1
                    if delay is None:
                        delay = self._backoff()
                        self._batches_retried += 1
                    else:
                        self._batches_rate_limited += 1
                    self._resume_at = max(self._resume_at, time.monotonic() + delay)
                    self._retries.append([request, sending])
                self._wake.set()
                return
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
            with self._lock:
                self._failures = 0
            self._finish(
                sending,
                accepted=response.accepted_count,
                duplicate=response.duplicate_count,
                rejected=response.rejected_count,
                batch_sent=True,
            )
        finally:
            with self._idle:
                self._calls.discard(future)
                self._idle.notify_all()
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
            # Batches waiting to be sent again were taken: no longer in flight.
            waiting = sum(count for _, count in self._retries)
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


def _retryable(error: grpc.RpcError) -> bool:
    """Whether a batch that failed with ``error`` is kept and sent again."""
    return hasattr(error, "code") and code_of(error).name in RECORDER_RETRYABLE_CODES


def _describe(error: grpc.RpcError) -> str:
    """The status code of a failed call, with the server's ErrorInfo reason if it gave one."""
    if not hasattr(error, "code"):
        return type(error).__name__
    reason = status_details(error).reason
    name = code_of(error).name
    return f"{name} ({reason})" if reason else name
