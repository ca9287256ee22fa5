from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

from authz.server import App, build
from authz.settings import IssuerSettings, Settings
from tests.support.idp import IdP, run_idp
from tests.support.tokens import AUDIENCE, jwks, rs256


@pytest.fixture
def idp() -> Iterator[IdP]:
    with run_idp() as server:
        server.state.jwks = jwks(rs256())
        yield server


def make_settings(issuer: str, **overrides: object) -> Settings:
    base: dict[str, object] = dict(
        issuers=(IssuerSettings(issuer=issuer, audiences=(AUDIENCE,)),),
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        admin_listen="127.0.0.1:0",
        shutdown_grace=2.0,
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


class Running:
    def __init__(self, app: App) -> None:
        self.app = app
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        self.stub = pb_grpc.AuthorizationStub(self.channel)


@pytest.fixture
async def start_app() -> AsyncIterator[object]:
    started: list[Running] = []

    async def _start(settings: Settings) -> Running:
        app = App(build(settings))
        await app.start()
        running = Running(app)
        started.append(running)
        return running

    yield _start
    for running in started:
        await running.channel.close()
        await running.app.stop()
