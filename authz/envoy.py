"""Envoy's ext_authz v3 messages to and from the core's values (xds-protos, upb).

Every CheckResponse carries ``dynamic_metadata``, which Envoy's ext_authz filter puts under
its namespace ``envoy.filters.http.ext_authz`` for allows and denies alike, so an access log
can print who was let in or turned away and why (``%DYNAMIC_METADATA(envoy.filters.http.ext_authz:user)%``):

- ``decision``: ``allow``, ``deny`` or ``redirect`` (a 3xx deny: login, callback, logout).
- ``reason``: the decision's reason code: ``bearer``, ``session``, ``skip_auth`` for an allow;
  the deny's stable code (``missing_credentials``, ``token_expired``, ...) otherwise.
- ``auth_method``: how the request was authenticated: ``bearer``, ``session``, ``skip``
  (a SKIP_AUTH_URLS path), or ``none`` (every deny and redirect).
- ``user``: the authenticated user, as sent upstream; absent when there is none.

Never a token, a cookie or a group list. Built once per decision value, with the response.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from authz.decision import REDIRECT_STATUSES, Allow, Deny
from authz.errors import RequestError
from authz.request import AuthRequest

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_GRPC_CODES = {
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    503: code_pb2.UNAVAILABLE,
}
_OK_STATUS = status_pb2.Status(code=code_pb2.OK)
# Allow.reason to the metadata's auth_method.
_AUTH_METHODS = {"bearer": "bearer", "session": "session", "skip_auth": "skip"}


class EnvoyRequest(AuthRequest):
    """An AuthRequest read from a CheckRequest's ``attributes.request.http`` in place: the
    path and the header map (the protobuf map itself; see AuthRequest.headers) at once, the
    method, host, scheme and request id only when asked for."""

    __slots__ = ("_http",)

    def __init__(self, path: str, headers: Mapping[str, str], http: Any) -> None:
        self.path = path
        self.headers = headers
        self._http = http

    @property
    def method(self) -> str:
        return str(self._http.method or self.headers.get(":method", ""))

    @property
    def host(self) -> str:
        return str(self._http.host or self.headers.get(":authority", ""))

    @property
    def scheme(self) -> str:
        return str(self._http.scheme or self.headers.get(":scheme", ""))

    @property
    def request_id(self) -> str:
        return str(self.headers.get("x-request-id", "") or self._http.id)


def parse_check_request(message: Any) -> AuthRequest:
    """The request attributes authz uses. Raises RequestError("request_invalid")."""
    http = message.attributes.request.http
    headers: Mapping[str, str] = http.headers
    if not headers and http.header_map.headers:
        # encode_raw_headers: values are bytes; repeated names are joined as Envoy does.
        joined: dict[str, str] = {}
        headers = joined
        for entry in http.header_map.headers:
            value = entry.raw_value.decode("utf-8", "replace") if entry.raw_value else entry.value
            name = entry.key.lower()
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    path = http.path or headers.get(":path", "")
    if not path:
        raise RequestError("request_invalid", "CheckRequest has no HTTP path")
    return EnvoyRequest(path, headers, http)


def _header_options(headers: tuple[tuple[str, str], ...]) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE)
        for key, value in headers
    ]


def _describe(metadata: Any, decision: str, reason: str, auth_method: str, user: str) -> None:
    """Fill a CheckResponse's dynamic_metadata (the keys in the module docstring)."""
    # Each value set on the Struct's field map directly: Struct.update is Python code of the
    # protobuf package, twice the cost of a new user's whole answer otherwise.
    fields = metadata.fields
    fields["decision"].string_value = decision
    fields["reason"].string_value = reason
    fields["auth_method"].string_value = auth_method
    if user:
        fields["user"].string_value = user


# -- an Allow's CheckResponse written as protobuf wire bytes ---------------------------
# A new user's answer is built once, then found again (ResponseEncoder). Building the upb
# message field by field and serializing it took 3.9 µs, the largest cost of a new token
# after the signature check; written directly from mostly prebuilt pieces, 1.9 µs. The
# bytes parse to the message the protobuf library builds for the same Allow
# (tests/unit/test_allow_wire.py checks that).

_SHORT_LENGTHS = [bytes((n,)) for n in range(0x80)]


def _length(n: int) -> bytes:
    if n < 0x80:
        return _SHORT_LENGTHS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(tag: bytes, text: str) -> bytes:
    """A length-delimited field holding ``text`` (UTF-8)."""
    data = text.encode()
    return tag + _length(len(data)) + data


def _message(tag: bytes, body: bytes) -> bytes:
    return tag + _length(len(body)) + body


# Field tags (field number << 3 | wire type 2, length-delimited): CheckResponse.status = 1,
# ok_response = 3, dynamic_metadata = 4; OkHttpResponse.headers = 2, headers_to_remove = 5;
# HeaderValueOption.header = 1 (append_action = 3, a varint); HeaderValue.key = 1, value = 2;
# Struct.fields = 1 (map entries: key = 1, value = 2); Value.string_value = 3.
_STATUS_OK = _message(b"\x0a", _OK_STATUS.SerializeToString())
_APPEND_OVERWRITE = b"\x18" + bytes((_OVERWRITE,))
# Prebuilt pieces, by value: header names (HeaderValue.key fields), removal lists, and the
# metadata of each reason. A few of each per configuration; bounded all the same.
_KEYS: dict[str, bytes] = {}
_REMOVALS: dict[tuple[str, ...], bytes] = {}
_METADATA: dict[str, bytes] = {}


