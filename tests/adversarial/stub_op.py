"""A small OpenID Provider on 127.0.0.1 for the redirect corpus and the gateway tests.

It serves discovery, the JWKS, the token endpoint (PKCE S256, one-time codes, client
secret) and counts every request. The browser leg is not served over HTTP: ``authorize``
reads authz's authorization redirect and returns the callback URL a provider would send the
browser to, which keeps a thousand logins cheap. The real provider (tests/support/provider.py)
is used wherever its own behaviour matters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.tokens import SigningKey, es256, jwks

USER = "alice@example.com"
GROUPS = ["team-a", "everyone"]


class StubOP:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key: SigningKey = es256("stub-ec")
        self.requests: Counter[str] = Counter()
        self.codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.issuer = ""

    # -- what the browser would do at the provider ------------------------------

    def authorize(self, location: str, *, email: str = USER, groups: list[str] | None = None, **claims: Any) -> str:
        """The callback URL for authz's authorization redirect ``location`` (user logged in)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert location.startswith(self.issuer + "/auth?"), location
        assert query["client_id"] == self.client_id and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = {
                "challenge": query["code_challenge"],
                "redirect_uri": query["redirect_uri"],
                "claims": {"nonce": query["nonce"], "email": email, "groups": GROUPS if groups is None else groups,
                           **claims},
            }  # fmt: skip
        sep = "&" if "?" in query["redirect_uri"] else "?"
        return f"{query['redirect_uri']}{sep}{urlencode({'code': code, 'state': query['state']})}"

    def id_token(self, **claims: Any) -> str:
        now = int(time.time())
        base = {"iss": self.issuer, "aud": self.client_id, "sub": "stub-user", "email": USER, "groups": GROUPS,
                "iat": now, "exp": now + 3600}  # fmt: skip
        base.update(claims)
        return self.key.sign(base)

    # -- HTTP -------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        i = self.issuer
        return {
            "issuer": i, "authorization_endpoint": i + "/auth", "token_endpoint": i + "/token",
            "jwks_uri": i + "/keys", "end_session_endpoint": i + "/logout", "revocation_endpoint": i + "/revoke",
        }  # fmt: skip

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return 400, {"error": "invalid_grant"}
        return 200, {
            "id_token": self.id_token(**grant["claims"]),
            "access_token": secrets.token_urlsafe(16),
            "refresh_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 3600,
        }

    def start(self) -> None:
        op = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                op.requests[path] += 1
                if path == "/.well-known/openid-configuration":
                    self._send(200, op.discovery())
                elif path == "/keys":
                    self._send(200, jwks(op.key))
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                op.requests[path] += 1
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if path == "/token":
                    self._send(*op.token(form, self.headers.get("authorization", "")))
                elif path == "/revoke":
                    self._send(200, {})
                else:
                    self._send(404, {})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{server.server_address[1]}"
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def run_stub_op(client_id: str, client_secret: str) -> Iterator[StubOP]:
    op = StubOP(client_id, client_secret)
    op.start()
    try:
        yield op
    finally:
        op.stop()
