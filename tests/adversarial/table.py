"""The adversarial suite's record of every case, and the summary table printed after the run.

Each case records what was expected and what happened, as short comparable strings such as
``"401 token_alg_not_allowed"``, plus whether the attack got through (a *breach*: a Check
answered OK, a spoofed value reached the upstream, a redirect left the site). A case passes
only when the two strings are equal and there was no breach. Controls are the legitimate
requests next to the attacks (a genuine token, a real session): they must be let through, or
the denials above would prove nothing.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2 as pb


@dataclass(frozen=True)
class Result:
    family: str
    case: str
    expected: str
    got: str
    breach: bool
    control: bool = False

    @property
    def ok(self) -> bool:
        return not self.breach and self.got == self.expected


RESULTS: list[Result] = []


def outcome(resp: pb.CheckResponse) -> str:
    """``"OK"`` for an allowed Check, else ``"<http status> <reason code>"``."""
    if resp.status.code == 0:
        return "OK"
    return f"{resp.denied_response.status.code} {resp.status.message}"


def record(family: str, case: str, expected: str, got: str, *, breach: bool | None = None) -> None:
    """Record an attack and assert its exact outcome. ``breach`` defaults to ``got == "OK"``."""
    result = Result(family, case, expected, got, got == "OK" if breach is None else breach)
    RESULTS.append(result)
    assert not result.breach, f"[{family}] {case}: let through ({got})"
    assert got == expected, f"[{family}] {case}: expected {expected!r}, got {got!r}"


def control(family: str, case: str, ok: bool, detail: str = "") -> None:
    """Record a legitimate request next to the attacks; it must be let through."""
    RESULTS.append(Result(family, case, "allowed", "allowed" if ok else f"refused {detail}", False, control=True))
    assert ok, f"[{family}] control {case} was refused: {detail}"


def summary_rows() -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"cases": 0, "breached": 0, "as_expected": 0, "other": 0, "controls": 0, "controls_ok": 0}
    )
    for r in RESULTS:
        row = rows[r.family]
        if r.control:
            row["controls"] += 1
            row["controls_ok"] += r.got == "allowed"
            continue
        row["cases"] += 1
        row["breached"] += r.breach
        row["as_expected"] += r.ok
        row["other"] += not r.breach and not r.ok
    return [{"family": family, **row} for family, row in rows.items()]


def statuses(family: str) -> str:
    """How the family's attacks were answered: ``401 x12, 302 x3`` (OK: allowed, the spoofed
    part removed; "other": an attribute or value compared instead of a status)."""
    counts: dict[str, int] = defaultdict(int)
    for r in RESULTS:
        if r.family == family and not r.control and not r.breach:
            first = r.got.split(" ", 1)[0]
            counts[first if first == "OK" or first.isdigit() else "other"] += 1
    return ", ".join(f"{status} x{n}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def format_table() -> list[str]:
    rows = summary_rows()
    if not rows:
        return []
    head = f"{'family':<10} {'cases':>6} {'allowed':>8} {'as expected':>12} {'other':>6} {'controls ok':>12}  answered with"
    lines = [head, "-" * len(head)]
    total = defaultdict(int)
    for row in rows:
        for key in ("cases", "breached", "as_expected", "other", "controls", "controls_ok"):
            total[key] += row[key]
        lines.append(
            f"{row['family']:<10} {row['cases']:>6} {row['breached']:>8} {row['as_expected']:>12} {row['other']:>6} "
            f"{row['controls_ok']:>5}/{row['controls']:<6}  {statuses(row['family'])}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<10} {total['cases']:>6} {total['breached']:>8} {total['as_expected']:>12} {total['other']:>6} "
        f"{total['controls_ok']:>5}/{total['controls']:<6}"
    )
    lines.append("allowed: the attack got through (a forged credential answered OK, a spoofed identity seen by the")
    lines.append("upstream, a redirect off the site); must be 0. as expected: the exact status and reason asserted.")
    return lines


def write_json(path: str) -> None:
    """The results as JSON (ADVERSARIAL_RESULTS=path), for docs/security.md's figures."""
    data = {"summary": summary_rows(), "cases": [r.__dict__ for r in RESULTS]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)


def finish(terminalreporter: Any, title: str, referenced: dict[str, str]) -> None:
    """Print the table, and the outcome of the related tests that live in other suites."""
    lines = format_table()
    if not lines:
        return
    terminalreporter.write_sep("=", title)
    for line in lines:
        terminalreporter.write_line(line)
    if referenced:
        outcomes = _outcomes(terminalreporter)
        terminalreporter.write_line("")
        terminalreporter.write_line("covered by tests in other suites:")
        for nodeid, what in referenced.items():
            terminalreporter.write_line(f"  {outcomes.get(nodeid, 'not run'):<8} {what}  ({nodeid})")
    out = os.environ.get("ADVERSARIAL_RESULTS")
    if out:
        write_json(out)


def _outcomes(terminalreporter: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(key, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "call") in ("call", "setup") and nodeid:
                found.setdefault(nodeid.split("[", 1)[0], key)
    return found
