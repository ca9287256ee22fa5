"""A scripted user at the demo provider's login page, with httpx.

Two uses: :func:`id_token` plays a command-line client that gets an ID token for itself
(authorization code + PKCE, the way a CLI would), so the demo can print a working ``curl``;
:func:`browser_login` plays a browser going through the gateway, which exercises authz's own
login flow (redirect, callback, session cookie) end to end.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

BROWSER_HEADERS = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
_MAX_STEPS = 20


class LoginError(RuntimeError):
    """The scripted login did not end where expected; the message says where it stopped."""


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    user_field: str = ""
    password_field: str = ""


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._open: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = _Form(action=a.get("action", ""), method=a.get("method", "get").upper())
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind == "password":
                self._open.password_field = a["name"]
            elif kind in ("text", "email") and not self._open.user_field:
                self._open.user_field = a["name"]
            if kind not in ("submit", "button", "reset"):
                self._open.fields.setdefault(a["name"], a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def _forms(response: httpx.Response) -> list[_Form]:
    if not response.headers.get("content-type", "").startswith("text/html"):
        return []
    parser = _Forms()
    parser.feed(response.text)
    return parser.forms


def _drive(
    client: httpx.Client, response: httpx.Response, username: str, password: str, stop_prefix: str | None
) -> httpx.Response:
    """Follow redirects and submit the login form; stop at a redirect to ``stop_prefix``
    (returned unfollowed) or, with ``stop_prefix`` None, at the first page without a login form."""
    submitted = False
    for _ in range(_MAX_STEPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if stop_prefix is not None and target.startswith(stop_prefix):
                return response
            response = client.get(target, headers=BROWSER_HEADERS)
            continue
        login_forms = [f for f in _forms(response) if f.password_field]
        if response.status_code != 200 or not login_forms:
            if stop_prefix is None and response.status_code == 200:
                return response
            raise LoginError(f"stopped at HTTP {response.status_code} {response.url}: {response.text[:300]}")
        form = login_forms[0]
        if submitted:
            raise LoginError(f"the provider showed its login form again at {response.url}: wrong password?")
        data = {**form.fields, form.user_field or "username": username, form.password_field: password}
        submitted = True
        action = urljoin(str(response.url), form.action or str(response.url))
        response = client.post(action, data=data, headers=BROWSER_HEADERS)
    raise LoginError(f"no end after {_MAX_STEPS} steps, last at {response.url}")


def id_token(
    discovery: dict[str, object],
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    username: str,
    password: str,
    scopes: str = "openid email groups profile",
) -> str:
    """Log in as ``username`` and return the provider's ID token (audience ``client_id``).

    ``redirect_uri`` must be registered with the provider; it is never fetched: the code is
    read from the redirect and exchanged directly. Raises :class:`LoginError`.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scopes,
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(timeout=10, trust_env=False) as client:
        start = client.get(f"{discovery['authorization_endpoint']}?{query}")
        redirect = _drive(client, start, username, password, redirect_uri)
        params = parse_qs(urlsplit(redirect.headers["location"]).query)
        if params.get("state") != [state] or "code" not in params:
            raise LoginError(f"the provider redirected without a code: {params.get('error', ['?'])[0]}")
        tokens = client.post(
            str(discovery["token_endpoint"]),
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client_id, client_secret),
        )
        if tokens.status_code != 200 or "id_token" not in tokens.json():
            raise LoginError(f"token endpoint answered HTTP {tokens.status_code}: {tokens.text[:300]}")
        return str(tokens.json()["id_token"])


def browser_login(client: httpx.Client, url: str, username: str, password: str) -> httpx.Response:
    """Open ``url`` as a browser would, log in at the provider, and return the page that the
    gateway finally serves. The session cookie stays in ``client``. Raises :class:`LoginError`."""
    return _drive(client, client.get(url, headers=BROWSER_HEADERS), username, password, None)
