"""A RecordExecutions batch decoded item by item, so a 16 MiB batch never holds the event
loop for one long decode.

`WireBatch(data)` walks the request's wire format once (tags and lengths only, no field is
decoded) and keeps where each `executions` item lies; `decode(i)` parses one item. Fields
other than `executions` are skipped as protobuf skips unknown fields. A body that is not a
well-formed message raises `UndecodableError`, as does an item that does not parse.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from cugar.metrics.v1 import metrics_service_pb2 as pb

_EXECUTIONS_TAG = (1 << 3) | 2  # field 1, length-delimited
#: The largest field number protobuf accepts (2^29 - 1).
_MAX_FIELD_NUMBER = (1 << 29) - 1
#: Fields walked at most: a valid batch has at most 1000, and the walk is Python code, so a
#: body of millions of tiny fields is refused after this many instead of holding the loop.
MAX_FIELDS = 10_000


class UndecodableError(ValueError):
    """Bytes that are not the expected message; `field` says which part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise UndecodableError("request", f"truncated or overlong varint at byte {pos}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


class WireBatch:
    """The `executions` of a serialized RecordExecutionsRequest, decoded one at a time."""

    __slots__ = ("_data", "_spans")

    def __init__(self, data: bytes) -> None:
        self._data = data
        spans: list[tuple[int, int]] = []
        pos, end = 0, len(data)
        fields = 0
        while pos < end:
            fields += 1
            if fields > MAX_FIELDS:
                raise UndecodableError(
                    "request", f"has more than {MAX_FIELDS} fields (a batch holds 1000 at most)"
                )
            tag, pos = _varint(data, pos)
            wire_type = tag & 7
            if not 0 < tag >> 3 <= _MAX_FIELD_NUMBER:
                raise UndecodableError("request", f"field number {tag >> 3} at byte {pos}")
            if wire_type == 0:
                _, pos = _varint(data, pos)
                continue
            if wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _varint(data, pos)
                if tag == _EXECUTIONS_TAG:
                    spans.append((pos, pos + length))
                pos += length
            else:
                raise UndecodableError("request", f"wire type {wire_type} at byte {pos}")
            if pos > end:
                raise UndecodableError("request", "truncated message")
        self._spans = spans

    def __len__(self) -> int:
        return len(self._spans)

    def size(self, i: int) -> int:
        """Bytes of item `i`."""
        start, stop = self._spans[i]
        return stop - start

    def decode(self, i: int) -> pb.Execution:
        start, stop = self._spans[i]
        try:
            return pb.Execution.FromString(self._data[start:stop])
        except DecodeError as e:
            raise UndecodableError(f"executions[{i}]", f"is not an Execution message ({e})") from e

    @property
    def executions(self) -> WireBatch:
        """The batch itself: `len(batch.executions)` as on a decoded request."""
        return self


__all__ = ["UndecodableError", "WireBatch"]
