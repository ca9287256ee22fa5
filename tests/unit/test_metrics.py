"""The operator metrics: names, help, multiprocess mode, and that each one moves on its code path.

Every path is driven through the real code: the gRPC server in this process (``ThreadedApp`` or
``App``), the key manager against a real discovery/JWKS server, the login flow against the stub
provider, the Redis store against a real redis-server, all on 127.0.0.1. Counters are global to
the process, so each assertion is on a change.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from authz import metrics
from authz.errors import DependencyUnavailable
from authz.fetch import Fetcher
from authz.jwks import KeyManager
from authz.redis_store import RedisStore
from authz.server import App, build
from authz.sessions import digest
from authz.settings import DEFAULT_JWKS_REFRESH, IssuerSettings
from tests.adversarial.browser import Browser, location, outcome_of, target
from tests.adversarial.inproc import ShiftedClock, ThreadedApp, build_with_clocks, settings_from_env
from tests.adversarial.stub_op import StubOP
from tests.integration.conftest import make_settings
from tests.support.idp import IdP, run_idp
from tests.support.redis_server import run_redis
from tests.support.servers import check_request
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

ROOT = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def declared() -> list[MetricWrapperBase]:
    return [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


# -- names, help, labels ---------------------------------------------------------------------

# Label names that would carry user input or identities: never a label.
FORBIDDEN_LABELS = {"user", "sub", "email", "group", "groups", "token", "path", "host", "url", "session", "sid"}


def test_metrics_are_named_documented_and_bounded() -> None:
    found = declared()
    assert len(found) >= 12
    for metric in found:
        (family,) = metric.describe()
        assert family.name.startswith("authz_"), family.name
        assert len(family.documentation) >= 30, f"{family.name}: help too short"
        assert not FORBIDDEN_LABELS & set(metric._labelnames), family.name


def test_every_metric_works_in_multiprocess_mode(tmp_path: Path) -> None:
    """With --workers the parent adds up files the workers write: every metric must survive that."""
    script = """
