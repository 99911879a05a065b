"""Faults on both ports of a real `cugar-metrics serve` process: garbage bytes, a truncated
HTTP/2 frame, half-open and slowloris connections, oversized messages. After each the server
still records for another client, still serves /metrics, and exits 0 on SIGTERM."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.server import MAX_MESSAGE_BYTES
from tests.conftest import pb_execution
from tests.support.serverproc import ServerProcess, launch

pytestmark = pytest.mark.e2e

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GARBAGE = bytes(range(256)) * 64  # 16 KiB: every byte value, no valid preface or request


class Served:
    """The process and the number of executions other clients have recorded on it."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.accepted = 0

    def assert_serving(self) -> None:
        """Another client records an execution and reads it back on /metrics."""
        self.accepted += 1
        with grpc.insecure_channel(self.process.target) as channel:
            response = pb_grpc.MetricsServiceStub(channel).RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution(f"ok-{self.accepted}")),
                timeout=5,
            )
        assert response.result == pb.RECORD_RESULT_ACCEPTED
        with urllib.request.urlopen(self.process.metrics_url, timeout=5) as r:
            assert r.status == 200
            body = r.read().decode()
        line = re.search(r'^cugar_ingest_executions_total\{result="accepted"\} (\S+)$', body, re.M)
        assert line is not None
        assert float(line.group(1)) == self.accepted


#: The drain's bound. Connections that never finished their HTTP/2 handshake are closed
#: once no call is left (tests/process/faults/test_drain_and_scrape.py); the grace is
#: kept short here anyway.
GRACE = 2.0


