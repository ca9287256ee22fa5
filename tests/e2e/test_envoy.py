"""End to end through real Envoy: Envoy -> ext_authz (gRPC) -> authz; Envoy -> echo upstream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from demo.echo import serve as serve_echo
from demo.envoy_config import ACCESS_LOG_FORMAT, bootstrap
from tests.support.envoy import run_envoy, validate
from tests.support.idp import IdP, run_idp
from tests.support.servers import authz_process, free_port
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

pytestmark = pytest.mark.e2e

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    access_log = tmp_path_factory.mktemp("envoy") / "access.log"
    with run_idp() as idp:
        idp.state.jwks = jwks(rs256())
        echo = serve_echo(0)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        grpc_port, http_port, listen, admin = free_port(), free_port(), free_port(), free_port()
        env = {
            "OIDC_PROVIDER": idp.issuer,
            "CLIENT_ID": AUDIENCE,
            "SKIP_AUTH_URLS": "/public/",
            "AUTHZ_LISTEN": f"127.0.0.1:{grpc_port}",
            "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "LOG_LEVEL": "DEBUG",
        }
        config = bootstrap(listen_port=listen, admin_port=admin, authz_port=grpc_port,
                           upstream_port=echo.server_address[1], access_log_path=str(access_log))  # fmt: skip
        # Envoy writes its access log out every 10 s by default.
        with authz_process(env) as proc, run_envoy(config, admin, args=("--file-flush-interval-msec", "100")):
            yield {"idp": idp, "url": f"http://127.0.0.1:{listen}", "admin": f"http://127.0.0.1:{admin}",
                   "proc": proc, "env": env, "config": config, "access_log": access_log,
                   "upstream_port": echo.server_address[1]}
        echo.shutdown()


def good_token(idp: IdP, **kw) -> str:
    return rs256().sign(claims(iss=idp.issuer, **kw))


def test_bootstrap_passes_envoy_validate(stack):
    result = validate(stack["config"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_valid_token_reaches_upstream_with_trusted_identity(stack):
    resp = httpx.get(
        stack["url"] + "/app/data",
        headers={"authorization": f"Bearer {good_token(stack['idp'])}", "kubeflow-userid": "mallory",
                 "Kubeflow-Groups": "admins"},
    )  # fmt: skip
    assert resp.status_code == 200
    seen = resp.json()["headers"]
    assert seen["kubeflow-userid"] == "alice@example.com"
    assert seen["kubeflow-groups"] == "team-a,everyone"
    assert "mallory" not in resp.text and "admins" not in resp.text


def test_underscore_spoof_is_rejected_by_the_gateway(stack):
    resp = httpx.get(
        stack["url"] + "/app",
        headers={"authorization": f"Bearer {good_token(stack['idp'])}", "kubeflow_userid": "mallory"},
    )
    assert resp.status_code == 400
    assert "mallory" not in resp.text


def test_underscore_spellings_are_stripped_where_the_gateway_allows_them(stack):
    """Envoy's (and Istio's) default passes header names with underscores on; authz's answer
    strips every spelling of the identity headers, so none reaches the upstream."""
    listen, admin = free_port(), free_port()
    config = bootstrap(listen_port=listen, admin_port=admin, authz_port=int(stack["env"]["AUTHZ_LISTEN"].rsplit(":", 1)[1]),
                       upstream_port=stack["upstream_port"])  # fmt: skip
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["common_http_protocol_options"] = {"headers_with_underscores_action": "ALLOW"}
    spoofs = {"kubeflow_userid": "mallory", "Kubeflow_Groups": "admins", "KUBEFLOW_USERID": "root"}
    with run_envoy(config, admin):
        url = f"http://127.0.0.1:{listen}"
        resp = httpx.get(url + "/app", headers={"authorization": f"Bearer {good_token(stack['idp'])}", **spoofs})
        assert resp.status_code == 200
        seen = resp.json()["headers"]
        assert seen["kubeflow-userid"] == "alice@example.com"
        assert not {"kubeflow_userid", "kubeflow_groups"} & {name.lower() for name in seen}
        assert all(bad not in resp.text for bad in ("mallory", "admins", "root"))
        resp = httpx.get(url + "/public/x", headers=spoofs)  # a skipped path: no identity at all
        assert resp.status_code == 200
        assert all(bad not in resp.text for bad in ("mallory", "admins", "root"))


def test_bad_token_gets_401_from_envoy(stack):
    resp = httpx.get(stack["url"] + "/app", headers={"authorization": "Bearer not.a.jwt"})
    assert resp.status_code == 401
    assert resp.json() == {"error": "invalid_token", "reason": "token_malformed"}
    assert resp.headers["www-authenticate"] == 'Bearer realm="authz", error="invalid_token"'
    assert resp.headers["cache-control"] == "no-store"
    resp = httpx.get(stack["url"] + "/app")
    assert resp.status_code == 401
    assert resp.json()["reason"] == "missing_credentials"


def test_skip_path_reaches_upstream_without_identity(stack):
    resp = httpx.get(stack["url"] + "/public/x", headers={"kubeflow-userid": "mallory"})
    assert resp.status_code == 200
    assert "kubeflow-userid" not in resp.json()["headers"]
    # Envoy merges slashes before authz sees the path; a dot-segment escape needs auth.
    resp = httpx.get(stack["url"] + "/public/../admin")
    assert resp.status_code == 401


def test_envoy_filter_fails_closed(stack):
    dump = httpx.get(stack["admin"] + "/config_dump").json()
    text = str(dump)
    assert "envoy.filters.http.ext_authz" in text
    assert "'failure_mode_allow': True" not in text
    assert "ServiceUnavailable" in text


def test_decision_log_has_reason_and_request_id_but_no_token(stack):
    token = good_token(stack["idp"], sub="logcheck")
    resp = httpx.get(stack["url"] + "/app", headers={"authorization": f"Bearer {token}", "x-request-id": "req-abc-123"})
    assert resp.status_code == 200
    assert resp.json()["headers"]["kubeflow-userid"] == "alice@example.com"
    # The log itself is read when the process stops (test_authz_down_gives_503_never_the_upstream).


def access_log_entries(path: Path, request_ids: set[str], timeout: float = 5.0) -> dict[str, dict]:
    """The access log's entries of these requests, by request id, once Envoy has written them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        entries = {e["request_id"]: e for e in map(json.loads, lines) if e["request_id"] in request_ids}
        if len(entries) == len(request_ids) or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


