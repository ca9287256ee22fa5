"""The browser login flow end to end, with real parts only.

httpx plays the browser -> real Envoy (ext_authz) -> authz processes -> a real Redis that
they share; the real OpenID Provider (demo/provider) runs the login pages; the echo upstream
reports the headers it received. Two gateways (A, B) stand for two replicas of authz behind
a load balancer; two more (S1, S2), whose provider issues 2-second ID tokens and whose
sessions end after 5 idle seconds, drive the refresh and idle tests. Timing is read from the
session record authz keeps in Redis (the test knows the cookie, so it knows the key); the
wrong-nonce case rewrites the stored login state, as no real provider sends a wrong nonce.

Redis runs without persistence. The outage test carries the keys across the restart with
DUMP/RESTORE to show that the *same* session works again once Redis is back, and also shows
that a fresh login works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from subprocess import Popen
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import httpx
import pytest
import redis

from authz.login import LoginPolicy
from authz.settings import IssuerSettings, OIDCClientSettings, Settings
from demo.echo import serve as serve_echo
from demo.envoy_config import bootstrap
from tests.support.envoy import run_envoy
from tests.support.provider import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    Provider,
    login_with_httpx,
    logout_with_httpx,
    parse_forms,
    run_provider,
)
from tests.support.redis_server import RedisServer, run_redis
from tests.support.servers import authz_process, free_port, wait_serving

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-login"
CLIENT_SECRET = "authz-login-secret"
COOKIE = "authservice_session"
CALLBACK_PATH = "/authservice/oidc/callback"
LOGOUT_PATH = "/authservice/logout"
SCOPES = "openid email profile groups"
SHORT_TTL = 2  # seconds an ID token lives at the "short" provider
SHORT_IDLE = 5  # SESSION_IDLE_TIMEOUT of the "short" replicas; more than twice any pause in their tests
HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}
XHR = {"accept": "application/json", "x-requested-with": "XMLHttpRequest"}
POLL = 0.05


# -- the stacks -------------------------------------------------------------------------


@dataclass
class Gateway:
    """One Envoy in front of one authz process."""

    name: str
    port: int
    proc: Popen[bytes] | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback(self) -> str:
        return self.url + CALLBACK_PATH


def _drain(proc: Popen[bytes], sink: list[str]) -> None:
    """Read authz's output as it comes (a full pipe would block it) and keep it for asserts."""
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sink.append(line.decode(errors="replace"))


@contextlib.contextmanager
def gateways(
    provider: Provider, store: RedisServer, upstream: int, gws: list[Gateway], extra_env: dict[str, str] | None = None
) -> Iterator[list[Gateway]]:
    """Start an authz process and an Envoy for each gateway (authz processes in parallel)."""
    with contextlib.ExitStack() as stack:
        envs = []
        for gw in gws:
            grpc_port = free_port()
            env = {
                "OIDC_PROVIDER": provider.issuer,
                "CLIENT_ID": CLIENT_ID,
                "CLIENT_SECRET": CLIENT_SECRET,
                "REDIRECT_URL": gw.callback,
                "OIDC_SCOPES": SCOPES,
                "SESSION_STORE_TYPE": "redis",
                "SESSION_STORE_REDIS_ADDR": store.addr,
                "SESSION_COOKIE_SECURE": "false",
                "AUTHZ_LISTEN": f"127.0.0.1:{grpc_port}",
                "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
                "LOG_LEVEL": "INFO",
                "SKIP_AUTH_URLS": "/public/",
                **(extra_env or {}),
            }
            envs.append((gw, grpc_port, env))
            gw.proc = stack.enter_context(authz_process(env, wait=False))
            threading.Thread(target=_drain, args=(gw.proc, gw.logs), daemon=True).start()
        for gw, grpc_port, _ in envs:
            try:
                wait_serving(grpc_port)
            except TimeoutError:
                raise TimeoutError(f"authz {gw.name} not ready:\n{''.join(gw.logs)[-4000:]}") from None
        for gw, grpc_port, _ in envs:
            admin = free_port()
            config = bootstrap(listen_port=gw.port, admin_port=admin, authz_port=grpc_port, upstream_port=upstream)
            stack.enter_context(run_envoy(config, admin))
        yield gws


