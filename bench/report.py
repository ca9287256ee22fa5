"""The results as Markdown (and a PNG plot): ratios only, every one against the same run's floor.

``docs/benchmarks.md`` keeps hand-written analysis outside the markers; a run replaces
only the text between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import collections
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import Comparison

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
X = "\N{MULTIPLICATION SIGN}"
NONE = "\N{EN DASH}"
PLOT = "benchmarks-latency.png"


@dataclass(frozen=True)
class Target:
    key: str
    metric: str  # rps, cpu_per_1k
    op: str  # >= or <=
    bound: float
    text: str
    subject: str | None = None
    baseline: str | None = None

    def measured(self, c: Comparison) -> float:
        return c.ratio(self.metric, self.subject, self.baseline)

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound


TARGETS = [
    Target("cached", "rps", ">=", 0.90, f"throughput ≥ 0.90{X} floor"),
    Target("cached", "cpu_per_1k", "<=", 1.15, f"CPU/check ≤ 1.15{X} floor"),
    Target("distinct", "rps", ">=", 0.65, f"throughput ≥ 0.65{X} floor"),
    Target("session", "rps", ">=", 0.80, f"throughput ≥ 0.80{X} floor"),
    Target("invalid", "rps", ">=", 0.85, f"throughput ≥ 0.85{X} floor"),
    Target("envoy", "rps", ">=", 0.90, f"throughput ≥ 0.90{X} Envoy + floor"),
    Target("envoy", "rps", ">=", 0.40, f"throughput ≥ 0.40{X} Envoy jwt_authn (aim)", baseline="envoy+jwt_authn"),
    Target("workers", "cpu_per_1k", "<=", 1.10, f"CPU/check ≤ 1.10{X} --workers 1"),
    Target("rules", "cpu_per_1k", "<=", 1.10, f"CPU/check grows ≤ 1.10{X}"),
    Target("keys", "cpu_per_1k", "<=", 1.10, f"CPU/check grows ≤ 1.10{X}"),
    Target("issuers", "cpu_per_1k", "<=", 1.10, f"CPU/check grows ≤ 1.10{X}"),
    Target("sessions", "cpu_per_1k", "<=", 1.10, f"CPU/check grows ≤ 1.10{X}"),
]
MEMORY_LIMIT_MB = 200.0


def _x(value: float) -> str:
    return NONE if value != value or math.isinf(value) else f"{value:.2f}{X}"


def _ratios(c: Comparison, subject: str, baseline: str) -> list[str]:
    return [_x(c.ratio(m, subject, baseline)) for m in ("rps", "p50_ms", "p99_ms", "cpu_per_1k")]


def table(results: list[Comparison], memory: dict[str, Any] | None) -> list[str]:
    """The scenario table: every target, its measured ratio, met or missed."""
    by_key = {c.key: c for c in results}
    lines = ["| scenario | compared | throughput | p50 | p99 | CPU/check | target | measured | result |",
             "|---|---|---:|---:|---:|---:|---|---:|---|"]  # fmt: skip
    for target in TARGETS:
        c = by_key.get(target.key)
        if c is None:
            continue
        subject, baseline = target.subject or c.subject, target.baseline or c.baseline
        value = target.measured(c)
        ok = "met" if target.met(value) else "**missed**"
        lines.append(f"| {c.title} | {subject} vs {baseline} | " + " | ".join(_ratios(c, subject, baseline))
                     + f" | {target.text} | {_x(value)} | {ok} |")  # fmt: skip
    if memory:
        peak = float(memory["rss_peak_mb"])
        ok = "met" if peak <= MEMORY_LIMIT_MB else "**missed**"
        lines.append(
            f"| memory after {memory['tokens']:,} distinct tokens and {memory['sessions']:,} sessions (in-process) "
            f"| peak RSS | | | | | RSS ≤ {MEMORY_LIMIT_MB:.0f} MB per worker | {peak:.0f} MB | {ok} |"
        )
    return lines


def details(results: list[Comparison]) -> list[str]:
    """Every target of every comparison against the floor, and per-round spread."""
    lines = ["| scenario | target | throughput | p50 | p99 | CPU/check | rounds | throughput per round |",
             "|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for c in results:
        if c.key == "curve":
            continue
        base = c.baseline if c.key == "envoy" else "floor"
        for name in c.samples:
            if name == base:
                continue
            per_round = ", ".join(
                f"{a.rps / b.rps:.2f}" for a, b in zip(c.samples[name], c.samples[base], strict=True) if b.rps
            )
            lines.append(f"| {c.key} | {name} vs {base} | " + " | ".join(_ratios(c, name, base))
                         + f" | {len(c.samples[name])} | {per_round} |")  # fmt: skip
        for pair in c.extra.get("pairs", ()):  # more comparisons within the scenario
            lines.append(f"| {c.key} | {pair[0]} vs {pair[1]} | " + " | ".join(_ratios(c, *pair)) + " | | |")
    return lines


def plot(curve: Comparison, path: Path) -> bool:
    """p50 and p99 against offered load, authz and floor; both axes relative to the floor."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fractions = sorted({float(name.split("@")[1]) for name in curve.samples})
    base = curve.samples[f"floor@{fractions[0]:g}"][0].p50_ms or 1.0
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for who, color in (("floor", "tab:gray"), ("authz", "tab:blue")):
        s = [curve.samples[f"{who}@{f:g}"][0] for f in fractions]
        ax.plot(fractions, [x.p50_ms / base for x in s], "-o", color=color, label=f"{who} p50")
        ax.plot(fractions, [x.p99_ms / base for x in s], "--s", color=color, label=f"{who} p99")
    ax.set_xlabel(f"offered load ({X} the floor's closed-loop throughput in this run)")
    ax.set_ylabel(f"latency ({X} floor p50 at the lightest load)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Check latency against offered load (h2load --rps, cached token)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def curve_table(curve: Comparison) -> list[str]:
    fractions = sorted({float(name.split("@")[1]) for name in curve.samples})
    lines = [f"| offered load ({X} floor capacity) | authz achieved / floor achieved | authz p50 / floor p50 | "
             "authz p99 / floor p99 |", "|---:|---:|---:|---:|"]  # fmt: skip
    for f in fractions:
        a, b = curve.samples[f"authz@{f:g}"][0], curve.samples[f"floor@{f:g}"][0]
        lines.append(f"| {f:g} | {_x(a.rps / b.rps if b.rps else float('nan'))} | {_x(a.p50_ms / b.p50_ms)} "
                     f"| {_x(a.p99_ms / b.p99_ms)} |")  # fmt: skip
    return lines


def profile_section(profile: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    threads = profile.get("threads", {})
    floor_total = sum(threads.get("floor", {}).values()) or float("nan")
    if threads:
        names = sorted({n for t in threads.values() for n in t}, key=lambda n: (not n.startswith("main"), n))
        lines += ["CPU per check by thread, as a multiple of the floor's total CPU per check (same load, same run):",
                  "", "| thread | " + " | ".join(threads) + " |", "|---|" + "---:|" * len(threads)]  # fmt: skip
        for name in names:
            lines.append(
                f"| {name} | " + " | ".join(_x(t.get(name, 0.0) / floor_total) for t in threads.values()) + " |"
            )
        lines.append("| **total** | " + " | ".join(_x(sum(t.values()) / floor_total) for t in threads.values()) + " |")
        lines.append("")
    stacks = profile.get("stacks")
    if stacks:
        lines += _stack_tables(stacks)
    return lines


def _stack_tables(raw: str) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    if not total:
        return []
    # The gRPC method: the coroutine CheckHandler builds (CheckHandler._method.<locals>.method).
    check = next((n for n in inclusive if n.startswith("CheckHandler._method")), None)
    share = inclusive[check] / total if check else float("nan")
    lines = [f"py-spy, {total:,} samples of the authz process under the cached-token load. "
             f"The Check handler (`{check}` and below) is {100 * share:.0f}% of the samples; "
             "the rest is the event loop and gRPC's Cython layer, which py-spy sees as the frames "
             "that call into it.", "", "| own samples | function |", "|---:|---|"]  # fmt: skip
    for name, n in own.most_common(15):
        lines.append(f"| {100 * n / total:.1f}% | `{name}` |")
    lines += ["", "Inclusive, authz's own code only:", "", "| inclusive samples | function |", "|---:|---|"]
    ours = [(n, c) for n, c in inclusive.items() if "authz/" in n]
    for name, n in sorted(ours, key=lambda x: -x[1])[:15]:
        lines.append(f"| {100 * n / total:.1f}% | `{name}` |")
    return lines


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``: samples are summed per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def render(results: list[Comparison], memory: dict[str, Any] | None, profile: dict[str, Any], *,
           context: dict[str, Any], plot_name: str | None) -> str:  # fmt: skip
    lines = [BEGIN, "",
             f"Recorded {context['date']} with `{context['command']}` on a machine with **{os.cpu_count()} cores** "
             f"({platform.processor() or platform.machine()}, {context['cpu']}), Python {platform.python_version()}; "
             f"1-minute load average {context['load_start']:.2f} at the start, {context['load_end']:.2f} at the end; "
             f"{context['rounds']} interleaved rounds of {context['seconds']:g} s per comparison, "
             f"{context['concurrency']} calls in flight; whole run {context['wall']:.0f} s.", "",
             "All figures are ratios to the baseline measured in the same run (medians of same-round ratios). "
             "Throughput and CPU/check ratios above 1 mean more calls per second and more CPU per call; "
             "latency ratios above 1 mean slower.", ""]  # fmt: skip
    lines += table(results, memory)
    lines += ["", "### Every target against its baseline", ""]
    lines += details(results)
    notes = [f"- {c.key}: {note}" for c in results for note in c.notes]
    if notes:
        lines += ["", *notes]
    curve = next((c for c in results if c.key == "curve"), None)
    if curve is not None:
        lines += ["", "### Latency against offered load", ""]
        if plot_name:
            lines += [f"![Check latency against offered load]({plot_name})", ""]
        lines += curve_table(curve)
    if memory:
        lines += ["", "### Memory (in-process run, `python -m bench.memory`)", "",
                  "| after | RSS (MB) | token cache entries | session read-cache entries |", "|---|---:|---:|---:|",
                  f"| start (keys loaded) | {memory['rss_start_mb']:.0f} | | |",
                  f"| {memory['tokens']:,} distinct tokens ({memory['tokens_allowed']:,} allowed) | "
                  f"{memory['rss_after_tokens_mb']:.0f} | {memory['token_cache_entries']:,} | |",
                  f"| {memory['sessions']:,} sessions ({memory['sessions_allowed']:,} allowed) | "
                  f"{memory['rss_after_sessions_mb']:.0f} | | {memory['session_cache_entries']:,} |",
                  f"| peak (VmHWM) | {memory['rss_peak_mb']:.0f} | | |"]  # fmt: skip
        if context.get("served_rss"):
            lines += ["", "RSS of the served authz processes at the end of the gRPC scenarios (MB): "
                      + ", ".join(f"{k} {v:.0f}" for k, v in context["served_rss"].items()) + "."]  # fmt: skip
    if profile:
        lines += ["", "### Profile of the hot path (cached token)", ""]
        lines += profile_section(profile)
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write(doc: Path, body: str, *, intro: Callable[[], str]) -> None:
    """Replace the generated part of ``doc`` (or write it whole, with ``intro``, if new)."""
    text = doc.read_text() if doc.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + body.rstrip("\n") + tail
    else:
        text = intro() + "\n" + body
    doc.write_text(text)
