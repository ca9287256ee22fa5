"""Prometheus metric objects (module-level, as the style allows for metrics and loggers).

Every label value is a fixed code or a configured issuer URL: never user input, a user
name or a token. Every metric works in multiprocess mode (``--workers``): gauges name
how the parent adds up the workers' values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# -- Check --------------------------------------------------------------------------------

CHECKS = Counter("authz_checks_total", "Check decisions by decision and reason code", ["decision", "reason"])
CHECK_SECONDS = Histogram(
    "authz_check_duration_seconds",
    "Time to answer a Check, from receipt to response",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CHECKS_IN_FLIGHT = Gauge(
    "authz_checks_in_flight",
    "Checks received and not yet answered (summed over the live workers)",
    multiprocess_mode="livesum",
)
TOKEN_CACHE = Counter("authz_token_cache_total", "Verified-token cache lookups by result", ["result"])

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
