"""Paths and headers through real Envoy (demo/envoy_config.bootstrap) in front of authz.

Requests are written byte for byte to Envoy's listener; Envoy normalizes the path (RFC 3986
dot segments, merged slashes, escaped slashes redirected), rejects header names with
underscores, and calls authz (a real process, browser login on, SKIP_AUTH_URLS=/public/,/healthz)
over gRPC. The echo upstream reports what it received, so a case can tell whether anything
reached it and with which identity. A *breach* is a protected path reached without
credentials, or a spoofed identity value seen by the upstream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from demo.echo import serve as serve_echo
from demo.envoy_config import bootstrap
from tests.adversarial.oracles import resolved, under
from tests.adversarial.rawhttp import Response, send
from tests.adversarial.stub_op import StubOP, run_stub_op
from tests.adversarial.table import control, record
from tests.support.envoy import run_envoy
from tests.support.servers import authz_process, free_port

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-gateway"
SKIPPED = ("/public/", "/healthz")
HTML = ("accept", "text/html,application/xhtml+xml")


@dataclass
class Gateway:
    port: int
    op: StubOP

    def get(self, target: str, headers: list[tuple[str, Any]] | None = None, method: str = "GET") -> Response:
        return send(self.port, method, target, headers or [])

    def token(self, **claims: Any) -> str:
        return self.op.id_token(**claims)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with run_stub_op(CLIENT_ID, "gateway-secret") as op:
        echo = serve_echo(0)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        grpc_port, listen, admin = free_port(), free_port(), free_port()
        env = {
            "OIDC_PROVIDER": op.issuer,
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": "gateway-secret",
            "REDIRECT_URL": f"http://127.0.0.1:{listen}/authservice/oidc/callback",
            "SKIP_AUTH_URLS": ",".join(SKIPPED),
            "AUTHZ_LISTEN": f"127.0.0.1:{grpc_port}",
            "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        }
        config = bootstrap(listen_port=listen, admin_port=admin, authz_port=grpc_port, upstream_port=echo.server_address[1])
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["upgrade_configs"] = [{"upgrade_type": "websocket"}]  # so an upgrade reaches ext_authz at all
        try:
            with authz_process(env), run_envoy(config, admin):
                yield Gateway(listen, op)
        finally:
            echo.shutdown()


def under_skip_rule(path: str) -> bool:
    return under(path, SKIPPED)


def upstream_view(resp: Response) -> dict[str, Any] | None:
    body = resp.json()
    return body if isinstance(body, dict) and "headers" in body and "path" in body else None


def describe(resp: Response) -> str:
    """``401 missing_credentials`` (authz), ``307 envoy`` (Envoy itself), ``302 login_redirect``,
    or ``200 upstream`` for a request that reached the echo upstream."""
    if upstream_view(resp) is not None:
        return f"{resp.status} upstream"
    body = resp.json()
    if isinstance(body, dict) and "reason" in body:
        return f"{resp.status} {body['reason']}"
    if resp.status == 302 and "/auth?" in (resp.header("location") or ""):
        return "302 login_redirect"
    if resp.status == 401 and (resp.header("www-authenticate") or "").startswith("Bearer"):
        return "401 authz"  # HEAD: authz's deny without a body
    return f"{resp.status} envoy"


# -- skip-path bypass attempts: none may reach a protected path without credentials --------

PATH_CASES = [
    ("dot-dot", "/public/../admin", "401 missing_credentials"),
    ("dot-segment-then-dot-dot", "/public/./../admin", "401 missing_credentials"),
    ("two-levels-up", "/public/x/../../admin", "401 missing_credentials"),
    ("leading-dot-segment", "/./public/../admin", "401 missing_credentials"),
    ("encoded-dot-dot", "/public/%2e%2e/admin", "401 missing_credentials"),
    ("encoded-dot-dot-upper", "/public/%2E%2E/admin", "401 missing_credentials"),
    ("half-encoded-dot-dot-1", "/public/.%2e/admin", "401 missing_credentials"),
    ("half-encoded-dot-dot-2", "/public/%2e./admin", "401 missing_credentials"),
    ("double-encoded-dot-dot", "/public/%252e%252e/admin", "401 missing_credentials"),
    ("encoded-slash", "/public%2F..%2Fadmin", "307 envoy"),
    ("encoded-slash-after-dot-dot", "/public/..%2Fadmin", "307 envoy"),
    ("encoded-slash-lower", "/public/..%2fadmin", "307 envoy"),
    ("encoded-backslash", "/public%5C..%5Cadmin", "307 envoy"),
    ("backslash", "/public\\..\\admin", "401 missing_credentials"),
    ("double-slash-first", "//public/../admin", "401 missing_credentials"),
    ("semicolon-segment", "/public;/../admin", "401 missing_credentials"),
    ("dot-dot-semicolon", "/public/..;/admin", "401 missing_credentials"),
    ("semicolon-param-on-skip", "/public;x=1/admin", "401 missing_credentials"),
    ("upper-case-prefix", "/PUBLIC/x", "401 missing_credentials"),
    ("mixed-case-prefix", "/Public/x", "401 missing_credentials"),
    ("query-names-skip-path", "/admin?/public/", "401 missing_credentials"),
    ("query-dot-dot", "/admin?x=/public/../", "401 missing_credentials"),
    ("fragment-names-skip-path", "/admin#/public/", "400 envoy"),
    ("nul-byte", "/public/%00/../admin", "400 envoy"),
    ("raw-tab", "/public/\t/../admin", "400 envoy"),
    ("iis-percent-u-dots", "/public/%u002e%u002e/admin", "401 missing_credentials"),
    ("overlong-utf8-dots", "/public/%c0%ae%c0%ae/admin", "401 missing_credentials"),
    ("overlong-utf8-slash", "/public/..%c0%afadmin", "401 missing_credentials"),
    ("overlong-utf8-3-byte-dot", "/public/%e0%80%ae%e0%80%ae/admin", "401 missing_credentials"),
    ("fullwidth-dots", "/public/%ef%bc%8e%ef%bc%8e/admin", "401 missing_credentials"),
    ("fullwidth-solidus", "/public/..%ef%bc%8fadmin", "401 missing_credentials"),
    ("skip-rule-without-slash", "/public", "401 missing_credentials"),
    ("skip-rule-as-name-prefix", "/publicity", "401 missing_credentials"),
    ("exact-rule-dot-dot", "/healthz/../admin", "401 missing_credentials"),
    ("exact-rule-name-prefix", "/healthzz", "401 missing_credentials"),
    ("exact-rule-encoded-slash", "/healthz%2F..%2Fadmin", "307 envoy"),
    ("absolute-form-target", "http://app.example.com/public/../admin", "401 missing_credentials"),
    ("login-callback-dot-dot", "/authservice/oidc/callback/../../admin", "401 missing_credentials"),
]


@pytest.mark.parametrize(("case", "target", "expected"), PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_skip_path_bypass(gateway: Gateway, case: str, target: str, expected: str) -> None:
    resp = gateway.get(target)
    seen = upstream_view(resp)
    breach = seen is not None and not under_skip_rule(resolved(seen["path"]))
    record("paths", case, expected, describe(resp), breach=breach)


@pytest.mark.parametrize("target", ["/public/x", "/public//../admin", "/healthz", "/public/caf%C3%A9"])
def test_skip_path_control(gateway: Gateway, target: str) -> None:
    """Skipped paths do reach the upstream, with the path authz judged (Envoy normalized it first)."""
    resp = gateway.get(target, [("kubeflow-userid", "mallory")])
    seen = upstream_view(resp)
    ok = seen is not None and under_skip_rule(resolved(seen["path"])) and "kubeflow-userid" not in seen["headers"]
    control("paths", f"skip {target}", ok, describe(resp))


# -- headers and methods ------------------------------------------------------------------

NO_CREDENTIALS = "401 missing_credentials"
HEADER_CASES: list[tuple[str, str, list[tuple[str, Any]], str]] = [
    ("spoofed-userid", "GET", [("kubeflow-userid", "alice@example.com")], NO_CREDENTIALS),
    ("spoofed-userid-case", "GET", [("KubeFlow-UserID", "alice@example.com")], NO_CREDENTIALS),
    ("spoofed-groups", "GET", [("kubeflow-groups", "admins")], NO_CREDENTIALS),
    ("spoofed-userid-underscore", "GET", [("kubeflow_userid", "alice@example.com")], "400 envoy"),
    ("spoofed-userid-underscore-on-skip-path", "GET /public/x", [("kubeflow_userid", "mallory")], "400 envoy"),
    *[(f"spoofed-{name}", "GET", [(name, value)], NO_CREDENTIALS) for name, value in (
        ("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/public/x"), ("x-forwarded-prefix", "/public"), ("x-original-url", "/public/x"),
        ("x-rewrite-url", "/public/x"), ("x-envoy-original-path", "/public/x"), ("x-envoy-internal", "true"),
        ("x-envoy-decorator-operation", "public"), ("x-real-ip", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1;proto=https;host=app.example.com"), ("x-forwarded-user", "alice@example.com"),
        ("x-auth-request-user", "alice@example.com"), ("x-remote-user", "alice@example.com"),
        ("x-authenticated-userid", "alice@example.com"), ("x-request-id", "00000000-0000-0000-0000-000000000000"),
    )],
    ("kube-probe-user-agent", "GET", [("user-agent", "kube-probe/1.29")], NO_CREDENTIALS),
    ("empty-user-agent", "GET", [("user-agent", "")], NO_CREDENTIALS),
    ("health-checker-user-agent", "GET", [("user-agent", "ELB-HealthChecker/2.0")], NO_CREDENTIALS),
    ("options-preflight", "OPTIONS", [("origin", "https://evil.com"), ("access-control-request-method", "GET")],
     NO_CREDENTIALS),
    ("head", "HEAD", [], "401 authz"),
    ("head-navigation", "HEAD", [HTML], "302 login_redirect"),
    ("get-navigation", "GET", [HTML], "302 login_redirect"),
    ("post-form", "POST", [("content-type", "application/x-www-form-urlencoded"), ("content-length", "0")],
     NO_CREDENTIALS),
    ("websocket-upgrade", "GET", [("upgrade", "websocket"), ("connection", "Upgrade"),
                                  ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("sec-websocket-version", "13")],
     NO_CREDENTIALS),
    ("non-utf8-authorization", "GET", [("authorization", b"Bearer \xff\xfe\xfd")], "401 token_malformed"),
    ("non-utf8-session-cookie", "GET", [("cookie", b"authservice_session=\xff\xfe")], NO_CREDENTIALS),
    ("non-utf8-userid", "GET", [("kubeflow-userid", b"alice\xc3\x28")], NO_CREDENTIALS),
    ("non-utf8-other-header", "GET", [("x-thing", b"\xff\xfe")], NO_CREDENTIALS),
    ("forged-session-cookie", "GET", [("cookie", "authservice_session=" + "A" * 43)], NO_CREDENTIALS),
    ("session-cookie-with-quotes", "GET", [("cookie", 'authservice_session="' + "A" * 43 + '"')], NO_CREDENTIALS),
    ("200-cookies", "GET", [("cookie", "; ".join(f"c{i}=v{i}" for i in range(200)))], NO_CREDENTIALS),
    ("basic-credentials", "GET", [("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")],
     "401 authorization_scheme_unsupported"),
]


@pytest.mark.parametrize(("case", "method", "headers", "expected"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_header_attack(gateway: Gateway, case: str, method: str, headers: list[tuple[str, Any]], expected: str) -> None:
    method, _, target = method.partition(" ")
    resp = gateway.get(target or "/admin", headers, method)
    seen = upstream_view(resp)
    record("headers", case, expected, describe(resp), breach=seen is not None and not under_skip_rule(seen["path"]))


def test_two_authorization_headers(gateway: Gateway) -> None:
    token = gateway.token()
    resp = gateway.get("/admin", [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")])
    record("headers", "two-authorization-headers", "401 authorization_ambiguous", describe(resp),
           breach=upstream_view(resp) is not None)  # fmt: skip


def test_oversized_headers_are_refused_fast(gateway: Gateway) -> None:
    for case, headers, expected in (
        ("64KiB-token", [("authorization", "Bearer " + gateway.token(pad="x" * 65536))], "431 envoy"),
        ("56KiB-token", [("authorization", "Bearer " + gateway.token(pad="x" * 40000))], "401 token_too_large"),
        ("200-cookies-with-token", [("authorization", "Bearer junk.junk.junk"),
                                    ("cookie", "; ".join(f"c{i}={'v' * 40}" for i in range(200)))],
         "401 token_malformed"),
    ):  # fmt: skip
        started = time.monotonic()
        resp = gateway.get("/admin", headers)
        elapsed = time.monotonic() - started
        record("headers", case, expected, describe(resp), breach=upstream_view(resp) is not None)
        assert elapsed < 2.0, (case, elapsed)


# -- spoofed identity next to a genuine token: the upstream sees only authz's values ------

ALICE = {"kubeflow-userid": "alice@example.com", "kubeflow-groups": "team-a,everyone"}
SPOOFS: list[tuple[str, list[tuple[str, Any]], dict[str, Any], dict[str, str | None]]] = [
    ("userid", [("kubeflow-userid", "mallory")], {}, ALICE),
    ("userid-case-variant", [("KUBEFLOW-USERID", "mallory")], {}, ALICE),
    ("groups", [("kubeflow-groups", "admins")], {}, ALICE),
    ("userid-twice", [("kubeflow-userid", "mallory"), ("kubeflow-userid", "root")], {}, ALICE),
    ("groups-when-token-has-none", [("kubeflow-groups", "admins")], {"groups": []},
     {"kubeflow-userid": "alice@example.com", "kubeflow-groups": None}),
    ("non-utf8-userid", [("kubeflow-userid", b"mallory\xff")], {}, ALICE),
    ("userid-with-comma-list", [("kubeflow-userid", "mallory, alice@example.com")], {}, ALICE),
]


@pytest.mark.parametrize(("case", "headers", "claims", "expected"), SPOOFS, ids=[c[0] for c in SPOOFS])
def test_spoofed_identity_next_to_a_token(
    gateway: Gateway, case: str, headers: list[tuple[str, Any]], claims: dict[str, Any], expected: dict[str, str | None]
) -> None:
    resp = gateway.get("/admin", [("authorization", f"Bearer {gateway.token(**claims)}"), *headers])
    seen = upstream_view(resp)
    got = {name: (seen["headers"].get(name) if seen else "(not reached)") for name in expected}
    leaked = seen is not None and any(bad in str(seen["headers"]) for bad in ("mallory", "admins", "root"))
    record("headers", f"spoof-with-token-{case}", f"200 upstream {expected}", f"{resp.status} upstream {got}",
           breach=leaked)  # fmt: skip


def test_genuine_token_control(gateway: Gateway) -> None:
    resp = gateway.get("/admin", [("authorization", f"Bearer {gateway.token()}")])
    seen = upstream_view(resp)
    control("headers", "genuine-token", seen is not None and seen["headers"].get("kubeflow-userid") == "alice@example.com",
            describe(resp))  # fmt: skip
