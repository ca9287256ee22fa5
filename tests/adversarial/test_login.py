"""Attacks on the browser login flow, against the real OpenID Provider (demo/provider).

authz's real gRPC server runs in this process (so a test can move its clock); each browser
is a cookie jar sending Envoy-shaped CheckRequests (tests/adversarial/browser.py) plus an
httpx client holding its cookies at the provider, which runs its real login pages. The
happy path through Envoy and Redis is tests/e2e/test_login.py; these are the attacks, each
with the exact status and reason code of the answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest

from tests.adversarial.browser import Browser, Person, location, set_cookies, target
from tests.adversarial.inproc import ShiftedClock, ThreadedApp, build_with_clocks, settings_from_env
from tests.adversarial.table import control, outcome, record
from tests.support.provider import DEFAULT_USER, OTHER_USER, Provider, run_provider
from tests.support.servers import headers_of

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-adversarial"
CLIENT_SECRET = "authz-adversarial-secret"
CALLBACK = "https://app.example.com/authservice/oidc/callback"
CALLBACK_PATH = "/authservice/oidc/callback"
COOKIE = "authservice_session"


@dataclass
class Stack:
    provider: Provider
    app: ThreadedApp
    clock: ShiftedClock
    flow_clock: ShiftedClock  # the login flow's clock only; the session store keeps real time
    people: list[Person] = field(default_factory=list)

    def person(self) -> Person:
        p = Person(Browser(self.app.check), httpx.Client(timeout=10), CALLBACK)
        self.people.append(p)
        return p


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with run_provider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[CALLBACK]) as provider:
        settings = settings_from_env({
            "OIDC_PROVIDER": provider.issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
            "REDIRECT_URL": CALLBACK, "OIDC_SCOPES": "openid email profile groups",
        })  # fmt: skip
        clock, flow_clock = ShiftedClock(), ShiftedClock()
        # The flow clock drives the login flow and the engine; the store has its own (real time
        # unless a test moves it), so an expired login state can be one the store still holds.
        app = ThreadedApp(build_with_clocks(settings, clock=lambda: flow_clock() + clock.offset, store_clock=clock))
        app.start()
        s = Stack(provider, app, clock, flow_clock)
        try:
            yield s
        finally:
            for p in s.people:
                p.at_provider.close()
            app.stop()


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(params)
    return f"{parts.path}?{urlencode(query)}"


# -- the callback's state ----------------------------------------------------------------


def test_callback_without_state_or_code(stack: Stack) -> None:
    p = stack.person()
    url = p.provider_login(p.start())
    code, state = parse_qs(urlsplit(url).query)["code"][0], _state(url)
    record("login", "callback-without-state", "400 callback_invalid",
           outcome(p.site.request(f"{CALLBACK_PATH}?code={code}")))  # fmt: skip
    record("login", "callback-without-code", "400 callback_invalid",
           outcome(p.site.request(f"{CALLBACK_PATH}?state={state}")))  # fmt: skip
    record("login", "callback-state-repeated", "400 callback_invalid",
           outcome(p.site.request(f"{CALLBACK_PATH}?state={state}&state={state}&code={code}")))  # fmt: skip
    record("login", "callback-query-over-8KiB", "400 callback_invalid",
           outcome(p.site.request(f"{CALLBACK_PATH}?state={state}&code={code}&x={'a' * 9000}")))  # fmt: skip
    record("login", "callback-state-bad-characters", "400 callback_invalid",
           outcome(p.site.request(f"{CALLBACK_PATH}?state={quote(state + '<>')}&code={code}")))  # fmt: skip


def test_callback_with_unknown_or_altered_state(stack: Stack) -> None:
    p = stack.person()
    url = p.provider_login(p.start())
    state = _state(url)
    altered = state[:-1] + ("A" if state[-1] != "A" else "B")
    record("login", "callback-state-unknown", "400 state_unknown",
           outcome(p.site.request(target(_with_query(url, state=secrets.token_urlsafe(32))))))  # fmt: skip
    record("login", "callback-state-altered", "400 state_unknown", outcome(p.callback(_with_query(url, state=altered))))


def test_callback_replayed(stack: Stack) -> None:
    p = stack.person()
    url = p.provider_login(p.start())
    binding = dict(p.site.jar)
    first = p.callback(url)
    control("login", "genuine-login", outcome(first) == "302 login_complete", outcome(first))
    record("login", "callback-replayed", "400 state_unknown", outcome(p.callback(url)))
    p.site.jar.update(binding)  # even with the login cookie the first callback cleared
    record("login", "callback-replayed-with-binding-cookie", "400 state_unknown", outcome(p.callback(url)))


def test_expired_state(stack: Stack) -> None:
    p = stack.person()
    url = p.provider_login(p.start())
    stack.flow_clock.offset = 601  # the store still holds the record: the flow's own check refuses it
    try:
        record("login", "callback-state-expired", "400 state_expired", outcome(p.callback(url)))
    finally:
        stack.flow_clock.offset = 0
    q = stack.person()
    url = q.provider_login(q.start())
    stack.clock.offset = 601  # the whole process: the store has forgotten it
    try:
        record("login", "callback-state-expired-and-gone", "400 state_unknown", outcome(q.callback(url)))
    finally:
        stack.clock.offset = 0


def test_state_from_another_browser(stack: Stack) -> None:
    victim, attacker = stack.person(), stack.person()
    url = victim.provider_login(victim.start())
    attacker.start()  # the attacker has a login cookie of its own
    record("login", "state-from-another-browser", "400 state_browser_mismatch", outcome(attacker.callback(url)))
    victim2, stranger = stack.person(), stack.person()
    url = victim2.provider_login(victim2.start())
    record("login", "state-from-a-browser-without-login-cookie", "400 state_browser_mismatch",
           outcome(stranger.callback(url)))  # fmt: skip
    # The state is single use, so the victim's own callback now fails too: a retry, never a login as someone else.
    record("login", "victim-after-stolen-state-was-tried", "400 state_unknown", outcome(victim2.callback(url)))


def test_wrong_nonce(stack: Stack) -> None:
    """A code obtained with this login's (public) PKCE challenge but another nonce."""
    p = stack.person()
    authorize = p.start()
    forged = _with_query(authorize, nonce=secrets.token_urlsafe(32))
    url = p.provider_login(stack.provider.issuer + forged.removeprefix(urlsplit(stack.provider.issuer).path))
    record("login", "id-token-with-another-nonce", "400 token_nonce_invalid", outcome(p.callback(url)))


