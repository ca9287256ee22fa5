"""A CheckRequest read in place: what the core sees, and that reading it changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz.engine import Engine
from authz.envoy import parse_check_request
from authz.errors import RequestError
from authz.handler import CheckHandler
from authz.keys import build_keyset
from authz.settings import IssuerSettings, Settings
from tests.support.tokens import AUDIENCE, ISSUER, FakeClock, claims, jwks, rs256

KEY = rs256()
KEYSET = build_keyset(jwks(KEY), ("RS256",))


def message(path: str = "/app?x=1", headers: dict[str, str] | None = None, **http: Any) -> pb.CheckRequest:
    req = pb.CheckRequest()
    fields = req.attributes.request.http
    fields.path = path
    for name, value in http.items():
        setattr(fields, name, value)
    fields.headers.update(headers or {})
    return req


def test_method_host_scheme_and_request_id_come_from_the_http_attributes():
    req = parse_check_request(
        message(headers={"x-request-id": "r-1"}, method="POST", host="app.test", scheme="https", id="9")
    )
    assert (req.method, req.path, req.host, req.scheme, req.request_id) == ("POST", "/app?x=1", "app.test", "https", "r-1")


def test_pseudo_headers_stand_in_for_missing_attributes():
    headers = {":method": "GET", ":authority": "gw.test", ":scheme": "http", ":path": "/from-header"}
    req = parse_check_request(message(path="", headers=headers, id="42"))
    assert (req.method, req.path, req.host, req.scheme, req.request_id) == ("GET", "/from-header", "gw.test", "http", "42")


def test_no_path_is_a_bad_request():
    with pytest.raises(RequestError) as exc:
        parse_check_request(message(path=""))
    assert exc.value.code == "request_invalid"


def test_raw_header_map_is_joined_and_lower_cased():
    req = pb.CheckRequest()
    http = req.attributes.request.http
    http.path = "/x"
    http.header_map.CopyFrom(
        base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key="Accept", raw_value=b"a"),
                base_pb2.HeaderValue(key="accept", raw_value=b"b\xff"),
            ]
        )
    )
    parsed = parse_check_request(req)
    assert dict(parsed.headers) == {"accept": "a,b\ufffd"}


class _Keys:
    """The key lookup the handler needs; no fetching (the core is pure, keys are passed in)."""

    def lookup(self, issuer: str) -> Any:
        return KEYSET

    def kid_refetch_due(self, issuer: str) -> bool:
        return False

    async def refetch_unknown_kid(self, issuer: str) -> None:
        return None


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer {token}", "cookie": "a=b"},
        {"authorization": "Bearer {token}", "kubeflow_userid": "mallory"},
        {"authorization": "Bearer not.a.jwt"},
        {"accept": "text/html"},
        {},
    ],
    ids=["bearer", "bearer-spoof", "bad-token", "browser", "nothing"],
)
@pytest.mark.parametrize("path", ["/app", "/public/x", "/app?q=1"])
async def test_a_check_leaves_the_request_header_map_as_it_was(headers: dict[str, str], path: str) -> None:
    settings = Settings(issuers=(IssuerSettings(ISSUER, (AUDIENCE,)),), skip_auth_urls=("/public/",))
    clock = FakeClock()
    handler = CheckHandler(Engine(settings), _Keys(), clock=lambda: clock.now)  # type: ignore[arg-type]
    token = KEY.sign(claims(now=clock.now))
    msg = message(path, {k: v.format(token=token) for k, v in headers.items()})
    before = dict(msg.attributes.request.http.headers)
    for _ in range(2):  # the second time from the caches
        await handler.check(msg)
    assert dict(msg.attributes.request.http.headers) == before
