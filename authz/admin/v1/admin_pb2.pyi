import datetime

from envoy.service.auth.v3 import external_auth_pb2 as _external_auth_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    PASSED: _ClassVar[Outcome]
    FAILED: _ClassVar[Outcome]
    SKIPPED: _ClassVar[Outcome]
    INFO: _ClassVar[Outcome]
    NOT_EVALUATED: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
PASSED: Outcome
FAILED: Outcome
SKIPPED: Outcome
INFO: Outcome
NOT_EVALUATED: Outcome

class ExplainRequest(_message.Message):
    __slots__ = ("check_request", "method", "host", "path", "headers", "scheme")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHECK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    check_request: _external_auth_pb2.CheckRequest
    method: str
    host: str
    path: str
    headers: _containers.ScalarMap[str, str]
    scheme: str
    def __init__(self, check_request: _Optional[_Union[_external_auth_pb2.CheckRequest, _Mapping]] = ..., method: _Optional[str] = ..., host: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., scheme: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("name", "outcome", "detail", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    outcome: Outcome
    detail: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., detail: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("decision", "http_status", "reason", "auth_method", "user", "groups", "steps", "upstream_headers", "removed_headers", "redirect_to", "summary")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_TO_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    decision: str
    http_status: int
    reason: str
    auth_method: str
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    upstream_headers: _containers.RepeatedCompositeFieldContainer[Header]
    removed_headers: _containers.RepeatedScalarFieldContainer[str]
    redirect_to: str
    summary: str
    def __init__(self, decision: _Optional[str] = ..., http_status: _Optional[int] = ..., reason: _Optional[str] = ..., auth_method: _Optional[str] = ..., user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., upstream_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., removed_headers: _Optional[_Iterable[str]] = ..., redirect_to: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class KeysRequest(_message.Message):
    __slots__ = ("issuer",)
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    def __init__(self, issuer: _Optional[str] = ...) -> None: ...

class Key(_message.Message):
    __slots__ = ("kid", "alg", "kty", "use")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    KTY_FIELD_NUMBER: _ClassVar[int]
    USE_FIELD_NUMBER: _ClassVar[int]
    kid: str
    alg: str
    kty: str
    use: str
    def __init__(self, kid: _Optional[str] = ..., alg: _Optional[str] = ..., kty: _Optional[str] = ..., use: _Optional[str] = ...) -> None: ...

class IssuerKeys(_message.Message):
    __slots__ = ("issuer", "jwks_uri", "loaded", "keys", "fetched_at", "next_refresh_at", "usable_until", "last_error", "last_error_at", "skipped_keys", "required")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    JWKS_URI_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_REFRESH_AT_FIELD_NUMBER: _ClassVar[int]
    USABLE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_KEYS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    jwks_uri: str
    loaded: bool
    keys: _containers.RepeatedCompositeFieldContainer[Key]
    fetched_at: _timestamp_pb2.Timestamp
    next_refresh_at: _timestamp_pb2.Timestamp
    usable_until: _timestamp_pb2.Timestamp
    last_error: str
    last_error_at: _timestamp_pb2.Timestamp
    skipped_keys: int
    required: bool
    def __init__(self, issuer: _Optional[str] = ..., jwks_uri: _Optional[str] = ..., loaded: _Optional[bool] = ..., keys: _Optional[_Iterable[_Union[Key, _Mapping]]] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_refresh_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usable_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., skipped_keys: _Optional[int] = ..., required: _Optional[bool] = ...) -> None: ...

class KeysResponse(_message.Message):
    __slots__ = ("issuers",)
    ISSUERS_FIELD_NUMBER: _ClassVar[int]
    issuers: _containers.RepeatedCompositeFieldContainer[IssuerKeys]
    def __init__(self, issuers: _Optional[_Iterable[_Union[IssuerKeys, _Mapping]]] = ...) -> None: ...

class RefreshKeysRequest(_message.Message):
    __slots__ = ("issuer",)
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    def __init__(self, issuer: _Optional[str] = ...) -> None: ...

class RefreshKeysResponse(_message.Message):
    __slots__ = ("issuer", "refetched", "rate_limited", "error", "keys")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    REFETCHED_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    refetched: bool
    rate_limited: bool
    error: str
    keys: IssuerKeys
    def __init__(self, issuer: _Optional[str] = ..., refetched: _Optional[bool] = ..., rate_limited: _Optional[bool] = ..., error: _Optional[str] = ..., keys: _Optional[_Union[IssuerKeys, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionStoreStatus(_message.Message):
    __slots__ = ("kind", "reachable", "error", "sessions")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reachable: bool
    error: str
    sessions: int
    def __init__(self, kind: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., sessions: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("version", "config_digest", "uptime_seconds", "ready", "token_cache_entries", "token_cache_capacity", "token_cache_hits", "token_cache_misses", "session_store", "issuers", "login_enabled", "pid", "workers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CACHE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CACHE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    SESSION_STORE_FIELD_NUMBER: _ClassVar[int]
    ISSUERS_FIELD_NUMBER: _ClassVar[int]
    LOGIN_ENABLED_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    config_digest: str
    uptime_seconds: float
    ready: bool
    token_cache_entries: int
    token_cache_capacity: int
    token_cache_hits: int
    token_cache_misses: int
    session_store: SessionStoreStatus
    issuers: _containers.RepeatedScalarFieldContainer[str]
    login_enabled: bool
    pid: int
    workers: int
    def __init__(self, version: _Optional[str] = ..., config_digest: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., ready: _Optional[bool] = ..., token_cache_entries: _Optional[int] = ..., token_cache_capacity: _Optional[int] = ..., token_cache_hits: _Optional[int] = ..., token_cache_misses: _Optional[int] = ..., session_store: _Optional[_Union[SessionStoreStatus, _Mapping]] = ..., issuers: _Optional[_Iterable[str]] = ..., login_enabled: _Optional[bool] = ..., pid: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...
