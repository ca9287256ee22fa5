"""Tracing of Check: trace context from the request's headers, sampling, and what a span carries."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from authz import tracing
from authz.decision import Allow, Deny, json_deny
from authz.envoy import ResponseEncoder
from authz.errors import ConfigError
from authz.identity import Identity
from authz.settings import TracingSettings
from tests.support.servers import check_request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
ALICE = Identity("alice@example.com", ("team-a",), "https://idp.example.com", 2e9)
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
SESSION = "s3ss10n-1d-that-must-not-leak-0123456789abcdef"


def traceparent(flags: str = "01") -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"}


class Traced:
    """A check answering a fixed decision, wrapped by the real tracing, spans kept in memory."""

    def __init__(self, decision: Allow | Deny, sample_ratio: float = 1.0) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracing = tracing.CheckTracing(TracingSettings(enabled=True, sample_ratio=sample_ratio), self.exporter)
        response = ResponseEncoder().encode(decision)

        async def check(message: object) -> object:
            return response

        self.check = self.tracing.wrap(check)

    def spans(self):
        self.tracing.provider.force_flush()
        return self.exporter.get_finished_spans()


@pytest.fixture
def traced():
    made: list[Traced] = []

    def make(decision: Allow | Deny, sample_ratio: float = 1.0) -> Traced:
        made.append(Traced(decision, sample_ratio))
        return made[-1]

    yield make
    for each in made:
        each.tracing.provider.shutdown()


@pytest.fixture
def allow(traced) -> Traced:
    return traced(Allow(reason="bearer", headers=(("kubeflow-userid", ALICE.user),), identity=ALICE))


async def test_incoming_traceparent_is_the_parent(allow):
    response = await allow.check(check_request("/app", traceparent()))
    assert response.HasField("ok_response")
    (span,) = allow.spans()
    assert span.name == "authz.Check"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes["authz.decision"] == "allow"
    assert span.attributes["authz.reason"] == "bearer"
    assert span.attributes["authz.auth_method"] == "bearer"
    assert span.attributes["url.path"] == "/app"
    assert span.attributes["http.request.method"] == "GET"
    assert "http.response.status_code" not in span.attributes  # the upstream answers an allow
    assert span.resource.attributes["service.name"] == "authz"


async def test_without_traceparent_a_new_trace_starts(allow):
    await allow.check(check_request("/app"))
    await allow.check(check_request("/app", {"traceparent": "00-not-a-valid-header-01"}))
    first, second = allow.spans()
    for span in (first, second):
        assert span.parent is None
        assert format(span.context.trace_id, "032x") != TRACE_ID
    assert first.context.trace_id != second.context.trace_id


async def test_deny_carries_its_status_and_reason_code(traced):
    deny = traced(json_deny(401, "token_expired"))
    await deny.check(check_request("/api", {"authorization": "Bearer x"}, method="POST"))
    (span,) = deny.spans()
    assert span.attributes["authz.decision"] == "deny"
    assert span.attributes["authz.reason"] == "token_expired"
    assert span.attributes["http.response.status_code"] == 401
    assert span.attributes["http.request.method"] == "POST"
    assert span.status.status_code is StatusCode.UNSET  # a client's fault is no error of authz


async def test_outage_is_an_error_span_and_a_redirect_is_named(traced):
    outage = traced(json_deny(503, "keys_unavailable"))
    await outage.check(check_request("/"))
    (span,) = outage.spans()
    assert span.attributes["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR
    login = traced(Deny(302, "login", (("location", "https://idp.example.com/auth?state=s"),)))
    await login.check(check_request("/"))
    (span,) = login.spans()
    assert span.attributes["authz.decision"] == "redirect"
    assert span.attributes["authz.reason"] == "login"
    assert span.attributes["http.response.status_code"] == 302


async def test_sample_ratio_zero_records_only_traces_the_caller_sampled(traced):
    skip = traced(Allow(reason="skip_auth"), sample_ratio=0.0)
    await skip.check(check_request("/"))  # a new trace
    await skip.check(check_request("/", traceparent("00")))  # the caller did not sample it
    assert skip.spans() == ()
    await skip.check(check_request("/", traceparent("01")))  # the caller sampled it
    (span,) = skip.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.attributes["authz.reason"] == "skip_auth"
    assert span.attributes["authz.auth_method"] == "skip"


async def test_unsampled_parent_is_honoured_at_ratio_one(allow):
    await allow.check(check_request("/", traceparent("00")))
    assert allow.spans() == ()


async def test_no_token_cookie_query_or_identity_in_the_span(allow):
    headers = {
        **traceparent(),
        "authorization": f"Bearer {JWT}",
        "cookie": f"authservice_session={SESSION}; theme=dark",
        "x-forwarded-for": "203.0.113.7",
    }
    await allow.check(check_request("/x?code=secret-code&state=st4te", headers))
    (span,) = allow.spans()
    assert span.attributes["url.path"] == "/x"
    exported = span.to_json()  # everything the exporter sends: attributes, resource, events, links
    for secret in (JWT, SESSION, "secret-code", "st4te", "code=", "203.0.113.7", ALICE.user, "team-a"):
        assert secret not in exported


async def test_odd_method_and_long_path_are_bounded(allow):
    await allow.check(check_request("/" + "a" * 5000, method="GETSECRET"))
    (span,) = allow.spans()
    assert span.attributes["http.request.method"] == "_OTHER"
    assert len(span.attributes["url.path"]) == tracing.PATH_MAX


async def test_request_without_path_still_gets_a_span(allow):
    message = check_request("/")
    message.attributes.request.http.path = ""
    del message.attributes.request.http.headers[":path"]
    await allow.check(message)
    (span,) = allow.spans()
    assert "url.path" not in span.attributes
    assert span.attributes["authz.decision"] == "allow"


async def test_b3_headers_are_read_when_the_b3_propagator_is_installed(allow):
    pytest.importorskip("opentelemetry.propagators.b3")
    headers = {"x-b3-traceid": TRACE_ID, "x-b3-spanid": PARENT_ID, "x-b3-sampled": "1"}
    await allow.check(check_request("/", headers))
    (span,) = allow.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID


def test_off_builds_nothing():
    assert tracing.setup_tracing(TracingSettings()) is None
    with pytest.raises(ValueError):
        tracing.CheckTracing(TracingSettings())


def test_console_exporter_needs_only_the_sdk():
    provider = tracing.setup_tracing(TracingSettings(enabled=True, exporter="console"))
    assert provider is not None
    provider.shutdown()


def test_missing_sdk_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(ConfigError) as raised:
        tracing.setup_tracing(TracingSettings(enabled=True, exporter="console"))
    (problem,) = raised.value.problems
    assert "AUTHZ_TRACING" in problem
    assert "pip install 'authz[otel]'" in problem


def test_missing_otlp_exporter_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with pytest.raises(ConfigError) as raised:
        tracing.setup_tracing(TracingSettings(enabled=True, exporter="otlp"))
    (problem,) = raised.value.problems
    assert "opentelemetry-exporter-otlp-proto-grpc" in problem
    assert "pip install 'authz[otel]'" in problem
    assert "AUTHZ_TRACING_EXPORTER=console" in problem


def test_broken_install_names_the_reinstall():
    broken = ImportError("cannot import name 'InstrumentationScope' from 'opentelemetry.proto.common.v1.common_pb2'")
    problem = tracing._unusable("tracing.exporter (AUTHZ_TRACING_EXPORTER)", "opentelemetry-proto", broken)
    assert "InstrumentationScope" in problem
    assert tracing.PROTO_FIX in problem


async def test_the_check_calls_grpc_metadata_is_the_closer_parent(allow):
    """Envoy with tracing on sends its ext_authz span as gRPC metadata: that span is the parent."""
    envoy_span = "1111111111111111"
    metadata = (("traceparent", f"00-{TRACE_ID}-{envoy_span}-01"), ("x-envoy-expected-rq-timeout-ms", "5000"))
    await allow.check(check_request("/app", traceparent()), metadata)
    await allow.check(check_request("/app", traceparent()), (("user-agent", "grpc-c++"), ("x-bin", b"\x00")))
    by_metadata, by_headers = allow.spans()
    assert format(by_metadata.parent.span_id, "016x") == envoy_span
    assert format(by_headers.parent.span_id, "016x") == PARENT_ID  # no trace in the metadata: the headers'