def test_code_injected_from_another_session(stack: Stack) -> None:
    victim, attacker = stack.person(), stack.person()
    victim_url = victim.provider_login(victim.start())
    attacker_url = attacker.provider_login(attacker.start(), OTHER_USER)
    injected = _with_query(victim_url, code=parse_qs(urlsplit(attacker_url).query)["code"][0])
    record("login", "code-from-another-session", "400 token_exchange_rejected", outcome(victim.callback(injected)))
    # The code of one of this browser's own tabs, with the other tab's state: PKCE ties code to state.
    p = stack.person()
    first, second = p.start(), p.start()
    url_first = p.provider_login(first)
    swapped = _with_query(url_first, state=_state(second))
    record("login", "code-of-one-tab-state-of-another", "400 token_exchange_rejected", outcome(p.callback(swapped)))


def test_code_replayed_with_a_fresh_state(stack: Stack) -> None:
    p = stack.person()
    url = p.provider_login(p.start())
    assert outcome(p.callback(url)) == "302 login_complete"
    again = p.start("/authservice/login")  # logged in: the explicit login path starts a new one
    replay = _with_query(url, state=_state(again))
    record("login", "code-replayed-with-fresh-state", "400 token_exchange_rejected", outcome(p.callback(replay)))


# -- provider errors ----------------------------------------------------------------------


def test_provider_error_description_with_markup_is_escaped(stack: Stack) -> None:
    p = stack.person()
    state = _state(p.start())
    markup = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"
    resp = p.site.request(f"{CALLBACK_PATH}?{urlencode({'error': '<b>access_denied</b>', 'error_description': markup, 'state': state})}")
    record("login", "provider-error-with-markup", "400 provider_error", outcome(resp))
    body = resp.denied_response.body
    assert "<script>" not in body and "<img" not in body and "<b>" not in body
    assert "&lt;script&gt;" in body and "&lt;b&gt;access_denied" in body
    assert headers_of(resp)["content-security-policy"] == "default-src 'none'"
    assert not set_cookies(resp)


def test_real_provider_error_comes_back_as_an_escaped_page(stack: Stack) -> None:
    p = stack.person()
    authorize = p.start()
    resp = p.at_provider.get(authorize + "&prompt=none", follow_redirects=False)
    while resp.is_redirect and not resp.headers["location"].startswith(CALLBACK):
        resp = p.at_provider.get(httpx.URL(str(resp.url)).join(resp.headers["location"]), follow_redirects=False)
    url = resp.headers["location"]
    assert "error=login_required" in url
    back = p.callback(url)
    record("login", "real-provider-login-required", "400 provider_error", outcome(back))
    assert "login_required" in back.denied_response.body


# -- sessions and cookies ------------------------------------------------------------------