import json, os, sys
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics import MetricWrapperBase
from authz import metrics
names = []
for m in vars(metrics).values():
    if not isinstance(m, MetricWrapperBase):
        continue
    (family,) = m.describe()
    names.append(family.name)
    child = m.labels(*["x"] * len(m._labelnames)) if m._labelnames else m
    {"counter": lambda: child.inc(), "gauge": lambda: child.set(2), "histogram": lambda: child.observe(0.01)}[
        family.type]()
    if family.type == "gauge":
        assert m._multiprocess_mode != "all", family.name + ": a gauge needs a multiprocess_mode"
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
seen = {f.name: len(f.samples) for f in registry.collect()}
json.dump({"declared": names, "seen": seen}, sys.stdout)
"""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for name in result["declared"]:
        assert result["seen"].get(name), f"{name} has no sample in multiprocess mode"


# -- Checks in flight --------------------------------------------------------------------------


async def test_in_flight_gauge_counts_a_check_waiting_for_keys() -> None:
    with run_idp() as idp:
        idp.state.jwks = jwks(rs256())
        app = App(build(make_settings(idp.issuer)))
        await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        try:
            stub = pb_grpc.AuthorizationStub(channel)
            deadline = time.monotonic() + 10
            while app.c.keys.lookup(idp.issuer) is None:
                assert time.monotonic() < deadline, "keys never loaded"
                await asyncio.sleep(0.02)
            before = value("authz_checks_in_flight")
            idp.state.delay = 0.5  # the unknown kid's refetch waits this long at the provider
            unknown = rs256(kid="rsa-new", index=1).sign(claims(iss=idp.issuer))
            call = asyncio.ensure_future(stub.Check(check_request("/", {"authorization": f"Bearer {unknown}"})))
            seen = before
            while not call.done() and seen == before:
                await asyncio.sleep(0.01)
                seen = value("authz_checks_in_flight")
            assert seen == before + 1
            resp = await call
            assert resp.denied_response.status.code == 401
            assert value("authz_checks_in_flight") == before
        finally:
            await channel.close()
            await app.stop()


# -- key fetches ---------------------------------------------------------------------------------


async def _fetch_once(issuer: IssuerSettings) -> KeyManager:
    keys = KeyManager((issuer,), Fetcher(), stale_window=3600.0)
    await keys.refetch_unknown_kid(issuer.issuer)  # one fetch; its failure is swallowed
    await keys.close()
    return keys


async def test_a_good_fetch_sets_the_key_gauges() -> None:
    with run_idp() as idp:
        idp.state.jwks = jwks(rs256(), rs256(kid="rsa-2", index=1))
        before = value("authz_key_fetches_total", issuer=idp.issuer, result="ok")
        started = time.time()
        await _fetch_once(IssuerSettings(idp.issuer, (AUDIENCE,)))
        assert value("authz_key_fetches_total", issuer=idp.issuer, result="ok") == before + 1
        assert value("authz_keys_loaded", issuer=idp.issuer) == 2
        fresh = value("authz_keys_fresh_until_timestamp_seconds", issuer=idp.issuer)
        usable = value("authz_keys_usable_until_timestamp_seconds", issuer=idp.issuer)
        assert started + DEFAULT_JWKS_REFRESH - 1 <= fresh <= time.time() + DEFAULT_JWKS_REFRESH + 1
        assert usable == pytest.approx(fresh + 3600.0, abs=1.0)


def _status_500(idp: IdP) -> IssuerSettings:
    idp.state.status = 500
    return IssuerSettings(idp.issuer, (AUDIENCE,))


def _empty_jwks(idp: IdP) -> IssuerSettings:
    idp.state.jwks = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
    return IssuerSettings(idp.issuer, (AUDIENCE,))


def _no_discovery(idp: IdP) -> IssuerSettings:
    return IssuerSettings(idp.issuer + "/nowhere", (AUDIENCE,))  # discovery answers 404


def _discovery_of_another_issuer(idp: IdP) -> IssuerSettings:
    real = idp.issuer
    idp.state.issuer = "https://another.example"
    return IssuerSettings(real, (AUDIENCE,))


def _missing_jwks_file(idp: IdP) -> IssuerSettings:
    return IssuerSettings(idp.issuer, (AUDIENCE,), jwks_file="/nonexistent/authz-test/jwks.json")


@pytest.mark.parametrize(
    ("setup", "result"),
    [
        (_status_500, "error"),
        (_empty_jwks, "no_usable_keys"),
        (_no_discovery, "discovery_error"),
        (_discovery_of_another_issuer, "discovery_error"),
        (_missing_jwks_file, "error"),
    ],
)
async def test_every_failed_fetch_is_counted(setup: Any, result: str) -> None:
    with run_idp() as idp:
        issuer = setup(idp)
        before = value("authz_key_fetches_total", issuer=issuer.issuer, result=result)
        keys = await _fetch_once(issuer)
        assert keys.lookup(issuer.issuer) is None
        assert value("authz_key_fetches_total", issuer=issuer.issuer, result=result) == before + 1
        assert value("authz_keys_loaded", issuer=issuer.issuer) == 0
        assert value("authz_keys_usable_until_timestamp_seconds", issuer=issuer.issuer) == 0


# -- browser logins and refreshes ----------------------------------------------------------------

CLIENT_ID = "authz-metrics"
CLIENT_SECRET = "metrics-secret"
CALLBACK = "https://app.example.com/authservice/oidc/callback"


class RefreshingOP(StubOP):
    """The stub provider, answering refresh grants too (without a new ID token) while ``refresh_ok``,
    and its token endpoint answering ``token_status`` when set (an outage)."""

    refresh_ok = True
    token_status: int | None = None

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        if self.token_status is not None:
            return self.token_status, {}
        if form.get("grant_type") == "refresh_token" and self.refresh_ok:
            return 200, {"access_token": "at", "refresh_token": form["refresh_token"], "expires_in": 3600}
        return super().token(form, authorization)


@dataclass
class Site:
    op: RefreshingOP
    app: ThreadedApp
    clock: ShiftedClock
    components: Any

    @property
    def policy(self) -> Any:
        return self.components.handler.login.policy

    def browser(self) -> Browser:
        return Browser(self.app.check)

    def start(self, browser: Browser, path: str = "/app") -> str:
        """The authorization redirect's location for a browser asking for ``path``."""
        resp = browser.request(path)
        assert outcome_of(resp) == "302 login_redirect", outcome_of(resp)
        return location(resp) or ""

    def callback(self, browser: Browser, **claims: Any) -> str:
        """The callback request target after the user logs in at the provider (claims: its ID token)."""
        return target(self.op.authorize(self.start(browser), **claims))

    def log_in(self, browser: Browser, **claims: Any) -> pb.CheckResponse:
        return browser.request(self.callback(browser, **claims))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.app.loop).result(10)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    op = RefreshingOP(CLIENT_ID, CLIENT_SECRET)
    op.start()
    try:
        settings = settings_from_env({
            "OIDC_PROVIDER": op.issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
            "REDIRECT_URL": CALLBACK, "GROUPS_ALLOWLIST": "team-a",
        })  # fmt: skip
        clock = ShiftedClock()
        components = build_with_clocks(settings, clock=clock)
        app = ThreadedApp(components)
        app.start()
        try:
            yield Site(op, app, clock, components)
        finally:
            app.stop()
    finally:
        op.stop()


