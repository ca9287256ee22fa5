"""The gRPC server: ext_authz Check, grpc.health.v1 and reflection on one port.

Everything is built in one readable block in :func:`build`; :class:`App` runs it and
shuts it down: on SIGTERM health goes NOT_SERVING, in-flight Checks finish within the
grace period, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as pb
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from authz import metrics
from authz.admin.v1 import admin_pb2_grpc
from authz.admin_http import AdminHTTP
from authz.admin_service import SERVICE_NAME as ADMIN_SERVICE
from authz.admin_service import AdminService, AdminState
from authz.engine import Engine
from authz.explain import Explainer
from authz.fetch import Fetcher
from authz.handler import CheckHandler
from authz.jwks import KeyManager
from authz.login import LoginPolicy
from authz.login_flow import LoginFlow
from authz.oidc_client import OIDCClient
from authz.redis_store import RedisStore
from authz.sessions import MemoryStore, SessionStore
from authz.settings import Settings
from authz.tracing import CheckTracing

log = logging.getLogger("authz.server")
AUTHORIZATION_SERVICE = pb.DESCRIPTOR.services_by_name["Authorization"].full_name
HEALTH_SERVICES = ("", AUTHORIZATION_SERVICE)
_READY_POLL = 1.0
METRICS_FLUSH_INTERVAL = 1.0
# Sessions held in a replica's Redis read cache at most (each lives session.cache_ttl seconds).
REDIS_READ_CACHE_MAX = 10_000


def check_behavior(handler: CheckHandler, tracing: CheckTracing | None) -> Callable[[Any, Any], Awaitable[bytes]]:
    """Envoy's Authorization/Check as a gRPC method returning the serialized CheckResponse.

    Tracing off: the handler's own method, no wrapper (Check is the hot path); its answers are
    prebuilt bytes, so no serializer runs per call. Tracing on: the traced message, serialized.
    """
    if tracing is None:
        return handler.check_rpc
    traced = tracing.wrap(handler.check)

    async def behavior(request: pb.CheckRequest, context: Any) -> bytes:
        response = await traced(request, context.invocation_metadata() or ())
        wire: bytes = response.SerializeToString()
        return wire

    return behavior


def _check_method(handler: CheckHandler, tracing: CheckTracing | None) -> grpc.GenericRpcHandler:
    method = grpc.unary_unary_rpc_method_handler(
        check_behavior(handler, tracing), request_deserializer=pb.CheckRequest.FromString, response_serializer=None
    )
    return grpc.method_handlers_generic_handler(AUTHORIZATION_SERVICE, {"Check": method})


class _GenericOnly:
    """A server as generated ``add_*Servicer_to_server`` code sees it: generic handlers only.

    Generated code also registers each method with the server (``add_registered_method_handlers``).
    grpc.aio's serving loop keeps one pending call per registered method and waits on all of
    them (``asyncio.wait``) each time a call arrives, so every registered method costs every
    Check some Python work: health's three and reflection's one made a cached Check 25,000
    instructions (5%) dearer. As generic handlers, after Check's, their rare calls resolve by
    name just the same.
    """

    __slots__ = ("_server",)

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Left out: see the class docstring."""


def _add_services(server: grpc.aio.Server, servicers: list[tuple[Callable[[Any, Any], None], Any]]) -> None:
    """Each ``(add_*Servicer_to_server, servicer)`` on ``server`` as generic handlers only."""
    generic = _GenericOnly(server)
    for add, servicer in servicers:
        add(servicer, generic)


def _bind(server: grpc.aio.Server, address: str, setting: str, credentials: Any = None) -> int:
    """The port bound; OSError naming the setting when the address is taken or not ours."""
    try:
        port = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:  # grpcio raises when the bind fails (older versions returned 0)
        raise OSError(f"cannot listen on {address} ({setting}): in use or not a local address") from exc
    if port == 0:
        raise OSError(f"cannot listen on {address} ({setting}): in use or not a local address")
    return int(port)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Components:
    settings: Settings
    keys: KeyManager
    engine: Engine
    handler: CheckHandler
    explainer: Explainer
    store: SessionStore | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    tracing: CheckTracing | None = None  # Check's spans, when tracing is on (the otel extra)


def build(settings: Settings) -> Components:
    """Every long-lived object, built once at start."""
    fetcher = Fetcher()
    keys = KeyManager(settings.issuers, fetcher, stale_window=settings.jwks_stale_window)
    engine = Engine(settings)
    login: LoginFlow | None = None
    store: SessionStore | None = None
    closers: list[Callable[[], Awaitable[None]]] = []
    if settings.login_enabled:
        if settings.session.store == "redis":
            store = RedisStore(
                settings.session.redis_url,
                cache_ttl=settings.session.cache_ttl,
                cache_size=min(settings.session.max_sessions, REDIS_READ_CACHE_MAX),
                clock=time.time,
            )
        else:
            store = MemoryStore(settings.session.max_sessions, time.time)
        client = OIDCClient(settings.oidc, settings.ca_bundle)
        login = LoginFlow(LoginPolicy(settings), engine, keys, store, client, clock=time.time)
        closers += [store.close, client.aclose]
    handler = CheckHandler(engine, keys, login=login)
    explainer = Explainer(engine, keys, login)
    tracing = CheckTracing(settings.tracing) if settings.tracing.enabled else None  # ConfigError: no otel
    if tracing is not None:
        closers.append(tracing.shutdown)  # last: after every Check has ended its span
    return Components(
        settings=settings,
        keys=keys,
        engine=engine,
        handler=handler,
        explainer=explainer,
        store=store,
        closers=closers,
        tracing=tracing,
    )


