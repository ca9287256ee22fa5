"""A real HTTP discovery + JWKS server on 127.0.0.1 for tests, whose behaviour tests can change."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class IdPState:
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    body: bytes | None = None  # overrides the JSON body (HTML, junk, huge)
    delay: float = 0.0
    cache_control: str | None = None
    redirect_to: str | None = None
    requests: Counter[str] = field(default_factory=Counter)
    issuer: str = ""
    require_authorization: str | None = None  # e.g. "Bearer <sa token>", as the Kubernetes API server
    seen_authorization: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    state: IdPState

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        state.requests[path] += 1
        if state.delay:
            time.sleep(state.delay)
        state.seen_authorization.append(self.headers.get("authorization", ""))
        if state.require_authorization and self.headers.get("authorization") != state.require_authorization:
            self._send(401, b'{"kind":"Status","code":401}')
            return
        if path == "/.well-known/openid-configuration":
            self._send(200, json.dumps({"issuer": state.issuer, "jwks_uri": state.issuer + "/keys"}).encode())
            return
        if path != "/keys":
            self._send(404, b"{}")
            return
        if state.redirect_to:
            self.send_response(302)
            self.send_header("location", state.redirect_to)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = state.body if state.body is not None else json.dumps(state.jwks).encode()
        self._send(state.status, body)

    def _send(self, status: int, body: bytes) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if state.cache_control:
            self.send_header("cache-control", state.cache_control)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class IdP:
    def __init__(self, port: int = 0) -> None:
        self.state = IdPState()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return self.state.issuer

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.state = self.state  # type: ignore[attr-defined]
        self._port = server.server_address[1]
        self.state.issuer = f"http://127.0.0.1:{self._port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def run_idp() -> Iterator[IdP]:
    idp = IdP()
    idp.start()
    try:
        yield idp
    finally:
        idp.stop()
