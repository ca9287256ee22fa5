"""Path rules: which request paths skip authentication.

A path can only be skipped when it is in canonical form. Anything an upstream might
resolve differently from a plain string compare (dot segments, double slashes, encoded
slashes or backslashes, backslashes, ``;`` parameters, control characters, encoded dots)
makes the path "not canonical", and a non-canonical path is never skipped: it requires
authentication. So normalization tricks can only ever ask for *more* checking.

That includes the decodings some servers apply beyond RFC 3986: IIS's ``%u002e``, overlong
UTF-8 (``%c0%ae`` read as "."), and Unicode compatibility forms (fullwidth ``%ef%bc%8e``
folded to "."). Envoy passes all of these through unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes

# Everything that some server, proxy or framework resolves to a different path.
_NOT_CANONICAL = re.compile(
    r"//|\\|;|%2f|%5c|%2e|%00|%25|(?:^|/)\.\.?(?:/|$)|[\x00-\x20\x7f]",
    re.IGNORECASE,
)
# A "%" that does not start a two-digit escape (IIS "%u002e", a stray "%").
_STRAY_PERCENT = re.compile(r"%(?![0-9a-f]{2})", re.IGNORECASE)
_C1_OR_SEPARATOR = re.compile(r"[\x80-\x9f\u2028\u2029]")
_PATH_PUNCTUATION = frozenset("./\\;%")


def request_path(path: str) -> str:
    """The path of a request target, without query or fragment."""
    cut = len(path)
    for sep in ("?", "#"):
        index = path.find(sep)
        if index != -1 and index < cut:
            cut = index
    return path[:cut]


def first_segment(path: str) -> str:
    """The first segment of a request target: ``api`` of ``/api/v1/x?q``. For a one-segment
    target the query stays on (``x?q`` of ``/x?q``): a caller that finds "?" or "#" in it
    looks closer."""
    end = path.find("/", 1)
    return path[1:end] if end != -1 else path[1:]


def first_segments(paths: frozenset[str] | tuple[str, ...] | list[str]) -> frozenset[str] | None:
    """The first segments of these paths: a request target whose first segment is none of them
    (and has no "?" or "#") is none of them and under none of them. None when one path's first
    segment is empty ("/"), which every target shares."""
    heads = frozenset(first_segment(p) for p in paths)
    return heads if "" not in heads else None


def is_canonical(path: str) -> bool:
    """True when ``path`` (already without query/fragment) has one obvious meaning."""
    if not path.startswith("/") or _NOT_CANONICAL.search(path) or _STRAY_PERCENT.search(path):
        return False
    if "%" not in path and path.isascii():
        return True
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")  # strict: overlong forms are invalid UTF-8
    except UnicodeDecodeError:
        return False
    if _C1_OR_SEPARATOR.search(decoded):
        return False
    # Fullwidth U+FF0E and U+FF0F become "." and "/" under NFKC, as some frameworks normalize.
    return not any(
        not c.isascii() and not _PATH_PUNCTUATION.isdisjoint(unicodedata.normalize("NFKC", c)) for c in decoded
    )


class PathRules:
    """A set of path prefixes matched at segment boundaries, compiled once.

    A rule ``/dex/`` matches ``/dex/`` and anything below it; a rule ``/dex`` matches
    ``/dex`` itself and anything below ``/dex/`` (never ``/dexter``). Lookup costs a few
    set probes per path segment, whatever the number of rules.
    """

    __slots__ = ("_exact", "_heads", "_max_depth", "_subtree")

    def __init__(self, prefixes: tuple[str, ...] | list[str]) -> None:
        self._exact: frozenset[str] = frozenset(p for p in prefixes if not p.endswith("/"))
        self._subtree: frozenset[str] = frozenset(p for p in prefixes if p.endswith("/"))
        self._max_depth = max((p.count("/") for p in prefixes), default=0)
        # A path whose first segment is no rule's cannot fall under a rule, so it is answered
        # without the canonical-form regex; a rule whose first segment is empty ("/") turns
        # this off.
        self._heads = first_segments(prefixes)

    def __bool__(self) -> bool:
        return bool(self._exact or self._subtree)

    def matches(self, path: str) -> bool:
        """True when the path (with or without query) falls under a rule and is canonical."""
        if not (self._exact or self._subtree):
            return False
        heads = self._heads
        if heads is not None:
            end = path.find("/", 1)  # first_segment(path), inline: this runs on every Check
            head = path[1:end] if end != -1 else path[1:]
            # A head with "?" or "#" is the query of a one-segment path: the full check decides.
            if head not in heads and "?" not in head and "#" not in head:
                return False
        path = request_path(path)
        if not is_canonical(path):
            return False
        if path in self._exact or path in self._subtree:
            return True
        index = 0
        depth = 0
        while depth < self._max_depth:
            index = path.find("/", index + 1) if depth else 0
            if index == -1:
                return False
            depth += 1
            if path[:index] in self._exact or path[: index + 1] in self._subtree:
                return True
        return False
