"""Bearer token validation: RFC 8725 and OIDC Core 3.1.3.7 (pure: ``now`` and keys are passed in).

:func:`TokenValidator.validate` returns an :class:`Identity` or raises :class:`TokenError`
(:class:`UnknownKeyError` when only a key refetch could help, :class:`DependencyUnavailable`
when the issuer's keys are not loaded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authz.errors import DependencyUnavailable, TokenError
from authz.identity import Identity, clean_groups, safe_header_value
from authz.jws import HeaderMemo, ParsedJWS, parse_compact, strict_json_object
from authz.keys import KeySet
from authz.settings import IssuerSettings

# Beyond this (year 9999) an ``exp``/``nbf``/``iat`` is not a time.
MAX_TIMESTAMP = 253402300799

KeyLookup = Callable[[str], KeySet | None]
_NUMBER = (int, float)  # a tuple: ``int | float`` would build a union object on every call


def _timestamp(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenError("token_exp_missing", f"{name} missing")
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise TokenError("token_claims_invalid", f"{name} not a number")
    # The range test alone: NaN and the infinities fail it, and an integer too large for a
    # float (10**400) is compared exactly instead of overflowing in math.isfinite.
    if not 0 <= value <= MAX_TIMESTAMP:
        raise TokenError("token_claims_invalid", f"{name} out of range")
    return float(value)


class TokenValidator:
    """Validates compact JWS bearer tokens for a fixed set of trusted issuers."""

    __slots__ = ("_all_algs", "_headers", "_issuers", "_max_bytes", "_skew")

    def __init__(self, issuers: tuple[IssuerSettings, ...], *, clock_skew: float, max_bytes: int) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._skew = clock_skew
        self._max_bytes = max_bytes
        self._all_algs = frozenset(a for i in issuers for a in i.algorithms)
        # What parse_compact learnt about JWS headers; a verified token's kept apart from junk's.
        self._headers = HeaderMemo()

    def issuer(self, name: str) -> IssuerSettings | None:
        return self._issuers.get(name)

    def validate(self, token: str, now: float, keys: KeyLookup, *, nonce: str | None = None) -> Identity:
        """Identity of a valid token. With ``nonce`` (an ID token from our own login), the
        token's ``nonce`` claim must equal it (OIDC Core 3.1.3.7 step 11)."""
        jws = parse_compact(token, self._max_bytes, self._headers)
        if jws.alg not in self._all_algs:
            raise TokenError("token_alg_not_allowed", "alg not accepted")
        claims = strict_json_object(jws.payload)
        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenError("token_issuer_untrusted", "iss not a trusted issuer")
        self._check_header(jws, issuer)
        keyset = keys(issuer.issuer)
        if keyset is None:
            raise DependencyUnavailable("keys_unavailable", "issuer keys not loaded")
        verifier = keyset.verifier(issuer.issuer, jws.kid, jws.alg)
        if not verifier.verify(jws.signing_input, jws.signature):
            raise TokenError("token_signature_invalid", "signature does not verify")
        self._headers.keep_verified(token[: token.find(".")], jws.header)
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenError("token_nonce_invalid", "nonce does not match the login")
        return self._identity(claims, issuer, now)

    def _check_header(self, jws: ParsedJWS, issuer: IssuerSettings) -> None:
        if jws.alg not in issuer.algorithms:
            raise TokenError("token_alg_not_allowed", "alg not accepted for this issuer")
        if issuer.token_types:
            typ = jws.header.get("typ")
            normalized = typ.lower().removeprefix("application/") if isinstance(typ, str) else ""
            if normalized not in issuer.token_types:
                raise TokenError("token_type_invalid", "typ not accepted")

    def _identity(self, claims: dict[str, Any], issuer: IssuerSettings, now: float) -> Identity:
        exp = self.check_exp(claims, now)
        self.check_nbf(claims, now)
        self.check_iat(claims, now)
        self._check_audience(claims, issuer)
        return Identity(
            user=self.check_user(claims, issuer),
            groups=clean_groups(claims.get(issuer.groups_claim)),
            issuer=issuer.issuer,
            expires_at=exp,
        )

    # Each claim check on its own, in the order validate() runs them (authz token inspect
    # and Explain report every one).

    @property
    def algorithms(self) -> frozenset[str]:
        return self._all_algs

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def clock_skew(self) -> float:
        return self._skew

    def check_header(self, jws: ParsedJWS, issuer: IssuerSettings) -> None:
        self._check_header(jws, issuer)

    def check_exp(self, claims: dict[str, Any], now: float) -> float:
        exp = _timestamp(claims, "exp", required=True)
        assert exp is not None
        if exp <= now - self._skew:
            raise TokenError("token_expired", "exp passed")
        return exp

    def check_nbf(self, claims: dict[str, Any], now: float) -> None:
        nbf = _timestamp(claims, "nbf", required=False)
        if nbf is not None and nbf > now + self._skew:
            raise TokenError("token_not_yet_valid", "nbf in the future")

    def check_iat(self, claims: dict[str, Any], now: float) -> None:
        iat = _timestamp(claims, "iat", required=False)
        if iat is not None and iat > now + self._skew:
            raise TokenError("token_not_yet_valid", "iat in the future")

    def check_audience(self, claims: dict[str, Any], issuer: IssuerSettings) -> None:
        self._check_audience(claims, issuer)

    @staticmethod
    def check_user(claims: dict[str, Any], issuer: IssuerSettings) -> str:
        user = claims.get(issuer.user_claim)
        if not safe_header_value(user):
            raise TokenError("token_user_claim_invalid", "user claim empty or unsafe")
        return issuer.user_prefix + str(user)

    @staticmethod
    def _check_audience(claims: dict[str, Any], issuer: IssuerSettings) -> None:
        aud = claims.get("aud")
        if isinstance(aud, str):  # the common case: one audience, so no azp
            if aud not in issuer.audiences:
                raise TokenError("token_audience_invalid", "no accepted audience")
            return
        if isinstance(aud, list) and aud:
            audiences = aud
        else:
            raise TokenError("token_audience_invalid", "aud missing")
        if not any(isinstance(a, str) and a in issuer.audiences for a in audiences):
            raise TokenError("token_audience_invalid", "no accepted audience")
        if len(audiences) > 1:
            azp = claims.get("azp")
            if not isinstance(azp, str) or azp not in issuer.audiences:
                raise TokenError("token_audience_invalid", "azp missing or not accepted")
