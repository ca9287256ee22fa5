"""OpenTelemetry tracing of Check (the ``otel`` extra); off by default.

Off, this module is not even imported and the servicer calls the handler directly. On, every
Check gets one SERVER span ``authz.Check``, the child of the trace the client's request belongs
to. When Envoy traces the ext_authz call itself, the call's gRPC metadata carries its span's
context, which becomes the parent; otherwise Envoy hands the request's headers over in the
CheckRequest, so the W3C ``traceparent`` / ``tracestate`` are read from there (B3 ``x-b3-*`` /
``b3`` too when opentelemetry-propagator-b3 is installed).

A span carries the decision, its reason code (the ``reason`` label of ``authz_checks_total``),
the auth method, the status of a deny, the method and the path without its query: the
response's dynamic_metadata, less the user. Never a header value, a query string, a token, a
cookie or an identity.

opentelemetry is imported only by the functions here, so that a missing or broken install
becomes a ConfigError naming the fix instead of an ImportError.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from authz.envoy import parse_check_request
from authz.errors import ConfigError
from authz.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

CheckFn = Callable[[Any], Awaitable[Any]]
# A traced check also takes the Check call's gRPC metadata (pairs of name and value).
TracedFn = Callable[[Any, Sequence[tuple[str, Any]]], Awaitable[Any]]
SPAN_NAME = "authz.Check"
RPC_SERVICE = "envoy.service.auth.v3.Authorization"
INSTALL_HINT = "pip install 'authz[otel]'"
# The opentelemetry-proto files xds-protos ships (an old copy) can overwrite the real ones.
PROTO_FIX = "pip install --force-reinstall --no-deps opentelemetry-proto"
PATH_MAX = 512  # longer paths are cut: a span attribute, not a log of the request
FLUSH_MILLIS = 5000  # spans still queued at shutdown get this long to be exported
# Any other method is "_OTHER" (OpenTelemetry's HTTP conventions): a client picks the method.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_OTLP_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
_B3_MODULE = "opentelemetry.propagators.b3"


def setup_tracing(settings: TracingSettings, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """The SDK tracer provider for ``settings``; None when tracing is off.

    Sampling: a trace the caller sampled (or not) stays so; a new trace is sampled with
    ``sample_ratio``. Spans are exported in batches, by OTLP/gRPC (the ``OTEL_EXPORTER_OTLP_*``
    variables apply) or as one JSON line each on stdout. ``exporter`` replaces the configured
    one (tests pass an in-memory exporter). The provider is not made the global one.

    Raises ConfigError when tracing is on but the otel extra is missing or broken.
    """
    if not settings.enabled:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise ConfigError([_unusable("tracing.enabled (AUTHZ_TRACING)", "opentelemetry-sdk", exc)]) from None
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(settings)))
    return provider


def _exporter(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(formatter=_json_line)
    try:
        # By name: the exporter is optional, and mypy must not need it installed.
        otlp = importlib.import_module(_OTLP_MODULE)
    except ImportError as exc:
        where = "tracing.exporter (AUTHZ_TRACING_EXPORTER)"
        problem = _unusable(where, "opentelemetry-exporter-otlp-proto-grpc", exc)
        raise ConfigError([f"{problem} (or set AUTHZ_TRACING_EXPORTER=console)"]) from None
    # None leaves the endpoint to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT.
    exporter: SpanExporter = otlp.OTLPSpanExporter(endpoint=settings.endpoint or None)
    return exporter


def _unusable(where: str, package: str, exc: ImportError) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"{where}: tracing needs {package}, which is not installed: {INSTALL_HINT}"
    return f"{where}: {package} is installed but does not import ({exc}); reinstall it: {PROTO_FIX}"


def _json_line(span: ReadableSpan) -> str:
    line: str = span.to_json(indent=None)
    return line + os.linesep


class CheckTracing:
    """Tracing of Check for one server: the SDK provider, and the wrapper of the servicer's check.

    Raises ConfigError as setup_tracing does; built only when tracing is on.
    """

    def __init__(self, settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
        provider = setup_tracing(settings, exporter)
        if provider is None:
            raise ValueError("CheckTracing built with tracing off")
        self.provider = provider

    def wrap(self, check: CheckFn) -> TracedFn:
        return traced_check(check, self.provider)

    async def shutdown(self) -> None:
        """Export what is still queued (for FLUSH_MILLIS at most), then stop the exporter."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self.provider.force_flush(FLUSH_MILLIS)
        self.provider.shutdown()


def traced_check(check: CheckFn, provider: TracerProvider) -> TracedFn:
    """``check`` with one span per call, the child of the request's incoming trace context.

    ``check`` answers a CheckRequest with a CheckResponse and never raises (CheckHandler.check).
    """
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator, default_getter
    from opentelemetry.trace import SpanKind, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = provider.get_tracer("authz")
    w3c = TraceContextTextMapPropagator()
    fallback: TextMapPropagator | None = None
    try:
        fallback = importlib.import_module(_B3_MODULE).B3MultiFormat()  # reads b3 and x-b3-*
    except ImportError:
        pass

    def parent_of(headers: Mapping[str, str]) -> Context:
        context = w3c.extract(headers, Context(), default_getter)
        if fallback is not None and not get_current_span(context).get_span_context().is_valid:
            context = fallback.extract(headers, Context(), default_getter)
        return context

    async def traced(message: Any, metadata: Sequence[tuple[str, Any]] = ()) -> Any:
        try:
            req = parse_check_request(message)
        except Exception:  # RequestError (no path): the handler answers request_invalid; a new trace
            req = None
        parent: Context | None = None
        if metadata:
            # Envoy with tracing on sends its ext_authz span's context as gRPC metadata of the
            # Check call: the closest parent. Otherwise the request's own headers carry the trace.
            carried = parent_of({key: value for key, value in metadata if isinstance(value, str)})
            if get_current_span(carried).get_span_context().is_valid:
                parent = carried
        if parent is None:
            parent = parent_of(req.headers) if req is not None else Context()
        # An exception's message is no span's business (check never raises; cancelling can).
        with tracer.start_as_current_span(
            SPAN_NAME, context=parent, kind=SpanKind.SERVER, record_exception=False
        ) as span:
            response = await check(message)
            if span.is_recording():
                _describe(span, req, response)
        return response

    return traced


def _describe(span: Span, req: Any, response: Any) -> None:
    """The span's attributes: what was decided and why, never what the request carried."""
    from opentelemetry.trace import StatusCode

    attributes: dict[str, str | int] = {"rpc.system": "grpc", "rpc.service": RPC_SERVICE, "rpc.method": "Check"}
    if req is not None:
        attributes["http.request.method"] = req.method if req.method in _METHODS else "_OTHER"
        attributes["url.path"] = req.path.partition("?")[0].partition("#")[0][:PATH_MAX]
    # The response's dynamic_metadata names the decision (see authz.envoy); its "user" is left out.
    # Read with `in` first: indexing a missing key would add it to a response shared by many Checks.
    fields = response.dynamic_metadata.fields
    for name in ("decision", "reason", "auth_method"):
        if name in fields:
            attributes[f"authz.{name}"] = fields[name].string_value
    if response.HasField("denied_response"):
        status = response.denied_response.status.code
        attributes["http.response.status_code"] = status
        if status >= 500:
            span.set_status(StatusCode.ERROR)
    span.set_attributes(attributes)