def logins(stage: str, reason: str) -> float:
    return value("authz_logins_total", stage=stage, reason=reason)


def test_login_start_and_complete_are_counted(site: Site) -> None:
    start, complete = logins("start", "missing_credentials"), logins("complete", "ok")
    assert outcome_of(site.log_in(site.browser())) == "302 login_complete"
    assert logins("start", "missing_credentials") == start + 1
    assert logins("complete", "ok") == complete + 1
    explicit = logins("start", "login")
    site.start(site.browser(), site.policy.login_path)
    assert logins("start", "login") == explicit + 1


def test_an_api_call_without_credentials_is_no_login_start(site: Site) -> None:
    before = logins("start", "missing_credentials")
    assert outcome_of(site.browser().request("/api", navigate=False)) == "401 missing_credentials"
    assert logins("start", "missing_credentials") == before


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(params)
    return f"{parts.path}?{urlencode(query)}"


def _replayed(site: Site, b: Browser) -> pb.CheckResponse:
    callback = site.callback(b)
    assert outcome_of(b.request(callback)) == "302 login_complete"
    return b.request(callback)


def _provider_error(site: Site, b: Browser) -> pb.CheckResponse:
    state = parse_qs(urlsplit(site.start(b)).query)["state"][0]
    return b.request(_with_query(site.policy.callback_path, state=state, error="access_denied"))


def _bogus_code(site: Site, b: Browser) -> pb.CheckResponse:
    return b.request(_with_query(site.callback(b), code="not-a-code-the-provider-issued"))


def _no_state(site: Site, b: Browser) -> pb.CheckResponse:
    return b.request(site.policy.callback_path + "?code=x")


def _not_in_allowed_group(site: Site, b: Browser) -> pb.CheckResponse:
    return site.log_in(b, groups=["other-team"])


def _token_endpoint_down(site: Site, b: Browser) -> pb.CheckResponse:
    callback = site.callback(b)
    site.op.token_status = 503
    try:
        return b.request(callback)
    finally:
        site.op.token_status = None


@pytest.mark.parametrize(
    ("case", "answer"),
    [
        (_replayed, "400 state_unknown"),
        (_provider_error, "400 provider_error"),
        (_bogus_code, "400 token_exchange_rejected"),
        (_no_state, "400 callback_invalid"),
        (_not_in_allowed_group, "403 group_not_allowed"),
        (_token_endpoint_down, "503 provider_unavailable"),
    ],
)
def test_failed_logins_are_counted_by_reason(site: Site, case: Any, answer: str) -> None:
    reason = answer.split(" ", 1)[1]
    before = logins("failed", reason)
    assert outcome_of(case(site, site.browser())) == answer
    assert logins("failed", reason) == before + 1


def refreshes(result: str) -> float:
    return value("authz_session_refreshes_total", result=result)


@pytest.fixture
def expiring_session(site: Site) -> Iterator[Browser]:
    """A browser logged in with an ID token that has expired by the next request (time moved on)."""
    b = site.browser()
    assert outcome_of(site.log_in(b, exp=int(time.time()) + 5)) == "302 login_complete"
    site.clock.offset = 120.0
    try:
        yield b
    finally:
        site.clock.offset = 0.0
        site.op.refresh_ok = True


