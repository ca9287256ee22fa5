"""Every check a bearer token goes through, each reported on its own (pure).

:class:`TokenValidator` stops at the first failure; operators asking "why" want all of them:
``authz token inspect`` lists every configured check a token would fail, and Explain shows
the same list beside the decision. The checks are the validator's own methods, run in the
order it runs them, so the first failure here is the reason code Check answers with.

Nothing here trusts the token: the header and claims are decoded to report on them, and an
identity is returned only when every check, the signature included, passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authz.errors import AuthzError, UnknownKeyError
from authz.identity import Identity, clean_groups
from authz.jws import ParsedJWS, parse_compact, strict_json_object
from authz.request import bearer_token
from authz.settings import IssuerSettings
from authz.tokens import KeyLookup, TokenValidator

PASSED, FAILED, SKIPPED, INFO, NOT_EVALUATED = "passed", "failed", "skipped", "info", "not_evaluated"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    outcome: str
    detail: str = ""
    reason: str = ""  # the reason code a failure gives


@dataclass(frozen=True, slots=True)
class TokenReport:
    steps: tuple[Step, ...]
    header: dict[str, Any]  # decoded, untrusted; empty when the token does not parse
    claims: dict[str, Any]  # decoded, untrusted
    identity: Identity | None  # only when every check passed

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if s.outcome == FAILED), None)


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def iso_time(value: float) -> str:
    """A Unix time as UTC ISO 8601, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


class _Steps:
    def __init__(self) -> None:
        self.items: list[Step] = []

    def add(self, name: str, outcome: str, detail: str = "", reason: str = "") -> None:
        self.items.append(Step(name, outcome, detail, reason))

    def run(self, name: str, check: Callable[[], Any], passed: str) -> tuple[bool, Any]:
        try:
            value = check()
        except AuthzError as exc:
            self.add(name, FAILED, exc.detail, exc.code)
            return False, None
        self.add(name, PASSED, passed)
        return True, value


def report_authorization(validator: TokenValidator, value: str, now: float, keys: KeyLookup | None) -> TokenReport:
    """The report for an Authorization header value (scheme checks first)."""
    steps = _Steps()
    ok, token = steps.run("credentials.scheme", lambda: bearer_token(value), "a single Bearer credential")
    if not ok:
        return TokenReport(tuple(steps.items), {}, {}, None)
    return _report(validator, token, now, keys, steps)


def report_token(validator: TokenValidator, token: str, now: float, keys: KeyLookup | None) -> TokenReport:
    """The report for a bare token. ``keys`` None: offline, signature checks not evaluated."""
    return _report(validator, token.strip(), now, keys, _Steps())


def _report(validator: TokenValidator, token: str, now: float, keys: KeyLookup | None, steps: _Steps) -> TokenReport:
    ok, jws = steps.run(
        "token.format",
        lambda: parse_compact(token, validator.max_bytes),
        f"compact JWS, canonical base64url, {len(token)} of at most {validator.max_bytes} bytes",
    )
    if not ok:
        return TokenReport(tuple(steps.items), {}, {}, None)
    assert isinstance(jws, ParsedJWS)
    header = dict(jws.header)
    if jws.alg in validator.algorithms:
        steps.add("token.alg", PASSED, f"alg {jws.alg} is accepted")
    else:
        steps.add("token.alg", FAILED, f"alg {jws.alg} is not accepted by any issuer", "token_alg_not_allowed")
    ok, claims = steps.run("token.claims", lambda: strict_json_object(jws.payload), "claims are a JSON object")
    if not ok:
        return TokenReport(tuple(steps.items), header, {}, None)
    iss = claims.get("iss")
    issuer = validator.issuer(iss) if isinstance(iss, str) else None
    if issuer is None:
        steps.add("token.issuer", FAILED, f"iss {_short(iss)} is not a trusted issuer", "token_issuer_untrusted")
    else:
        steps.add("token.issuer", PASSED, f"iss {issuer.issuer} is trusted")
        steps.run("token.header", lambda: validator.check_header(jws, issuer), f"alg {jws.alg} and typ accepted")
    verified = _signature(validator, jws, issuer, keys, steps)
    exp_ok, exp = steps.run("token.exp", lambda: validator.check_exp(claims, now), "")
    if exp_ok:
        steps.items[-1] = Step("token.exp", PASSED, f"expires {iso_time(exp)} (in {_ago(exp - now)})")
    elif isinstance(claims.get("exp"), int | float) and not isinstance(claims.get("exp"), bool):
        last = steps.items[-1]
        if last.reason == "token_expired":
            detail = (
                f"expired {iso_time(claims['exp'])} ({_ago(now - claims['exp'])} ago; skew {validator.clock_skew:g}s)"
            )
            steps.items[-1] = Step(last.name, last.outcome, detail, last.reason)
    steps.run("token.nbf", lambda: validator.check_nbf(claims, now), "not before: passed or absent")
    steps.run("token.iat", lambda: validator.check_iat(claims, now), "issued at: not in the future")
    user = ""
    if issuer is None:
        steps.add("token.audience", SKIPPED, "needs a trusted issuer")
        steps.add("token.user", SKIPPED, "needs a trusted issuer")
    else:
        steps.run(
            "token.audience",
            lambda: validator.check_audience(claims, issuer),
            "aud names " + ", ".join(issuer.audiences),
        )
        ok, user = steps.run("token.user", lambda: validator.check_user(claims, issuer), "")
        if ok:
            steps.items[-1] = Step("token.user", PASSED, f"{issuer.user_claim} gives user {user}")
    identity = None
    if verified and issuer is not None and not any(s.outcome == FAILED for s in steps.items):
        identity = Identity(user, clean_groups(claims.get(issuer.groups_claim)), issuer.issuer, float(exp))
    return TokenReport(tuple(steps.items), header, claims, identity)


def _signature(
    validator: TokenValidator, jws: ParsedJWS, issuer: IssuerSettings | None, keys: KeyLookup | None, steps: _Steps
) -> bool:
    if issuer is None:
        steps.add("token.signature", SKIPPED, "needs a trusted issuer")
        return False
    if keys is None:
        steps.add("token.signature", NOT_EVALUATED, "offline: the issuer's keys were not fetched")
        return False
    keyset = keys(issuer.issuer)
    if keyset is None:
        steps.add("token.keys", FAILED, "the issuer's keys are not loaded (provider down?)", "keys_unavailable")
        return False
    steps.add("token.keys", PASSED, f"{len(keyset)} key(s) loaded")
    try:
        verifier = keyset.verifier(issuer.issuer, jws.kid, jws.alg)
    except UnknownKeyError as exc:
        detail = f"kid {_short(jws.kid)} is not in the key set; Check refetches the keys once (rate limited)"
        steps.add("token.kid", FAILED, detail, exc.code)
        return False
    except AuthzError as exc:
        steps.add("token.kid", FAILED, exc.detail, exc.code)
        return False
    steps.add("token.kid", PASSED, f"kid {_short(jws.kid)} found" if jws.kid else "the only key that fits")
    if verifier.verify(jws.signing_input, jws.signature):
        steps.add("token.signature", PASSED, f"{jws.alg} signature verifies")
        return True
    steps.add("token.signature", FAILED, "signature does not verify", "token_signature_invalid")
    return False


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
