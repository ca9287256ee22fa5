"""The OpenID Provider failing: down at start, down later, slow, serving bad key sets.

authz runs as a real process (``authz serve``); the provider is the real one (demo/provider)
or, for the key-set bodies, the scriptable discovery/JWKS server (tests/support/idp.py).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.adversarial.browser import Browser, Person, outcome_of, provider_id_token
from tests.adversarial.inproc import build_with_clocks, running
from tests.faults.procs import NOT_SERVING, SERVING, Authz, authz, outcome
from tests.faults.proxy import delay_proxy
from tests.faults.table import fault
from tests.support.idp import IdP, run_idp
from tests.support.provider import Provider, run_provider
from tests.support.servers import check_request, free_port
from tests.support.tokens import AUDIENCE, FakeClock, claims, jwks, rs256, unsigned

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-faults"
CLIENT_SECRET = "authz-faults-secret"
CALLBACK = "https://app.example.com/authservice/oidc/callback"


def bearer(token: str, path: str = "/app") -> Any:
    return check_request(path, {"authorization": f"Bearer {token}"})


def login_env(issuer: str, **extra: str) -> dict[str, str]:
    return {"OIDC_PROVIDER": issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "REDIRECT_URL": CALLBACK,
            "OIDC_SCOPES": "openid email profile groups", **extra}  # fmt: skip


def test_provider_down_at_start_then_up() -> None:
    port = free_port()
    idp = IdP(port)
    key = rs256()
    idp.state.jwks = jwks(key)
    idp.state.issuer = f"http://127.0.0.1:{port}"
    with authz({"OIDC_PROVIDER": idp.state.issuer, "CLIENT_ID": AUDIENCE}, wait=False) as a:
        a.wait_health(NOT_SERVING)
        time.sleep(1.0)
        statuses = {a.health() for _ in range(5)}
        denied = outcome(a.check(bearer(key.sign(claims(iss=idp.state.issuer)))))
        ready = a.readyz()
        idp.start()
        try:
            recovered = a.wait_health(SERVING, timeout=40)
            after = outcome(a.check(bearer(key.sign(claims(iss=idp.state.issuer)))))
        finally:
            idp.stop()
    fault("provider down at start",
          "health NOT_SERVING and /readyz 503 while down, tokens 503, SERVING once the provider is up",
          f"health {sorted(statuses)} (2=NOT_SERVING), readyz {ready}, token {denied!r}; "
          f"SERVING {recovered:.1f}s after the provider came up, then {after!r}",
          statuses == {NOT_SERVING} and ready == 503 and denied == "503 keys_unavailable" and after == "OK"
          and recovered < 35)  # fmt: skip


@contextlib.contextmanager
def provider_and_authz(issuer_port: int | None = None, provider_port: int | None = None) -> Iterator[tuple[Provider, Authz]]:
    issuer = f"http://127.0.0.1:{issuer_port}" if issuer_port else None
    with run_provider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[CALLBACK],
                      port=provider_port, issuer=issuer) as provider, authz(login_env(provider.issuer)) as a:  # fmt: skip
        yield provider, a


def person(a: Authz, clients: list[httpx.Client]) -> Person:
    client = httpx.Client(timeout=20)
    clients.append(client)
    return Person(Browser(a.check), client, CALLBACK)


def test_provider_down_after_start() -> None:
    clients: list[httpx.Client] = []
    try:
        with provider_and_authz() as (provider, a):
            signed_in = person(a, clients)
            assert outcome_of(signed_in.log_in()) == "302 login_complete"
            pending = person(a, clients)
            pending_callback = pending.provider_login(pending.start())
            fresh_token = provider_id_token(provider, clients[0], CLIENT_ID, CLIENT_SECRET, CALLBACK)
            provider.stop()
            session = outcome_of(signed_in.site.request("/app"))
            token = outcome(a.check(bearer(fresh_token)))  # never seen before: verified with the cached keys
            health = a.health()
            started = time.monotonic()
            callback = outcome_of(pending.callback(pending_callback))
            callback_s = time.monotonic() - started
            newcomer = person(a, clients)
            start = outcome_of(newcomer.site.request("/app"))
            provider.start()
            recovered = outcome_of(newcomer.callback(newcomer.provider_login(newcomer.start())))
    finally:
        for c in clients:
            c.close()
    fault("provider down after start",
          "sessions and cached keys keep working, health SERVING; a login callback gets 503 within the "
          "exchange timeout (4 s); logins work again once the provider is back",
          f"session {session!r}, new token {token!r}, health {health} (1=SERVING); callback {callback!r} in "
          f"{callback_s:.2f}s; login start {start!r} (discovery cached); after restart {recovered!r}",
          session == "OK" and token == "OK" and health == SERVING and callback == "503 provider_unavailable"
          and callback_s < 4.5 and recovered == "302 login_complete")  # fmt: skip


def test_cached_keys_stop_at_the_end_of_the_stale_window() -> None:
    """In-process, with the key manager's clock handed in: hours of outage in a second."""
    from tests.adversarial.inproc import settings_from_env

    monotonic = FakeClock()
    key = rs256()
    with run_idp() as idp:
        idp.state.jwks = jwks(key)
        settings = settings_from_env({"OIDC_PROVIDER": idp.issuer, "CLIENT_ID": AUDIENCE})
        window = settings.jwks_stale_window
        with running(build_with_clocks(settings, keys_clock=monotonic)) as app:
            idp.stop()
            monotonic.advance(900 + window - 60)  # refresh interval (no max-age) + stale window, less a minute
            inside = outcome(app.check(bearer(key.sign(claims(iss=idp.issuer, sub="inside")))))
            monotonic.advance(120)
            outside = outcome(app.check(bearer(key.sign(claims(iss=idp.issuer, sub="outside")))))
            app.wait_health(NOT_SERVING, timeout=5)
    fault("keys past the stale window",
          f"cached keys used up to the refresh interval + stale window ({window / 3600:g} h), then 503 and NOT_SERVING",
          f"a minute before the end {inside!r}, a minute after {outside!r}, health NOT_SERVING",
          inside == "OK" and outside == "503 keys_unavailable")  # fmt: skip


