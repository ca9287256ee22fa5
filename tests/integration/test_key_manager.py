"""KeyManager against a real JWKS server on loopback: closing while a fetch is running."""

from __future__ import annotations

import asyncio
import gc
import time

from authz.fetch import Fetcher
from authz.jwks import KeyManager
from authz.settings import IssuerSettings
from tests.support.idp import run_idp
from tests.support.tokens import AUDIENCE, jwks, rs256


async def test_close_stops_a_fetch_in_flight_and_leaves_nothing_unobserved() -> None:
    loop = asyncio.get_running_loop()
    unobserved: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unobserved.append(context))
    with run_idp() as idp:
        idp.state.jwks = jwks(rs256())
        idp.state.delay = 2.0  # the provider is slow: the first fetch is still running at close
        keys = KeyManager((IssuerSettings(issuer=idp.issuer, audiences=(AUDIENCE,)),), Fetcher(), stale_window=60)
        keys.start()
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await keys.close()
        assert time.monotonic() - started < 1.0  # not waiting for the slow provider
        # Nothing is left running to fail later, after the fetcher is closed, with no one to see it.
        assert all(state.inflight is None or state.inflight.done() for state in keys._states.values())
        del keys
        gc.collect()
        await asyncio.sleep(0.05)
    assert unobserved == []