def test_access_log_says_who_and_why(stack):
    """authz's dynamic metadata reaches Envoy's access log, for allows and denies alike."""
    token = good_token(stack["idp"])
    expired = good_token(stack["idp"], now=time.time() - 3600)
    sent = {
        "log-bearer": ("/app/data", {"authorization": f"Bearer {token}"}, 200),
        "log-missing": ("/app?code=SECRET-CODE&state=s", {}, 401),
        "log-expired": ("/app", {"authorization": f"Bearer {expired}"}, 401),
        "log-skip": ("/public/x", {}, 200),
    }
    for request_id, (path, headers, status) in sent.items():
        resp = httpx.get(stack["url"] + path, headers={**headers, "x-request-id": request_id})
        assert resp.status_code == status, (request_id, resp.text)
    entries = access_log_entries(stack["access_log"], set(sent))
    assert set(entries) == set(sent), stack["access_log"].read_text()[-2000:]

    def fields(request_id: str) -> tuple:
        e = entries[request_id]
        return e["response_code"], e["authz_decision"], e["authz_reason"], e["authz_auth_method"], e["user"]

    assert fields("log-bearer") == (200, "allow", "bearer", "bearer", "alice@example.com")
    assert fields("log-missing") == (401, "deny", "missing_credentials", "none", None)
    assert fields("log-expired") == (401, "deny", "token_expired", "none", None)
    assert fields("log-skip") == (200, "allow", "skip_auth", "skip", None)
    assert entries["log-missing"]["path"] == "/app"
    # Neither a token nor the query (an authorization code on the callback) reaches the log.
    text = stack["access_log"].read_text()
    assert token not in text and expired not in text and "SECRET-CODE" not in text


def test_manifests_log_the_fields_proven_here():
    """The gateway access log of both installations is the format the test above runs."""
    mesh = MANIFESTS / "overlays" / "extension-provider" / "mesh-config"
    operator = yaml.safe_load((mesh / "istio-operator.yaml").read_text())["spec"]["meshConfig"]
    values = yaml.safe_load((mesh / "istiod-values.yaml").read_text())["meshConfig"]
    for config in (operator, values):
        (provider,) = [p for p in config["extensionProviders"] if p["name"] == "kaptain-access-log"]
        assert provider["envoyFileAccessLog"]["logFormat"]["labels"] == ACCESS_LOG_FORMAT
    envoy_filter = yaml.safe_load((MANIFESTS / "overlays" / "envoyfilter" / "envoyfilter-access-log.yaml").read_text())
    (patch,) = envoy_filter["spec"]["configPatches"]
    (log,) = patch["patch"]["value"]["typed_config"]["access_log"]
    assert log["typed_config"]["log_format"]["json_format"] == ACCESS_LOG_FORMAT


def test_authz_down_gives_503_never_the_upstream(stack):
    proc = stack["proc"]
    proc.terminate()
    proc.wait(timeout=20)
    out = proc.stdout.read().decode()
    token = good_token(stack["idp"])
    resp = httpx.get(stack["url"] + "/app", headers={"authorization": f"Bearer {token}"})
    assert resp.status_code == 503
    assert "kubeflow-userid" not in resp.text
    assert proc.returncode == 0
    # The decision log: reason codes and request ids, never a token.
    assert '"reason": "token_malformed"' in out
    assert '"request_id": "req-abc-123"' in out
    assert "Bearer" not in out and token not in out
