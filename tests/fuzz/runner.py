"""``make fuzz`` (``python -m tests.fuzz``): every target of tests/fuzz/strategies.py for a million inputs in all.

    python -m tests.fuzz [--inputs N] [--workers W] [--max-seconds S]

Each worker process builds one Harness (authz's whole Check path, in process) and runs
hypothesis in chunks of fresh random examples, target after target, until every target has had
its share of the inputs. Prints the count per target and in total; exits 1 with the failing
input on the first broken property. Bounded by the input count and by --max-seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from typing import Any

CHUNK = 5000
CHUNK_TIMEOUT = 900.0  # seconds; a chunk of 5,000 takes a few


def _run_chunk(job: tuple[str, int, int]) -> tuple[str, int, str | None]:
    target, count, seed = job
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    from tests.fuzz.strategies import TARGETS

    harness = _harness()
    strategy, check = TARGETS[target]
    ran = 0

    @with_seed(seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck), print_blob=True)  # fmt: skip
    @given(strategy)
    def run(args: tuple[Any, ...]) -> None:
        nonlocal ran
        ran += 1
        check(harness, *args)

    try:
        run()
    except Exception as exc:
        return target, ran, f"{type(exc).__name__}: {exc}"
    return target, ran, None


_HARNESS: Any = None


def _harness() -> Any:
    global _HARNESS
    if _HARNESS is None:
        import logging

        from tests.fuzz.harness import Harness

        logging.disable(logging.WARNING)  # the fuzzed requests' warnings are expected
        _HARNESS = Harness()
    return _HARNESS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=max(1, min(2, multiprocessing.cpu_count())))
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    from tests.fuzz.strategies import TARGETS

    share = -(-args.inputs // len(TARGETS))
    counts = dict.fromkeys(TARGETS, 0)
    pending = dict.fromkeys(TARGETS, 0)  # inputs handed out, not yet counted
    rng = random.Random()
    started = time.monotonic()
    failure: str | None = None

    def next_job() -> tuple[str, int, int] | None:
        for target in TARGETS:
            left = share - counts[target] - pending[target]
            if left > 0:
                n = min(CHUNK, left)
                pending[target] += n
                return target, n, rng.randrange(1 << 30)
        return None

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers) as pool:
        inflight = []
        while True:
            while len(inflight) < args.workers * 2 and (job := next_job()) is not None:
                inflight.append((job, pool.apply_async(_run_chunk, (job,))))
            if not inflight:
                break
            (job, result), *inflight = inflight
            target, ran, error = result.get(timeout=CHUNK_TIMEOUT)
            pending[target] -= job[1]
            counts[target] += ran
            total = sum(counts.values())
            elapsed = time.monotonic() - started
            print(f"\r{total:>9,} inputs  {total / max(elapsed, 1e-9):>7,.0f}/s  {elapsed:>6.0f}s", end="", flush=True)
            if error is not None:
                failure = f"{target}: {error}"
                pool.terminate()
                break
            if elapsed > args.max_seconds:
                failure = f"stopped after {args.max_seconds:.0f}s with {total:,} of {args.inputs:,} inputs"
                pool.terminate()
                break
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print()
    print(f"{'target':<20} {'inputs':>10}")
    for target, n in counts.items():
        print(f"{target:<20} {n:>10,}")
    print(f"{'total':<20} {total:>10,}  in {elapsed:.0f}s ({total / max(elapsed, 1e-9):,.0f}/s, {args.workers} workers)")
    if failure:
        print(f"FAILED {failure}", file=sys.stderr)
        return 1
    print("no property broken: no crash, nothing let through without a genuine credential")
    return 0


