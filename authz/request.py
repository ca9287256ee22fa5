"""The small parsed request value the decision core works on (built from a CheckRequest)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from authz.errors import CredentialError, TokenError

# RFC 6750 b64token; a JWT only uses the base64url alphabet and dots.
# fullmatch, possessive: a ~1 KB value with a bad last character is refused in one pass (the
# backtracking form took 13 µs), and "$" would also have matched before a final newline.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]++=*+")


class AuthRequest:
    """One request as the core sees it. Read-only once built.

    ``headers`` has lower-case names and is read with ``get()`` and ``in`` only: a CheckRequest's
    header map, read in place, would add a missing name on ``[]``. ``path`` is the request
    target (path plus query) as Envoy saw it. A plain class with slots: one is built per Check,
    and a dataclass's keyword ``__init__`` cost several times as much.
    """

    __slots__ = ("_host", "_method", "_request_id", "_scheme", "headers", "path")

    def __init__(
        self, method: str, path: str, host: str, scheme: str, headers: Mapping[str, str], request_id: str = ""
    ) -> None:
        self.path = path
        self.headers = headers
        self._method = method
        self._host = host
        self._scheme = scheme
        self._request_id = request_id

    # Properties, so a request read from a CheckRequest (authz.envoy.EnvoyRequest) reads these
    # only when asked: a bearer check never does.
    @property
    def method(self) -> str:
        return self._method

    @property
    def host(self) -> str:
        return self._host

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def request_id(self) -> str:
        return self._request_id

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def __repr__(self) -> str:  # never the header values: they hold tokens and cookies
        return f"AuthRequest({self.method!r}, {self.path.partition('?')[0]!r}, {self.host!r})"


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