def _metadata_entry(key: str, value: str) -> bytes:
    return _message(b"\x0a", _string(b"\x0a", key) + _message(b"\x12", _string(b"\x1a", value)))


def ok_wire(decision: Allow) -> bytes:
    """The serialized OK CheckResponse for ``decision``: its headers set (overwriting), its
    removals, and the dynamic metadata of the module docstring."""
    short, length = _SHORT_LENGTHS, _length
    parts = []
    for key, value in decision.headers:
        name = _KEYS.get(key)
        if name is None:
            name = _string(b"\x0a", key)
            if len(_KEYS) < 64:
                _KEYS[key] = name
        data = value.encode()
        n = len(data)
        header = name + b"\x12" + (short[n] if n < 0x80 else length(n)) + data
        n = len(header)
        option = b"\x0a" + (short[n] if n < 0x80 else length(n)) + header + _APPEND_OVERWRITE
        n = len(option)
        parts.append(b"\x12" + (short[n] if n < 0x80 else length(n)) + option)
    removals = _REMOVALS.get(decision.remove)
    if removals is None:
        removals = b"".join([_string(b"\x2a", name) for name in decision.remove])
        if len(_REMOVALS) < 64:
            _REMOVALS[decision.remove] = removals
    parts.append(removals)
    body = b"".join(parts)
    reason = decision.reason
    described = _METADATA.get(reason)
    if described is None:
        described = (
            _metadata_entry("decision", "allow")
            + _metadata_entry("reason", reason)
            + _metadata_entry("auth_method", _AUTH_METHODS.get(reason, "none"))
        )
        if len(_METADATA) < 64:
            _METADATA[reason] = described
    identity = decision.identity
    if identity is not None and identity.user:
        described += _metadata_entry("user", identity.user)
    return _STATUS_OK + _message(b"\x1a", body) + _message(b"\x22", described)


def denied_response(decision: Deny) -> pb.CheckResponse:
    response = pb.CheckResponse(
        status=status_pb2.Status(
            code=_GRPC_CODES.get(decision.status, code_pb2.PERMISSION_DENIED),
            message=decision.reason,
        ),
        denied_response=pb.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status),
            headers=_header_options(decision.headers),
            body=decision.body,
        ),
    )
    kind = "redirect" if decision.status in REDIRECT_STATUSES else "deny"
    _describe(response.dynamic_metadata, kind, decision.reason, "none", "")
    return response


class ResponseEncoder:
    """Decision to CheckResponse bytes, each built and serialized once per decision value.

    ``wire`` gives the serialized bytes the gRPC server sends as they are (no serializer runs
    per call); ``encode`` a message parsed from them (a new one each call). Allows are kept
    for the most recent ``MAX_ALLOWS`` values (oldest out first); denies without a
    ``set-cookie`` up to 512 values. The engine hands back the same object for a repeated
    token's answer and for each (status, reason) deny, so an answer is found by identity
    first (an int hash) before by value (hashing the decision's fields, for an equal
    decision built anew, such as a session's). Of equal denies, only the one kept is found
    by identity.
    """

    __slots__ = ("_allows", "_by_id", "_denies")
    MAX_ALLOWS = 4096
    MAX_DENIES = 512

    def __init__(self) -> None:
        # Deny -> (the first deny of that value, its bytes): only that object is found by identity.
        self._denies: dict[Deny, tuple[Deny, bytes]] = {}
        self._allows: OrderedDict[Allow, bytes] = OrderedDict()
        # id(decision) -> (decision, bytes): the decision is held, so its id is not reused.
        self._by_id: OrderedDict[int, tuple[Allow | Deny, bytes]] = OrderedDict()

    def encode(self, decision: Allow | Deny) -> pb.CheckResponse:
        return pb.CheckResponse.FromString(self.wire(decision))

    def wire(self, decision: Allow | Deny) -> bytes:
        seen = self._by_id.get(id(decision))
        if seen is not None and seen[0] is decision:  # a repeated answer: no hashing
            return seen[1]
        return self._by_value(decision)

    def _by_value(self, decision: Allow | Deny) -> bytes:
        if isinstance(decision, Allow):
            allows = self._allows
            data = allows.get(decision)
            if data is None:
                data = ok_wire(decision)
                if len(allows) >= self.MAX_ALLOWS:
                    allows.popitem(last=False)
                allows[decision] = data
        else:
            denies = self._denies
            found = denies.get(decision)
            if found is None:
                data = bytes(denied_response(decision).SerializeToString())
                if len(denies) >= self.MAX_DENIES or any(k == "set-cookie" for k, _ in decision.headers):
                    return data  # neither kept nor found again: built per request
                denies[decision] = (decision, data)
            elif found[0] is not decision:
                # An equal deny built anew (an API client's 401 from the login flow, one per
                # request): found by value each time, never given a place by identity, where
                # it would only push out answers that recur.
                return found[1]
            else:
                data = found[1]  # the kept deny itself, since pushed out of the identity map
        # This object's next answer by identity too: a session's answer is a new object equal
        # to other sessions' of the same user, found by value once, then by identity.
        by_id = self._by_id
        if len(by_id) >= self.MAX_ALLOWS:
            by_id.popitem(last=False)
        by_id[id(decision)] = (decision, data)
        return data
