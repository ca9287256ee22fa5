"""Tracing of Check through the real gRPC server: in-process (spans in memory) and as a process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authz.server import App, Components, build, check_behavior
from authz.settings import TracingSettings
from authz.tracing import CheckTracing
from tests.integration.conftest import make_settings
from tests.support.servers import ROOT, authorization_stub, authz_process, check_request, free_port
from tests.support.tokens import AUDIENCE, claims, rs256

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


async def started(components: Components) -> App:
    app = App(components, serve_http=False)
    await app.start()
    deadline = time.monotonic() + 15
    while not app.ready():  # the issuer's keys are fetched
        assert time.monotonic() < deadline, "not ready"
        await asyncio.sleep(0.05)
    return app


async def test_checks_through_the_server_are_spans_flushed_at_stop(idp):
    components = build(make_settings(idp.issuer))
    exporter = InMemorySpanExporter()
    components.tracing = CheckTracing(TracingSettings(enabled=True), exporter)
    components.closers.append(components.tracing.shutdown)  # as build does when tracing is on
    app = await started(components)
    token = rs256().sign(claims(iss=idp.issuer))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.AuthorizationStub(channel)
        allowed = await stub.Check(
            check_request("/notebooks?token=abc", {"traceparent": TRACEPARENT, "authorization": f"Bearer {token}"})
        )
        denied = await stub.Check(check_request("/api", {"authorization": "Bearer junk"}))
        # Envoy with tracing on: its ext_authz span's context arrives as the call's gRPC metadata.
        envoy_span = "2222222222222222"
        await stub.Check(
            check_request("/via-envoy", {"traceparent": TRACEPARENT}),
            metadata=(("traceparent", f"00-{TRACE_ID}-{envoy_span}-01"),),
        )
    await app.stop()  # the tracing closer flushes: no force_flush here
    assert denied.status.message == "token_malformed"
    spans = {span.attributes["url.path"]: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"/notebooks", "/api", "/via-envoy"}
    assert format(spans["/via-envoy"].parent.span_id, "016x") == envoy_span
    traced = spans["/notebooks"]
    assert format(traced.context.trace_id, "032x") == TRACE_ID
    assert format(traced.parent.span_id, "016x") == PARENT_ID
    assert allowed.HasField("ok_response")
    assert traced.attributes["authz.decision"] == "allow"
    assert traced.attributes["authz.reason"] == "bearer"
    assert token not in traced.to_json()
    assert spans["/api"].parent is None
    assert spans["/api"].attributes["authz.reason"] == "token_malformed"
    assert spans["/api"].attributes["http.response.status_code"] == 401


def test_tracing_off_the_servicer_calls_the_handler_itself(idp):
    components = build(make_settings(idp.issuer))
    assert components.tracing is None
    assert check_behavior(components.handler, None) == components.handler.check_rpc


def test_tracing_module_imports_no_opentelemetry_until_tracing_is_on():
    code = "import sys, authz.tracing; print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
def test_process_prints_the_span_of_a_traced_check_as_a_json_line(idp):
    env = {
        "OIDC_PROVIDER": idp.issuer,
        "CLIENT_ID": AUDIENCE,
        "AUTHZ_LISTEN": f"127.0.0.1:{free_port()}",
        "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "AUTHZ_SHUTDOWN_GRACE": "1",
        "AUTHZ_TRACING": "true",
        "AUTHZ_TRACING_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "authz-test",
    }
    token = rs256().sign(claims(iss=idp.issuer))
    with authz_process(env) as proc:
        channel, stub = authorization_stub(int(env["AUTHZ_LISTEN"].rpartition(":")[2]))
        with channel:
            headers = {"traceparent": TRACEPARENT, "authorization": f"Bearer {token}"}
            response = stub.Check(check_request("/x?code=secret", headers), timeout=10)
        assert response.HasField("ok_response")
        proc.terminate()  # the spans still queued are exported at shutdown
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out[-4000:]
    spans = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"context"' in line]
    (span,) = [s for s in spans if s.get("name") == "authz.Check"]
    assert span["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert span["parent_id"] == f"0x{PARENT_ID}"
    assert span["kind"] == "SpanKind.SERVER"
    assert span["attributes"]["authz.decision"] == "allow"
    assert span["attributes"]["authz.reason"] == "bearer"
    assert span["attributes"]["url.path"] == "/x"
    assert span["resource"]["attributes"]["service.name"] == "authz-test"
    assert token not in out
    assert "secret" not in out


async def test_otlp_export_to_a_collector_on_loopback(idp):
    """Runs where the otel extra is installed (the OTLP exporter); skipped in the test extra."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request, context):
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    collector = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    await collector.start()
    try:
        tracing = TracingSettings(enabled=True, exporter="otlp", endpoint=f"http://127.0.0.1:{port}")
        app = await started(build(make_settings(idp.issuer, tracing=tracing)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            await pb_grpc.AuthorizationStub(channel).Check(check_request("/", {"traceparent": TRACEPARENT}))
        await app.stop()
    finally:
        await collector.stop(0)
    spans = [s for r in received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    (span,) = spans
    assert span.name == "authz.Check"
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
    assert attributes["authz.reason"] == "missing_credentials"
    assert attributes["http.response.status_code"] == 401
