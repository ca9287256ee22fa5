"""What the fuzzers run: authz's whole Check path in this process, and the properties it must keep.

One ``Harness`` holds a real CheckHandler (engine, key manager reading a JWKS file, login flow
with an in-memory session store holding one genuine session) on its own event loop. Each
``check_*`` function takes one fuzzer input, runs it, and raises ``PropertyFailed`` when a
property breaks:

- nothing crashes: the answer is never the ``internal_error`` deny of an unhandled exception;
- nothing is let through without a credential that is genuinely valid: a token whose signing
  input and signature are exactly those of a token the issuer signed (and whose claims pass the
  rules), or the genuine session cookie, or a path under a skip rule that no decoder can move out
  of it;
- every spelling of an identity header the client sent is removed or overwritten.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz import cookies, redirects
from authz.engine import Engine
from authz.fetch import Fetcher
from authz.handler import CheckHandler
from authz.jwks import KeyManager
from authz.login import LoginPolicy
from authz.login_flow import LoginFlow
from authz.oidc_client import OIDCClient
from authz.paths import PathRules
from authz.sessions import MemoryStore, Session
from authz.settings import IssuerSettings, OIDCClientSettings, SessionSettings, Settings
from tests.adversarial.oracles import off_site, resolved, under
from tests.support.servers import check_request
from tests.support.tokens import SigningKey, claims, es256, jwks, rs256

# Closed port on loopback: nothing here may ever be fetched, and if it were, it stays local.
ISSUER = "http://127.0.0.1:9"
AUDIENCE = "authz-fuzz"
SKIP_RULES = ("/public/", "/healthz")
COOKIE = "authservice_session"
ORIGIN = "https://app.example.com"
IDENTITY = ("kubeflow-userid", "kubeflow-groups")


MAX_TIMESTAMP = 253402300799  # the year 9999
UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class PropertyFailed(AssertionError):
    pass


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class Answer:
    allowed: bool
    status: int
    reason: str
    set_headers: dict[str, str]
    removed: tuple[str, ...]


class Harness:
    def __init__(self) -> None:
        self.rsa: SigningKey = rs256("fuzz-rsa", 0)
        self.ec: SigningKey = es256("fuzz-ec")
        self.attacker: SigningKey = es256("fuzz-ec")  # the genuine EC key's kid, another key
        fd, self._jwks_path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(jwks(self.rsa, self.ec), fh)
        issuer = IssuerSettings(issuer=ISSUER, audiences=(AUDIENCE,), jwks_file=self._jwks_path)
        self.settings = Settings(
            issuers=(issuer,), skip_auth_urls=SKIP_RULES, login_issuer=ISSUER,
            oidc=OIDCClientSettings(client_id=AUDIENCE, redirect_url=f"{ORIGIN}/authservice/oidc/callback",
                                    auth_url=f"{ISSUER}/auth"),
            session=SessionSettings(),
        )  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.keys = KeyManager(self.settings.issuers, Fetcher(), stale_window=self.settings.jwks_stale_window)
        self.engine = Engine(self.settings)
        self.store = MemoryStore(1000, time.time)
        client = OIDCClient(self.settings.oidc, None)
        flow = LoginFlow(LoginPolicy(self.settings), self.engine, self.keys, self.store, client, clock=time.time)
        self.handler = CheckHandler(self.engine, self.keys, login=flow)
        self.skip = PathRules(SKIP_RULES)
        self.sid = "S" * 10 + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        now = time.time()
        session = Session(user="alice@example.com", groups=("team-a",), issuer=ISSUER, id_token="", refresh_token="",
                          id_token_expires_at=now + 86400, created_at=now, last_seen=now)  # fmt: skip
        self.loop.run_until_complete(self._start(session))
        base = claims(iss=ISSUER, aud=AUDIENCE, exp=int(time.time()) + 86400)
        self.tokens = [self.rsa.sign(base), self.ec.sign(base), self.rsa.sign({**base, "groups": []})]
        self.genuine = {self._fingerprint(t) for t in self.tokens}

    async def _start(self, session: Session) -> None:
        self.keys.start()
        for _ in range(200):
            if self.keys.ready:
                break
            await asyncio.sleep(0.01)
        assert self.keys.ready, "fuzz keys not loaded"
        await self.store.put(self.sid, session, 86400)

    @staticmethod
    def _fingerprint(token: str) -> tuple[str, bytes] | None:
        """(signing input, decoded signature): what makes a token the one the issuer signed."""
        parts = token.strip().split(".")
        if len(parts) != 3:
            return None
        try:
            return f"{parts[0]}.{parts[1]}", _b64d(parts[2])
        except (ValueError, TypeError):
            return None

    def is_genuine(self, token: str) -> bool:
        return self._fingerprint(token) in self.genuine

    def close(self) -> None:
        self.loop.run_until_complete(self.keys.close())
        self.loop.close()
        os.unlink(self._jwks_path)

    # -- running one request --------------------------------------------------------------

    def run(self, request: pb.CheckRequest) -> Answer:
        resp = self.loop.run_until_complete(self.handler.check(request))
        if resp.status.code == 0:
            ok = resp.ok_response
            return Answer(True, 200, "", {h.header.key: h.header.value for h in ok.headers}, tuple(ok.headers_to_remove))
        denied = resp.denied_response
        return Answer(False, denied.status.code, resp.status.message, {h.header.key: h.header.value for h in denied.headers}, ())

    def answer(self, path: str, headers: dict[str, str], method: str = "GET") -> Answer:
        result = self.run(check_request(path, headers, method=method))
        if result.reason == "internal_error" or (result.status >= 500 and result.status != 503):
            raise PropertyFailed(f"crash-shaped answer {result.status} {result.reason} for {path!r} {headers!r}")
        return result


def under_skip_rule(path: str) -> bool:
    return under(path, SKIP_RULES)


def browser_stays_on_site(target: str) -> bool:
    return not off_site(target, ORIGIN)


# -- the properties, one per kind of input ----------------------------------------------------


def check_token(h: Harness, token: str, path: str = "/app") -> None:
    """Any Authorization value: allowed only for a genuine token, never a crash."""
    value = token if token[:7].lower() == "bearer " else f"Bearer {token}"
    result = h.answer(path, {"authorization": value})
    if result.allowed and not h.is_genuine(value[7:]) and not h.skip.matches(path):
        raise PropertyFailed(f"token let through: {value!r}")
    if result.allowed:
        _identity_overwritten(result, {})


def check_signed_claims(h: Harness, header: dict[str, Any], payload: dict[str, Any], key: str) -> None:
    """Tokens signed by the genuine key (or the attacker's) over fuzzed headers and claims: let
    through only when the claims pass the rules, checked here independently of authz."""
    signer = {"rsa": h.rsa, "ec": h.ec, "attacker": h.attacker}[key]
    from tests.support import forge

    try:
        token = forge.sign(signer, header, payload, alg=signer.alg)
    except (TypeError, ValueError):
        return
    result = h.answer("/app", {"authorization": f"Bearer {token}"})
    if not result.allowed:
        return
    now = time.time()
    exp, aud, user = payload.get("exp"), payload.get("aud"), payload.get("email")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    problems = [
        key == "attacker" and "signed by the attacker's key",
        header.get("alg") != signer.alg and f"header alg {header.get('alg')!r}",
        header.get("kid") not in (None, signer.kid) and f"kid {header.get('kid')!r}",
        "crit" in header and "crit present",
        payload.get("iss") != ISSUER and f"iss {payload.get('iss')!r}",
        AUDIENCE not in auds and f"aud {aud!r}",
        len(auds) > 1 and payload.get("azp") != AUDIENCE and "several audiences without our azp",
        not (_number(exp) and now - 60 < exp <= MAX_TIMESTAMP) and f"exp {exp!r}",
        *[f"{name} {payload[name]!r}" for name in ("nbf", "iat")
          if payload.get(name) is not None and not (_number(payload[name]) and 0 <= payload[name] <= now + 60)],
        not (isinstance(user, str) and user and not UNSAFE_HEADER_CHARS.search(user)) and f"user {user!r}",
        result.set_headers.get("kubeflow-userid") != user and "user header differs from the claim",
    ]
    found = [p for p in problems if p]
    if found:
        raise PropertyFailed(f"let through despite {found}: header {header!r} payload {payload!r}")


def check_cookie(h: Harness, header: str, navigate: bool) -> None:
    """Any Cookie header: a session only for the genuine session id, never a crash."""
    headers = {"cookie": header}
    if navigate:
        headers["accept"] = "text/html"
    result = h.answer("/app", headers)
    if result.allowed:
        pairs = [p.strip() for p in header.split(";")]
        if f"{COOKIE}={h.sid}" not in pairs and f'{COOKIE}="{h.sid}"' not in pairs:
            raise PropertyFailed(f"session without the genuine id: {header!r}")
        sent = result.set_headers.get("cookie")
        if sent is not None and any(p.strip().partition("=")[0] == COOKIE for p in sent.split(";")):
            raise PropertyFailed(f"session cookie passed upstream: {sent!r}")
    # What authz parses is bounded and never raises.
    parsed = cookies.parse(header)
    if len(parsed) > cookies.MAX_COOKIES:
        raise PropertyFailed("more cookies parsed than the bound")


def check_headers(h: Harness, headers: dict[str, str], with_token: bool, path: str) -> None:
    """Arbitrary header names and values, with or without a genuine token."""
    sent = dict(headers)
    if with_token:
        sent["authorization"] = f"Bearer {h.tokens[0]}"
    result = h.answer(path, sent)
    if result.allowed:
        token = sent.get("authorization", "")
        if not (with_token and token == f"Bearer {h.tokens[0]}") and not h.skip.matches(path):
            raise PropertyFailed(f"let through without a credential: {path!r} {headers!r}")
        _identity_overwritten(result, sent)


def _identity_overwritten(result: Answer, sent: dict[str, str]) -> None:
    # As Envoy applies the answer: it refuses a request with a header name that is not an ASCII
    # token (RFC 9110), holds every name lower-cased, and sets and removes headers by that name.
    gone = {n.lower() for n in result.removed} | {n.lower() for n in result.set_headers}
    for name in sent:
        if name.isascii() and name.lower().replace("_", "-") in IDENTITY and name.lower() not in gone:
            raise PropertyFailed(f"spoofed {name!r} would reach the upstream")


def check_path(h: Harness, path: str, method: str) -> None:
    """Any path without credentials: let through only under a skip rule no decoder escapes."""
    result = h.answer(path, {}, method=method)
    matched = h.skip.matches(path)
    if result.allowed and not matched:
        raise PropertyFailed(f"let through without credentials: {path!r}")
    if matched and not under_skip_rule(resolved(path)):
        raise PropertyFailed(f"skip rule matched a path that resolves to {resolved(path)!r}: {path!r}")


def check_redirect(h: Harness, value: str) -> None:
    """A remembered page or rd= value is used only when a browser stays on the site with it."""
    if redirects.safe_relative(value):
        if not browser_stays_on_site(value) or re.search(r"[\x00-\x1f\x7f]", value):
            raise PropertyFailed(f"unsafe redirect target accepted: {value!r}")


def check_raw_request(h: Harness, data: bytes) -> None:
    """Arbitrary bytes as a serialized CheckRequest."""
    try:
        request = pb.CheckRequest.FromString(data)
    except Exception:
        return
    result = h.run(request)
    if result.reason == "internal_error":
        raise PropertyFailed(f"crash on CheckRequest {data!r}")
    path = request.attributes.request.http.path or request.attributes.request.http.headers.get(":path", "")
    if result.allowed and not h.skip.matches(path):
        auth = dict(request.attributes.request.http.headers).get("authorization", "")
        if not h.is_genuine(auth[7:]):
            raise PropertyFailed(f"raw CheckRequest let through: {data!r}")