@pytest.fixture(scope="module")
def store() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    echo = serve_echo(0)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        yield echo.server_address[1]
    finally:
        echo.shutdown()


def _provider(gws: list[Gateway], **kw: object) -> contextlib.AbstractContextManager[Provider]:
    return run_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[gw.callback for gw in gws],
        post_logout_redirect_uris=[gw.url + "/" for gw in gws],
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class World:
    provider: Provider
    a: Gateway
    b: Gateway
    store: RedisServer


@pytest.fixture(scope="module")
def world(store: RedisServer, upstream: int) -> Iterator[World]:
    """Gateways A and B (two authz replicas sharing Redis) and a provider with 1-hour tokens."""
    gws = [Gateway("A", free_port()), Gateway("B", free_port())]
    with _provider(gws) as provider, gateways(provider, store, upstream, gws):
        yield World(provider, gws[0], gws[1], store)


@pytest.fixture(scope="module")
def short(store: RedisServer, upstream: int) -> Iterator[World]:
    """Two more replicas (S1, S2) whose provider issues ID tokens that live SHORT_TTL seconds,
    and whose sessions end after SHORT_IDLE seconds without a request."""
    gws = [Gateway("S1", free_port()), Gateway("S2", free_port())]
    idle = {"SESSION_IDLE_TIMEOUT": str(SHORT_IDLE)}
    with _provider(gws, id_token_ttl=SHORT_TTL) as provider, gateways(provider, store, upstream, gws, idle):
        yield World(provider, gws[0], gws[1], store)


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# -- helpers --------------------------------------------------------------------------


def start_login(client: httpx.Client, gw: Gateway, path: str = "/app") -> httpx.Response:
    """A browser navigation that must be sent to the provider."""
    resp = client.get(gw.url + path, headers=HTML)
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    return resp


def to_callback(client: httpx.Client, gw: Gateway, authorize: httpx.Response) -> str:
    """Log in at the provider from an authorization redirect; the callback URL it sends back."""
    resp = login_with_httpx(client, authorize.headers["location"], DEFAULT_USER, DEFAULT_PASSWORD, gw.callback)
    return urljoin(str(resp.url), resp.headers["location"])


def log_in(client: httpx.Client, gw: Gateway, path: str = "/app") -> httpx.Response:
    """The whole login; returns authz's answer to the callback (302 back, with the cookie)."""
    callback = to_callback(client, gw, start_login(client, gw, path))
    resp = client.get(callback, headers=HTML)
    assert resp.status_code == 302, (resp.status_code, resp.text[:500])
    return resp


def set_cookies(resp: httpx.Response) -> dict[str, str]:
    """Cookie name -> its whole Set-Cookie value."""
    return {value.split("=", 1)[0]: value for value in resp.headers.get_list("set-cookie")}


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in set_cookie.split(";")[1:]}


def session_id(client: httpx.Client) -> str:
    return next(c.value for c in client.cookies.jar if c.name == COOKIE)


