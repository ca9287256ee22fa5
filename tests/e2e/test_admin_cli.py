"""The admin service of a real authz process, through the real grpcurl and the authz CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.e2e.test_process import GRPCURL, env_for, port_of
from tests.support.idp import run_idp
from tests.support.servers import ROOT, authz_process, free_port, grpc_env
from tests.support.tokens import claims, jwks, rs256

pytestmark = pytest.mark.e2e
ADMIN = "authz.admin.v1.Admin"


@pytest.fixture(scope="module")
def idp():
    with run_idp() as server:
        server.state.jwks = jwks(rs256())
        yield server


@pytest.fixture(scope="module")
def served(idp):
    env = env_for(idp, AUTHZ_ADMIN_LISTEN=f"127.0.0.1:{free_port()}")
    with authz_process(env):
        yield env


def grpcurl(*args: str, data: object | None = None) -> subprocess.CompletedProcess[str]:
    argv = [GRPCURL, "-plaintext"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=30)


def authz_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz", *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT, env=grpc_env(env),
    )  # fmt: skip


def test_grpcurl_lists_describes_and_calls_the_admin_service(idp, served):
    admin = f"127.0.0.1:{port_of(served, 'AUTHZ_ADMIN_LISTEN')}"
    listed = grpcurl(admin, "list")
    assert listed.returncode == 0, listed.stderr
    assert ADMIN in listed.stdout.split()
    described = grpcurl(admin, "describe", ADMIN)
    assert described.returncode == 0, described.stderr
    for method in ("Explain", "Keys", "RefreshKeys", "Status"):
        assert f"rpc {method}" in described.stdout
    message = grpcurl(admin, "describe", "authz.admin.v1.ExplainRequest")
    assert ".envoy.service.auth.v3.CheckRequest check_request" in message.stdout

    token = rs256().sign(claims(iss=idp.issuer))
    explained = grpcurl(
        admin, f"{ADMIN}/Explain", data={"path": "/x", "headers": {"authorization": f"Bearer {token}"}}
    )
    assert explained.returncode == 0, explained.stderr
    answer = json.loads(explained.stdout)
    assert (answer["decision"], answer["reason"], answer["user"]) == ("allow", "bearer", "alice@example.com")
    assert token not in explained.stdout
    # The CheckRequest form: the same JSON body as a Check.
    body = {"checkRequest": {"attributes": {"request": {"http": {"method": "GET", "path": "/x", "headers": {}}}}}}
    denied = json.loads(grpcurl(admin, f"{ADMIN}/Explain", data=body).stdout)
    assert (denied["decision"], denied["http_status"], denied["reason"]) == ("deny", 401, "missing_credentials")

    keys = json.loads(grpcurl(admin, f"{ADMIN}/Keys").stdout)
    assert keys["issuers"][0]["issuer"] == idp.issuer and keys["issuers"][0]["keys"][0]["kid"] == "rsa-1"
    status = json.loads(grpcurl(admin, f"{ADMIN}/Status").stdout)
    assert status["ready"] is True and len(status["config_digest"]) == 64


def test_admin_service_is_not_on_the_public_port(served):
    public = f"127.0.0.1:{port_of(served)}"
    listed = grpcurl(public, "list")
    assert listed.returncode == 0, listed.stderr
    assert ADMIN not in listed.stdout.split()
    called = grpcurl(public, f"{ADMIN}/Status")
    assert called.returncode != 0  # not served there: reflection does not know it, the server does not route it


def test_admin_listens_on_loopback_only_by_default(idp):
    from authz.settings import DEFAULT_ADMIN_LISTEN

    assert DEFAULT_ADMIN_LISTEN.startswith("127.0.0.1:")


def test_cli_explain_asks_the_admin_service(idp, served):
    admin = f"127.0.0.1:{port_of(served, 'AUTHZ_ADMIN_LISTEN')}"
    expired = rs256().sign(claims(iss=idp.issuer, exp=int(time.time()) - 7200))
    text = authz_cli({}, "explain", "--admin", admin, "--path", "/app?code=xyz", "--token", "-", stdin=expired)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("DENY 401  reason=token_expired")
    assert "FAIL token.exp" in text.stdout and "[token_expired]" in text.stdout
    assert expired not in text.stdout and "code=xyz" not in text.stdout

    as_json = authz_cli({}, "explain", "--admin", admin, "--path", "/public", "--header", "x-a: 1", "--json")
    answer = json.loads(as_json.stdout)
    assert answer["decision"] == "deny" and answer["reason"] == "missing_credentials"

    down = authz_cli({}, "explain", "--admin", f"127.0.0.1:{free_port()}", "--path", "/")
    assert down.returncode == 3 and "UNAVAILABLE" in down.stderr


def test_cli_explain_offline_against_live_keys(idp):
    token = rs256().sign(claims(iss=idp.issuer))
    env = env_for(idp)
    result = authz_cli(env, "explain", "--offline", "--path", "/x", "--token", "-", "--json", stdin=token)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["decision"], answer["user"]) == ("allow", "alice@example.com")


def test_cli_token_inspect_lists_every_failed_check(idp, tmp_path):
    env = env_for(idp)
    bad = rs256(kid="elsewhere").sign(claims(iss=idp.issuer, aud="someone-else", exp=int(time.time()) - 60))
    path = tmp_path / "token"
    path.write_text(bad + "\n")
    result = authz_cli(env, "token", "inspect", "--token", str(path), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {"token_unknown_kid", "token_expired", "token_audience_invalid"} <= set(report["failed"])
    assert report["claims"]["aud"] == "someone-else" and report["header"]["kid"] == "elsewhere"
    assert bad not in result.stdout

    good = rs256().sign(claims(iss=idp.issuer))
    ok = authz_cli(env, "token", "inspect", stdin=good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VALID: Check would accept it as alice@example.com" in ok.stdout

    decoded = authz_cli({}, "token", "inspect", stdin=good)  # no configuration at all: decoded only
    assert decoded.returncode == 0 and "NOT CHECKED" in decoded.stdout and "alice@example.com" in decoded.stdout
    junk = authz_cli(env, "token", "inspect", stdin="not-a-token")
    assert junk.returncode == 1 and "token_malformed" in junk.stdout


def test_a_taken_admin_port_stops_start_up_with_a_clear_message(idp):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = env_for(idp, AUTHZ_ADMIN_LISTEN=f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-m", "authz", "serve"], env=grpc_env(env), cwd=ROOT,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert "AUTHZ_ADMIN_LISTEN" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr
