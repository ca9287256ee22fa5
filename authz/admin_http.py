"""The plain-HTTP side port: /metrics (Prometheus), /healthz (alive), /readyz (ready to serve)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger("authz.http")
_MAX_REQUEST_LINE = 4096


class AdminHTTP:
    def __init__(
        self,
        ready: Callable[[], bool],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._ready = ready
        self._registry = registry or REGISTRY
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        self._server = await asyncio.start_server(
            self._serve, host or None, port, reuse_port=reuse_port, limit=_MAX_REQUEST_LINE
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            if self._ready():
                return 200, "text/plain", b"ready\n"
            return 503, "text/plain", b"not ready\n"
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.decode("latin-1").split()
            while True:  # drain headers
                header = await asyncio.wait_for(reader.readline(), 5)
                if header in (b"\r\n", b"\n", b""):
                    break
            if len(parts) < 2:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            else:
                status, ctype, body = self._route(parts[0], parts[1])
            reason = {
                200: "OK",
                400: "Bad Request",
                404: "Not Found",
                405: "Method Not Allowed",
                503: "Service Unavailable",
            }.get(status, "")
            head = (
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (body if parts[:1] != ["HEAD"] else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