def test_a_refresh_is_counted(site: Site, expiring_session: Browser) -> None:
    before = refreshes("ok")
    assert outcome_of(expiring_session.request("/app")) == "OK"
    assert refreshes("ok") == before + 1
    assert outcome_of(expiring_session.request("/app")) == "OK"  # refreshed: no second refresh
    assert refreshes("ok") == before + 1


def test_a_refused_refresh_is_counted(site: Site, expiring_session: Browser) -> None:
    site.op.refresh_ok = False
    before = refreshes("failed")
    assert outcome_of(expiring_session.request("/app")) == "302 login_redirect"
    assert refreshes("failed") == before + 1


def test_a_refresh_held_by_another_replica_is_counted_busy(site: Site, expiring_session: Browser) -> None:
    store = site.components.handler.login.store
    lock = "refresh:" + digest(expiring_session.jar[site.policy.cookie_name][0])
    assert site.run(store.lock(lock, 30.0))  # as another replica would hold it
    try:
        before = refreshes("busy")
        assert outcome_of(expiring_session.request("/app")) == "503 session_refresh_busy"
        assert refreshes("busy") == before + 1
    finally:
        site.run(store.unlock(lock))


# -- the Redis session store ---------------------------------------------------------------------


def store_ops(operation: str, result: str) -> float:
    return value("authz_session_operations_total", operation=operation, result=result)


def store_timed(operation: str) -> float:
    return value("authz_session_store_duration_seconds_count", operation=operation)


async def test_redis_operations_are_timed_and_errors_counted() -> None:
    with run_redis() as redis:
        store = RedisStore(redis.url, cache_ttl=0, cache_size=10, clock=time.time, timeout=1.0)
        try:
            ok, timed, errors = store_ops("get", "ok"), store_timed("get"), store_ops("get", "error")
            assert await store.get("no-such-session") is None
            assert store_ops("get", "ok") == ok + 1
            assert store_timed("get") == timed + 1
            redis.stop()
            with pytest.raises(DependencyUnavailable) as raised:
                await store.get("no-such-session")
            assert raised.value.code == "session_store_unavailable"
            assert store_ops("get", "error") == errors + 1
            assert store_timed("get") == timed + 2
            assert store_ops("get", "ok") == ok + 1
        finally:
            await store.close()


def test_check_stats_are_read_at_scrape_time_in_one_process() -> None:
    from authz.metrics import CHECK_STATS

    before = value("authz_checks_total", decision="deny", reason="test_reason")
    count = value("authz_check_duration_seconds_count")
    CHECK_STATS.observe("deny", "test_reason", 0.0003)
    assert value("authz_checks_total", decision="deny", reason="test_reason") == before + 1
    assert value("authz_check_duration_seconds_count") == count + 1
    assert value("authz_check_duration_seconds_bucket", le="0.0005") >= 1


def test_check_stats_flush_adds_each_count_once_in_multiprocess_mode(tmp_path: Path) -> None:
    """--workers: a worker's counts reach the parent by flush(); flushing twice adds nothing twice."""
    script = """
import json, os, sys
from prometheus_client import CollectorRegistry, multiprocess
from authz import metrics
stats = metrics.CHECK_STATS
for seconds in (0.0002, 0.0002, 0.003):
    stats.observe("allow", "bearer", seconds)
stats.in_flight = 2
stats.flush()
stats.flush()
stats.observe("deny", "token_expired", 2.0)
stats.flush()
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
out = {}
for family in registry.collect():
    for sample in family.samples:
        out[sample.name + json.dumps(sample.labels, sort_keys=True)] = sample.value
json.dump(out, sys.stdout)
"""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got['authz_checks_total{"decision": "allow", "reason": "bearer"}'] == 3
    assert got['authz_checks_total{"decision": "deny", "reason": "token_expired"}'] == 1
    assert got['authz_check_duration_seconds_count{}'] == 4
    assert got['authz_check_duration_seconds_bucket{"le": "0.00025"}'] == 2
    assert got['authz_check_duration_seconds_bucket{"le": "+Inf"}'] == 4
    assert abs(got['authz_check_duration_seconds_sum{}'] - 2.0034) < 1e-9
    assert got['authz_checks_in_flight{}'] == 2