def test_slow_provider() -> None:
    """Every answer of the provider takes 10 s: cached paths must not notice, the callback must fail fast."""
    clients: list[httpx.Client] = []
    provider_port = free_port()
    try:
        with delay_proxy(provider_port) as proxy, provider_and_authz(proxy.port, provider_port) as (provider, a):
            signed_in = person(a, clients)
            assert outcome_of(signed_in.log_in()) == "302 login_complete"
            pending = person(a, clients)
            pending_callback = pending.provider_login(pending.start())
            token = provider_id_token(provider, clients[0], CLIENT_ID, CLIENT_SECRET, CALLBACK)
            assert outcome(a.check(bearer(token))) == "OK"
            unknown_kid = unsigned({"alg": "RS256", "kid": secrets.token_hex(8)},
                                   claims(iss=provider.issuer, aud=CLIENT_ID), b"x" * 256)  # fmt: skip
            proxy.delay = 10.0
            results: dict[str, Any] = {}

            def timed(name: str, fn: Any) -> None:
                started = time.monotonic()
                results[name] = (fn(), time.monotonic() - started)

            threads = [
                threading.Thread(target=timed, args=("callback", lambda: outcome_of(pending.callback(pending_callback)))),
                threading.Thread(target=timed, args=("unknown_kid", lambda: outcome(a.check(bearer(unknown_kid))))),
            ]
            for t in threads:
                t.start()
            latencies, decisions = [], set()
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                for req in (bearer(token), check_request("/app", {"cookie": signed_in.site.cookie_header("/app")})):
                    started = time.monotonic()
                    decisions.add(outcome(a.check(req)))
                    latencies.append(time.monotonic() - started)
            for t in threads:
                t.join(timeout=20)
            proxy.delay = 0.0
            again = outcome_of(person(a, clients).log_in())
    finally:
        for c in clients:
            c.close()
    callback, callback_s = results["callback"]
    kid, kid_s = results["unknown_kid"]
    latencies.sort()
    fault("slow provider (10 s per answer)",
          "cached-path Checks (token, session) unaffected; the callback fails with 503 before Envoy's 5 s "
          "ext_authz timeout; logins work once it is fast again",
          f"{len(latencies)} cached Checks {sorted(decisions)}, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms; callback {callback!r} in {callback_s:.2f}s; unknown kid {kid!r} "
          f"in {kid_s:.2f}s; afterwards login {again!r}",
          decisions == {"OK"} and latencies[len(latencies) // 2] < 0.02 and latencies[int(len(latencies) * 0.99)] < 0.25
          and latencies[-1] < 1.0 and callback == "503 provider_unavailable" and callback_s < 5.0
          and kid == "401 token_unknown_kid" and again == "302 login_complete")  # fmt: skip


class _Elsewhere(BaseHTTPRequestHandler):
    hits = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


BAD_BODIES: dict[str, dict[str, Any]] = {
    "HTTP 500": {"status": 500},
    "HTML": {"body": b"<html><body>502 Bad Gateway</body></html>"},
    "{}": {"body": b"{}"},
    "keys: []": {"body": b'{"keys": []}'},
    "5 MB": {"body": b'{"keys": [' + b" " * (5 << 20) + b"]}"},
    "302 elsewhere": {"redirect": True},
}


def test_bad_jwks_bodies_keep_the_old_keys(tmp_path: Path) -> None:
    """One authz process trusting one issuer per bad body (the unknown-kid refetch is rate limited per issuer)."""
    elsewhere = ThreadingHTTPServer(("127.0.0.2", 0), _Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    key = rs256()
    observed, ok = [], True
    try:
        with contextlib.ExitStack() as stack:
            idps = {name: stack.enter_context(run_idp()) for name in BAD_BODIES}
            for idp in idps.values():
                idp.state.jwks = jwks(key)
            config = tmp_path / "authz.yaml"
            config.write_text(yaml.safe_dump({"issuers": [{"issuer": i.issuer, "audiences": [AUDIENCE]} for i in idps.values()]}))
            a = stack.enter_context(authz({}, "--config", str(config)))
            for name, idp in idps.items():
                spec = BAD_BODIES[name]
                idp.state.status = spec.get("status", 200)
                idp.state.body = spec.get("body")
                if spec.get("redirect"):
                    idp.state.redirect_to = f"http://127.0.0.2:{elsewhere.server_address[1]}/keys"
                forced = outcome(a.check(bearer(key.sign(claims(iss=idp.issuer), {"kid": "rotated"}))))
                fetches = idp.state.requests["/keys"]
                kept = outcome(a.check(bearer(key.sign(claims(iss=idp.issuer, sub=f"after-{name}")))))
                observed.append(f"{name}: refetch {forced!r}, old key {kept!r}")
                ok = ok and forced == "401 token_unknown_kid" and fetches == 2 and kept == "OK"
            health = a.health()
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    observed.append(f"health {health}; server redirected to: {_Elsewhere.hits} requests")
    fault("bad JWKS bodies", "a refetch that gets a bad body keeps the old keys (and health); a redirect off the "
          "provider's host is not followed", "; ".join(observed), ok and health == SERVING and _Elsewhere.hits == 0)  # fmt: skip
