"""The fault suite's record: each fault, what must happen, what was measured."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from tests.adversarial.table import _outcomes


@dataclass(frozen=True)
class Fault:
    name: str
    must: str
    observed: str
    ok: bool


FAULTS: list[Fault] = []


def fault(name: str, must: str, observed: str, ok: bool) -> None:
    """Record a fault's result and assert it."""
    FAULTS.append(Fault(name, must, observed, ok))
    assert ok, f"{name}: {must}; observed {observed}"


def finish(terminalreporter: Any, referenced: dict[str, str]) -> None:
    if not FAULTS:
        return
    terminalreporter.write_sep("=", "faults: real processes, real dependencies")
    width = max(len(f.name) for f in FAULTS)
    for f in FAULTS:
        terminalreporter.write_line(f"{'ok  ' if f.ok else 'FAIL'} {f.name:<{width}}  {f.observed}")
        terminalreporter.write_line(f"     {'':<{width}}  (must: {f.must})")
    outcomes = _outcomes(terminalreporter)
    terminalreporter.write_line("covered by tests in other suites:")
    for nodeid, what in referenced.items():
        terminalreporter.write_line(f"  {outcomes.get(nodeid, 'not run'):<8} {what}  ({nodeid})")
    out = os.environ.get("FAULT_RESULTS")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump([asdict(f) for f in FAULTS], fh, indent=1)
