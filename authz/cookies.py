"""Cookie parsing and Set-Cookie building (RFC 6265), for the session and login cookies."""

from __future__ import annotations

import re

from authz.settings import SessionSettings

MAX_COOKIES = 100
_VALID_VALUE = re.compile(r"^[A-Za-z0-9_\-.~]{1,256}$")


def parse(header: str | None) -> dict[str, str]:
    """Name -> value for a Cookie header; the first occurrence of a name wins.

    At most MAX_COOKIES pairs are read; the rest are ignored (bounded work per request).
    """
    if not header:
        return {}
    cookies: dict[str, str] = {}
    for count, part in enumerate(header.split(";")):
        if count >= MAX_COOKIES:
            break
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def valid_id(value: str | None) -> bool:
    """A value we could have issued (url-safe random); anything else is never looked up."""
    return value is not None and _VALID_VALUE.match(value) is not None


def without(header: str, names: set[str] | frozenset[str]) -> str:
    """The Cookie header with the named cookies removed (sent upstream)."""
    kept = [p.strip() for p in header.split(";") if p.strip() and p.strip().partition("=")[0] not in names]
    return "; ".join(kept)


def set_cookie(
    name: str,
    value: str,
    settings: SessionSettings,
    *,
    max_age: int | None,
    path: str = "/",
    same_site: str | None = None,
) -> str:
    """A Set-Cookie value: HttpOnly always, Secure unless configured off for plain-HTTP dev."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", f"SameSite={same_site or settings.same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if settings.secure:
        parts.append("Secure")
    if settings.domain:
        parts.append(f"Domain={settings.domain}")
    return "; ".join(parts)


def clear_cookie(name: str, settings: SessionSettings, *, path: str = "/") -> str:
    return set_cookie(name, "", settings, max_age=0, path=path)
