from __future__ import annotations

from typing import Any

from tests.faults import table

REFERENCED = {
    "tests/integration/test_server.py::test_provider_down_at_start_then_up": "provider down at start (in-process)",
    "tests/integration/test_server.py::test_bad_jwks_body_keeps_old_keys": "bad JWKS bodies: HTML, {}, 5 MB (in-process)",
    "tests/e2e/test_process.py::test_sigterm_drains_in_flight_checks_and_exits_zero": "SIGTERM drains in-flight Checks",
    "tests/e2e/test_login.py::test_redis_outage_fails_closed_and_recovers": "Redis outage through Envoy, same session after",
    "tests/e2e/test_login.py::test_provider_outage_during_refresh_is_503_then_the_session_resumes": "provider down during refresh",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    table.finish(terminalreporter, REFERENCED)