def who(gw: Gateway, sid: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A request carrying only this session cookie (a second browser tab, or a copied cookie)."""
    return httpx.get(gw.url + "/api/whoami", headers={**JSON, **(headers or {}), "cookie": f"{COOKIE}={sid}"})


def stored(store: RedisServer, sid: str) -> dict | None:
    """The session record authz keeps in Redis for a session id (keys are digests)."""
    with redis.Redis(host="127.0.0.1", port=store.port, socket_timeout=2) as r:
        raw = r.get("authz:s:" + hashlib.sha256(sid.encode()).hexdigest())
    return json.loads(raw) if raw else None


@contextlib.contextmanager
def redis_commands(store: RedisServer) -> Iterator[bytearray]:
    """Everything sent to Redis while the block runs (its MONITOR stream)."""
    seen = bytearray()
    stop = threading.Event()
    sock = socket.create_connection(("127.0.0.1", store.port), timeout=2)
    sock.sendall(b"MONITOR\r\n")
    assert sock.recv(64).startswith(b"+OK")
    sock.settimeout(0.1)

    def read() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        time.sleep(0.2)  # let the last commands arrive
        stop.set()
        reader.join(timeout=2)
        sock.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; returns the seconds it took. Bounded in time and count."""
    started = time.monotonic()
    for _ in range(int(timeout / POLL) + 1):
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            break
        time.sleep(POLL)
    raise AssertionError(f"{what}: not within {timeout}s")


def sleep_until(deadline: float) -> None:
    """Sleep until the wall-clock time ``deadline`` (token expiry is wall-clock)."""
    delay = deadline - time.time()
    if delay > 0:
        time.sleep(min(delay, 10.0))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- unit-level: cookie attributes with production defaults ---------------------------


def test_cookies_are_secure_by_default() -> None:
    settings = Settings(
        issuers=(IssuerSettings(issuer="https://idp.example.com", audiences=(CLIENT_ID,)),),
        oidc=OIDCClientSettings(client_id=CLIENT_ID, redirect_url="https://app.example.com" + CALLBACK_PATH),
        login_issuer="https://idp.example.com",
    )
    policy = LoginPolicy(settings)
    cookie = policy.session_cookie("sid123")
    assert cookie.startswith(f"{COOKIE}=sid123;")
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= attributes(cookie)
    assert "Path=/" in cookie.split("; ") and "SameSite=Lax" in cookie.split("; ")
    _, _, redirect = policy.start("https://idp.example.com/auth", "/app", 0.0, lambda n: b"\x01" * n)
    binding = dict(redirect.headers)["set-cookie"]
    assert "secure" in attributes(binding) and f"Path={CALLBACK_PATH}" in binding.split("; ")


# -- 1. a browser logs in through Envoy -------------------------------------------------


def test_browser_login_through_envoy(world: World, browser: httpx.Client) -> None:
    a, discovery = world.a, world.provider.discovery()
    # Whatever Host the browser used, the provider is told exactly REDIRECT_URL.
    resp = browser.get(a.url + "/app", headers={**HTML, "host": "evil.example.com"})
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith(discovery["authorization_endpoint"] + "?")
    params = query(location)
    assert params["redirect_uri"] == a.callback
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["scope"] == SCOPES
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"] and params["state"] != params["nonce"]
    assert resp.headers["cache-control"] == "no-store"

    browser.cookies.set("theme", "dark", domain="127.0.0.1")
    authorize = start_login(browser, a, "/app?tab=notebooks")
    binding = set_cookies(authorize)
    assert len(binding) == 1
    [(binding_name, binding_cookie)] = binding.items()
    assert binding_name.startswith(COOKIE + "_login_") and len(binding_name) == len(COOKIE) + 7 + 12
    assert f"Path={CALLBACK_PATH}" in binding_cookie.split("; ")

    callback = to_callback(browser, a, authorize)
    assert set(query(callback)) >= {"code", "state", "iss"}
    done = browser.get(callback, headers=HTML)
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/app?tab=notebooks"
    assert done.headers["cache-control"] == "no-store"
    cookies = set_cookies(done)
    session = cookies[COOKIE]
    assert {"httponly", "samesite", "path", "max-age"} <= attributes(session)
    assert "secure" not in attributes(session)  # SESSION_COOKIE_SECURE=false for plain http
    assert "SameSite=Lax" in session.split("; ") and "Path=/" in session.split("; ")
    assert "Max-Age=0" in cookies[binding_name].split("; ")  # the login cookie is cleared
    sid = session_id(browser)
    assert sid != params["state"] and len(sid) >= 43

    page = browser.get(a.url + done.headers["location"], headers=HTML)
    assert page.status_code == 200
    assert "<span id=user>user@example.com</span>" in page.text

    seen = browser.get(a.url + "/api/data", headers=JSON).json()["headers"]
    assert seen["kubeflow-userid"] == DEFAULT_USER
    assert seen["kubeflow-groups"] == "team-a,everyone"
    assert "theme=dark" in seen["cookie"]
    assert COOKIE not in seen["cookie"] and sid not in json.dumps(seen)

    # Spoofed identity headers never reach the upstream next to a session.
    seen = browser.get(a.url + "/api/data", headers={**JSON, "kubeflow-userid": "mallory"}).json()["headers"]
    assert seen["kubeflow-userid"] == DEFAULT_USER

    # Only the session cookie: the upstream gets no Cookie header at all.
    seen = who(a, sid).json()["headers"]
    assert seen["kubeflow-userid"] == DEFAULT_USER and "cookie" not in seen

    # Nor does a public (SKIP_AUTH_URLS) path, which anyone may serve.
    seen = browser.get(a.url + "/public/x", headers=JSON).json()["headers"]
    assert "kubeflow-userid" not in seen and "theme=dark" in seen["cookie"] and COOKIE not in seen["cookie"]

    # Neither the session id nor the code ever appears in authz's log.
    logs = "".join(a.logs)
    assert sid not in logs and query(callback)["code"] not in logs


# -- 2. API clients get 401 JSON, never a redirect --------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", XHR),
        ("GET", JSON),
        ("GET", {}),
        ("POST", HTML),  # a form post is not a navigation we can replay after login
        ("GET", {**HTML, "sec-fetch-mode": "cors"}),  # fetch() asking for HTML
        ("GET", {**HTML, "x-requested-with": "XMLHttpRequest"}),
    ],
)
def test_api_request_without_credentials_gets_401_json(world: World, method: str, headers: dict[str, str]) -> None:
    resp = httpx.request(method, world.a.url + "/api/data", headers=headers)
    assert resp.status_code == 401
    assert "location" not in resp.headers
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["login_url"] == "/authservice/login"
    assert body["reason"] == "missing_credentials"
    assert resp.headers["www-authenticate"].startswith("Bearer ")
    assert "set-cookie" not in resp.headers
    # The login_url a single-page app sends the user to starts a login.
    resp = httpx.get(world.a.url + body["login_url"] + "?rd=/app/x", headers=HTML)
    assert resp.status_code == 302 and resp.headers["location"].startswith(
        world.provider.discovery()["authorization_endpoint"]
    )


