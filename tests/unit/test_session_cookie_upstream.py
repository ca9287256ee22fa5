"""The session id never reaches an upstream, however the request was allowed."""

from __future__ import annotations

from authz.decision import Allow
from authz.engine import Engine
from authz.keys import build_keyset
from authz.request import AuthRequest
from authz.settings import IssuerSettings, OIDCClientSettings, Settings
from tests.support.tokens import AUDIENCE, ISSUER, FakeClock, claims, jwks, rs256

KEY = rs256()
KEYSET = build_keyset(jwks(KEY), ("RS256",))


def engine() -> Engine:
    return Engine(
        Settings(
            issuers=(IssuerSettings(ISSUER, (AUDIENCE,)),),
            skip_auth_urls=("/public/",),
            login_issuer=ISSUER,
            oidc=OIDCClientSettings(client_id=AUDIENCE, redirect_url="https://app.example.com/authservice/oidc/callback"),
        )
    )


def req(path: str, **headers: str) -> AuthRequest:
    return AuthRequest("GET", path, "app.example.com", "https", headers)


def test_skip_path_strips_session_cookie_keeps_others():
    d = engine().decide(req("/public/x", cookie="a=1; authservice_session=SECRET; b=2"), 0, lambda i: KEYSET)
    assert isinstance(d, Allow)
    assert d.headers == (("cookie", "a=1; b=2"),)


def test_skip_path_with_only_the_session_cookie_removes_the_header():
    d = engine().decide(req("/public/x", cookie="authservice_session=SECRET"), 0, lambda i: KEYSET)
    assert isinstance(d, Allow) and "cookie" in d.remove and not d.headers


def test_bearer_request_strips_session_cookie():
    clock = FakeClock()
    token = KEY.sign(claims(now=clock.now))
    d = engine().decide(
        req("/app", authorization=f"Bearer {token}", cookie="authservice_session=SECRET; theme=dark"),
        clock.now,
        lambda i: KEYSET,
    )
    assert isinstance(d, Allow)
    assert ("cookie", "theme=dark") in d.headers


def test_request_without_session_cookie_leaves_cookie_alone():
    d = engine().decide(req("/public/x", cookie="theme=dark"), 0, lambda i: KEYSET)
    assert isinstance(d, Allow) and d.headers == () and "cookie" not in d.remove


def test_check_request_without_path_is_a_400():
    import pytest
    from envoy.service.auth.v3 import external_auth_pb2 as pb

    from authz.envoy import parse_check_request
    from authz.errors import RequestError

    with pytest.raises(RequestError) as err:
        parse_check_request(pb.CheckRequest())
    assert err.value.status == 400 and err.value.code == "request_invalid"
