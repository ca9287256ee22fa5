"""A Check naming an unknown kid: one refetch (rate limited per issuer), answered at once when
no refetch would happen.

The key manager fetches from a hand-written fake fetcher and reads a fake monotonic clock; the
handler and engine are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz import metrics
from authz.decision import Allow, Deny, NeedKeys
from authz.engine import Engine
from authz.envoy import ResponseEncoder, parse_check_request
from authz.errors import DependencyUnavailable
from authz.fetch import Fetched
from authz.handler import CheckHandler
from authz.jwks import KeyManager
from authz.settings import UNKNOWN_KID_MIN_INTERVAL, IssuerSettings, Settings
from tests.support.tokens import AUDIENCE, ISSUER, FakeClock, claims, jwks, rs256

OLD = rs256(kid="rsa-1", index=0)
NEW = rs256(kid="rsa-2", index=1)


class FakeFetcher:
    """Serves ``document`` as the JWKS; a test may hold a fetch on ``gate`` or make it fail."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def get_json(self, url: str, ca_bundle: str | None, code: str, token_file: str | None = None) -> Fetched:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise DependencyUnavailable(code, "provider down")
        return Fetched(self.document, None)

    async def aclose(self) -> None:
        return None


class Stack:
    def __init__(self) -> None:
        self.monotonic = FakeClock()
        self.wall = FakeClock()
        self.fetcher = FakeFetcher(jwks(OLD))
        issuer = IssuerSettings(ISSUER, (AUDIENCE,), jwks_uri="https://issuer.test/keys")
        self.keys = KeyManager(
            (issuer,),
            self.fetcher,  # type: ignore[arg-type]
            stale_window=3600.0,
            clock=self.monotonic,
        )
        self.engine = Engine(Settings(issuers=(issuer,)))
        self.handler = CheckHandler(self.engine, self.keys, clock=self.wall)

    def request(self, key: Any, **overrides: Any) -> pb.CheckRequest:
        message = pb.CheckRequest()
        http = message.attributes.request.http
        http.path = "/app"
        http.headers["authorization"] = "Bearer " + key.sign(claims(self.wall.now, **overrides))
        return message


@pytest.fixture
async def stack() -> Stack:
    s = Stack()
    await s.keys.refetch_unknown_kid(ISSUER)  # the first load, as at start
    assert s.keys.lookup(ISSUER) is not None and s.fetcher.fetches == 1
    s.monotonic.advance(UNKNOWN_KID_MIN_INTERVAL)  # that load does not count against the limit
    return s


def finished_without_awaiting(coroutine: Any) -> Any:
    """The value of a coroutine that must complete on its first step (no suspension)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the Check awaited")


async def test_the_first_unknown_kid_refetches_once_and_the_new_key_is_allowed(stack: Stack) -> None:
    stack.fetcher.document = jwks(OLD, NEW)
    assert stack.keys.kid_refetch_due(ISSUER)
    decision = await stack.handler.decide(stack.request(NEW))
    assert isinstance(decision, Allow) and decision.reason == "bearer"
    assert stack.fetcher.fetches == 2
    assert not stack.keys.kid_refetch_due(ISSUER)  # rate limited from now on


async def test_a_rate_limited_unknown_kid_gets_the_same_deny_without_awaiting(stack: Stack) -> None:
    await stack.handler.decide(stack.request(rs256(kid="gone", index=1)))  # uses up the refetch
    assert stack.fetcher.fetches == 2
    assert not stack.keys.kid_refetch_due(ISSUER)
    message = stack.request(rs256(kid="rotated-7", index=1))
    counts = metrics.CHECK_STATS.decisions
    before = counts.get(("deny", "token_unknown_kid"), 0)

    decision = finished_without_awaiting(stack.handler.decide(message))
    wire = finished_without_awaiting(stack.handler.check_rpc(message, None))

    # What the awaited path (the engine's NeedKeys, then the handler's refetch) answers.
    req = parse_check_request(message)
    need = stack.engine.decide(req, stack.wall.now, stack.keys.lookup)
    assert need == NeedKeys(ISSUER)
    awaited = await stack.handler._with_new_keys(req, need)
    assert decision is awaited
    assert isinstance(decision, Deny) and (decision.status, decision.reason) == (401, "token_unknown_kid")
    assert ("www-authenticate", 'Bearer realm="authz", error="invalid_token"') in decision.headers
    assert wire == ResponseEncoder().wire(awaited)
    assert counts.get(("deny", "token_unknown_kid"), 0) == before + 2
    assert stack.fetcher.fetches == 2


async def test_once_the_interval_has_passed_an_unknown_kid_refetches_again(stack: Stack) -> None:
    await stack.handler.decide(stack.request(rs256(kid="gone", index=1)))
    stack.monotonic.advance(UNKNOWN_KID_MIN_INTERVAL - 1)
    assert not stack.keys.kid_refetch_due(ISSUER)
    stack.monotonic.advance(1)
    assert stack.keys.kid_refetch_due(ISSUER)
    stack.fetcher.document = jwks(OLD, NEW)
    assert isinstance(await stack.handler.decide(stack.request(NEW)), Allow)
    assert stack.fetcher.fetches == 3


async def test_a_check_during_a_refetch_in_flight_joins_it(stack: Stack) -> None:
    stack.fetcher.document = jwks(OLD, NEW)
    stack.fetcher.gate = asyncio.Event()
    first = asyncio.ensure_future(stack.handler.decide(stack.request(NEW, sub="a")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stack.fetcher.fetches == 2  # held at the provider; the limit's time is taken
    assert stack.keys.kid_refetch_due(ISSUER)  # in flight: a second Check waits for it
    second = asyncio.ensure_future(stack.handler.decide(stack.request(NEW, sub="b")))
    await asyncio.sleep(0)
    stack.fetcher.gate.set()
    assert all(isinstance(d, Allow) for d in await asyncio.gather(first, second))
    assert stack.fetcher.fetches == 2


async def test_kid_refetch_due_says_whether_refetch_unknown_kid_fetches(stack: Stack) -> None:
    cases = []
    for step in ("due", "just refetched", "interval nearly over", "interval over", "after a failed fetch"):
        if step == "interval nearly over":
            stack.monotonic.advance(UNKNOWN_KID_MIN_INTERVAL - 0.001)
        elif step in ("interval over", "after a failed fetch"):
            stack.monotonic.advance(UNKNOWN_KID_MIN_INTERVAL)
        if step == "after a failed fetch":
            stack.fetcher.fail = True
            await stack.keys.refetch_unknown_kid(ISSUER)
            stack.fetcher.fail = False
        due = stack.keys.kid_refetch_due(ISSUER)
        before = stack.fetcher.fetches
        result = await stack.keys.refetch_unknown_kid(ISSUER)
        cases.append((step, due, result, stack.fetcher.fetches - before))
    assert cases == [
        ("due", True, "refetched", 1),
        ("just refetched", False, "rate_limited", 0),
        ("interval nearly over", False, "rate_limited", 0),
        ("interval over", True, "refetched", 1),
        ("after a failed fetch", False, "rate_limited", 0),  # a failed refetch counts too
    ]
    assert not stack.keys.kid_refetch_due("https://unknown.test")
    assert await stack.keys.refetch_unknown_kid("https://unknown.test") == "unknown_issuer"
