"""authz as a real process: grpcurl, SIGTERM draining, --workers, check-config."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.idp import run_idp
from tests.support.servers import ROOT, authorization_stub, authz_process, check_request, free_port, grpc_env
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

pytestmark = pytest.mark.e2e
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


@pytest.fixture(scope="module")
def idp():
    with run_idp() as server:
        server.state.jwks = jwks(rs256())
        yield server


def env_for(idp, **extra: str) -> dict[str, str]:
    return {
        "OIDC_PROVIDER": idp.issuer,
        "CLIENT_ID": AUDIENCE,
        "AUTHZ_LISTEN": f"127.0.0.1:{free_port()}",
        "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        **extra,
    }


def port_of(env: dict[str, str], key: str = "AUTHZ_LISTEN") -> int:
    return int(env[key].rpartition(":")[2])


def test_grpcurl_lists_services_and_checks(idp):
    env = env_for(idp)
    with authz_process(env):
        target = f"127.0.0.1:{port_of(env)}"
        listed = subprocess.run([GRPCURL, "-plaintext", target, "list"], capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0, listed.stderr
        assert "envoy.service.auth.v3.Authorization" in listed.stdout.split()
        assert "grpc.health.v1.Health" in listed.stdout.split()
        token = rs256().sign(claims(iss=idp.issuer))
        body = {"attributes": {"request": {"http": {"method": "GET", "path": "/x", "host": "app",
                                                   "headers": {"authorization": f"Bearer {token}"}}}}}  # fmt: skip
        result = subprocess.run(
            [GRPCURL, "-plaintext", "-d", json.dumps(body), target, "envoy.service.auth.v3.Authorization/Check"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["ok_response"]["headers"][0]["header"] == {"key": "kubeflow-userid", "value": "alice@example.com"}
        body["attributes"]["request"]["http"]["headers"] = {"authorization": "Bearer junk"}
        result = subprocess.run(
            [GRPCURL, "-plaintext", "-d", json.dumps(body), target, "envoy.service.auth.v3.Authorization/Check"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        answer = json.loads(result.stdout)
        assert answer["denied_response"]["status"]["code"] == "Unauthorized"
        assert answer["status"]["message"] == "token_malformed"


def test_sigterm_drains_in_flight_checks_and_exits_zero(idp):
    env = env_for(idp, AUTHZ_SHUTDOWN_GRACE="8")
    with authz_process(env) as proc:
        port = port_of(env)
        channel, stub = authorization_stub(port)
        key = rs256()
        token = key.sign(claims(iss=idp.issuer))
        results: list[tuple[float, str]] = []
        stop = threading.Event()

        def load() -> None:
            req = check_request("/", {"authorization": f"Bearer {token}"})
            while not stop.is_set() and len(results) < 20000:
                started = time.monotonic()
                try:
                    resp = stub.Check(req, timeout=5)
                    results.append((started, "ok" if resp.status.code == 0 else f"deny:{resp.status.message}"))
                except grpc.RpcError as exc:
                    results.append((started, f"rpc:{exc.code().name}"))
                    return

        # A Check that is surely in flight at SIGTERM: its unknown kid makes authz refetch
        # keys from a provider that takes 2 s to answer.
        slow: list[object] = []
        idp.state.delay = 2.0
        slow_req = check_request("/", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer), {'kid': 'new'})}"})
        slow_thread = threading.Thread(target=lambda: slow.append(stub.Check(slow_req, timeout=15)))
        threads = [threading.Thread(target=load) for _ in range(4)]
        try:
            for t in threads:
                t.start()
            slow_thread.start()
            time.sleep(1.0)
            statuses: list[int] = []
            with grpc.insecure_channel(f"127.0.0.1:{port}") as hc:
                health = health_pb2_grpc.HealthStub(hc)
                sigterm_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    try:
                        statuses.append(health.Check(health_pb2.HealthCheckRequest(), timeout=1).status)
                    except grpc.RpcError:
                        break
                    if statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING:
                        break
                    time.sleep(0.01)
            assert proc.wait(timeout=20) == 0
        finally:
            idp.state.delay = 0.0
            stop.set()
            for t in [*threads, slow_thread]:
                t.join(timeout=15)
            channel.close()
    # The in-flight Check finished with a real answer, not a cancellation.
    assert len(slow) == 1 and slow[0].status.message == "token_unknown_kid"
    before = [r for started, r in results if started < sigterm_at - 0.05]
    assert before and set(before) == {"ok"}
    # After SIGTERM new Checks may be refused (never answered OK wrongly, never half-done).
    assert {r for _, r in results} <= {"ok", "rpc:UNAVAILABLE", "rpc:CANCELLED"}
    assert not statuses or statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING


def test_workers_share_the_port(idp):
    env = env_for(idp, AUTHZ_WORKERS="2")
    with authz_process(env) as proc:
        port = port_of(env)
        token = rs256().sign(claims(iss=idp.issuer))
        pids = set()
        for _ in range(12):  # new connections spread over the workers (SO_REUSEPORT)
            channel, stub = authorization_stub(port)
            assert stub.Check(check_request("/", {"authorization": f"Bearer {token}"}), timeout=5).status.code == 0
            channel.close()
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        pids.update(children)
        assert len([p for p in pids if p]) >= 2
        # Ready once every worker is (the first may answer before the second has its keys).
        deadline = time.monotonic() + 15
        while httpx.get(f"http://{env['AUTHZ_HTTP_LISTEN']}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "workers never all ready"
            time.sleep(0.1)
        # /metrics adds up every worker's samples; each worker hands its counts over once a second.
        prefix = 'authz_checks_total{decision="allow",reason="bearer"}'
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"http://{env['AUTHZ_HTTP_LISTEN']}/metrics", timeout=5).text
            lines = [x for x in text.splitlines() if x.startswith(prefix)]
            if lines and float(lines[0].split()[-1]) == 12.0:
                break
            assert time.monotonic() < deadline, f"workers' counts never reached 12: {lines}"
            time.sleep(0.2)
    assert proc.returncode == 0


def test_check_config_names_every_bad_field():
    env = grpc_env({"OIDC_PROVIDER": "http://idp.example.com", "SESSION_SAME_SITE": "Sometimes",
                    "USERID_TRANSFORMERS": "x", "AUTHZ_LISTEN": "nowhere"})  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "authz", "check-config"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2
    for name in ("OIDC_PROVIDER", "CLIENT_ID", "SESSION_SAME_SITE", "USERID_TRANSFORMERS", "AUTHZ_LISTEN"):
        assert name in result.stderr
