"""HTTP/1.1 requests written byte for byte (httpx would normalize the path and headers)."""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def send(port: int, method: str, target: str, headers: list[tuple[str, bytes | str]], timeout: float = 10.0) -> Response:
    """One request on a new connection (``Connection: close``); the whole response."""
    head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
    names = {name.lower() for name, _ in headers}
    lines = [] if "host" in names else [b"Host: app.example.com"]
    for name, value in headers:
        lines.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    lines.append(b"Connection: close")
    data = head + b"\r\n".join(lines) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        raw = b""
        while not _complete(raw, method):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    parsed: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.setdefault(name.strip().lower(), []).append(value.strip())
    if method == "HEAD":
        body = b""
    elif parsed.get("transfer-encoding", [""])[0].lower() == "chunked":
        body = _dechunk(body)
    return Response(int(status_line.split(" ")[1]), parsed, body)


def _complete(raw: bytes, method: str) -> bool:
    """Whether a whole response has arrived (Envoy may hold the connection open a while after)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    if method == "HEAD":
        return True
    lower = head.lower()
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if match:
        return len(body) >= int(match.group(1))
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    return False


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)
