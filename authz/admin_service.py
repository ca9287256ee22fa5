"""The operators' gRPC service ``authz.admin.v1.Admin`` (protos/authz/admin/v1/admin.proto).

Served on its own listener (``admin_listen``, loopback by default) with reflection, never on
the port the gateway reaches. Converts between the generated messages and authz's values;
the answers come from :class:`Explainer`, :class:`KeyManager` and the process's state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from authz import __version__
from authz.admin.v1 import admin_pb2 as apb
from authz.admin.v1 import admin_pb2_grpc as apb_grpc
from authz.config import masked
from authz.envoy import parse_check_request
from authz.errors import AuthzError, DependencyUnavailable
from authz.explain import Explainer, Explanation
from authz.jwks import IssuerKeysView, KeyManager
from authz.request import AuthRequest
from authz.sessions import MemoryStore, SessionStore
from authz.settings import Settings
from authz.token_cache import TokenCache

SERVICE_NAME = apb.DESCRIPTOR.services_by_name["Admin"].full_name
_OUTCOMES = {
    "passed": apb.PASSED,
    "failed": apb.FAILED,
    "skipped": apb.SKIPPED,
    "info": apb.INFO,
    "not_evaluated": apb.NOT_EVALUATED,
}
_MAX_HEADERS = 200
_MAX_HEADER_BYTES = 64 * 1024


def config_digest(settings: Settings) -> str:
    """SHA-256 of the effective settings with secrets masked: equal digests, equal configs."""
    data = masked(settings)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def simple_request(message: apb.ExplainRequest) -> AuthRequest:
    """The AuthRequest of an ExplainRequest's simple form. Raises AuthzError for a bad one."""
    headers = {k.lower(): v for k, v in message.headers.items()}
    if len(headers) > _MAX_HEADERS or sum(len(k) + len(v) for k, v in headers.items()) > _MAX_HEADER_BYTES:
        raise _BadRequest("too many or too large headers")
    path = message.path or "/"
    if not path.startswith("/"):
        raise _BadRequest("path must start with '/'")
    return AuthRequest(
        method=(message.method or "GET").upper(),
        path=path,
        host=message.host or headers.get("host", ""),
        scheme=message.scheme or "https",
        headers=headers,
        request_id=headers.get("x-request-id", ""),
    )


class _BadRequest(Exception):
    pass


def explanation_message(exp: Explanation) -> apb.ExplainResponse:
    return apb.ExplainResponse(
        decision=exp.decision,
        http_status=exp.http_status,
        reason=exp.reason,
        auth_method=exp.auth_method,
        user=exp.user,
        groups=list(exp.groups),
        steps=[
            apb.Step(name=s.name, outcome=_OUTCOMES[s.outcome], detail=s.detail, reason=s.reason) for s in exp.steps
        ],
        upstream_headers=[apb.Header(name=k, value=v) for k, v in exp.upstream_headers],
        removed_headers=list(exp.removed_headers),
        redirect_to=exp.redirect_to,
        summary=exp.summary,
    )


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp | None:
    if seconds <= 0:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def issuer_keys_message(view: IssuerKeysView) -> apb.IssuerKeys:
    return apb.IssuerKeys(
        issuer=view.issuer,
        jwks_uri=view.jwks_uri,
        loaded=view.loaded,
        keys=[apb.Key(kid=kid, alg=alg, kty=kty, use="sig") for kid, alg, kty in view.keys],
        fetched_at=_timestamp(view.fetched_at),
        next_refresh_at=_timestamp(view.next_refresh_at),
        usable_until=_timestamp(view.usable_until),
        last_error=view.last_error,
        last_error_at=_timestamp(view.last_error_at),
        skipped_keys=view.skipped,
        required=view.required,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AdminState:
    """What Status reports on, handed in by the server."""

    settings: Settings
    keys: KeyManager
    token_cache: TokenCache
    store: SessionStore | None
    ready: Callable[[], bool]
    started_at: float


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, explainer: Explainer, state: AdminState) -> None:
        self._explainer = explainer
        self._state = state
        self._digest = config_digest(state.settings)

    async def Explain(self, request: apb.ExplainRequest, context: grpc.aio.ServicerContext) -> apb.ExplainResponse:
        try:
            if request.HasField("check_request"):
                req = parse_check_request(request.check_request)
            else:
                req = simple_request(request)
        except (_BadRequest, AuthzError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad request: {exc}")
            raise AssertionError("unreachable") from exc
        return explanation_message(await self._explainer.explain(req))

    async def Keys(self, request: apb.KeysRequest, context: grpc.aio.ServicerContext) -> apb.KeysResponse:
        keys = self._state.keys
        names = [request.issuer] if request.issuer else list(keys.issuers())
        views = [keys.view(name) for name in names]
        if any(v is None for v in views):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"not a configured issuer: {request.issuer}")
        return apb.KeysResponse(issuers=[issuer_keys_message(v) for v in views if v is not None])

    async def RefreshKeys(
        self, request: apb.RefreshKeysRequest, context: grpc.aio.ServicerContext
    ) -> apb.RefreshKeysResponse:
        keys = self._state.keys
        if keys.view(request.issuer) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"not a configured issuer: {request.issuer!r}")
        result = await keys.refetch_unknown_kid(request.issuer)
        view = keys.view(request.issuer)
        assert view is not None
        return apb.RefreshKeysResponse(
            issuer=request.issuer,
            refetched=result == "refetched",
            rate_limited=result == "rate_limited",
            error="" if result in ("refetched", "rate_limited") else result,
            keys=issuer_keys_message(view),
        )

    async def Status(self, request: apb.StatusRequest, context: grpc.aio.ServicerContext) -> apb.StatusResponse:
        state = self._state
        settings = state.settings
        cache = state.token_cache
        return apb.StatusResponse(
            version=__version__,
            config_digest=self._digest,
            uptime_seconds=round(time.monotonic() - state.started_at, 3),
            ready=state.ready(),
            token_cache_entries=len(cache),
            token_cache_capacity=settings.token_cache_size,
            token_cache_hits=cache.hits,
            token_cache_misses=cache.misses,
            session_store=await _store_status(settings, state.store),
            issuers=[i.issuer for i in settings.issuers],
            login_enabled=settings.login_enabled,
            pid=os.getpid(),
            workers=settings.workers,
        )


async def _store_status(settings: Settings, store: SessionStore | None) -> apb.SessionStoreStatus:
    if store is None:
        return apb.SessionStoreStatus(kind="none", reachable=True, sessions=0)
    if isinstance(store, MemoryStore):
        return apb.SessionStoreStatus(kind="memory", reachable=True, sessions=store.session_count())
    ping: Any = getattr(store, "ping", None)
    try:
        if ping is not None:
            await ping()
    except DependencyUnavailable as exc:
        return apb.SessionStoreStatus(kind=settings.session.store, reachable=False, error=exc.code, sessions=-1)
    return apb.SessionStoreStatus(kind=settings.session.store, reachable=True, sessions=-1)
