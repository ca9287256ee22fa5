"""Prometheus metric objects (module-level, as the style allows for metrics and loggers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHECKS = Counter("authz_checks_total", "Check decisions by decision and reason code", ["decision", "reason"])
CHECK_SECONDS = Histogram(
    "authz_check_duration_seconds",
    "Time to answer a Check, from receipt to response",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
KEY_FETCHES = Counter(
    "authz_key_fetches_total",
    "Discovery and JWKS fetches by issuer and result",
    ["issuer", "result"],
)
KEYS_LOADED = Gauge(
    "authz_keys_loaded",
    "Usable keys currently loaded per issuer",
    ["issuer"],
    multiprocess_mode="max",
)
TOKEN_CACHE = Counter("authz_token_cache_total", "Verified-token cache lookups by result", ["result"])
SESSION_OPS = Counter(
    "authz_session_operations_total",
    "Session store operations by operation and result",
    ["operation", "result"],
)
