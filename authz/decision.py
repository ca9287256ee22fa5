"""What the decision core returns: Allow, Deny (including redirects), or a request for keys."""

from __future__ import annotations

import json
from dataclasses import dataclass

from authz.identity import Identity

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Allow:
    reason: str
    headers: Headers = ()  # set on the request to the upstream, overwriting
    remove: tuple[str, ...] = ()  # removed from the request to the upstream
    identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """An HTTP answer sent to the client instead of the upstream (401, 403, 302, 503, ...)."""

    status: int
    reason: str
    headers: Headers = ()
    body: str = ""


@dataclass(frozen=True, slots=True)
class NeedKeys:
    """The token names an unknown ``kid``: refetch this issuer's keys, then decide again."""

    issuer: str


Decision = Allow | Deny

# A Deny with one of these statuses sends the client elsewhere: counted, logged and explained
# as a "redirect" rather than a "deny".
REDIRECT_STATUSES = frozenset({301, 302, 303, 307})

_ERROR_NAMES = {400: "invalid_request", 401: "invalid_token", 403: "forbidden", 503: "unavailable"}


def json_deny(status: int, reason: str, headers: Headers = (), **extra: str) -> Deny:
    """A deny with the JSON body ``{"error": ..., "reason": <code>}`` and no-store caching."""
    body = {"error": _ERROR_NAMES.get(status, "internal_error"), "reason": reason, **extra}
    return Deny(
        status=status,
        reason=reason,
        headers=(
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            *headers,
        ),
        body=json.dumps(body, separators=(",", ":")),
    )
