"""Run a real redis-server on 127.0.0.1 for tests: nothing written to disk, stoppable and
restartable on the same port (to simulate an outage), always killed at the end.

``run_redis`` yields a ``RedisServer``; ``stop()``/``start()`` may be called any number of
times, and the port stays the same, so clients configured with its address reconnect by
themselves once it is back. Data does not survive a restart (``--save "" --appendonly no``);
``dump()``/``restore()`` carry keys across one when a test needs them to.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """One RESP command over a fresh socket; returns the raw reply (enough for PING/readiness)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


class RedisServer:
    """One redis-server process on a fixed 127.0.0.1 port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="authz-redis-"))
        self.log_path = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        """HOST:PORT, as SESSION_STORE_REDIS_ADDR wants it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.addr}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        # The port was free when chosen (or was ours before a stop); a restart re-binds it.
        self._proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--logfile", str(self.log_path), "--daemonize", "no",
                "--protected-mode", "yes",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise RuntimeError(f"redis-server exited with {code}:\n{self.logs()[-3000:]}")
            try:
                if _command(self.port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not ready after {START_TIMEOUT:.0f}s:\n{self.logs()[-3000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL); it answers nothing afterwards."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def dump(self) -> list[tuple[bytes, int, bytes]]:
        """Every key as (key, remaining ms or 0, DUMP payload), for ``restore`` after a restart."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            entries = []
            for key in client.scan_iter(count=1000):
                payload = client.dump(key)
                if payload is None:
                    continue
                ttl = int(client.pttl(key))  # type: ignore[arg-type]
                entries.append((key, max(ttl, 0), payload))
            return entries
        finally:
            client.close()

    def restore(self, entries: list[tuple[bytes, int, bytes]]) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            for key, ttl, payload in entries:
                client.restore(key, ttl, payload, replace=True)
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def run_redis(port: int | None = None) -> Iterator[RedisServer]:
    """Start redis-server, yield it, and always kill it (and its directory) at the end."""
    server = RedisServer(port)
    try:
        server.start()
        yield server
    finally:
        server.close()
