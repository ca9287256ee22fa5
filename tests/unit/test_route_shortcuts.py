"""The skip rules' first-segment shortcut answers exactly as the rules it shortcuts.

PathRules.matches answers most requests from the request target's first segment alone; the
full test (the canonical-form check and the prefix walk) is the reference. Random and
adversarial targets, several rule sets.
"""

from __future__ import annotations

import copy
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz.paths import PathRules, first_segment, first_segments

SEGMENTS = ["", "static", "app", "authservice", "login", "logout", "oidc", "callback", "dex", "dexter", "api", "v1",
            ".", "..", "%2e", "%2F", "a;b", "?", "#", "?q=1", "x?y", "x#y", "static?x", "login?next=/"]  # fmt: skip
TARGETS = st.one_of(
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=4)), max_size=5).map(lambda s: "/" + "/".join(s)),
    st.text(max_size=12),
    st.text(alphabet="/?#.%2eastic", max_size=16),
)
RULE_SETS = [
    ("/static/",),
    ("/static/", "/dex", "/app/v1/"),
    ("/a/b/c", "/api/v1/public/"),
    ("/authservice/",),
    ("/", "/static/"),  # an empty first segment: no shortcut
]


def _reference(rules: PathRules) -> PathRules:
    full = copy.copy(rules)
    full._heads = None  # the full test only
    return full


@pytest.mark.parametrize("prefixes", RULE_SETS, ids=[",".join(r) for r in RULE_SETS])
@settings(max_examples=1500, deadline=None)
@given(target=TARGETS)
def test_skip_rules_shortcut_agrees_with_the_full_test(prefixes: tuple[str, ...], target: str) -> None:
    rules = _rules(prefixes)
    assert rules.matches(target) == _reference(rules).matches(target)


@functools.cache
def _rules(prefixes: tuple[str, ...]) -> PathRules:
    return PathRules(prefixes)


def test_first_segment() -> None:
    assert first_segment("/api/v1/x?q") == "api"
    assert first_segment("/x?q") == "x?q"
    assert first_segment("/") == ""
    assert first_segments(("/a/b", "/c")) == frozenset({"a", "c"})
    assert first_segments(("/a/b", "/")) is None
