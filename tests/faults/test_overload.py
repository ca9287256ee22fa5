"""More concurrent Checks than AUTHZ_MAX_CONCURRENT_CHECKS: refused fast, never OK, memory bounded."""

from __future__ import annotations

import secrets
import time

import grpc
import pytest

from tests.faults.procs import authz, outcome
from tests.faults.table import fault
from tests.support.idp import run_idp
from tests.support.servers import check_request
from tests.support.tokens import AUDIENCE, claims, jwks, rs256, unsigned

pytestmark = pytest.mark.e2e

LIMIT = 8
EXCESS = 2000


def test_overload_is_refused_fast_and_never_ok() -> None:
    key = rs256()
    with run_idp() as idp:
        idp.state.jwks = jwks(key)
        env = {"OIDC_PROVIDER": idp.issuer, "CLIENT_ID": AUDIENCE, "AUTHZ_MAX_CONCURRENT_CHECKS": str(LIMIT)}
        with authz(env) as a:
            valid = check_request("/app", {"authorization": f"Bearer {key.sign(claims(iss=idp.issuer))}"})
            assert outcome(a.check(valid)) == "OK"
            big_invalid = check_request("/app", {"authorization": "Bearer " + "x" * 60_000, "x-pad": "y" * 60_000})
            rss_before = a.rss()
            # Fill every slot: unknown kids wait on one key refetch from a provider taking 3 s.
            idp.state.delay = 3.0
            body = claims(iss=idp.issuer)
            holders = [
                a.stub.Check.future(check_request("/app", {"authorization": "Bearer " + unsigned(
                    {"alg": "RS256", "kid": secrets.token_hex(8)}, body, b"s" * 256)}), timeout=20)
                for _ in range(LIMIT)
            ]  # fmt: skip
            time.sleep(0.5)
            started = time.monotonic()
            excess = [a.stub.Check.future(valid if i % 2 else big_invalid, timeout=10) for i in range(EXCESS)]
            answers: dict[str, int] = {}
            latest = 0.0
            for f in excess:
                try:
                    key_ = outcome(f.result())
                except grpc.RpcError as exc:
                    key_ = f"rpc {exc.code().name}"
                latest = max(latest, time.monotonic() - started)
                answers[key_] = answers.get(key_, 0) + 1
            rss_peak = a.rss()
            held = sorted({outcome(f.result()) for f in holders})
            idp.state.delay = 0.0
            after = outcome(a.check(valid))
            rss_after = a.rss()
    growth = (rss_peak - rss_before) / 2**20
    fault(f"overload ({EXCESS} Checks over a limit of {LIMIT})",
          "Checks beyond the limit get RESOURCE_EXHAUSTED at once (Envoy: 503), none OK; the held ones finish; "
          "service resumes; RSS stays under the 200 MiB per-process bound",
          f"excess answers {answers} within {latest * 1000:.0f} ms of the first; held {held}; afterwards {after!r}; "
          f"RSS {rss_before / 2**20:.0f} -> {rss_peak / 2**20:.0f} MiB (+{growth:.1f}), {rss_after / 2**20:.0f} MiB after",
          answers == {"rpc RESOURCE_EXHAUSTED": EXCESS} and latest < 5.0 and held == ["401 token_unknown_kid"]
          and after == "OK" and rss_peak / 2**20 < 200)  # fmt: skip
