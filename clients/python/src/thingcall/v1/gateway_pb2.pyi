import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Contract(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTRACT_UNSPECIFIED: _ClassVar[Contract]
    CONTRACT_NATIVE: _ClassVar[Contract]
    CONTRACT_SEED: _ClassVar[Contract]

class OfflinePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFLINE_POLICY_UNSPECIFIED: _ClassVar[OfflinePolicy]
    OFFLINE_POLICY_REPORT: _ClassVar[OfflinePolicy]
    OFFLINE_POLICY_SKIP: _ClassVar[OfflinePolicy]
    OFFLINE_POLICY_WAIT: _ClassVar[OfflinePolicy]
CONTRACT_UNSPECIFIED: Contract
CONTRACT_NATIVE: Contract
CONTRACT_SEED: Contract
OFFLINE_POLICY_UNSPECIFIED: OfflinePolicy
OFFLINE_POLICY_REPORT: OfflinePolicy
OFFLINE_POLICY_SKIP: OfflinePolicy
OFFLINE_POLICY_WAIT: OfflinePolicy

class InvokeRequest(_message.Message):
    __slots__ = ("target", "method", "payload", "timeout", "connect_timeout", "content_type", "idempotency_key", "metadata", "contract")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    target: str
    method: str
    payload: bytes
    timeout: _duration_pb2.Duration
    connect_timeout: _duration_pb2.Duration
    content_type: str
    idempotency_key: str
    metadata: _containers.ScalarMap[str, str]
    contract: Contract
    def __init__(self, target: _Optional[str] = ..., method: _Optional[str] = ..., payload: _Optional[bytes] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., connect_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., content_type: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., contract: _Optional[_Union[Contract, str]] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("status", "payload", "content_type", "request_id", "elapsed", "device_time")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TIME_FIELD_NUMBER: _ClassVar[int]
    status: int
    payload: bytes
    content_type: str
    request_id: str
    elapsed: _duration_pb2.Duration
    device_time: _duration_pb2.Duration
    def __init__(self, status: _Optional[int] = ..., payload: _Optional[bytes] = ..., content_type: _Optional[str] = ..., request_id: _Optional[str] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., device_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class InvokeManyRequest(_message.Message):
    __slots__ = ("targets", "pattern", "method", "payload", "timeout", "connect_timeout", "content_type", "metadata", "contract", "offline", "max_concurrency", "rate", "ramp", "abort", "idempotency_key")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    RAMP_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedScalarFieldContainer[str]
    pattern: str
    method: str
    payload: bytes
    timeout: _duration_pb2.Duration
    connect_timeout: _duration_pb2.Duration
    content_type: str
    metadata: _containers.ScalarMap[str, str]
    contract: Contract
    offline: OfflinePolicy
    max_concurrency: int
    rate: float
    ramp: Ramp
    abort: AbortPolicy
    idempotency_key: str
    def __init__(self, targets: _Optional[_Iterable[str]] = ..., pattern: _Optional[str] = ..., method: _Optional[str] = ..., payload: _Optional[bytes] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., connect_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., contract: _Optional[_Union[Contract, str]] = ..., offline: _Optional[_Union[OfflinePolicy, str]] = ..., max_concurrency: _Optional[int] = ..., rate: _Optional[float] = ..., ramp: _Optional[_Union[Ramp, _Mapping]] = ..., abort: _Optional[_Union[AbortPolicy, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Ramp(_message.Message):
    __slots__ = ("start_rate", "factor", "step_successes")
    START_RATE_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    STEP_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    start_rate: float
    factor: float
    step_successes: int
    def __init__(self, start_rate: _Optional[float] = ..., factor: _Optional[float] = ..., step_successes: _Optional[int] = ...) -> None: ...

class AbortPolicy(_message.Message):
    __slots__ = ("failure_ratio", "min_results")
    FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MIN_RESULTS_FIELD_NUMBER: _ClassVar[int]
    failure_ratio: float
    min_results: int
    def __init__(self, failure_ratio: _Optional[float] = ..., min_results: _Optional[int] = ...) -> None: ...

class InvokeManyEvent(_message.Message):
    __slots__ = ("result", "summary")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    result: DeviceResult
    summary: InvokeManySummary
    def __init__(self, result: _Optional[_Union[DeviceResult, _Mapping]] = ..., summary: _Optional[_Union[InvokeManySummary, _Mapping]] = ...) -> None: ...

class DeviceResult(_message.Message):
    __slots__ = ("device", "outcome", "response", "message", "request_id", "elapsed")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    device: str
    outcome: str
    response: InvokeResponse
    message: str
    request_id: str
    elapsed: _duration_pb2.Duration
    def __init__(self, device: _Optional[str] = ..., outcome: _Optional[str] = ..., response: _Optional[_Union[InvokeResponse, _Mapping]] = ..., message: _Optional[str] = ..., request_id: _Optional[str] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class InvokeManySummary(_message.Message):
    __slots__ = ("targets", "attempted", "succeeded", "failed", "outcomes", "p50", "p99", "not_attempted", "not_attempted_devices", "ended", "elapsed")
    class OutcomesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class NotAttemptedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    NOT_ATTEMPTED_FIELD_NUMBER: _ClassVar[int]
    NOT_ATTEMPTED_DEVICES_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    targets: int
    attempted: int
    succeeded: int
    failed: int
    outcomes: _containers.ScalarMap[str, int]
    p50: _duration_pb2.Duration
    p99: _duration_pb2.Duration
    not_attempted: _containers.ScalarMap[str, int]
    not_attempted_devices: _containers.RepeatedCompositeFieldContainer[NotAttempted]
    ended: str
    elapsed: _duration_pb2.Duration
    def __init__(self, targets: _Optional[int] = ..., attempted: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., outcomes: _Optional[_Mapping[str, int]] = ..., p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., not_attempted: _Optional[_Mapping[str, int]] = ..., not_attempted_devices: _Optional[_Iterable[_Union[NotAttempted, _Mapping]]] = ..., ended: _Optional[str] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class NotAttempted(_message.Message):
    __slots__ = ("device", "reason")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device: str
    reason: str
    def __init__(self, device: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("target", "page_size", "page_token")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    target: str
    page_size: int
    page_token: str
    def __init__(self, target: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchDeviceRequest(_message.Message):
    __slots__ = ("target", "include_events")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    target: str
    include_events: bool
    def __init__(self, target: _Optional[str] = ..., include_events: bool = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("id", "online", "methods", "since", "session")
    ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    online: bool
    methods: _containers.RepeatedScalarFieldContainer[str]
    since: _timestamp_pb2.Timestamp
    session: str
    def __init__(self, id: _Optional[str] = ..., online: bool = ..., methods: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session: _Optional[str] = ...) -> None: ...

class DeviceEvent(_message.Message):
    __slots__ = ("device", "time", "presence", "synced", "invocation", "lagged", "event", "closing")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    LAGGED_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CLOSING_FIELD_NUMBER: _ClassVar[int]
    device: str
    time: _timestamp_pb2.Timestamp
    presence: Device
    synced: Synced
    invocation: InvocationOutcome
    lagged: Lagged
    event: DeviceMessage
    closing: Closing
    def __init__(self, device: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., presence: _Optional[_Union[Device, _Mapping]] = ..., synced: _Optional[_Union[Synced, _Mapping]] = ..., invocation: _Optional[_Union[InvocationOutcome, _Mapping]] = ..., lagged: _Optional[_Union[Lagged, _Mapping]] = ..., event: _Optional[_Union[DeviceMessage, _Mapping]] = ..., closing: _Optional[_Union[Closing, _Mapping]] = ...) -> None: ...

class Synced(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: int
    def __init__(self, devices: _Optional[int] = ...) -> None: ...

class InvocationOutcome(_message.Message):
    __slots__ = ("method", "request_id", "outcome", "status", "elapsed")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    method: str
    request_id: str
    outcome: str
    status: int
    elapsed: _duration_pb2.Duration
    def __init__(self, method: _Optional[str] = ..., request_id: _Optional[str] = ..., outcome: _Optional[str] = ..., status: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Lagged(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: int
    def __init__(self, dropped: _Optional[int] = ...) -> None: ...

class Closing(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class DeviceMessage(_message.Message):
    __slots__ = ("name", "payload", "content_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: bytes
    content_type: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...
