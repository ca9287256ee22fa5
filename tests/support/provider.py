"""Run the local OpenID Provider (demo/provider/server.js) and drive its login pages over HTTP.

``run_provider`` starts ``node demo/provider/server.js`` on 127.0.0.1 and yields a ``Provider``
that can be stopped and started again on the same port (to simulate an outage). Signing keys,
sessions and tokens live in a private data directory, so they survive such a restart, as they do
with Dex's storage. ``login_with_httpx`` follows an authorization redirect chain with an
``httpx.Client``, submits the login form and stops at the callback redirect.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = REPO_ROOT / "demo" / "provider"
SERVER_JS = PROVIDER_DIR / "server.js"
START_TIMEOUT = 20.0

DEFAULT_USER = "user@example.com"
DEFAULT_PASSWORD = "password"
OTHER_USER = "other@example.com"


class Provider:
    """One local provider process; ``start()``/``stop()`` may be called any number of times."""

    def __init__(
        self,
        *,
        port: int | None = None,
        client_id: str,
        client_secret: str,
        redirect_uris: Sequence[str],
        post_logout_redirect_uris: Sequence[str] = (),
        id_token_ttl: int = 3600,
        access_token_ttl: int = 3600,
        users: list[dict[str, Any]] | None = None,
        issuer: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.issuer = (issuer or f"http://127.0.0.1:{self.port}").rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.post_logout_redirect_uris = list(post_logout_redirect_uris)
        self.data_dir = Path(tempfile.mkdtemp(prefix="authz-provider-"))
        self.log_path = self.data_dir / "provider.log"
        self._env = {
            "PROVIDER_PORT": str(self.port),
            "PROVIDER_ISSUER": self.issuer,
            "CLIENT_ID": client_id,
            "CLIENT_SECRET": client_secret,
            "REDIRECT_URIS": ",".join(self.redirect_uris),
            "POST_LOGOUT_REDIRECT_URIS": ",".join(self.post_logout_redirect_uris),
            "ID_TOKEN_TTL": str(id_token_ttl),
            "ACCESS_TOKEN_TTL": str(access_token_ttl),
            "PROVIDER_DATA_DIR": str(self.data_dir),
            **({"DEMO_USERS": json.dumps(users)} if users is not None else {}),
            **(env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._discovery: dict[str, Any] | None = None

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def discovery(self) -> dict[str, Any]:
        """The discovery document, as fetched when the provider last started."""
        if self._discovery is None:
            self._discovery = httpx.get(self.discovery_url, timeout=5).json()
        return self._discovery

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (scripts/bootstrap.sh installs it)")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"run `npm ci` in {PROVIDER_DIR} first (make install does it)")
        env = {**os.environ, **self._env}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [node, str(SERVER_JS)],
                cwd=PROVIDER_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"provider exited with {code}:\n{self.logs()[-4000:]}")
            try:
                response = httpx.get(self.discovery_url, timeout=1)
                if response.status_code == 200:
                    self._discovery = response.json()
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"provider not ready after {START_TIMEOUT:.0f}s:\n{self.logs()[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        """Stop the process and remove its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Provider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def run_provider(
    *,
    port: int | None = None,
    client_id: str,
    client_secret: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: Sequence[str] = (),
    id_token_ttl: int = 3600,
    **kwargs: Any,
) -> Iterator[Provider]:
    """Start the provider, yield it, and always terminate it. ``port`` None or 0: a free one."""
    provider = Provider(
        port=port,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        id_token_ttl=id_token_ttl,
        **kwargs,
    )
    try:
        provider.start()
        yield provider
    finally:
        provider.close()


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    field_types: dict[str, str] = field(default_factory=dict)

    @property
    def is_login(self) -> bool:
        return "password" in self.field_types.values()


class _FormParser(HTMLParser):
    """Collects forms (action, method, named inputs), the page text and elements' text by class."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.errors: list[str] = []
        self._form: Form | None = None
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").upper())
            self.forms.append(self._form)
        elif tag in ("input", "button", "textarea", "select") and self._form and a.get("name"):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            if kind in ("submit", "image", "reset", "button") or (kind in ("checkbox", "radio") and "checked" not in a):
                return
            self._form.fields.setdefault(a["name"], a.get("value", ""))
            self._form.field_types.setdefault(a["name"], kind)
        if any(c.startswith("error") for c in a.get("class", "").split()):
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.errors.append(data.strip())


def parse_forms(html: str) -> tuple[list[Form], list[str]]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.errors


class LoginError(RuntimeError):
    """The login flow did not reach the callback; ``response`` is the last response seen."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response


def _drive(
    client: httpx.Client,
    response: httpx.Response,
    stop_prefix: str | None,
    credentials: tuple[str, str] | None,
    max_steps: int = 30,
) -> httpx.Response:
    """Follow redirects and submit forms until a redirect to ``stop_prefix`` (returned unfollowed).

    With ``stop_prefix`` None, the first page without a form is returned instead.
    """
    logged_in = False
    for _ in range(max_steps):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if stop_prefix is not None and target.startswith(stop_prefix):
                return response
            response = client.get(target, follow_redirects=False)
            continue
        forms, errors = (
            parse_forms(response.text) if response.headers.get("content-type", "").startswith("text/html") else ([], [])
        )
        if response.status_code != 200 or not forms:
            if stop_prefix is None and response.status_code == 200:
                return response
            detail = "; ".join(errors) or response.text[:500]
            raise LoginError(f"stopped at {response.status_code} {response.url}: {detail}", response)
        form = forms[0]
        data = dict(form.fields)
        if form.is_login:
            if credentials is None:
                raise LoginError(f"login form at {response.url}, no credentials", response)
            if logged_in:
                raise LoginError(f"login failed: {'; '.join(errors) or 'form shown again'}", response)
            user_field = next((n for n, t in form.field_types.items() if t in ("text", "email")), "username")
            pass_field = next(n for n, t in form.field_types.items() if t == "password")
            data[user_field], data[pass_field] = credentials
            logged_in = True
        action = urljoin(str(response.url), form.action or str(response.url))
        if form.method == "POST":
            response = client.post(action, data=data, follow_redirects=False)
        else:
            response = client.get(action, params=data, follow_redirects=False)
    raise LoginError(f"no redirect to {stop_prefix} after {max_steps} steps", response)


def login_with_httpx(
    client: httpx.Client, start_url: str, username: str, password: str, stop_prefix: str
) -> httpx.Response:
    """Log in through the provider's pages, starting at an authorization URL (or a URL that
    redirects to one), and return the first redirect to ``stop_prefix`` without following it.

    Raises ``LoginError`` when the flow ends elsewhere (e.g. a wrong password shows the form
    again; the provider's error text is in the message and ``.response``).
    """
    response = client.get(start_url, follow_redirects=False)
    return _drive(client, response, stop_prefix, (username, password))


def logout_with_httpx(client: httpx.Client, start_url: str, stop_prefix: str | None = None) -> httpx.Response:
    """Complete RP-initiated logout from ``start_url`` (the end_session URL, or a URL that
    redirects to it): submits the provider's logout form, and returns the redirect to
    ``stop_prefix`` unfollowed, or, with no ``stop_prefix``, the final page.
    """
    response = client.get(start_url, follow_redirects=False)
    return _drive(client, response, stop_prefix, None)
