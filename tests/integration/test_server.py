"""The real gRPC server on 127.0.0.1 against a real HTTP discovery/JWKS server."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.conftest import make_settings
from tests.support.idp import IdP
from tests.support.servers import check_request, free_port, headers_of
from tests.support.tokens import claims, jwks, rs256

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_status(running) -> int:
    stub = health_pb2_grpc.HealthStub(running.channel)
    resp = await stub.Check(health_pb2.HealthCheckRequest(service="envoy.service.auth.v3.Authorization"))
    return resp.status


async def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def token(key=None, **kw) -> str:
    return (key or rs256()).sign(claims(**kw))


def with_issuer(idp: IdP, key=None, **kw) -> str:
    return (key or rs256()).sign(claims(iss=idp.issuer, **kw))


async def test_valid_token_allows_with_identity_headers(idp, start_app):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    req = check_request("/app", {"authorization": f"Bearer {with_issuer(idp)}", "kubeflow_userid": "mallory"})
    resp = await running.stub.Check(req)
    assert resp.status.code == 0
    assert headers_of(resp) == {"kubeflow-userid": "alice@example.com", "kubeflow-groups": "team-a,everyone"}
    assert list(resp.ok_response.headers_to_remove) == ["kubeflow_groups", "kubeflow_userid"]


async def _serving(running) -> bool:
    return await health_status(running) == SERVING


async def test_bad_token_is_401_and_missing_is_401(idp, start_app):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    other = rs256(kid="rsa-1", index=1)  # same kid, other key: forged
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp, other)}"}))
    assert resp.denied_response.status.code == 401
    assert resp.status.message == "token_signature_invalid"
    resp = await running.stub.Check(check_request("/"))
    assert resp.denied_response.status.code == 401
    assert resp.status.message == "missing_credentials"


async def test_provider_down_at_start_then_up(start_app):
    port = free_port()
    idp = IdP(port)
    idp.state.jwks = jwks(rs256())
    idp.state.issuer = f"http://127.0.0.1:{port}"
    running = await start_app(make_settings(idp.state.issuer))
    await asyncio.sleep(1.0)
    assert await health_status(running) == NOT_SERVING
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp)}"}))
    assert resp.denied_response.status.code == 503
    assert resp.status.message == "keys_unavailable"
    idp.start()
    try:
        await wait_for(lambda: _serving(running), timeout=20)
        resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp)}"}))
        assert resp.status.code == 0
    finally:
        idp.stop()


async def test_provider_down_later_keeps_cached_keys(idp, start_app):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    idp.stop()
    fresh = with_issuer(idp, sub="another")  # not in the token cache: verified with cached keys
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {fresh}"}))
    assert resp.status.code == 0
    assert await health_status(running) == SERVING


async def test_key_rotation_picks_up_new_kid(idp, start_app):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    new_key = rs256(kid="rsa-2", index=1)
    idp.state.jwks = jwks(rs256(), new_key)
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp, new_key)}"}))
    assert resp.status.code == 0
    assert idp.state.requests["/keys"] == 2
    # Old key retired: tokens it signs are refused after the next refetch.
    idp.state.jwks = jwks(new_key)


async def test_unknown_kid_flood_causes_at_most_one_fetch(idp, start_app):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    before = idp.state.requests["/keys"]
    key = rs256()
    reqs = [
        check_request("/", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer), {'kid': secrets.token_hex(8)})}"})
        for _ in range(1000)
    ]
    responses = await asyncio.gather(*(running.stub.Check(r) for r in reqs))
    assert {r.status.message for r in responses} == {"token_unknown_kid"}
    assert all(r.denied_response.status.code == 401 for r in responses)
    assert idp.state.requests["/keys"] - before <= 1


async def test_metrics_and_readiness_endpoints(idp, start_app):
    import httpx

    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    await running.stub.Check(check_request("/"))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.app.http_port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        text = (await client.get("/metrics")).text
    assert 'authz_checks_total{decision="deny",reason="missing_credentials"}' in text
    assert "authz_check_duration_seconds_bucket" in text
    assert f'authz_keys_loaded{{issuer="{idp.issuer}"}} 1.0' in text
    assert "authz_key_fetches_total" in text


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"{}", b"x" * (5 << 20)], ids=["html", "empty", "5MB"])
async def test_bad_jwks_body_keeps_old_keys(idp, start_app, body):
    running = await start_app(make_settings(idp.issuer))
    await wait_for(lambda: _serving(running))
    idp.state.body = body
    # An unknown kid forces a refetch, which fails: the known key keeps working.
    key = rs256()
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer), {'kid': 'nope'})}"}))
    assert resp.status.message == "token_unknown_kid"
    assert idp.state.requests["/keys"] == 2
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp, sub='x2')}"}))
    assert resp.status.code == 0


async def test_key_fetch_token_file_is_sent_like_a_service_account(idp, start_app, tmp_path):
    """The Kubernetes API server serves /openid/v1/jwks only to authenticated callers."""
    from authz.settings import IssuerSettings
    from tests.support.tokens import AUDIENCE

    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1\n")
    idp.state.require_authorization = "Bearer sa-token-1"
    issuer = IssuerSettings(issuer=idp.issuer, audiences=(AUDIENCE,), key_fetch_token_file=str(token_file))
    running = await start_app(make_settings(idp.issuer, issuers=(issuer,)))
    await wait_for(lambda: _serving(running))
    resp = await running.stub.Check(check_request("/", {"authorization": f"Bearer {with_issuer(idp)}"}))
    assert resp.status.code == 0
    assert set(idp.state.seen_authorization) == {"Bearer sa-token-1"}
