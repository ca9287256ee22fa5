"""The Check edge: CheckRequest -> AuthRequest -> Engine -> CheckResponse, with I/O between.

Never raises: a malformed request or an internal error becomes a deny with a reason code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz import metrics
from authz.decision import REDIRECT_STATUSES, Allow, Decision, Deny, NeedKeys
from authz.engine import Engine
from authz.envoy import ResponseEncoder, parse_check_request
from authz.errors import AuthzError, UnknownKeyError
from authz.jwks import KeyManager
from authz.login_flow import LoginFlow
from authz.request import AuthRequest

log = logging.getLogger("authz.check")
T = TypeVar("T")


class CheckHandler:
    """Answers one Check. Owned by the gRPC servicer.

    ``check_rpc`` (the gRPC method: the serialized CheckResponse) and ``decide`` (the Decision)
    are coroutine functions built once at start as closures over the long-lived objects
    (:meth:`_method`): grpc.aio inspects its handler on every call, where a bound method costs
    an unwrap, and closure cells read faster than attributes of ``self`` on the hot path.
    """

    def __init__(
        self, engine: Engine, keys: KeyManager, *, login: LoginFlow | None = None, clock: Any = time.time
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.login = login
        self._clock = clock
        self._encoder = ResponseEncoder()
        self._debug = log.isEnabledFor(logging.DEBUG)
        # Plain numbers on the hot path, read at scrape time (authz.metrics.CheckStats).
        self._stats = metrics.CHECK_STATS
        self._stats.caches.add(engine.cache)
        self.check_rpc: Callable[[pb.CheckRequest, Any], Awaitable[bytes]] = self._method(self._encoder.wire)
        self.decide: Callable[[pb.CheckRequest], Awaitable[Decision]] = self._method(_same)

    async def check(self, message: pb.CheckRequest) -> pb.CheckResponse:
        """The CheckResponse for a CheckRequest."""
        return self._encoder.encode(await self.decide(message))

    def _method(self, finish: Callable[[Decision], T]) -> Callable[..., Awaitable[T]]:
        """A coroutine function: CheckRequest -> ``finish(decision)``, counted in the metrics."""
        engine, login, stats, clock, lookup = self.engine, self.login, self._stats, self._clock, self.keys.lookup
        decide, skips, deny, record = engine.decide, engine.skip.matches, engine.deny, self._record
        with_new_keys, refetch_due = self._with_new_keys, self.keys.kid_refetch_due
        perf_counter = time.perf_counter

        async def method(message: pb.CheckRequest, context: Any = None) -> T:
            started = perf_counter()
            req: AuthRequest | None = None
            try:
                req = parse_check_request(message)
                pending: Awaitable[Decision]
                if login is not None and (
                    login.handles(req) or ("authorization" not in req.headers and not skips(req.path))
                ):
                    pending = login.check(req)
                else:
                    result = decide(req, clock(), lookup)
                    if result.__class__ is not NeedKeys:
                        record(result, req, started)  # type: ignore[arg-type]
                        return finish(result)  # type: ignore[arg-type]
                    if not refetch_due(result.issuer):
                        # The refetch would be refused at once (rate limited): the deny
                        # _with_new_keys would give, without a coroutine and an await.
                        unknown = deny(UnknownKeyError.status, UnknownKeyError.code)
                        record(unknown, req, started)
                        return finish(unknown)
                    pending = with_new_keys(req, result)
                # Counted in flight only while awaiting I/O: a Check that never awaits cannot be
                # seen in flight (a scrape runs on the same event loop).
                stats.in_flight += 1
                try:
                    decision = await pending
                finally:
                    stats.in_flight -= 1
            except AuthzError as exc:
                decision = deny(exc.status, exc.code)
            except Exception:
                log.exception("check failed", extra={"request_id": _request_id(req)})
                decision = deny(500, "internal_error")
            record(decision, req, started)
            return finish(decision)

        return method

    async def _with_new_keys(self, req: AuthRequest, need: NeedKeys) -> Decision:
        """The token names a kid the issuer's key set lacks: refetch, decide again.

        Reached only when ``KeyManager.kid_refetch_due``; a rate-limited Check is denied
        without awaiting (:meth:`_method`).
        """
        known = self.keys.lookup(need.issuer)
        await self.keys.refetch_unknown_kid(need.issuer)
        if self.keys.lookup(need.issuer) is known:
            # No new keys (the refetch is rate limited, or found nothing new): deciding again
            # would fail the same way, after parsing the token again.
            return self.engine.deny(UnknownKeyError.status, UnknownKeyError.code)
        result = self.engine.decide(req, self._clock(), self.keys.lookup, refetched=True)
        assert not isinstance(result, NeedKeys)  # refetched=True never asks again
        return result

    def _record(self, decision: Decision, req: AuthRequest | None, started: float) -> None:
        kind = "allow" if isinstance(decision, Allow) else "deny"
        if isinstance(decision, Deny) and decision.status in REDIRECT_STATUSES:
            kind = "redirect"
        self._stats.observe(kind, decision.reason, time.perf_counter() - started)
        if self._debug:
            extra: dict[str, Any] = {
                "decision": kind,
                "reason": decision.reason,
                "request_id": _request_id(req),
            }
            if isinstance(decision, Deny):
                extra["status"] = decision.status
            log.debug("decision", extra=extra)


def _request_id(req: AuthRequest | None) -> str:
    """For a log line: the request's id, read from the CheckRequest only now."""
    try:
        return req.request_id if req is not None else ""
    except Exception:  # a log line never fails the Check
        return ""


def _same(decision: Decision) -> Decision:
    return decision
