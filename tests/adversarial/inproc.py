"""authz's real gRPC server (``App``) on an event loop of its own thread, for sync tests.

Tests talk to it over gRPC on 127.0.0.1 with Envoy-shaped CheckRequests, exactly as Envoy
does; running in-process only lets a test start it in milliseconds, and hand it a clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.config import load_settings
from authz.engine import Engine
from authz.explain import Explainer
from authz.fetch import Fetcher
from authz.handler import CheckHandler
from authz.jwks import KeyManager
from authz.login import LoginPolicy
from authz.login_flow import LoginFlow
from authz.oidc_client import OIDCClient
from authz.server import App, Components, build
from authz.sessions import MemoryStore
from authz.settings import Settings


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings exactly as ``authz serve`` would build them from these variables."""
    settings, _ = load_settings({"AUTHZ_LISTEN": "127.0.0.1:0", "AUTHZ_HTTP_LISTEN": "127.0.0.1:0", "AUTHZ_ADMIN_LISTEN": "127.0.0.1:0", **env}, None)
    return settings


def build_with_clocks(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    keys_clock: Callable[[], float] = time.monotonic,
    store_clock: Callable[[], float] | None = None,
) -> Components:
    """Like ``authz.server.build`` (memory sessions), with the wall clock, the key manager's
    monotonic clock and the session store's clock handed in, so a test can make time pass."""
    keys = KeyManager(settings.issuers, Fetcher(), stale_window=settings.jwks_stale_window, clock=keys_clock)
    engine = Engine(settings)
    login = None
    store = None
    closers: list[Any] = []
    if settings.login_enabled:
        store = MemoryStore(settings.session.max_sessions, store_clock or clock)
        client = OIDCClient(settings.oidc, settings.ca_bundle)
        login = LoginFlow(LoginPolicy(settings), engine, keys, store, client, clock=clock)
        closers = [store.close, client.aclose]
    handler = CheckHandler(engine, keys, login=login, clock=clock)
    explainer = Explainer(engine, keys, login, clock=clock)
    return Components(
        settings=settings, keys=keys, engine=engine, handler=handler, explainer=explainer, store=store, closers=closers
    )


class ShiftedClock:
    """``time.time()`` plus an offset a test can change."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self.base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self.base() + self.offset


class ThreadedApp:
    def __init__(self, components: Components) -> None:
        self.app = App(components)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="authz-app", daemon=True)
        self.channel: grpc.Channel | None = None
        self.stub: pb_grpc.AuthorizationStub | None = None

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, *, wait_serving: bool = True) -> None:
        self._thread.start()
        self._run(self.app.start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.app.grpc_port}")
        self.stub = pb_grpc.AuthorizationStub(self.channel)
        if wait_serving:
            self.wait_health(health_pb2.HealthCheckResponse.SERVING)

    def health(self) -> int:
        assert self.channel is not None
        resp = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return int(resp.status)

    def wait_health(self, status: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health() != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"health not {status} after {timeout}s")
            time.sleep(0.02)

    def check(self, request: pb.CheckRequest, timeout: float = 10.0) -> pb.CheckResponse:
        assert self.stub is not None
        return self.stub.Check(request, timeout=timeout)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        try:
            self._run(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


@contextmanager
def running(settings_or_components: Settings | Components, *, wait_serving: bool = True) -> Iterator[ThreadedApp]:
    components = (
        settings_or_components
        if isinstance(settings_or_components, Components)
        else build(settings_or_components)
    )
    app = ThreadedApp(components)
    app.start(wait_serving=wait_serving)
    try:
        yield app
    finally:
        app.stop()