def stop_drained(process: ServerProcess) -> None:
    """SIGTERM: the server drains (it logs the final counts) and exits with code 0. The wait
    is generous; a server still running after it is killed, and its exit code is then not 0."""
    assert process.stop(timeout=60) == 0, process.output()
    assert re.search(r"drained in [0-9.]+s; final counts: accepted=\d+", process.output())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(launch(tmp_path, "--shutdown-grace", f"{GRACE}s", name="faults"))
    try:
        s.assert_serving()
        yield s
    finally:
        stop_drained(s.process)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails after `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open; it sent {data[:80]!r}")


def test_garbage_bytes_on_the_grpc_port_close_that_connection_only(served: Served) -> None:
    with connect(served.process.grpc_port) as s:
        s.sendall(GARBAGE)
        read_until_closed(s)
    served.assert_serving()


def test_garbage_bytes_on_the_metrics_port_get_400(served: Served) -> None:
    with connect(served.process.metrics_port) as s:
        s.sendall(GARBAGE[1:] + b"\r\n\r\n")  # no NUL first: a "request line" of junk
        answer = read_until_closed(s)
    # No HTTP version could be read, so the error page comes without a status line.
    assert b"Error code explanation: 400 - Bad request syntax" in answer, answer[:200]
    with connect(served.process.metrics_port) as s:
        s.sendall(b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(s).startswith(b"HTTP/1.0 405 ")
    served.assert_serving()


def test_an_http2_preface_then_a_truncated_frame(served: Served) -> None:
    """A SETTINGS frame that announces 18 bytes (three settings) and brings 6 (one), then a
    half-close: the server never acknowledges the incomplete frame, drops that connection,
    and keeps serving others."""
    one_setting = struct.pack(">HI", 0x3, 100)  # SETTINGS_MAX_CONCURRENT_STREAMS = 100
    frame = _frame(0x4, 0x0, 0, one_setting * 3)
    truncated = frame[: 9 + len(one_setting)]
    assert len(truncated) == 9 + 6 and int.from_bytes(truncated[:3], "big") == 18
    with connect(served.process.grpc_port) as s:
        s.sendall(H2_PREFACE + truncated)
        served.assert_serving()  # while the frame is still incomplete
        s.shutdown(socket.SHUT_WR)
        frames = _frames(read_until_closed(s))
    kinds = [(kind, flags, stream) for kind, flags, stream, _ in frames]
    assert kinds[0] == (0x4, 0x0, 0)  # the server's own SETTINGS: it read the preface
    assert (0x4, 0x1, 0) not in kinds  # no SETTINGS ACK: our frame never completed
    served.assert_serving()


def test_a_headers_frame_cut_mid_block(served: Served) -> None:
    """A valid preface and SETTINGS, then a HEADERS frame cut short, then the peer vanishes."""
    headers = struct.pack(">I", 200)[1:] + bytes([0x1, 0x4]) + struct.pack(">I", 1)
    with connect(served.process.grpc_port) as s:
        s.sendall(H2_PREFACE + _frame(0x4, 0x0, 0, b"") + headers + b"\x83\x86\x44")
        time.sleep(0.1)
    served.assert_serving()


def test_half_open_connections_on_both_ports(served: Served) -> None:
    """Connections that send nothing and stay open neither block others nor the drain."""
    idle = [connect(served.process.grpc_port) for _ in range(20)]
    idle += [connect(served.process.metrics_port) for _ in range(20)]
    try:
        served.assert_serving()
        served.assert_serving()
        stop_drained(served.process)  # SIGTERM with them still open
    finally:
        for s in idle:
            s.close()


def test_a_slowloris_request_on_the_metrics_port(served: Served) -> None:
    """A request whose headers trickle in a byte at a time holds up no other scrape."""
    stop = threading.Event()
    s = connect(served.process.metrics_port)

    def trickle() -> None:
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            while not stop.wait(0.02):
                s.sendall(b"X")
        except OSError:
            pass  # the server closed it: also fine

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        for _ in range(3):
            served.assert_serving()
        stop_drained(served.process)  # SIGTERM mid-request
    finally:
        stop.set()
        t.join(timeout=5)
        s.close()


def test_an_oversized_grpc_message_is_refused_by_the_process(served: Served) -> None:
    huge = pb_execution("big")
    huge.profile = "p" * (MAX_MESSAGE_BYTES + 1)
    with grpc.insecure_channel(
        served.process.target, options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)]
    ) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.RecordExecution(pb.RecordExecutionRequest(execution=huge), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    served.assert_serving()


def test_a_4gib_length_prefix_on_a_raw_stream_then_the_peer_goes_away(served: Served) -> None:
    """A gRPC message header claiming 4 GiB on a hand-made HTTP/2 stream: the server ends
    that stream with RESOURCE_EXHAUSTED as soon as it reads the 5-byte prefix (it never waits
    for 4 GiB), others are served meanwhile, and the connection is dropped when the peer goes."""
    block = (
        b"\x83"  # :method POST
        b"\x86"  # :scheme http
        b"\x44"  # :path, a literal value (name from the static table)
        + _hpack_string(b"/cugar.metrics.v1.MetricsService/RecordExecution")
        + b"\x41"  # :authority, a literal value (name from the static table)
        + _hpack_string(b"localhost")
        + b"\x00"  # literal name and value, not indexed
        + _hpack_string(b"content-type")
        + _hpack_string(b"application/grpc")
        + b"\x00"
        + _hpack_string(b"te")
        + _hpack_string(b"trailers")
    )
    payload = b"\x00" + struct.pack(">I", 0xFFFFFFFF) + b"\x00" * 64
    with connect(served.process.grpc_port) as s:
        s.sendall(
            H2_PREFACE
            + _frame(0x4, 0x0, 0, b"")  # SETTINGS
            + _frame(0x4, 0x1, 0, b"")  # SETTINGS ACK
            + _frame(0x1, 0x4, 1, block)  # HEADERS, END_HEADERS
            + _frame(0x0, 0x0, 1, payload)  # DATA: the 5-byte prefix says 4 GiB
        )
        frames = _read_frames(
            s, until=lambda kind, flags, stream: stream == 1 and kind == 0x1 and flags & 0x1 == 1
        )
        assert frames[0][:3] == (0x4, 0x0, 0)  # the server's SETTINGS: a live HTTP/2 peer
        trailers = frames[-1][3]  # HEADERS with END_STREAM on our stream
        status = re.search(rb"grpc-status\x01(\d)", trailers)
        assert status is not None, trailers
        assert status.group(1) == b"8", trailers  # RESOURCE_EXHAUSTED
        assert f"larger than max (4294967295 vs. {MAX_MESSAGE_BYTES})".encode() in trailers
        served.assert_serving()
    served.assert_serving()


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """An HTTP/2 frame: 3-byte length, type, flags, 4-byte stream id, then the payload."""
    header = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return header + payload


Frame = tuple[int, int, int, bytes]  # type, flags, stream, payload


def _frames(data: bytes) -> list[Frame]:
    """The complete HTTP/2 frames at the start of `data`."""
    frames: list[Frame] = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        stream = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        frames.append((data[3], data[4], stream, data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def _read_frames(
    sock: socket.socket, until: Callable[[int, int, int], bool], timeout: float = 5.0
) -> list[Frame]:
    """Each HTTP/2 frame received, up to the first whose (type, flags, stream) match `until`."""
    sock.settimeout(timeout)
    buffer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = _frames(buffer)
        for i, (kind, flags, stream, _) in enumerate(frames):
            if until(kind, flags, stream):
                return frames[: i + 1]
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
    raise AssertionError(f"no such frame; got {[f[:3] for f in _frames(buffer)]}")


def _hpack_string(value: bytes) -> bytes:
    assert len(value) < 127
    return bytes([len(value)]) + value


def test_an_oversized_http_request_line_and_headers(served: Served) -> None:
    with connect(served.process.metrics_port) as s:
        s.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.0 414 "), answer[:80]
    with connect(served.process.metrics_port) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.0 431 "), answer[:80]
    served.assert_serving()
