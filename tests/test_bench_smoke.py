"""The benchmark harness (``python -m bench``) runs end to end with tiny counts and writes its table.

Nothing here is timed: the point is that the harness cannot rot (a renamed setting, a changed
CheckRequest, a new Envoy field) without a test failing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def test_quick_run_writes_every_scenario_into_the_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = (tmp_path / "benchmarks.md").read_text()
    assert re.search(r"\*\*\d+ cores\*\*", doc), doc[:500]
    rows = [
        line for line in doc.splitlines() if line.startswith("| ") and line.rstrip().endswith(("met |", "**missed** |"))
    ]
    # Twelve ratio targets and the memory row, each with a measured figure and a verdict.
    assert len(rows) == 13, doc
    for needle in (
        "one valid bearer token repeated",
        "distinct valid tokens",
        "session cookie, Redis store",
        "invalid tokens",
        "via Envoy",
        "--workers 2",
        "1,000 skip rules",
        "50 keys",
        "10 issuers",
        "sessions in Redis",
        "memory after",
        "Latency against offered load",
        "main thread (event loop)",
    ):
        assert needle in doc, needle
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "benchmarks-latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