# -- 3. two replicas share sessions; logout reaches both ----------------------------------


def test_session_is_shared_and_logout_reaches_the_other_replica(world: World, browser: httpx.Client) -> None:
    a, b, discovery = world.a, world.b, world.provider.discovery()
    log_in(browser, a)
    sid = session_id(browser)
    # Same browser, replica B (cookies on 127.0.0.1 are shared between ports).
    seen = browser.get(b.url + "/api/data", headers=JSON).json()["headers"]
    assert seen["kubeflow-userid"] == DEFAULT_USER
    assert who(b, sid).status_code == 200

    # A cross-site logout attempt changes nothing.
    resp = browser.post(a.url + LOGOUT_PATH, headers={**HTML, "origin": "https://evil.example.com"})
    assert resp.status_code == 403
    resp = browser.post(a.url + LOGOUT_PATH, headers={**HTML, "sec-fetch-site": "cross-site"})
    assert resp.status_code == 403
    assert who(b, sid).status_code == 200

    resp = browser.post(a.url + LOGOUT_PATH, headers={**HTML, "origin": a.url})
    assert resp.status_code == 302
    assert resp.headers["cache-control"] == "no-store"
    cleared = set_cookies(resp)[COOKIE]
    assert cleared.startswith(f"{COOKIE}=;") and "Max-Age=0" in cleared.split("; ")
    assert COOKIE not in {c.name for c in browser.cookies.jar}
    target = resp.headers["location"]
    assert target.startswith(discovery["end_session_endpoint"] + "?")
    params = query(target)
    assert params["post_logout_redirect_uri"] == a.url + "/"
    assert params["client_id"] == CLIENT_ID
    assert params["id_token_hint"].count(".") == 2

    # Replica A forgets at once; replica B within session.cache_ttl (2 s).
    assert who(a, sid).status_code == 401
    took = wait_for(lambda: who(b, sid).status_code == 401, 3.0, "logout on A denies the cookie on B")
    assert took <= 3.0
    resp = httpx.get(b.url + "/app", headers={**HTML, "cookie": f"{COOKIE}={sid}"})
    assert resp.status_code == 302 and resp.headers["location"].startswith(discovery["authorization_endpoint"])

    # The provider accepts the logout request and sends the browser back to the site.
    back = logout_with_httpx(browser, target, stop_prefix=a.url + "/")
    assert back.headers["location"] == a.url + "/"
    # The provider session is over too: the next login shows the login form again.
    authorize = start_login(browser, a)
    page = browser.get(authorize.headers["location"], follow_redirects=True)
    assert any(form.is_login for form in parse_forms(page.text)[0])

    # Logout again with the old cookie, or without one: still a clean logout.
    resp = httpx.post(a.url + LOGOUT_PATH, headers={**HTML, "origin": a.url})
    assert resp.status_code == 302 and COOKIE in set_cookies(resp)


