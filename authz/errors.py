"""The project's exceptions. Every one carries a stable snake_case ``code``.

The same code is the ``reason`` in the deny body, the ``reason`` label of
``authz_checks_total`` and the ``reason`` field of the decision log line, so an
operator can go from a 401 to the exact rule with one search.
"""

from __future__ import annotations


class AuthzError(Exception):
    """Root of every error raised by authz."""

    code = "internal_error"
    status = 500

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        if code is not None:
            self.code = code
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)


class RequestError(AuthzError):
    """The CheckRequest itself is unusable (400)."""

    code = "request_invalid"
    status = 400


class CredentialError(AuthzError):
    """The request carries no usable credentials (client fault, 401)."""

    code = "missing_credentials"
    status = 401


class TokenError(CredentialError):
    """A bearer token was presented and rejected (client fault, 401)."""

    code = "token_invalid"


class UnknownKeyError(TokenError):
    """The token names a ``kid`` that the issuer's current key set lacks.

    The caller may refetch the key set once (rate limited) and validate again.
    """

    code = "token_unknown_kid"

    def __init__(self, issuer: str, detail: str = "") -> None:
        self.issuer = issuer
        super().__init__(None, detail)


class ForbiddenError(AuthzError):
    """Authenticated, but policy does not allow the request (403)."""

    code = "forbidden"
    status = 403


class FlowError(AuthzError):
    """A step of the browser login flow failed (client fault, 400 unless set)."""

    code = "login_failed"
    status = 400


class DependencyUnavailable(AuthzError):
    """Something authz depends on (provider, JWKS, session store) is down: fail closed (503)."""

    code = "dependency_unavailable"
    status = 503


class ConfigError(AuthzError):
    """The configuration is invalid. ``problems`` lists every bad field with its fix."""

    code = "config_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(None, "; ".join(problems))
