"""Running authz for tests: in-process (asyncio) or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from envoy.config.core.v3 import address_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from demo.ports import free_port  # re-exported: the one port picker for every test server

__all__ = ["free_port"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def check_request(
    path: str = "/",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    host: str = "app.example.com",
) -> pb.CheckRequest:
    http = ac.AttributeContext.HttpRequest(
        id="1", method=method, path=path, host=host, scheme="https", protocol="HTTP/1.1",
        headers={":authority": host, ":method": method, ":path": path, **(headers or {})},
    )  # fmt: skip
    return pb.CheckRequest(
        attributes=ac.AttributeContext(
            source=ac.AttributeContext.Peer(
                address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=1))
            ),
            request=ac.AttributeContext.Request(http=http),
        )
    )


def headers_of(response: pb.CheckResponse) -> dict[str, str]:
    which = response.ok_response if response.HasField("ok_response") else response.denied_response
    return {h.header.key: h.header.value for h in which.headers}


def grpc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "CLIENT_", "AUTHZ_", "SESSION_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    # Every test process gets its own admin port (the default, 9192, is one per host), picked
    # below the ephemeral range like the test's other ports (bind(0) could take one of those).
    env.setdefault("AUTHZ_ADMIN_LISTEN", f"127.0.0.1:{free_port()}")
    return env


def wait_serving(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"authz on {port} not SERVING after {timeout}s")
            time.sleep(0.1)


@contextmanager
def authz_process(env: dict[str, str], *args: str, wait: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m authz serve`` as a real process; stopped with SIGTERM at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "authz", "serve", *args],
        env=grpc_env(env), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if wait:
            port = int(env["AUTHZ_LISTEN"].rpartition(":")[2])
            try:
                wait_serving(port)
            except TimeoutError:
                proc.terminate()
                out = proc.communicate(timeout=5)[0].decode(errors="replace")
                raise TimeoutError(f"authz did not become ready:\n{out[-4000:]}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def authorization_stub(port: int) -> tuple[grpc.Channel, pb_grpc.AuthorizationStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb_grpc.AuthorizationStub(channel)