def test_xhr_logout_answers_201_with_after_logout_url(world: World, browser: httpx.Client) -> None:
    a, b = world.a, world.b
    log_in(browser, b)
    sid = session_id(browser)
    resp = browser.post(a.url + LOGOUT_PATH, headers={**XHR, "origin": a.url})
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/json"
    after = resp.json()["afterLogoutURL"]
    assert after.startswith(world.provider.discovery()["end_session_endpoint"] + "?")
    assert query(after)["id_token_hint"]
    assert "Max-Age=0" in set_cookies(resp)[COOKIE].split("; ")
    wait_for(lambda: who(b, sid).status_code == 401, 3.0, "XHR logout on A denies the cookie on B")


# -- 4. refresh -------------------------------------------------------------------------


def test_expired_id_token_is_refreshed_without_the_user_noticing(short: World, browser: httpx.Client) -> None:
    s1, s2, store = short.a, short.b, short.store
    with redis_commands(store) as commands:
        _refreshes(s1, s2, store, browser)
    # The store never sees the session id, nor the logout CSRF token derived from it.
    sid = session_id(browser)
    assert sid.encode() not in commands
    assert LoginPolicy.csrf_token(sid).encode() not in commands
    assert b"authz:k:refresh:" in commands  # the refresh lock was taken


def _refreshes(s1: Gateway, s2: Gateway, store: RedisServer, browser: httpx.Client) -> None:
    log_in(browser, s1)
    sid = session_id(browser)
    first = stored(store, sid)
    assert first is not None and first["refresh_token"]
    expires = first["id_token_expires_at"]
    assert expires - time.time() <= SHORT_TTL + 1

    # Replica S2 reads the session (and caches it) shortly before the token expires.
    sleep_until(expires - 0.8)
    assert who(s2, sid).status_code == 200
    sleep_until(expires + 0.2)
    # S1 refreshes; S2 still holds the old record in its read cache and must not refresh
    # again with the rotated-away refresh token (that would end the whole grant).
    assert who(s1, sid).json()["headers"]["kubeflow-userid"] == DEFAULT_USER
    second = stored(store, sid)
    assert second is not None and second["id_token_expires_at"] > expires
    assert second["refresh_token"] != first["refresh_token"]  # the provider rotates
    assert who(s2, sid).status_code == 200
    assert who(s1, sid).status_code == 200

    # Second expiry: a page loading several resources at once, on both replicas.
    sleep_until(second["id_token_expires_at"] + 0.2)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda gw: who(gw, sid).status_code, [s1, s2, s1, s2, s1, s2]))
    assert codes == [200] * 6
    third = stored(store, sid)
    assert third is not None and third["id_token_expires_at"] > second["id_token_expires_at"]
    page = browser.get(s2.url + "/app", headers=HTML)
    assert page.status_code == 200 and "user@example.com" in page.text


