"""The Check edge: CheckRequest -> AuthRequest -> Engine -> CheckResponse, with I/O between.

Never raises: a malformed request or an internal error becomes a deny with a reason code.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz import metrics
from authz.decision import REDIRECT_STATUSES, Allow, Decision, Deny, NeedKeys
from authz.engine import Engine
from authz.envoy import ResponseEncoder, parse_check_request
from authz.errors import AuthzError, UnknownKeyError
from authz.jwks import KeyManager
from authz.login_flow import LoginFlow

log = logging.getLogger("authz.check")


class CheckHandler:
    """Answers one Check. Owned by the gRPC servicer."""

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

    async def check(self, message: pb.CheckRequest) -> pb.CheckResponse:
        """The CheckResponse for a CheckRequest."""
        return self._encoder.encode(await self.decide(message))

    async def check_rpc(self, message: pb.CheckRequest, context: Any) -> bytes:
        """The gRPC method itself: the serialized CheckResponse, built once per decision."""
        return self._encoder.wire(await self.decide(message))

    async def decide(self, message: pb.CheckRequest) -> Decision:
        """The decision for a CheckRequest, counted in the metrics."""
        started = time.perf_counter()
        request_id = ""
        stats = self._stats
        stats.in_flight += 1
        try:
            req = parse_check_request(message)
            request_id = req.request_id
            login = self.login
            if login is not None and (
                login.handles(req) or ("authorization" not in req.headers and not self.engine.skips(req.path))
            ):
                decision: Decision = await login.check(req)
            else:
                result = self.engine.decide(req, self._clock(), self.keys.lookup)
                if isinstance(result, NeedKeys):
                    known = self.keys.lookup(result.issuer)
                    await self.keys.refetch_unknown_kid(result.issuer)
                    if self.keys.lookup(result.issuer) is known:
                        # No new keys (the refetch is rate limited, or found nothing new):
                        # deciding again would fail the same way, after parsing the token again.
                        result = self.engine.deny(UnknownKeyError.status, UnknownKeyError.code)
                    else:
                        result = self.engine.decide(req, self._clock(), self.keys.lookup, refetched=True)
                decision = result  # type: ignore[assignment]
        except AuthzError as exc:
            decision = self.engine.deny(exc.status, exc.code)
        except Exception:
            log.exception("check failed", extra={"request_id": request_id})
            decision = self.engine.deny(500, "internal_error")
        finally:
            stats.in_flight -= 1  # every await of a Check is inside the try; what follows only counts
        self._record(decision, request_id, started)
        return decision

    def _record(self, decision: Decision, request_id: str, started: float) -> None:
        kind = "allow" if isinstance(decision, Allow) else "deny"
        if isinstance(decision, Deny) and decision.status in REDIRECT_STATUSES:
            kind = "redirect"
        self._stats.observe(kind, decision.reason, time.perf_counter() - started)
        if self._debug:
            extra: dict[str, Any] = {
                "decision": kind,
                "reason": decision.reason,
                "request_id": request_id,
            }
            if isinstance(decision, Deny):
                extra["status"] = decision.status
            log.debug("decision", extra=extra)
