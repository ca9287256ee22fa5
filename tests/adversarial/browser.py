"""A browser's view of the gateway, one CheckRequest at a time.

Keeps the cookies authz sets for the site (honouring Path and Max-Age=0) and sends them back
the way a browser would, in Envoy-shaped CheckRequests (``tests.support.servers.check_request``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from envoy.service.auth.v3 import external_auth_pb2 as pb

from tests.support.provider import DEFAULT_PASSWORD, DEFAULT_USER, Provider, login_with_httpx
from tests.support.servers import check_request, headers_of

NAVIGATE = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
HOST = "app.example.com"
ORIGIN = f"https://{HOST}"


def set_cookies(resp: pb.CheckResponse) -> list[str]:
    which = resp.ok_response if resp.HasField("ok_response") else resp.denied_response
    return [h.header.value for h in which.headers if h.header.key.lower() == "set-cookie"]


def location(resp: pb.CheckResponse) -> str | None:
    return headers_of(resp).get("location")


def target(url: str) -> str:
    """The request target (path and query) of an absolute or relative URL."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Browser:
    check: Callable[[pb.CheckRequest], pb.CheckResponse]
    jar: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (value, path)

    def cookie_header(self, path: str) -> str:
        plain = path.split("?", 1)[0]
        return "; ".join(
            f"{name}={value}"
            for name, (value, cpath) in self.jar.items()
            if plain == cpath or plain.startswith(cpath.rstrip("/") + "/")
        )

    def request(
        self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None, navigate: bool = True
    ) -> pb.CheckResponse:
        sent = dict(NAVIGATE if navigate else {})
        cookie = self.cookie_header(path)
        if cookie:
            sent["cookie"] = cookie
        sent.update(headers or {})
        resp = self.check(check_request(path, sent, method=method, host=HOST))
        self.store(resp)
        return resp

    def store(self, resp: pb.CheckResponse) -> None:
        for value in set_cookies(resp):
            first, *attrs = [p.strip() for p in value.split(";")]
            name, _, val = first.partition("=")
            attributes = {k.lower(): v for k, _, v in (a.partition("=") for a in attrs)}
            if attributes.get("max-age") == "0":
                self.jar.pop(name, None)
            else:
                self.jar[name] = (val, attributes.get("path", "/"))


def outcome_of(resp: pb.CheckResponse) -> str:
    if resp.status.code == 0:
        return "OK"
    return f"{resp.denied_response.status.code} {resp.status.message}"


@dataclass
class Person:
    """One browser with the real provider: its cookies at the site and at the provider."""

    site: Browser
    at_provider: httpx.Client
    callback_url: str

    def start(self, path: str = "/app") -> str:
        """The provider's authorization URL this browser is sent to."""
        resp = self.site.request(path)
        assert outcome_of(resp) == "302 login_redirect", outcome_of(resp)
        return location(resp) or ""

    def provider_login(self, authorize_url: str, user: str = DEFAULT_USER) -> str:
        """The callback URL the provider sends this browser back to (not followed)."""
        resp = login_with_httpx(self.at_provider, authorize_url, user, DEFAULT_PASSWORD, self.callback_url)
        return str(resp.headers["location"])

    def callback(self, url: str, headers: dict[str, str] | None = None) -> pb.CheckResponse:
        return self.site.request(target(url), headers=headers)

    def log_in(self, path: str = "/app", user: str = DEFAULT_USER) -> pb.CheckResponse:
        return self.callback(self.provider_login(self.start(path), user))


def provider_id_token(provider: Provider, client: httpx.Client, client_id: str, secret: str, callback: str) -> str:
    """An ID token for ``client_id`` from the provider's own code flow, run by the test."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"client_id": client_id, "response_type": "code", "redirect_uri": callback,
              "scope": "openid email profile groups", "state": secrets.token_urlsafe(16),
              "nonce": secrets.token_urlsafe(16), "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
    url = f"{provider.discovery()['authorization_endpoint']}?{urlencode(params)}"
    resp = login_with_httpx(client, url, DEFAULT_USER, DEFAULT_PASSWORD, callback)
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    form: dict[str, Any] = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback,
                            "code_verifier": verifier}  # fmt: skip
    tokens = httpx.post(provider.discovery()["token_endpoint"], data=form, auth=(client_id, secret), timeout=10)
    tokens.raise_for_status()
    return str(tokens.json()["id_token"])