def test_failed_refresh_sends_the_user_to_log_in_again(short: World, browser: httpx.Client) -> None:
    s1, store, discovery = short.a, short.store, short.provider.discovery()
    log_in(browser, s1)
    sid = session_id(browser)
    record = stored(store, sid)
    assert record is not None
    # Sign out at the provider only (another app did it): the grant and its refresh token end.
    end = discovery["end_session_endpoint"] + "?" + urlencode({"client_id": CLIENT_ID})
    logout_with_httpx(browser, end)
    assert who(s1, sid).status_code == 200  # the ID token is still valid: nothing to refresh yet

    sleep_until(record["id_token_expires_at"] + 0.2)
    resp = who(s1, sid, XHR)
    assert resp.status_code == 401, resp.text
    assert resp.json()["login_url"] == "/authservice/login"
    resp = browser.get(s1.url + "/app", headers=HTML)
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(discovery["authorization_endpoint"])
    assert stored(store, sid) is None  # the dead session is gone, not retried on every request
    assert "refresh failed; login needed" in "".join(s1.logs)


def test_failed_refresh_on_a_navigation_redirects_to_login(short: World, browser: httpx.Client) -> None:
    s2, store, discovery = short.b, short.store, short.provider.discovery()
    log_in(browser, s2)
    sid = session_id(browser)
    record = stored(store, sid)
    assert record is not None
    logout_with_httpx(browser, discovery["end_session_endpoint"] + "?" + urlencode({"client_id": CLIENT_ID}))
    sleep_until(record["id_token_expires_at"] + 0.2)
    resp = browser.get(s2.url + "/app/page", headers=HTML)
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(discovery["authorization_endpoint"])
    # ...and that login brings the user back to the page they were on.
    done = log_in(browser, s2, "/app/page")
    assert done.headers["location"] == "/app/page"


def test_idle_session_ends(short: World, browser: httpx.Client) -> None:
    s1, s2 = short.a, short.b
    log_in(browser, s1)
    sid = session_id(browser)
    assert who(s2, sid).status_code == 200
    time.sleep(SHORT_IDLE + 0.3)
    assert who(s2, sid, XHR).status_code == 401
    resp = browser.get(s1.url + "/app", headers=HTML)
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(short.provider.discovery()["authorization_endpoint"])


# -- 6. callback errors ---------------------------------------------------------------


def test_provider_error_page_is_escaped_with_a_retry_link(world: World) -> None:
    a = world.a
    url = a.callback + "?error=access_denied&error_description=" + quote("<script>alert(1)</script>")
    resp = httpx.get(url, headers=HTML)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["cache-control"] == "no-store"
    assert "<script>" not in resp.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    assert "access_denied" in resp.text
    forms_and_links = resp.text.split('href="', 1)
    assert "Try again" in resp.text and len(forms_and_links) == 2
    retry = forms_and_links[1].split('"', 1)[0].replace("&amp;", "&")
    assert retry.startswith("/authservice/login?")
    again = httpx.get(a.url + retry, headers=HTML)
    assert again.status_code == 302
    assert again.headers["location"].startswith(world.provider.discovery()["authorization_endpoint"])


