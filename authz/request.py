"""The small parsed request value the decision core works on (built from a CheckRequest)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from authz.errors import CredentialError, TokenError

# RFC 6750 b64token; a JWT only uses the base64url alphabet and dots.
# fullmatch, possessive: a ~1 KB value with a bad last character is refused in one pass (the
# backtracking form took 13 µs), and "$" would also have matched before a final newline.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]++=*+")


# Not frozen: one is built per Check, and a frozen dataclass's __init__ (object.__setattr__ per
# field) costs 0.6 µs more. Nothing changes one after it is built.
@dataclass(slots=True)
class AuthRequest:
    method: str
    path: str  # the request target: path plus query, as Envoy saw it
    host: str
    scheme: str
    headers: Mapping[str, str]  # lower-case names
    request_id: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def bearer_token(value: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` value.

    Raises CredentialError for another scheme or two Authorization headers (which Envoy
    joins with a comma), TokenError("token_malformed") for a token with bad characters.
    """
    scheme, _, token = value.strip().partition(" ")
    if "," in value:
        raise CredentialError("authorization_ambiguous", "several Authorization values")
    if scheme.lower() != "bearer":
        raise CredentialError("authorization_scheme_unsupported", "not a Bearer credential")
    token = token.strip()
    if not token:
        raise CredentialError("missing_credentials", "empty bearer token")
    if not _BEARER_TOKEN.fullmatch(token):
        raise TokenError("token_malformed", "bad characters in bearer token")
    return token
