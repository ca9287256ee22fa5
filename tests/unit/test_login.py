"""The browser login rules (pure), with a fake clock and fixed random bytes."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs, urlsplit

import pytest

from authz import cookies
from authz.errors import FlowError
from authz.login import LOGIN_STATE_TTL, LoginPolicy, pkce_challenge
from authz.redirects import choose, safe_relative
from authz.request import AuthRequest
from authz.settings import IssuerSettings, OIDCClientSettings, SessionSettings, Settings
from tests.support.tokens import FakeClock

REDIRECT = "https://app.example.com/authservice/oidc/callback"
AUTH = "https://dex.example.com/dex/auth"


def settings(**session: object) -> Settings:
    return Settings(
        issuers=(IssuerSettings("https://dex.example.com/dex", ("kubeflow",)),),
        login_issuer="https://dex.example.com/dex",
        oidc=OIDCClientSettings(client_id="kubeflow", redirect_url=REDIRECT, scopes=("openid", "email", "groups")),
        session=SessionSettings(**session),  # type: ignore[arg-type]
    )


def counter_bytes():
    seq = itertools.count(1)
    return lambda n: bytes([next(seq) % 256]) * n


def req(path: str = "/app", method: str = "GET", host: str = "evil.example.net", **headers: str) -> AuthRequest:
    return AuthRequest(method, path, host, "https", {k.replace("_", "-"): v for k, v in headers.items()})


@pytest.fixture
def policy() -> LoginPolicy:
    return LoginPolicy(settings())


# -- browser or API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "browser"),
    [
        ("GET", {"accept": "text/html,application/xhtml+xml"}, True),
        ("HEAD", {"accept": "text/html"}, True),
        ("GET", {"sec-fetch-mode": "navigate"}, True),
        ("GET", {"sec-fetch-mode": "cors", "accept": "text/html"}, False),
        ("GET", {"accept": "application/json"}, False),
        ("GET", {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}, False),
        ("POST", {"accept": "text/html"}, False),
        ("OPTIONS", {"accept": "text/html"}, False),
        ("GET", {}, False),
        ("GET", {"sec-fetch-mode": "websocket", "upgrade": "websocket"}, False),
    ],
)
def test_browser_navigation_classification(policy, method, headers, browser):
    assert policy.is_browser(AuthRequest(method, "/", "h", "https", headers)) is browser


# -- the authorization redirect ------------------------------------------------------------------


def test_redirect_carries_every_parameter_and_uses_configured_redirect_uri(policy):
    clock = FakeClock()
    state, record, deny = policy.start(AUTH, "/app?x=1", clock.now, counter_bytes())
    assert deny.status == 302
    headers = dict(deny.headers)
    assert headers["cache-control"] == "no-store"
    url = urlsplit(headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == AUTH
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q == {
        "response_type": "code",
        "client_id": "kubeflow",
        "redirect_uri": REDIRECT,  # from config; the request's Host (evil.example.net) plays no part
        "scope": "openid email groups",
        "state": state,
        "nonce": record.nonce,
        "code_challenge": pkce_challenge(record.verifier),
        "code_challenge_method": "S256",
    }
    assert record.return_to == "/app?x=1"
    # 256-bit values, all different
    values = {state, record.nonce, record.verifier}
    assert len(values) == 3 and all(len(v) >= 43 for v in values)


def test_binding_cookie_is_scoped_to_the_callback_and_short_lived(policy):
    state, record, deny = policy.start(AUTH, "/", 0.0, counter_bytes())
    set_cookie = dict(deny.headers)["set-cookie"]
    name, _, rest = set_cookie.partition("=")
    assert name == policy.binding_cookie(state)
    assert "Path=/authservice/oidc/callback" in set_cookie
    assert f"Max-Age={int(LOGIN_STATE_TTL)}" in set_cookie
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie and "SameSite=Lax" in set_cookie
    value = rest.split(";")[0]
    from authz.sessions import digest

    assert digest(value) == record.binding_hash  # the store keeps only a digest


def test_two_tabs_get_independent_states_and_cookies(policy):
    rand = counter_bytes()
    s1, _r1, _d1 = policy.start(AUTH, "/a", 0.0, rand)
    s2, _r2, _d2 = policy.start(AUTH, "/b", 0.0, rand)
    assert s1 != s2 and policy.binding_cookie(s1) != policy.binding_cookie(s2)


# -- callback state checks -------------------------------------------------------------------------


def _callback_request(policy, state, cookie_value):
    cookie = f"{policy.binding_cookie(state)}={cookie_value}" if cookie_value else ""
    return req(f"/authservice/oidc/callback?code=c&state={state}", cookie=cookie)


def _started(policy, now=0.0):
    state, record, deny = policy.start(AUTH, "/", now, counter_bytes())
    value = dict(deny.headers)["set-cookie"].split(";")[0].split("=", 1)[1]
    return state, record, value


def test_state_from_the_same_browser_in_time_is_accepted(policy):
    state, record, value = _started(policy)
    assert policy.check_state(state, record, _callback_request(policy, state, value), 599.0) is record


@pytest.mark.parametrize(
    ("case", "code"),
    [("unknown", "state_unknown"), ("expired", "state_expired"), ("other-browser", "state_browser_mismatch"),
     ("no-cookie", "state_browser_mismatch")],
)
def test_bad_states_are_refused(policy, case, code):
    state, record, value = _started(policy)
    now = 10.0
    rec = record
    cookie = value
    if case == "unknown":
        rec = None
    elif case == "expired":
        now = LOGIN_STATE_TTL + 1
    elif case == "other-browser":
        cookie = "someone-elses-binding-value"
    elif case == "no-cookie":
        cookie = ""
    with pytest.raises(FlowError) as err:
        policy.check_state(state, rec, _callback_request(policy, state, cookie), now)
    assert err.value.code == code


def test_callback_query_is_parsed_from_the_path_and_repeats_refused(policy):
    assert policy.query(req("/cb?code=a&state=b&iss=x")) == {"code": "a", "state": "b", "iss": "x"}
    with pytest.raises(FlowError):
        policy.query(req("/cb?state=a&state=b"))
    with pytest.raises(FlowError):
        policy.query(req("/cb?code=" + "a" * 9000))


def test_error_page_escapes_everything(policy):
    deny = policy.error_page("provider_error", "<b>x</b>", '<script>alert("1")</script>')
    assert deny.status == 400
    assert "<script>" not in deny.body and "&lt;script&gt;" in deny.body
    assert "<b>x</b>" not in deny.body
    assert "Try again" in deny.body
    assert dict(deny.headers)["content-security-policy"] == "default-src 'none'"


# -- finishing a login ------------------------------------------------------------------------------


def test_login_complete_sets_session_cookie_and_clears_binding(policy):
    deny = policy.login_complete("SID123", "STATE", "/notebooks")
    set_cookies = [v for k, v in deny.headers if k == "set-cookie"]
    assert dict(deny.headers)["location"] == "/notebooks"
    session = next(c for c in set_cookies if c.startswith("authservice_session="))
    assert session.startswith("authservice_session=SID123;")
    for attribute in ("Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=86400"):
        assert attribute in session
    assert "Domain=" not in session
    assert any("Max-Age=0" in c and c.startswith(policy.binding_cookie("STATE")) for c in set_cookies)


def test_cookie_attributes_follow_session_settings():
    policy = LoginPolicy(settings(same_site="Strict", domain="example.com", secure=False))
    cookie = policy.session_cookie("SID")
    assert "SameSite=Strict" in cookie and "Domain=example.com" in cookie and "Secure" not in cookie


@pytest.mark.parametrize(
    "target",
    ["//evil.com", "/\\evil.com", "/%09/evil.com", "/%5cevil.com", "https://app.example.com.evil.com",
     "https://evil.com@app.example.com", "javascript:alert(1)", "/x\r\nset-cookie: a=b", "/%0d%0aLocation:%20//evil",
     "http://evil.com", "/%2f%2fevil.com", "//%2fevil.com", "\\\\evil.com", "data:text/html,x", ""],
)  # fmt: skip
def test_unsafe_return_targets_fall_back(policy, target):
    assert not safe_relative(target)
    deny = policy.login_complete("S", "T", target)
    assert dict(deny.headers)["location"] == "/"


def test_after_login_url_is_the_fallback():
    s = settings()
    s = Settings(**{**{f: getattr(s, f) for f in s.__dataclass_fields__},
                    "oidc": OIDCClientSettings(client_id="k", redirect_url=REDIRECT, after_login_url="/home")})  # fmt: skip
    assert dict(LoginPolicy(s).login_complete("S", "T", "//evil.com").headers)["location"] == "/home"


def test_return_to_from_login_path_rd_is_validated(policy):
    assert policy.return_to(req("/authservice/login?rd=/pipelines")) == "/pipelines"
    assert policy.return_to(req("/authservice/login?rd=//evil.com")) == "/"
    assert policy.return_to(req("/jupyter/lab?x=1")) == "/jupyter/lab?x=1"
    assert choose(None, "/d") == "/d"


# -- logout ---------------------------------------------------------------------------------------------


def test_logout_csrf_rules(policy):
    sid = "SESSION"
    assert policy.logout_allowed(req("/authservice/logout", "POST", sec_fetch_site="same-origin"), sid)
    assert not policy.logout_allowed(req("/authservice/logout", "POST", sec_fetch_site="cross-site"), sid)
    assert policy.logout_allowed(req("/authservice/logout", "POST", origin="https://app.example.com"), sid)
    assert not policy.logout_allowed(req("/authservice/logout", "POST", origin="https://evil.com"), sid)
    assert not policy.logout_allowed(req("/authservice/logout"), sid)
    token = policy.csrf_token(sid)
    assert policy.logout_allowed(req(f"/authservice/logout?csrf={token}"), sid)
    assert not policy.logout_allowed(req("/authservice/logout?csrf=wrong"), sid)


def test_logout_target_uses_end_session_with_hint(policy):
    url = urlsplit(policy.logout_target("https://dex.example.com/dex/logout", "IDTOKEN"))
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q == {"id_token_hint": "IDTOKEN", "post_logout_redirect_uri": "https://app.example.com/", "client_id": "kubeflow"}
    assert policy.logout_target(None, "IDTOKEN") == "/"


def test_logout_response_for_xhr_is_kubeflow_json(policy):
    xhr = req("/authservice/logout", "POST", accept="application/json", x_requested_with="XMLHttpRequest")
    deny = policy.logged_out(xhr, "/after")
    assert deny.status == 201 and '"afterLogoutURL": "/after"' in deny.body
    browser = req("/authservice/logout", "POST", accept="text/html")
    deny = policy.logged_out(browser, "/after")
    assert deny.status == 302 and dict(deny.headers)["location"] == "/after"
    assert any("Max-Age=0" in v for k, v in deny.headers if k == "set-cookie")


# -- cookies ----------------------------------------------------------------------------------------------


def test_cookie_parsing_is_bounded_and_first_wins():
    header = "; ".join(f"c{i}=v{i}" for i in range(200)) + "; authservice_session=late"
    parsed = cookies.parse(header)
    assert len(parsed) == cookies.MAX_COOKIES and "authservice_session" not in parsed
    assert cookies.parse("a=1; a=2") == {"a": "1"}
    assert cookies.without("a=1; authservice_session=x; b=2", {"authservice_session"}) == "a=1; b=2"
    assert not cookies.valid_id("x" * 300) and not cookies.valid_id("a b") and cookies.valid_id("abc_-.~")


def test_get_logout_from_a_same_origin_link_is_allowed(policy):
    assert policy.logout_allowed(req("/authservice/logout", sec_fetch_site="same-origin"), "SID")
    assert not policy.logout_allowed(req("/authservice/logout", sec_fetch_site="cross-site"), "SID")
    assert not policy.logout_allowed(req("/authservice/logout", sec_fetch_site="same-site"), "SID")


def test_strict_same_site_finishes_with_a_same_site_navigation():
    policy = LoginPolicy(settings(same_site="Strict"))
    deny = policy.login_complete("SID", "STATE", "/app?a=1&b=2")
    assert deny.status == 200
    assert 'http-equiv="refresh" content="0;url=/app?a=1&amp;b=2"' in deny.body
    assert any(v.startswith("authservice_session=SID;") and "SameSite=Strict" in v for k, v in deny.headers if k == "set-cookie")


def test_memory_sessions_with_several_workers_is_a_config_error():
    from authz.config import load_settings
    from authz.errors import ConfigError

    env = {"OIDC_PROVIDER": "https://dex.example.com/dex", "CLIENT_ID": "k", "REDIRECT_URL": REDIRECT, "AUTHZ_WORKERS": "2"}
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert any("SESSION_STORE_TYPE" in p for p in err.value.problems)
    load_settings({**env, "SESSION_STORE_TYPE": "redis"})  # fine with Redis
