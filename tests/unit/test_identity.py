"""clean_groups: the names usable in a comma-joined header, whatever shape the claim has."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from authz.identity import clean_groups, safe_header_value


def reference(value: Any) -> tuple[str, ...]:
    """The rule, one name at a time."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(g for g in value if safe_header_value(g) and "," not in g)


NAMES = st.text(alphabet=st.sampled_from("ab:-, \x00\n\x1f\x7f\x85\x9f\u2028\u2029é"), max_size=6)
ITEMS = st.one_of(NAMES, st.none(), st.integers(), st.booleans(), st.lists(NAMES, max_size=2), st.binary(max_size=3))


@given(st.one_of(NAMES, st.lists(NAMES, max_size=6), st.lists(ITEMS, max_size=6), ITEMS))
def test_fast_path_agrees_with_the_rule(value: Any) -> None:
    assert clean_groups(value) == reference(value)


def test_every_good_name_kept_in_order() -> None:
    assert clean_groups(["b", "a", "org:x-y"]) == ("b", "a", "org:x-y")
    assert clean_groups(["b", "", "a,c", "d\n", 5, "e"]) == ("b", "e")
    assert clean_groups([]) == ()