def test_replayed_callback_is_refused(world: World, browser: httpx.Client) -> None:
    a = world.a
    callback = to_callback(browser, a, start_login(browser, a))
    assert browser.get(callback, headers=HTML).status_code == 302
    sid = session_id(browser)
    replay = browser.get(callback, headers=HTML)
    assert replay.status_code == 400
    assert "state_unknown" in replay.text and "Try again" in replay.text
    assert COOKIE not in set_cookies(replay)
    assert session_id(browser) == sid and who(a, sid).status_code == 200


def test_callback_from_another_browser_is_refused(world: World, browser: httpx.Client) -> None:
    a = world.a
    callback = to_callback(browser, a, start_login(browser, a))
    with httpx.Client(timeout=10) as other:
        resp = other.get(callback, headers=HTML)
        assert resp.status_code == 400
        assert "state_browser_mismatch" in resp.text
        assert COOKIE not in set_cookies(resp) and COOKIE not in {c.name for c in other.cookies.jar}


def test_id_token_with_another_nonce_is_refused(world: World, browser: httpx.Client) -> None:
    a, store = world.a, world.store
    authorize = start_login(browser, a)
    state = query(authorize.headers["location"])["state"]
    # Swap the remembered nonce, as if the provider's token were meant for another login.
    with redis.Redis(host="127.0.0.1", port=store.port, socket_timeout=2) as r:
        key = "authz:l:" + hashlib.sha256(state.encode()).hexdigest()
        record = json.loads(r.get(key))
        record["nonce"] = "another-login"
        r.set(key, json.dumps(record), px=60_000)
    resp = browser.get(to_callback(browser, a, authorize), headers=HTML)
    assert resp.status_code == 400
    assert "token_nonce_invalid" in resp.text
    assert COOKIE not in set_cookies(resp)


# -- 7. session fixation ---------------------------------------------------------------


def test_login_never_keeps_a_cookie_value_from_before(world: World, browser: httpx.Client) -> None:
    a = world.a
    browser.cookies.set(COOKIE, "attacker-chosen-value", domain="127.0.0.1")
    assert browser.get(a.url + "/app", headers=HTML).status_code == 302  # not a session
    log_in(browser, a)
    sid = session_id(browser)
    assert sid != "attacker-chosen-value"
    assert who(a, sid).status_code == 200
    assert who(a, "attacker-chosen-value").status_code == 401


# -- 8. several tabs log in at once -----------------------------------------------------


def test_two_tabs_logging_in_at_once_both_succeed(world: World, browser: httpx.Client) -> None:
    a = world.a
    first = start_login(browser, a, "/app/one")
    second = start_login(browser, a, "/app/two")
    assert query(first.headers["location"])["state"] != query(second.headers["location"])["state"]
    assert set(set_cookies(first)) != set(set_cookies(second))
    callback_one = to_callback(browser, a, first)
    callback_two = to_callback(browser, a, second)  # the provider session is reused
    done_two = browser.get(callback_two, headers=HTML)
    done_one = browser.get(callback_one, headers=HTML)
    assert (done_two.status_code, done_one.status_code) == (302, 302), done_one.text
    assert done_two.headers["location"] == "/app/two"
    assert done_one.headers["location"] == "/app/one"
    assert who(a, session_id(browser)).status_code == 200


@pytest.mark.parametrize("rd", ["https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com/"])
def test_login_never_sends_the_user_off_site(world: World, browser: httpx.Client, rd: str) -> None:
    a = world.a
    done = log_in(browser, a, "/authservice/login?" + urlencode({"rd": rd}))
    assert done.headers["location"] == "/"


def test_provider_outage_during_refresh_is_503_then_the_session_resumes(short: World, browser: httpx.Client) -> None:
    s1, store, provider = short.a, short.store, short.provider
    log_in(browser, s1)
    sid = session_id(browser)
    record = stored(store, sid)
    assert record is not None
    provider.stop()
    try:
        sleep_until(record["id_token_expires_at"] + 0.2)
        # Neither a login loop nor a logout: the session waits for the provider.
        resp = browser.get(s1.url + "/app", headers=HTML)
        assert resp.status_code == 503 and "location" not in resp.headers
        assert resp.json()["reason"] == "provider_unavailable"
        assert who(s1, sid, XHR).status_code == 503
    finally:
        provider.start()
    page = browser.get(s1.url + "/app", headers=HTML)
    assert page.status_code == 200 and "user@example.com" in page.text
    assert stored(store, sid)["id_token_expires_at"] > record["id_token_expires_at"]


