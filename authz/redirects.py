"""Where a browser may be sent after login or logout: only back into this site.

A target taken from a request (the remembered URL, ``rd=``) is accepted only as a
same-origin *relative* path. Everything a browser could resolve to another host is
refused: scheme-relative ``//host``, backslashes (``/\\host``, which browsers read as
``//``), control characters raw or percent-encoded (``/%09/host``), encoded slashes or
backslashes, ``//`` anywhere (also in the query, where upstream apps chain open
redirects), markup characters, userinfo tricks, and every absolute URL or scheme
(``https:``, ``javascript:``, ``data:``). A refused target falls back to the default.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f<>\"'`]")
# Encoded "/", "\\" and "." have no business in a return path; servers disagree on them.
_ENCODED_PATH_CHARS = re.compile(r"%(?:2f|5c|2e)", re.IGNORECASE)
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|20|7f|[89][0-9a-f])", re.IGNORECASE)
MAX_TARGET_LENGTH = 2048


def safe_relative(target: str) -> bool:
    """True when ``target`` is a path on this site that no browser reads as another host."""
    if not target or len(target) > MAX_TARGET_LENGTH:
        return False
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if "\\" in target or _CONTROL.search(target) or _ENCODED_CONTROL.search(target):
        return False
    if _ENCODED_PATH_CHARS.search(target):
        return False
    # Decode repeatedly: a double-encoded "/%252f%252fevil" must not become "//evil" anywhere.
    decoded = target
    for _ in range(3):
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
        if "\\" in decoded or _CONTROL.search(decoded):
            return False
    # No "//" anywhere (query included): "/x?next=//evil" and "/https://evil" are how
    # open redirects chain through upstream apps. A deep link with one just falls back.
    if "//" in decoded:
        return False
    first_segment = decoded.split("?", 1)[0].split("#", 1)[0].split("/", 2)[1]
    return "@" not in first_segment and ":" not in first_segment


def choose(target: str | None, default: str) -> str:
    """``target`` when it is safe, else ``default`` (a configured, trusted URL)."""
    if target is not None and safe_relative(target):
        return target
    return default
