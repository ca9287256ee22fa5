"""The dynamic_metadata each CheckResponse carries for Envoy's access log: who, how and why."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from authz.decision import Allow, Deny, json_deny
from authz.engine import Engine
from authz.envoy import ResponseEncoder
from authz.identity import Identity
from authz.keys import build_keyset
from authz.request import AuthRequest
from authz.settings import IssuerSettings, Settings
from tests.support.tokens import AUDIENCE, ISSUER, FakeClock, claims, jwks, rs256

KEY = rs256()
KEYSET = build_keyset(jwks(KEY), ("RS256",))
ALICE = Identity("alice@example.com", ("team-a", "everyone"), ISSUER, 2e9)


def engine() -> Engine:
    return Engine(Settings(issuers=(IssuerSettings(ISSUER, (AUDIENCE,)),), skip_auth_urls=("/public/",)))


def decide(path: str, **headers: str) -> Allow | Deny:
    clock = FakeClock()
    result = engine().decide(AuthRequest("GET", path, "app.example.com", "https", headers), clock.now, lambda i: KEYSET)
    assert isinstance(result, Allow | Deny)
    return result


def metadata(decision: Allow | Deny) -> dict[str, Any]:
    return json_format.MessageToDict(ResponseEncoder().encode(decision).dynamic_metadata)


def test_bearer_allow_names_the_user_and_the_method():
    token = KEY.sign(claims(now=FakeClock().now))
    assert metadata(decide("/app", authorization=f"Bearer {token}")) == {
        "decision": "allow",
        "reason": "bearer",
        "auth_method": "bearer",
        "user": "alice@example.com",
    }


def test_session_allow():
    decision = Allow(reason="session", headers=(("kubeflow-userid", ALICE.user),), identity=ALICE)
    assert metadata(decision) == {
        "decision": "allow",
        "reason": "session",
        "auth_method": "session",
        "user": "alice@example.com",
    }


def test_skip_allow_has_no_user():
    assert metadata(decide("/public/x")) == {"decision": "allow", "reason": "skip_auth", "auth_method": "skip"}


def test_deny_carries_the_reason_code_and_no_method():
    assert metadata(decide("/app")) == {"decision": "deny", "reason": "missing_credentials", "auth_method": "none"}
    token = KEY.sign(claims(now=FakeClock().now - 3600))
    assert metadata(decide("/app", authorization=f"Bearer {token}")) == {
        "decision": "deny",
        "reason": "token_expired",
        "auth_method": "none",
    }
    assert metadata(json_deny(503, "dependency_unavailable"))["reason"] == "dependency_unavailable"


def test_login_redirect_is_a_redirect():
    decision = Deny(status=302, reason="login_redirect", headers=(("location", "https://idp.test/auth?state=x"),))
    assert metadata(decision) == {"decision": "redirect", "reason": "login_redirect", "auth_method": "none"}


def test_metadata_never_carries_a_token_a_cookie_or_groups():
    token = KEY.sign(claims(now=FakeClock().now))
    allowed = decide("/app", authorization=f"Bearer {token}", cookie="authservice_session=SECRET; theme=dark")
    skipped = decide("/public/x", cookie="authservice_session=SECRET; theme=dark")
    login = Deny(302, "login_complete", (("location", "/"), ("set-cookie", "authservice_session=NEWSECRET; Path=/")))
    for decision in (allowed, skipped, login):
        text = ResponseEncoder().encode(decision).dynamic_metadata.SerializeToString()
        for secret in (token, "SECRET", "theme", "team-a", "Bearer"):
            assert secret.encode() not in text


def test_cached_responses_keep_their_metadata():
    encoder = ResponseEncoder()
    allow = Allow(reason="bearer", headers=(("kubeflow-userid", ALICE.user),), identity=ALICE)
    first = encoder.wire(allow)
    # An equal Allow (the engine's per-token decision) gets the very same bytes, metadata included.
    assert encoder.wire(Allow(reason="bearer", headers=(("kubeflow-userid", ALICE.user),), identity=ALICE)) is first
    assert encoder.encode(allow).dynamic_metadata["user"] == "alice@example.com"
    other = Identity("bob@example.com", (), ISSUER, 2e9)
    second = encoder.encode(Allow(reason="bearer", headers=(("kubeflow-userid", other.user),), identity=other))
    assert second.dynamic_metadata["user"] == "bob@example.com"
    assert encoder.encode(allow).dynamic_metadata["user"] == "alice@example.com"
    deny = json_deny(401, "token_expired")
    assert encoder.wire(deny) is encoder.wire(deny)
    assert encoder.wire(json_deny(401, "token_expired")) is encoder.wire(deny)  # equal: found by value
    assert encoder.encode(deny).dynamic_metadata["reason"] == "token_expired"