def _cookie(resp, name: str) -> dict[str, str]:
    for value in set_cookies(resp):
        first, *attrs = [x.strip() for x in value.split(";")]
        if first.partition("=")[0] == name:
            parsed = {"value": first.partition("=")[2]}
            parsed.update({k.lower(): v for k, _, v in (a.partition("=") for a in attrs)})
            return parsed
    raise AssertionError(f"no Set-Cookie {name}")


def test_session_id_changes_at_login(stack: Stack) -> None:
    p = stack.person()
    fixed = secrets.token_urlsafe(32)
    p.site.jar[COOKIE] = (fixed, "/")  # planted before login (session fixation)
    done = p.log_in()
    issued = _cookie(done, COOKIE)["value"]
    record("login", "session-fixation-cookie-replaced", "new id", "new id" if issued != fixed else "kept")
    planted = stack.person()
    planted.site.jar[COOKIE] = (fixed, "/")
    record("login", "planted-session-id-is-no-session", "302 login_redirect", outcome(planted.site.request("/app")))
    again = p.log_in("/authservice/login")
    second = _cookie(again, COOKIE)["value"]
    record("login", "second-login-new-id", "new id", "new id" if second != issued else "same")


def test_cookie_attributes(stack: Stack) -> None:
    p = stack.person()
    start = p.site.request("/app")
    binding = next(v for v in set_cookies(start) if v.startswith(f"{COOKIE}_login_"))
    attrs = {a.strip().lower() for a in binding.split(";")[1:]}
    record("login", "login-cookie-attributes",
           str(sorted({"path=/authservice/oidc/callback", "httponly", "samesite=lax", "max-age=600", "secure"})),
           str(sorted(attrs)), breach="domain" in str(attrs))  # fmt: skip
    done = p.callback(p.provider_login(location(start) or ""))
    session = _cookie(done, COOKIE)
    got = {k: v for k, v in session.items() if k != "value"}
    record("login", "session-cookie-attributes",
           str({"path": "/", "httponly": "", "samesite": "Lax", "max-age": "86400", "secure": ""}), str(got))  # fmt: skip
    cleared = _cookie(done, binding.split("=", 1)[0])
    record("login", "login-cookie-cleared-at-login", "max-age=0 path=/authservice/oidc/callback",
           f"max-age={cleared.get('max-age')} path={cleared.get('path')}")  # fmt: skip
    assert headers_of(done)["cache-control"] == "no-store"
    ok = p.site.request("/app", headers={"cookie": f"{COOKIE}={session['value']}; theme=dark"})
    control("login", "session-allows", outcome(ok) == "OK", outcome(ok))
    sent = headers_of(ok)
    assert sent["kubeflow-userid"] == DEFAULT_USER
    # The session cookie is not passed on to the upstream; the other cookies are.
    assert sent.get("cookie") == "theme=dark"


def test_forged_and_logged_out_sessions(stack: Stack) -> None:
    p = stack.person()
    p.log_in()
    sid = p.site.jar[COOKIE][0]
    forged = stack.person()
    forged.site.jar[COOKIE] = (sid[:-2] + ("AA" if not sid.endswith("AA") else "BB"), "/")
    record("login", "session-id-altered", "302 login_redirect", outcome(forged.site.request("/app")))
    api = forged.site.request("/api/x", navigate=False, headers={"accept": "application/json"})
    record("login", "session-id-altered-api", "401 missing_credentials", outcome(api))
    record("login", "logout-get-without-csrf", "403 csrf_invalid",
           outcome(p.site.request("/authservice/logout")))  # fmt: skip
    record("login", "logout-post-cross-site", "403 csrf_invalid",
           outcome(p.site.request("/authservice/logout", method="POST", headers={"sec-fetch-site": "cross-site"})))  # fmt: skip
    record("login", "logout-post-foreign-origin", "403 csrf_invalid",
           outcome(p.site.request("/authservice/logout", method="POST", navigate=False,
                                  headers={"origin": "https://evil.com"})))  # fmt: skip
    assert outcome(p.site.request("/app")) == "OK"  # none of the above logged the user out
    out = p.site.request("/authservice/logout", method="POST", headers={"sec-fetch-site": "same-origin"})
    assert outcome(out) == "302 logout_complete"
    after = stack.person()
    after.site.jar[COOKIE] = (sid, "/")
    record("login", "session-after-logout", "302 login_redirect", outcome(after.site.request("/app")))


def test_real_provider_login_never_redirects_off_site(stack: Stack) -> None:
    for value in ("//evil.com", "/\\evil.com", "https://evil.com", "/%09/evil.com"):
        p = stack.person()
        done = p.callback(p.provider_login(p.start(f"/authservice/login?rd={quote(value, safe='')}")))
        record("login", f"rd={value}", "302 /", f"{outcome(done).split()[0]} {location(done)}",
               breach=location(done) != "/")  # fmt: skip
