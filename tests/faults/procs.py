"""authz as a real process for the fault tests: its gRPC stub, health, readiness and RSS."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import httpx
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.servers import authz_process, free_port, wait_serving

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Authz:
    proc: subprocess.Popen[bytes]
    port: int
    http_port: int
    channel: grpc.Channel
    stub: pb_grpc.AuthorizationStub
    logs: list[str] = field(default_factory=list)

    def check(self, request: pb.CheckRequest, timeout: float = 15.0) -> pb.CheckResponse:
        return self.stub.Check(request, timeout=timeout)

    def health(self) -> int | None:
        """The health status, or None while nothing answers."""
        try:
            return int(health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status)
        except grpc.RpcError:
            return None

    def wait_health(self, status: int, timeout: float = 20.0) -> float:
        """Seconds until health reports ``status``."""
        started = time.monotonic()
        while self.health() != status:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"health not {status} after {timeout}s:\n{''.join(self.logs)[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - started

    def readyz(self) -> int:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=5).status_code

    def rss(self) -> int:
        """Resident memory of the process, in bytes (from /proc)."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def _drain(proc: subprocess.Popen[bytes], sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sink.append(line.decode(errors="replace"))


@contextmanager
def authz(env: dict[str, str], *args: str, wait: bool = True) -> Iterator[Authz]:
    """``authz serve`` with ``env`` (listen addresses added), its output kept in ``logs``."""
    port, http_port = free_port(), free_port()
    full = {"AUTHZ_LISTEN": f"127.0.0.1:{port}", "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{http_port}", **env}
    with authz_process(full, *args, wait=False) as proc:
        logs: list[str] = []
        threading.Thread(target=_drain, args=(proc, logs), daemon=True).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            if wait:
                try:
                    wait_serving(port)
                except TimeoutError:
                    raise TimeoutError("authz not serving:\n" + "".join(logs)[-4000:]) from None
            yield Authz(proc, port, http_port, channel, pb_grpc.AuthorizationStub(channel), logs)
        finally:
            channel.close()


def outcome(resp: pb.CheckResponse) -> str:
    if resp.status.code == 0:
        return "OK"
    return f"{resp.denied_response.status.code} {resp.status.message}"
