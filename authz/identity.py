"""Who a request is from, and the trusted headers that say so upstream."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Control characters (C0, DEL, C1) and Unicode line/paragraph separators never reach a header.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str  # with the issuer's prefix applied
    groups: tuple[str, ...]
    issuer: str
    expires_at: float


def safe_header_value(value: object) -> bool:
    """A non-empty string without control characters or line separators."""
    return isinstance(value, str) and bool(value) and _UNSAFE.search(value) is None


def clean_groups(value: object) -> tuple[str, ...]:
    """Group names usable in a comma-joined header; anything else is dropped.

    Dropping can only take permissions away (the allowlist grants, never denies by group).
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    # Fast path, one test of all names at once: every one a non-empty string (join refuses
    # anything else), no comma in any (the joined text has only the joining ones), nothing
    # unsafe in any. Otherwise each name is tested on its own.
    try:
        joined = ",".join(value)
    except TypeError:
        pass
    else:
        if joined.count(",") == len(value) - 1 and all(value) and _UNSAFE.search(joined) is None:
            return tuple(value)
    return tuple(g for g in value if safe_header_value(g) and "," not in g)


def normalize_header_name(name: str) -> str:
    """How a header name compares for spoofing: lower-case, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


class GroupPolicy:
    """GROUPS_ALLOWLIST: ``*`` admits every authenticated user; else one group must match."""

    __slots__ = ("_any", "_groups")

    def __init__(self, allowlist: Iterable[str]) -> None:
        groups = frozenset(allowlist)
        self._any = "*" in groups
        self._groups = groups

    def allows(self, identity: Identity) -> bool:
        return self._any or not self._groups.isdisjoint(identity.groups)
