"""The session store failing under load: Redis stopped and restarted mid-run, Redis slow.

authz runs as a real process with SESSION_STORE_TYPE=redis against a real redis-server
(tests/support/redis_server.py); logins go through the stub provider
(tests/adversarial/stub_op.py), Checks are Envoy-shaped CheckRequests over gRPC.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.adversarial.browser import Browser, location, outcome_of, target
from tests.adversarial.stub_op import StubOP, run_stub_op
from tests.faults.procs import Authz, authz, outcome
from tests.faults.proxy import delay_proxy
from tests.faults.table import fault
from tests.support.redis_server import run_redis
from tests.support.servers import check_request

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-redis-faults"


def env_for(op: StubOP, redis_addr: str) -> dict[str, str]:
    return {
        "OIDC_PROVIDER": op.issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": "s3cret",
        "REDIRECT_URL": "https://app.example.com/authservice/oidc/callback",
        "SESSION_STORE_TYPE": "redis", "SESSION_STORE_REDIS_ADDR": redis_addr,
    }  # fmt: skip


def log_in(a: Authz, op: StubOP) -> Browser:
    browser = Browser(a.check)
    start = browser.request("/app")
    done = browser.request(target(op.authorize(location(start) or "")))
    assert outcome_of(done) == "302 login_complete", outcome_of(done)
    return browser


def test_redis_stopped_and_restarted_mid_run() -> None:
    """Redis as deployed (manifests/components/redis): nothing on disk, so a restart loses every
    session. While it is down, session Checks fail closed; after, the lost sessions are simply
    absent (log in again), and nobody is let in on a session that no longer exists."""
    with run_stub_op(CLIENT_ID, "s3cret") as op, run_redis() as redis, authz(env_for(op, redis.addr)) as a:
        browser = log_in(a, op)
        session_req = check_request("/app", {"cookie": browser.cookie_header("/app")})
        bearer_req = check_request("/app", {"authorization": f"Bearer {op.id_token()}"})
        events: list[tuple[float, str, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set() and len(events) < 200_000:
                for kind, req in (("session", session_req), ("bearer", bearer_req)):
                    events.append((time.monotonic(), kind, outcome(a.check(req, timeout=5))))

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        stopped_at = time.monotonic()
        redis.stop()
        time.sleep(2.5)  # past the 2 s read cache
        during_login = outcome_of(Browser(a.check).request("/app"))
        restarted_at = time.monotonic()
        redis.start()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        fresh = outcome_of(log_in(a, op).request("/app"))

    def phase(t: float) -> str:
        return "before" if t < stopped_at else "down" if t < restarted_at else "after"

    sessions = {
        p: Counter(o for t, k, o in events if k == "session" and phase(t) == p) for p in ("before", "down", "after")
    }
    settled = Counter(o for t, k, o in events if k == "session" and t > restarted_at + 1.0)
    bearers = Counter(o for _, k, o in events if k == "bearer")
    fault("Redis stopped and restarted mid-run",
          "session Checks fail closed (503) while Redis is down; after a restart (no persistence, as deployed) "
          "the lost sessions get 401, never OK and never 500; bearer Checks unaffected; logins 503 while down",
          f"session Checks before {dict(sessions['before'])}, down {dict(sessions['down'])}, after restart "
          f"{dict(sessions['after'])}; {sum(bearers.values())} bearer Checks {dict(bearers)}; login during outage "
          f"{during_login!r}; new login after {fresh!r}",
          set(sessions["before"]) == {"OK"} and sessions["down"]["503 session_store_unavailable"] > 0
          and set(sessions["down"]) <= {"OK", "503 session_store_unavailable"}
          and set(sessions["after"]) <= {"503 session_store_unavailable", "401 missing_credentials"}
          and set(settled) == {"401 missing_credentials"} and set(bearers) == {"OK"}
          and during_login == "503 session_store_unavailable" and fresh == "OK")  # fmt: skip


def test_redis_slow(tmp_path: Path) -> None:
    config = tmp_path / "authz.yaml"
    config.write_text("session:\n  cache_ttl: 0.2\n")  # so each step reaches Redis without waiting 2 s
    with run_stub_op(CLIENT_ID, "s3cret") as op, run_redis() as redis, delay_proxy(redis.port) as proxy:
        with authz(env_for(op, f"127.0.0.1:{proxy.port}"), "--config", str(config)) as a:
            browser = log_in(a, op)
            session_req = check_request("/app", {"cookie": browser.cookie_header("/app")})
            bearer_req = check_request("/app", {"authorization": f"Bearer {op.id_token()}"})
            figures = {}
            for delay in (0.3, 3.0, 0.0):
                proxy.delay = delay
                time.sleep(0.3)
                started = time.monotonic()
                session = outcome(a.check(session_req))
                session_s = time.monotonic() - started
                started = time.monotonic()
                bearer = outcome(a.check(bearer_req))
                bearer_s = time.monotonic() - started
                figures[delay] = (session, session_s, bearer, bearer_s)
    text = "; ".join(
        f"Redis +{d:g}s: session {s!r} in {ss:.2f}s, bearer {b!r} in {bs * 1000:.0f} ms"
        for d, (s, ss, b, bs) in figures.items()
    )
    slow, very_slow, fast = figures[0.3], figures[3.0], figures[0.0]
    fault("Redis slow", "a slow Redis slows only session Checks; one slower than the 1 s socket timeout gives 503 "
          "within ~1 s (before Envoy's 5 s timeout); bearer Checks unaffected",
          text, slow[0] == "OK" and very_slow[0] == "503 session_store_unavailable" and very_slow[1] < 2.5
          and fast[0] == "OK" and all(f[2] == "OK" and f[3] < 1.0 for f in figures.values()))  # fmt: skip
