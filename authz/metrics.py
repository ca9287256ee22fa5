"""Prometheus metric objects (module-level, as the style allows for metrics and loggers).

Every label value is a fixed code or a configured issuer URL: never user input, a user
name or a token. Every metric works in multiprocess mode (``--workers``): gauges name
how the parent adds up the workers' values.
"""

from __future__ import annotations

import os
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# -- Check --------------------------------------------------------------------------------
#
# Counted per Check, so kept as plain numbers in CHECK_STATS on the hot path (a prometheus_client
# update takes a lock and, for a histogram, walks the buckets in Python: ~2 µs a Check for these
# four). One process: a collector reads CHECK_STATS at scrape time. ``--workers``: each worker
# adds what it counted to the metric objects below (multiprocess files) once a second, and the
# parent's /metrics adds the workers up. The metric objects are registered nowhere in a single
# process, so each name is exported once.

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
CHECK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_CHECKS_HELP = "Check decisions by decision and reason code"
_CHECK_SECONDS_HELP = "Time to answer a Check, from receipt to response"
_IN_FLIGHT_HELP = "Checks received and not yet answered (summed over the live workers)"
_TOKEN_CACHE_HELP = "Verified-token cache lookups by result (hit, miss)"

CHECKS = Counter("authz_checks_total", _CHECKS_HELP, ["decision", "reason"], registry=None)
CHECK_SECONDS = Histogram("authz_check_duration_seconds", _CHECK_SECONDS_HELP, buckets=CHECK_BUCKETS, registry=None)
CHECKS_IN_FLIGHT = Gauge("authz_checks_in_flight", _IN_FLIGHT_HELP, multiprocess_mode="livesum", registry=None)
TOKEN_CACHE = Counter("authz_token_cache_total", _TOKEN_CACHE_HELP, ["result"], registry=None)


class CheckStats:
    """The per-Check numbers: decisions by (decision, reason), latency buckets, in flight,
    and the token caches whose hits and misses are counted."""

    __slots__ = (
        "_sent_cache",
        "_sent_decisions",
        "_sent_latency",
        "_sent_sum",
        "caches",
        "decisions",
        "in_flight",
        "latency",
        "latency_sum",
    )

    def __init__(self) -> None:
        self.decisions: dict[tuple[str, str], int] = {}
        self.latency = [0] * (len(CHECK_BUCKETS) + 1)  # per bucket, the last one +Inf
        self.latency_sum = 0.0
        self.in_flight = 0
        self.caches: weakref.WeakSet[Any] = weakref.WeakSet()  # objects with .hits and .misses
        # What flush() has handed to the metric objects so far.
        self._sent_decisions: dict[tuple[str, str], int] = {}
        self._sent_latency = [0] * len(self.latency)
        self._sent_sum = 0.0
        self._sent_cache = (0, 0)

    def observe(self, kind: str, reason: str, seconds: float) -> None:
        decisions = self.decisions
        key = (kind, reason)
        decisions[key] = decisions.get(key, 0) + 1
        self.latency[bisect_left(CHECK_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def cache_counts(self) -> tuple[int, int]:
        caches = list(self.caches)
        return sum(c.hits for c in caches), sum(c.misses for c in caches)

    def flush(self) -> None:
        """Add what was counted since the last flush to the metric objects (``--workers``)."""
        sent = self._sent_decisions
        for key, count in list(self.decisions.items()):
            if count != sent.get(key, 0):
                CHECKS.labels(*key).inc(count - sent.get(key, 0))
                sent[key] = count
        for index, count in enumerate(self.latency):
            if count != self._sent_latency[index]:
                CHECK_SECONDS._buckets[index].inc(count - self._sent_latency[index])
                self._sent_latency[index] = count
        if self.latency_sum != self._sent_sum:
            CHECK_SECONDS._sum.inc(self.latency_sum - self._sent_sum)
            self._sent_sum = self.latency_sum
        CHECKS_IN_FLIGHT.set(self.in_flight)
        counts = self.cache_counts()
        for result, count, before in zip(("hit", "miss"), counts, self._sent_cache, strict=True):
            if count > before:
                TOKEN_CACHE.labels(result).inc(count - before)
        self._sent_cache = counts


class _CheckStatsCollector(Collector):
    """CHECK_STATS as the four metrics, read at scrape time (one process)."""

    def collect(self) -> Iterator[Metric]:
        stats = CHECK_STATS
        checks = CounterMetricFamily("authz_checks", _CHECKS_HELP, labels=["decision", "reason"])
        for (kind, reason), count in sorted(stats.decisions.items()):
            checks.add_metric([kind, reason], count)
        yield checks
        cumulative, buckets = 0, []
        for bound, count in zip((*CHECK_BUCKETS, float("inf")), stats.latency, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(
            "authz_check_duration_seconds", _CHECK_SECONDS_HELP, buckets=buckets, sum_value=stats.latency_sum
        )
        yield GaugeMetricFamily("authz_checks_in_flight", _IN_FLIGHT_HELP, value=stats.in_flight)
        cache = CounterMetricFamily("authz_token_cache", _TOKEN_CACHE_HELP, labels=["result"])
        hits, misses = stats.cache_counts()
        cache.add_metric(["hit"], hits)
        cache.add_metric(["miss"], misses)
        yield cache


CHECK_STATS = CheckStats()
if not MULTIPROCESS:
    REGISTRY.register(_CheckStatsCollector())

# -- keys ---------------------------------------------------------------------------------

KEY_FETCHES = Counter(
    "authz_key_fetches_total",
    "Discovery and JWKS fetches by issuer and result: ok, error (JWKS fetch or read failed), "
    "discovery_error (discovery failed or unusable), no_usable_keys (JWKS without a usable key)",
    ["issuer", "result"],
)
KEYS_LOADED = Gauge(
    "authz_keys_loaded",
    "Usable keys in the last key set loaded per issuer (0 until one is loaded)",
    ["issuer"],
    multiprocess_mode="max",
)
KEYS_FRESH_UNTIL = Gauge(
    "authz_keys_fresh_until_timestamp_seconds",
    "Unix time at which the issuer's loaded keys go stale (their cache lifetime ends; "
    "refreshes are due before it); 0 until keys are loaded. Lowest over the live workers",
    ["issuer"],
    multiprocess_mode="livemin",
)
KEYS_USABLE_UNTIL = Gauge(
    "authz_keys_usable_until_timestamp_seconds",
    "Unix time after which the issuer's loaded keys are no longer used (end of the stale "
    "window) and its tokens are denied 503; 0 until keys are loaded. Lowest over the live workers",
    ["issuer"],
    multiprocess_mode="livemin",
)

# -- browser login and sessions -----------------------------------------------------------

LOGINS = Counter(
    "authz_logins_total",
    "Browser logins by stage: start (redirect to the provider; reason login or "
    "missing_credentials), complete (session created; reason ok), failed (reason code)",
    ["stage", "reason"],
)
SESSION_REFRESHES = Counter(
    "authz_session_refreshes_total",
    "Session refreshes at the provider by result: ok, failed (refused; login needed), "
    "not_needed (already refreshed elsewhere), waited (another replica refreshed it), "
    "busy (another replica's refresh did not finish), gone (session ended meanwhile), "
    "unavailable (provider or session store down)",
    ["result"],
)
SESSION_OPS = Counter(
    "authz_session_operations_total",
    "Session store (Redis) operations by operation and result (ok, error)",
    ["operation", "result"],
)
SESSION_STORE_SECONDS = Histogram(
    "authz_session_store_duration_seconds",
    "Time of one session store (Redis) operation, failed ones included, by operation",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
