"""A short, bounded fuzzing run of every target (``make fuzz`` runs a million inputs).

Property-based with hypothesis: each target's strategy generates inputs for authz's whole Check
path in this process (tests/fuzz/harness.py) and the properties must hold for every one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.harness import Harness
from tests.fuzz.strategies import TARGETS

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_target(harness: Harness, target: str) -> None:
    strategy, check = TARGETS[target]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def run(args: tuple[object, ...]) -> None:
        COUNTS[target] = COUNTS.get(target, 0) + 1
        check(harness, *args)

    run()
    assert COUNTS[target] >= min(EXAMPLES, 50)