class App:
    """One serving process."""

    def __init__(
        self,
        components: Components,
        *,
        reuse_port: bool = False,
        serve_http: bool = True,
        on_ready: Callable[[bool], None] | None = None,
    ) -> None:
        self.c = components
        self._reuse_port = reuse_port
        self._serve_http = serve_http
        self._on_ready = on_ready
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._admin_server: grpc.aio.Server | None = None
        self._started_at = time.monotonic()
        self._admin = AdminHTTP(ready=self.ready)
        self._stopping = asyncio.Event()
        self._serving = False
        self._watch: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.admin_port = 0

    def ready(self) -> bool:
        return self._serving and self.c.keys.ready

    async def start(self) -> None:
        settings = self.c.settings
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                ("grpc.max_receive_message_length", 1 << 20),
                ("grpc.max_concurrent_streams", 1000),
            ],
            maximum_concurrent_rpcs=settings.max_concurrent_checks,
        )
        server.add_generic_rpc_handlers((_check_method(self.c.handler, self.c.tracing),))
        reflected = (AUTHORIZATION_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        _add_services(
            server,
            [
                (health_pb2_grpc.add_HealthServicer_to_server, self.health),
                (
                    reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
                    reflection.aio.ReflectionServicer(reflected),
                ),
            ],
        )
        for name in HEALTH_SERVICES:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        host, port = _split(settings.listen)
        credentials = None
        if settings.tls.enabled:
            from authz.tls import server_credentials

            credentials = server_credentials(settings.tls)
        self.grpc_port = _bind(server, f"{host}:{port}", "listen (AUTHZ_LISTEN)", credentials)
        await server.start()
        self._server = server
        try:
            await self._start_admin()
        except OSError:
            await server.stop(0)
            raise
        http_host, http_port = _split(settings.http_listen)
        if self._serve_http:
            self.http_port = await self._admin.start(http_host, http_port)
        self._serving = True
        # Everything built so far lives as long as the process: out of the garbage collector's
        # sight, so a full collection (caches churning with distinct tokens set one off every
        # few thousand Checks) walks only what came after, not every module and object of
        # start-up. Measured in-process: 48 -> 11 ms a full collection.
        gc.collect()
        gc.freeze()
        self.c.keys.start()
        self._watch = asyncio.create_task(self._watch_readiness())
        if metrics.MULTIPROCESS:
            self._flusher = asyncio.create_task(self._flush_metrics())
        log.info(
            "serving",
            extra={
                "grpc": f"{host}:{self.grpc_port}",
                "http": f"{http_host}:{self.http_port}",
                "admin": f"{_split(settings.admin_listen)[0]}:{self.admin_port}",
                "issuers": [i.issuer for i in settings.issuers],
            },
        )

    async def _start_admin(self) -> None:
        """The operators' service on its own listener: never on the port the gateway reaches."""
        settings = self.c.settings
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", 1 if self._reuse_port else 0), ("grpc.max_receive_message_length", 1 << 20)],
            maximum_concurrent_rpcs=64,
        )
        state = AdminState(
            settings=settings,
            keys=self.c.keys,
            token_cache=self.c.engine.cache,
            store=self.c.store,
            ready=self.ready,
            started_at=self._started_at,
        )
        admin_pb2_grpc.add_AdminServicer_to_server(AdminService(self.c.explainer, state), server)  # type: ignore[no-untyped-call]
        reflection.enable_server_reflection((ADMIN_SERVICE, reflection.SERVICE_NAME), server)
        host, port = _split(settings.admin_listen)
        self.admin_port = _bind(server, f"{host}:{port}", "admin_listen (AUTHZ_ADMIN_LISTEN)")
        await server.start()
        self._admin_server = server

    async def _flush_metrics(self) -> None:
        """``--workers``: hand this worker's Check counts to the parent's /metrics once a second."""
        while True:
            await asyncio.sleep(METRICS_FLUSH_INTERVAL)
            metrics.CHECK_STATS.flush()

    async def _watch_readiness(self) -> None:
        current: bool | None = None
        while True:
            ready = self.ready()
            if ready != current:
                status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
                for name in HEALTH_SERVICES:
                    await self.health.set(name, status)
                log.info("health", extra={"status": "SERVING" if ready else "NOT_SERVING"})
                current = ready
                if self._on_ready is not None:
                    self._on_ready(ready)
            await asyncio.sleep(_READY_POLL if current else 0.1)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self._stopping.wait()
        await self.stop()

    async def stop(self) -> None:
        grace = self.c.settings.shutdown_grace
        log.info("shutting down", extra={"grace_seconds": grace})
        self._serving = False
        if self._watch is not None:
            self._watch.cancel()
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._admin_server is not None:
            await self._admin_server.stop(0)
        if self._flusher is not None:
            self._flusher.cancel()
            metrics.CHECK_STATS.flush()  # the last Checks' counts, before the worker exits
        await self._admin.close()
        await self.c.keys.close()
        for close in self.c.closers:
            await close()
        log.info("stopped")


async def serve(
    settings: Settings,
    *,
    reuse_port: bool = False,
    serve_http: bool = True,
    on_ready: Callable[[bool], None] | None = None,
) -> None:
    app = App(build(settings), reuse_port=reuse_port, serve_http=serve_http, on_ready=on_ready)
    await app.start()
    await app.run_until_stopped()