def test_unreadable_session_record_means_log_in_again(world: World, browser: httpx.Client) -> None:
    a, store = world.a, world.store
    log_in(browser, a)
    sid = session_id(browser)
    key = "authz:s:" + hashlib.sha256(sid.encode()).hexdigest()
    with redis.Redis(host="127.0.0.1", port=store.port, socket_timeout=2) as r:
        record = json.loads(r.get(key))
        # A record written by another version of authz (a field this one does not know).
        r.set(key, json.dumps({**record, "added_later": 1}), px=60_000)
    time.sleep(2.1)  # past session.cache_ttl
    resp = browser.get(a.url + "/app", headers=HTML)
    assert resp.status_code == 302, resp.text
    assert resp.headers["location"].startswith(world.provider.discovery()["authorization_endpoint"])
    assert who(a, sid, XHR).status_code == 401
    done = log_in(browser, a)
    assert done.status_code == 302 and who(a, session_id(browser)).status_code == 200


def _refresh_at_provider(provider: Provider, refresh_token: str) -> httpx.Response:
    return httpx.post(
        provider.discovery()["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )


def test_logout_revokes_the_refresh_token(world: World, browser: httpx.Client) -> None:
    a, b = world.a, world.b
    log_in(browser, a)
    sid = session_id(browser)
    record = stored(world.store, sid)
    assert record is not None
    assert who(b, sid).status_code == 200
    # XHR logout on the other replica; the dashboard may never open afterLogoutURL.
    assert browser.post(b.url + LOGOUT_PATH, headers={**XHR, "origin": b.url}).status_code == 201
    resp = _refresh_at_provider(world.provider, record["refresh_token"])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


# -- 5. Redis outage (last: it restarts the shared Redis) -------------------------------


def test_redis_outage_fails_closed_and_recovers(world: World, browser: httpx.Client) -> None:
    a, store = world.a, world.store
    log_in(browser, a)
    sid = session_id(browser)
    record = stored(store, sid)
    assert record is not None
    id_token = record["id_token"]
    saved = store.dump()
    pid = a.proc.pid if a.proc else None
    store.stop()
    try:
        # Within session.cache_ttl a cached session may still pass; then it must be 503.
        wait_for(lambda: who(a, sid).status_code == 503, 3.0, "session request with Redis down")
        resp = browser.get(a.url + "/app", headers=HTML)
        assert resp.status_code == 503 and resp.json()["reason"] == "session_store_unavailable"
        assert "kubeflow-userid" not in resp.text
        # No session: still 503, never a login loop.
        resp = httpx.get(a.url + "/app", headers=HTML)
        assert resp.status_code == 503 and "location" not in resp.headers
        # Bearer tokens do not need Redis.
        resp = httpx.get(a.url + "/api/data", headers={**JSON, "authorization": f"Bearer {id_token}"})
        assert resp.status_code == 200
        assert resp.json()["headers"]["kubeflow-userid"] == DEFAULT_USER
    finally:
        store.start()
    store.restore(saved)
    # The same authz process, the same cookie: it works again on the first try.
    assert a.proc is not None and a.proc.poll() is None and a.proc.pid == pid
    resp = who(a, sid)
    assert resp.status_code == 200, resp.text
    assert resp.json()["headers"]["kubeflow-userid"] == DEFAULT_USER
    # And a fresh login works (what users see when Redis lost its data).
    with httpx.Client(timeout=10) as fresh:
        log_in(fresh, world.b)
        assert who(world.b, session_id(fresh)).status_code == 200
