import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetWindowStateRequest(_message.Message):
    __slots__ = ("window", "end_time", "profile", "domain", "model", "versions")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    end_time: _timestamp_pb2.Timestamp
    profile: str
    domain: str
    model: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profile: _Optional[str] = ..., domain: _Optional[str] = ..., model: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ...) -> None: ...

class GetWindowStateResponse(_message.Message):
    __slots__ = ("version", "replica", "state")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    version: int
    replica: str
    state: bytes
    def __init__(self, version: _Optional[int] = ..., replica: _Optional[str] = ..., state: _Optional[bytes] = ...) -> None: ...
