"""SIGTERM while Checks are flowing: health NOT_SERVING first, every in-flight Check answered.

tests/e2e/test_process.py checks the drain itself; this one runs a mixed load (valid and
invalid tokens, each answer checked) and watches health with a Watch stream, to show the order:
NOT_SERVING is announced before any Check is refused, and no Check that was accepted fails.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.faults.procs import NOT_SERVING, SERVING, authz, outcome
from tests.faults.table import fault
from tests.support.idp import run_idp
from tests.support.servers import check_request
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

pytestmark = pytest.mark.e2e
TRANSIT = 0.1  # seconds a Check may take from this thread to authz's on loopback, on a busy machine


def test_sigterm_during_load() -> None:
    key = rs256()
    with run_idp() as idp:
        idp.state.jwks = jwks(key)
        env = {"OIDC_PROVIDER": idp.issuer, "CLIENT_ID": AUDIENCE, "AUTHZ_SHUTDOWN_GRACE": "3"}
        with authz(env) as a:
            good = check_request("/app", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer))}"})
            bad = check_request("/app", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer, aud='x'))}"})
            expected = {id(good): "OK", id(bad): "401 token_audience_invalid"}
            results: list[tuple[float, float, str, bool]] = []  # (sent, answered, answer, as expected)
            watched: list[tuple[float, int]] = []
            stop = threading.Event()

            def load() -> None:
                with grpc.insecure_channel(f"127.0.0.1:{a.port}") as ch:
                    stub = a.stub.__class__(ch)
                    while not stop.is_set() and len(results) < 100_000:
                        for req in (good, bad):
                            sent = time.monotonic()
                            try:
                                got = outcome(stub.Check(req, timeout=10))
                                results.append((sent, time.monotonic(), got, got == expected[id(req)]))
                            except grpc.RpcError as exc:
                                results.append((sent, time.monotonic(), f"rpc {exc.code().name}", False))
                                return

            def watch() -> None:
                with grpc.insecure_channel(f"127.0.0.1:{a.port}") as ch:
                    try:
                        for msg in health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=30):
                            watched.append((time.monotonic(), int(msg.status)))
                    except grpc.RpcError:
                        pass

            # One Check surely in flight at SIGTERM: its unknown kid waits on a 2 s key refetch.
            idp.state.delay = 2.0
            slow: list[Any] = []
            slow_req = check_request("/app", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer), {'kid': 'new'})}"})
            threads = [threading.Thread(target=load) for _ in range(3)]
            threads += [threading.Thread(target=watch),
                        threading.Thread(target=lambda: slow.append(outcome(a.check(slow_req, timeout=20))))]  # fmt: skip
            for t in threads:
                t.start()
            time.sleep(0.7)
            sigterm_at = time.monotonic()
            a.proc.send_signal(signal.SIGTERM)
            code = a.proc.wait(timeout=20)
            stop.set()
            for t in threads:
                t.join(timeout=15)
    not_serving_at = next((t for t, s in watched if s == NOT_SERVING and t >= sigterm_at), None)
    refused = [answered for _, answered, got, _ in results if got.startswith("rpc")]
    first_refusal = min(refused) if refused else None
    # Sent before SIGTERM by more than the loopback transit time: surely received before it.
    in_flight = [r for r in results if r[0] < sigterm_at - TRANSIT]
    in_transit = [r for r in results if sigterm_at - TRANSIT <= r[0] < sigterm_at]
    wrong = [r for r in in_flight if not r[3]]
    # Two connections' messages are timestamped here, after the fact: allow the same transit time.
    order_ok = not_serving_at is not None and (first_refusal is None or not_serving_at <= first_refusal + TRANSIT)
    fault("SIGTERM during load",
          "health NOT_SERVING before any Check is refused; every Check sent before SIGTERM answered correctly "
          "(the slow one too); exit 0",
          f"{len(in_flight)} Checks sent before SIGTERM, {len(wrong)} failed or wrong "
          f"({len(in_transit)} more sent within {TRANSIT * 1000:.0f} ms of it: "
          f"{sorted({r[2] for r in in_transit})}); NOT_SERVING seen "
          f"{(not_serving_at - sigterm_at) * 1000 if not_serving_at else float('nan'):.0f} ms after SIGTERM, first "
          f"refusal {(first_refusal - sigterm_at) * 1000 if first_refusal else float('nan'):.0f} ms after; slow "
          f"in-flight Check {slow}; exit code {code}; health seen {[s for _, s in watched]}",
          order_ok and not wrong and bool(in_flight) and slow == ["401 token_unknown_kid"] and code == 0
          and watched[0][1] == SERVING)  # fmt: skip
