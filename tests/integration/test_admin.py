"""The admin service against the real server: Explain answers what Check does, with no side effects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc
import pytest

from authz.admin.v1 import admin_pb2 as apb
from authz.admin.v1 import admin_pb2_grpc as apb_grpc
from authz.sessions import Session
from authz.settings import OIDCClientSettings
from tests.integration.conftest import make_settings
from tests.integration.test_server import _serving, wait_for
from tests.support.servers import check_request, headers_of
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

GATEWAY = "https://gw.test"
BROWSER = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
XHR = {"accept": "application/json", "x-requested-with": "XMLHttpRequest"}
SESSION_ID = "s" * 43
STRANGER_ID = "t" * 43
OLD_ID = "o" * 43
OUTSIDER_ID = "u" * 43


@dataclass
class Case:
    name: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    expect: str = ""  # the Explain decision
    reason: str = ""


def _bearer(idp, key=None, **kw) -> dict[str, str]:
    return {"authorization": "Bearer " + (key or rs256()).sign(claims(iss=idp.issuer, **kw))}


def cases(idp) -> list[Case]:
    now = time.time()
    return [
        Case("bearer valid", "/app", _bearer(idp), expect="allow", reason="bearer"),
        Case(
            "bearer with spoofed identity",
            "/app?x=1",
            {**_bearer(idp), "kubeflow_userid": "mallory", "kubeflow-groups": "admins"},
            expect="allow",
            reason="bearer",
        ),
        Case("bearer expired", "/app", _bearer(idp, exp=now - 3600), expect="deny", reason="token_expired"),
        Case("bearer wrong audience", "/app", _bearer(idp, aud="other"), expect="deny", reason="token_audience_invalid"),
        Case(
            "bearer forged",
            "/app",
            _bearer(idp, key=rs256(kid="rsa-1", index=1)),
            expect="deny",
            reason="token_signature_invalid",
        ),
        Case(
            "bearer unknown kid", "/app", _bearer(idp, key=rs256(kid="gone")), expect="deny", reason="token_unknown_kid"
        ),
        Case(
            "bearer untrusted issuer",
            "/app",
            {"authorization": "Bearer " + rs256().sign(claims(iss="https://evil.test"))},
            expect="deny",
            reason="token_issuer_untrusted",
        ),
        Case("bearer malformed", "/app", {"authorization": "Bearer abc"}, expect="deny", reason="token_malformed"),
        Case(
            "basic scheme",
            "/app",
            {"authorization": "Basic dXNlcjpwdw=="},
            expect="deny",
            reason="authorization_scheme_unsupported",
        ),
        Case("bearer group not allowed", "/app", _bearer(idp, groups=["x"]), expect="deny", reason="group_not_allowed"),
        Case("skip path", "/public/logo.png", {}, expect="allow", reason="skip_auth"),
        Case(
            "skip path strips session cookie",
            "/public/a",
            {"cookie": f"authservice_session={SESSION_ID}; theme=dark"},
            expect="allow",
            reason="skip_auth",
        ),
        Case("browser, no session", "/notebooks/", BROWSER, expect="redirect", reason="login_redirect"),
        Case("api, no credentials", "/api/v1/x", XHR, expect="deny", reason="missing_credentials"),
        Case("post, no credentials", "/api/v1/x", {}, method="POST", expect="deny", reason="missing_credentials"),
        Case(
            "session valid",
            "/notebooks/",
            {**BROWSER, "cookie": f"authservice_session={SESSION_ID}; theme=dark"},
            expect="allow",
            reason="session",
        ),
        Case(
            "session unknown",
            "/notebooks/",
            {**BROWSER, "cookie": f"authservice_session={STRANGER_ID}"},
            expect="redirect",
            reason="login_redirect",
        ),
        Case(
            "session, group not allowed",
            "/x",
            {**XHR, "cookie": f"authservice_session={OUTSIDER_ID}"},
            expect="deny",
            reason="group_not_allowed",
        ),
        Case(
            "session past max age",
            "/x",
            {**XHR, "cookie": f"authservice_session={OLD_ID}"},
            expect="deny",
            reason="missing_credentials",
        ),
        Case("login start", "/authservice/login?rd=/x", BROWSER, expect="redirect", reason="login_redirect"),
    ]


def _settings(idp):
    return make_settings(
        idp.issuer,
        login_issuer=idp.issuer,
        skip_auth_urls=("/public/",),
        groups_allowlist=("team-a",),
        oidc=OIDCClientSettings(
            client_id=AUDIENCE, redirect_url=f"{GATEWAY}/authservice/oidc/callback", auth_url=idp.issuer + "/auth"
        ),
    )


async def _with_sessions(running) -> None:
    now = time.time()
    store = running.app.c.store

    def session(user: str, groups: tuple[str, ...], created: float) -> Session:
        return Session(
            user=user,
            groups=groups,
            issuer="x",
            id_token="id-token-value",
            refresh_token="",
            id_token_expires_at=now + 3600,
            created_at=created,
            last_seen=now,
        )

    await store.put(SESSION_ID, session("carol@example.com", ("team-a",), now), 3600)
    await store.put(OUTSIDER_ID, session("dave@example.com", ("x",), now), 3600)
    await store.put(OLD_ID, session("erin@example.com", ("team-a",), now - 10 * 86400), 3600)


def _explain_request(case: Case) -> apb.ExplainRequest:
    return apb.ExplainRequest(check_request=check_request(case.path, case.headers, method=case.method, host="gw.test"))


def _location_base(value: str) -> str:
    return value.split("?", 1)[0]


@pytest.fixture
async def admin(idp, start_app):
    idp.state.jwks = jwks(rs256())
    running = await start_app(_settings(idp))
    await wait_for(lambda: _serving(running))
    await _with_sessions(running)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.app.admin_port}")
    yield running, apb_grpc.AdminStub(channel)
    await channel.close()


async def test_explain_matches_check_and_has_no_side_effects(idp, admin):
    running, stub = admin
    table = cases(idp)
    assert len(table) >= 15
    store = running.app.c.store
    cache = running.app.c.engine.cache
    before = (len(store), len(cache), sum(idp.state.requests.values()))
    explained = {c.name: await stub.Explain(_explain_request(c)) for c in table}
    # Nothing was created, cached or fetched: no session, no login state, no token entry, no provider call.
    assert (len(store), len(cache), sum(idp.state.requests.values())) == before

    for case in table:
        exp = explained[case.name]
        assert (exp.decision, exp.reason) == (case.expect, case.reason), case.name
        resp = await running.stub.Check(check_request(case.path, case.headers, method=case.method, host="gw.test"))
        if exp.decision == "allow":
            assert resp.status.code == 0, case.name
            assert exp.http_status == 200
            upstream = headers_of(resp)
            shown = {h.name: h.value for h in exp.upstream_headers}
            assert shown.keys() == upstream.keys(), case.name
            for name, value in shown.items():
                if name != "cookie":
                    assert upstream[name] == value, case.name
            assert list(exp.removed_headers) == list(resp.ok_response.headers_to_remove), case.name
        else:
            denied = resp.denied_response
            assert resp.status.code != 0, case.name
            assert denied.status.code == exp.http_status, case.name
            assert resp.status.message == exp.reason, case.name
            if exp.decision == "redirect":
                location = {h.header.key: h.header.value for h in denied.headers}["location"]
                assert _location_base(location) == exp.redirect_to, case.name
        failed = [s for s in exp.steps if s.outcome == apb.FAILED]
        if exp.decision == "deny" and case.reason.startswith(("token_", "authorization_")):
            assert failed and failed[0].reason == case.reason, (case.name, [(s.name, s.reason) for s in exp.steps])


async def test_explain_after_check_answers_from_the_token_cache(idp, admin):
    running, stub = admin
    case = cases(idp)[0]
    await running.stub.Check(check_request(case.path, case.headers, host="gw.test"))
    hits = running.app.c.engine.cache.hits
    exp = await stub.Explain(_explain_request(case))
    assert exp.decision == "allow" and exp.user == "alice@example.com"
    assert any(s.name == "token.cache" and s.outcome == apb.PASSED for s in exp.steps)
    assert running.app.c.engine.cache.hits == hits  # a peek: the statistics do not move


async def test_explain_never_shows_token_or_cookie_values(idp, admin):
    _, stub = admin
    token_headers = _bearer(idp)
    secret_values = [token_headers["authorization"].split()[1], SESSION_ID, "dark"]
    for headers in (
        {**token_headers, "cookie": f"authservice_session={SESSION_ID}; theme=dark"},
        {**BROWSER, "cookie": f"authservice_session={SESSION_ID}; theme=dark"},
        _bearer(idp, exp=time.time() - 10),
    ):
        exp = await stub.Explain(apb.ExplainRequest(path="/app?code=abc", headers=headers))
        text = str(exp)
        for value in secret_values:
            assert value not in text
        assert "code=abc" not in text


async def test_explain_simple_form_and_bad_input(idp, admin):
    _, stub = admin
    exp = await stub.Explain(apb.ExplainRequest(method="get", path="/public/x"))
    assert (exp.decision, exp.reason, exp.auth_method) == ("allow", "skip_auth", "skip")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Explain(apb.ExplainRequest(path="no-slash"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Explain(apb.ExplainRequest(check_request=check_request("")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_keys_refresh_and_status(idp, admin):
    running, stub = admin
    keys = await stub.Keys(apb.KeysRequest())
    (issuer,) = keys.issuers
    assert issuer.issuer == idp.issuer and issuer.loaded and issuer.jwks_uri == idp.issuer + "/keys"
    assert [(k.kid, k.alg, k.kty) for k in issuer.keys] == [("rsa-1", "RS256", "RSA")]
    assert issuer.fetched_at.seconds > 0 and issuer.next_refresh_at.seconds > issuer.fetched_at.seconds
    assert issuer.last_error == ""

    fetches = idp.state.requests["/keys"]
    first = await stub.RefreshKeys(apb.RefreshKeysRequest(issuer=idp.issuer))
    second = await stub.RefreshKeys(apb.RefreshKeysRequest(issuer=idp.issuer))
    assert first.refetched and not first.rate_limited
    assert second.rate_limited and not second.refetched  # the unknown-kid limit applies
    assert idp.state.requests["/keys"] == fetches + 1

    idp.state.status = 500
    running.app.c.keys._states[idp.issuer].last_kid_refetch = float("-inf")  # past the limit
    failed = await stub.RefreshKeys(apb.RefreshKeysRequest(issuer=idp.issuer))
    assert failed.error == "jwks_fetch_failed" and failed.keys.last_error == "jwks_fetch_failed"
    assert failed.keys.loaded  # the last good keys stay in use

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Keys(apb.KeysRequest(issuer="https://nobody.test"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    await running.stub.Check(check_request("/notebooks/", BROWSER, host="gw.test"))  # a pending login, no session
    status = await stub.Status(apb.StatusRequest())
    assert status.ready and status.login_enabled and list(status.issuers) == [idp.issuer]
    assert len(status.config_digest) == 64 and status.uptime_seconds > 0
    assert status.session_store.kind == "memory" and status.session_store.sessions == 3
    assert status.token_cache_capacity == running.app.c.settings.token_cache_size


async def test_admin_service_is_not_on_the_check_port(idp, admin):
    running, _ = admin
    public = apb_grpc.AdminStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await public.Status(apb.StatusRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
