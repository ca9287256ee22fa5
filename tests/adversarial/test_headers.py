"""Spoofed identity headers in CheckRequests sent straight to authz over gRPC.

Envoy as configured in demo/envoy_config.py rejects header names with underscores and
lower-cases the rest (tests/adversarial/test_gateway.py). Here the CheckRequests carry what
a more permissive gateway could pass on (underscores, upper case, raw bytes with
``encode_raw_headers``): authz must remove or overwrite every spelling of its identity headers
on every path it allows, skipped paths included.
"""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb

from tests.adversarial.conftest import SKIP, BearerStack
from tests.adversarial.table import outcome, record
from tests.adversarial.test_tokens import a_token
from tests.support.servers import check_request, headers_of

SPOOFS = [
    ("kubeflow-userid", "mallory"), ("kubeflow_userid", "mallory"), ("KUBEFLOW-USERID", "mallory"),
    ("Kubeflow_Userid", "mallory"), ("kubeflow-groups", "admins"), ("kubeflow_groups", "admins"),
    ("KubeFlow-Groups", "admins"),
]  # fmt: skip


def _verdict(resp: pb.CheckResponse, spoofed: str) -> tuple[str, bool]:
    """The outcome, and whether the spoofed header would survive to the upstream.

    Names compare as Envoy compares them: its header map holds every name lower-cased, and it
    sets and removes the answer's headers by lower-case name.
    """
    got = outcome(resp)
    if got != "OK":
        return got, False
    name = spoofed.lower()
    set_names = {h.header.key.lower() for h in resp.ok_response.headers}
    removed = {n.lower() for n in resp.ok_response.headers_to_remove}
    survives = name not in removed and name not in set_names
    return f"OK {'removed' if name in removed else 'overwritten' if name in set_names else 'kept'}", survives


@pytest.mark.parametrize(("name", "value"), SPOOFS, ids=[n for n, _ in SPOOFS])
def test_spoof_with_a_token(bearer_stack: BearerStack, name: str, value: str) -> None:
    s = bearer_stack
    resp = s.check(check_request("/app", {"authorization": f"Bearer {a_token(s)}", name: value}))
    got, survives = _verdict(resp, name)
    expected = "OK overwritten" if name.lower() in ("kubeflow-userid", "kubeflow-groups") else "OK removed"
    record("headers", f"grpc token + {name}", expected, got, breach=survives)
    assert headers_of(resp)["kubeflow-userid"] == "alice@example.com"


@pytest.mark.parametrize(("name", "value"), SPOOFS, ids=[n for n, _ in SPOOFS])
def test_spoof_on_a_skipped_path(bearer_stack: BearerStack, name: str, value: str) -> None:
    resp = bearer_stack.check(check_request(SKIP + "style.css", {name: value}))
    got, survives = _verdict(resp, name)
    record("headers", f"grpc skip path + {name}", "OK removed", got, breach=survives)


@pytest.mark.parametrize(("name", "value"), SPOOFS[:3], ids=[n for n, _ in SPOOFS[:3]])
def test_spoof_without_credentials(bearer_stack: BearerStack, name: str, value: str) -> None:
    resp = bearer_stack.check(check_request("/app", {name: value}))
    record("headers", f"grpc no token + {name}", "401 missing_credentials", outcome(resp))


def _raw_request(headers: list[tuple[str, bytes]], path: str = "/app") -> pb.CheckRequest:
    """A CheckRequest as Envoy sends it with ``encode_raw_headers: true`` (values as bytes)."""
    http = ac.AttributeContext.HttpRequest(
        id="1", method="GET", path=path, host="app.example.com", scheme="https",
        header_map=base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v) for k, v in headers]),
    )  # fmt: skip
    return pb.CheckRequest(attributes=ac.AttributeContext(request=ac.AttributeContext.Request(http=http)))


RAW_CASES: list[tuple[str, Any, str]] = [
    ("raw non-utf8 authorization", lambda s: [(b"authorization", b"Bearer \xff\xfe.\xfd.\xfc")], "401 token_malformed"),
    ("raw non-utf8 in a valid token", lambda s: [(b"authorization", b"Bearer " + a_token(s).encode()[:-4] + b"\xff\xff")],
     "401 token_malformed"),
    ("raw authorization repeated", lambda s: [(b"authorization", f"Bearer {a_token(s)}".encode())] * 2,
     "401 authorization_ambiguous"),
    ("raw non-utf8 userid, no token", lambda s: [(b"kubeflow-userid", b"mallory\xff")], "401 missing_credentials"),
    ("raw nul in userid, no token", lambda s: [(b"kubeflow-userid", b"alice@example.com\x00")],
     "401 missing_credentials"),
]


@pytest.mark.parametrize(("case", "headers", "expected"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_header_values(bearer_stack: BearerStack, case: str, headers: Any, expected: str) -> None:
    raw = [(k.decode(), v) for k, v in headers(bearer_stack)]
    record("headers", case, expected, outcome(bearer_stack.check(_raw_request(raw))))


def test_raw_non_utf8_identity_next_to_a_token(bearer_stack: BearerStack) -> None:
    s = bearer_stack
    resp = s.check(_raw_request([("authorization", f"Bearer {a_token(s)}".encode()),
                                 ("kubeflow_userid", b"mallory\xff"), ("kubeflow-userid", b"root\xfe")]))  # fmt: skip
    got, survives = _verdict(resp, "kubeflow_userid")
    record("headers", "raw non-utf8 spoof + token", "OK removed", got, breach=survives)
    assert headers_of(resp)["kubeflow-userid"] == "alice@example.com"


def test_checkrequest_without_http_attributes(bearer_stack: BearerStack) -> None:
    record("headers", "checkrequest without path", "400 request_invalid", outcome(bearer_stack.check(pb.CheckRequest())))
