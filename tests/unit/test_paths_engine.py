"""PathRules (which paths skip authentication) and Engine.decide (the decision core).

Pure: Settings are built directly, keys come from a lookup function, time from a FakeClock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from authz.decision import Allow, Deny, NeedKeys
from authz.engine import Engine
from authz.keys import KeyEntry, KeySet, build_keyset
from authz.paths import PathRules
from authz.request import AuthRequest
from authz.settings import IssuerSettings, Settings
from tests.support import forge
from tests.support.tokens import AUDIENCE, DROP, ISSUER, FakeClock, claims, jwks, rs256

# -- PathRules -------------------------------------------------------------------

RULES = PathRules(["/public/", "/healthz", "/dex/"])


@pytest.mark.parametrize(
    "path",
    ["/public/", "/public/x", "/public/x/y.css", "/public/x?y=1", "/public/x#frag", "/healthz", "/healthz/",
     "/healthz/live", "/healthz?full=1", "/dex/auth", "/public/a%20b", "/public/caf%C3%A9"],
)  # fmt: skip
def test_paths_under_a_rule_skip(path: str) -> None:
    assert RULES.matches(path)


@pytest.mark.parametrize(
    "path",
    ["/public", "/publicity", "/public-x/", "/healthzz", "/healthz-x", "/dex", "/dexter/", "/", "", "public/x",
     "/x/public/", "/api/healthz"],
)  # fmt: skip
def test_prefixes_match_at_segment_boundaries_only(path: str) -> None:
    assert not RULES.matches(path)


BYPASSES = [
    "/public/../admin",
    "/public/..",
    "/public/x/../../admin",
    "/public%2F..%2Fadmin",
    "/public%2f",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/%252e%252e/admin",
    "/public/%00",
    "/public%5Cx",
    "/public%5c..%5cadmin",
    "/public\\x",
    "/public/\\..\\admin",
    "//public/x",
    "/public//x",
    "/public;x=1",
    "/public/;/../admin",
    "/public/x;jsessionid=1",
    "/PUBLIC/x",
    "/Public/x",
    "/admin?x=/public/",
    "/admin#/public/",
    "/admin?/public/x",
    "/public/./x",
    "/public/.",
    "/./public/x",
    "/public/x\x00",
    "/public/\x00/../admin",
    "/public/ x",
    "/public/x ",
    "/public/\tx",
    "/public/\r\nx",
    "/public/\x7f",
    "public/x",
]


@pytest.mark.parametrize("path", BYPASSES)
def test_bypass_attempts_never_skip(path: str) -> None:
    assert not RULES.matches(path)


def test_empty_rules_never_skip() -> None:
    rules = PathRules([])
    assert not rules
    assert not rules.matches("/public/")


def test_a_thousand_rules_still_match_correctly() -> None:
    rules = PathRules([f"/app-{i}/" for i in range(1000)] + [f"/exact-{i}" for i in range(1000)] + ["/deep/a/b/c/"])
    assert rules.matches("/app-0/")
    assert rules.matches("/app-999/x/y")
    assert rules.matches("/exact-500")
    assert rules.matches("/exact-500/sub")
    assert rules.matches("/deep/a/b/c/d")
    for path in ("/app-1000/x", "/app-5", "/app-5x/", "/exact-1000", "/exact-7x", "/deep/a/b/", "/deep/a/b/cc",
                 "/app-1/../admin", "/x/app-1/"):  # fmt: skip
        assert not rules.matches(path), path


# -- Engine ----------------------------------------------------------------------

RSA = rs256("rsa-1")
ROTATED = rs256("rsa-2", index=1)
KEYS = build_keyset(jwks(RSA), ("RS256", "ES256"))
ISSUER_SETTINGS = IssuerSettings(issuer=ISSUER, audiences=(AUDIENCE,), user_prefix="oidc:")
CHALLENGE = 'Bearer realm="authz"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="authz", error="invalid_token"'


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"issuers": (ISSUER_SETTINGS,), "skip_auth_urls": ("/public/",)}
    return Settings(**{**base, **overrides})


def lookup(issuer: str) -> KeySet | None:
    return {ISSUER: KEYS}.get(issuer)


def request(path: str = "/notebooks/", **headers: str) -> AuthRequest:
    return AuthRequest(method="GET", path=path, host="app.test", scheme="https", headers=headers)


def bearer(token: str, path: str = "/notebooks/", **headers: str) -> AuthRequest:
    return request(path, authorization=f"Bearer {token}", **headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine() -> Engine:
    return Engine(settings())


def token_at(clock: FakeClock, **overrides: Any) -> str:
    return RSA.sign(claims(clock.now, **overrides))


def body(deny: Deny) -> dict[str, str]:
    return json.loads(deny.body)


def assert_deny(decision: Any, status: int, reason: str, challenge: str | None) -> Deny:
    assert isinstance(decision, Deny), decision
    assert (decision.status, decision.reason) == (status, reason)
    headers = dict(decision.headers)
    assert headers.get("www-authenticate") == challenge
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    error = {401: "invalid_token", 403: "forbidden", 503: "unavailable"}[status]
    assert body(decision) == {"error": error, "reason": reason}
    return decision


def test_valid_bearer_is_allowed_with_identity_headers(engine: Engine, clock: FakeClock) -> None:
    decision = engine.decide(bearer(token_at(clock)), clock.now, lookup)
    assert isinstance(decision, Allow)
    assert decision.reason == "bearer"
    assert decision.headers == (("kubeflow-userid", "oidc:alice@example.com"), ("kubeflow-groups", "team-a,everyone"))
    # Every other spelling of the identity headers goes, whether or not the client sent one.
    assert decision.remove == ("kubeflow_groups", "kubeflow_userid")
    assert decision.identity is not None and decision.identity.user == "oidc:alice@example.com"


def test_bearer_scheme_is_case_insensitive(engine: Engine, clock: FakeClock) -> None:
    req = request(authorization=f"bearer {token_at(clock)}")
    assert isinstance(engine.decide(req, clock.now, lookup), Allow)


SPOOFED = {
    "kubeflow-userid": "admin@example.com",  # also what `Kubeflow-UserID` becomes: Envoy lower-cases names
    "kubeflow_userid": "admin@example.com",
    "kubeflow-groups": "admins",
    "kubeflow_groups": "admins",
}


def test_spoofed_identity_headers_are_overwritten_or_removed(engine: Engine, clock: FakeClock) -> None:
    decision = engine.decide(bearer(token_at(clock), **SPOOFED, x_other="1"), clock.now, lookup)
    assert isinstance(decision, Allow)
    # Our own names are overwritten by the values set; every other spelling is removed.
    assert decision.headers == (("kubeflow-userid", "oidc:alice@example.com"), ("kubeflow-groups", "team-a,everyone"))
    assert decision.remove == ("kubeflow_groups", "kubeflow_userid")


def test_spoofed_groups_header_is_removed_when_the_user_has_no_groups(engine: Engine, clock: FakeClock) -> None:
    decision = engine.decide(bearer(token_at(clock, groups=DROP), **SPOOFED), clock.now, lookup)
    assert isinstance(decision, Allow)
    assert decision.headers == (("kubeflow-userid", "oidc:alice@example.com"),)
    assert set(decision.remove) == {"kubeflow_userid", "kubeflow_groups", "kubeflow-groups"}


def test_custom_identity_header_names_are_protected_too(clock: FakeClock) -> None:
    engine = Engine(settings(userid_header="x-user", groups_header="x-groups"))
    spoofed = {"x-user": "root", "x_user": "root", "x_groups": "admins"}
    decision = engine.decide(bearer(token_at(clock), **spoofed), clock.now, lookup)
    assert isinstance(decision, Allow)
    assert decision.headers == (("x-user", "oidc:alice@example.com"), ("x-groups", "team-a,everyone"))
    assert decision.remove == ("x_groups", "x_user")


def test_names_with_too_many_spellings_strip_what_the_client_sent(clock: FakeClock) -> None:
    # 2 ** 6 spellings of this name are more than every answer lists (MAX_STRIP): the header
    # names of each request are read and only the spellings sent are removed.
    engine = Engine(settings(userid_header="x-a-b-c-d-e-user", groups_header="x-groups"))
    assert engine.strip is None
    clean = engine.decide(bearer(token_at(clock)), clock.now, lookup)
    assert isinstance(clean, Allow) and clean.remove == ()
    spoofed = {"x_a-b-c-d_e-user": "root", "X-A-B-C-D-E-USER": "root", "x_groups": "admins"}
    decision = engine.decide(bearer(token_at(clock), **spoofed), clock.now, lookup)
    assert isinstance(decision, Allow)
    assert decision.headers == (("x-a-b-c-d-e-user", "oidc:alice@example.com"), ("x-groups", "team-a,everyone"))
    assert decision.remove == ("x_a-b-c-d_e-user", "X-A-B-C-D-E-USER", "x_groups")
    skipped = engine.decide(request("/public/app.js", **spoofed), clock.now, lookup)
    assert isinstance(skipped, Allow) and skipped.remove == tuple(spoofed)


def test_skip_path_is_allowed_with_every_spoofed_header_removed(engine: Engine, clock: FakeClock) -> None:
    decision = engine.decide(request("/public/app.js", **SPOOFED), clock.now, lookup)
    assert decision == Allow(reason="skip_auth", headers=(), remove=tuple(sorted(SPOOFED)), identity=None)


def test_skip_path_ignores_even_a_bad_token(engine: Engine, clock: FakeClock) -> None:
    decision = engine.decide(bearer("garbage", path="/public/x"), clock.now, lookup)
    assert isinstance(decision, Allow) and decision.reason == "skip_auth"


@pytest.mark.parametrize("path", ["/public/../admin", "/public%2F..%2Fadmin", "//public/x", "/admin?x=/public/"])
def test_bypass_path_needs_credentials(engine: Engine, clock: FakeClock, path: str) -> None:
    assert_deny(engine.decide(request(path, **SPOOFED), clock.now, lookup), 401, "missing_credentials", CHALLENGE)


def test_missing_authorization_is_a_401_challenge_without_error(engine: Engine, clock: FakeClock) -> None:
    assert_deny(engine.decide(request(), clock.now, lookup), 401, "missing_credentials", CHALLENGE)


def test_empty_bearer_is_missing_credentials(engine: Engine, clock: FakeClock) -> None:
    req = request(authorization="Bearer ")
    assert_deny(engine.decide(req, clock.now, lookup), 401, "missing_credentials", CHALLENGE)


@pytest.mark.parametrize(
    ("token", "reason"),
    [("garbage", "token_malformed"), ("a b", "token_malformed"), ("a.b.c", "token_malformed"),
     ("eyJ.eyJ.", "token_malformed"),
     ("eyJhbGciOiJSUzI1NiJ9.eyJ9.", "token_signature_missing")],
)  # fmt: skip
def test_bad_token_is_a_401_invalid_token(engine: Engine, clock: FakeClock, token: str, reason: str) -> None:
    assert_deny(engine.decide(bearer(token), clock.now, lookup), 401, reason, INVALID_TOKEN_CHALLENGE)


def test_expired_token_is_a_401_invalid_token(engine: Engine, clock: FakeClock) -> None:
    token = token_at(clock, exp=clock.now - 3600)
    assert_deny(engine.decide(bearer(token), clock.now, lookup), 401, "token_expired", INVALID_TOKEN_CHALLENGE)


def test_other_scheme_is_unsupported_and_the_challenge_has_no_error(engine: Engine, clock: FakeClock) -> None:
    # RFC 6750 3.1: an unsupported authentication method gets no error code in the challenge.
    req = request(authorization="Basic YWxpY2U6c2VjcmV0")
    assert_deny(engine.decide(req, clock.now, lookup), 401, "authorization_scheme_unsupported", CHALLENGE)


@pytest.mark.parametrize("joined", ["Bearer {t}, Bearer {t}", "Bearer {t},Bearer {t}", "Bearer {t}, Basic eA=="])
def test_two_authorization_headers_are_ambiguous(engine: Engine, clock: FakeClock, joined: str) -> None:
    req = request(authorization=joined.format(t=token_at(clock)))
    assert_deny(engine.decide(req, clock.now, lookup), 401, "authorization_ambiguous", INVALID_TOKEN_CHALLENGE)


def test_user_outside_the_groups_allowlist_is_forbidden(clock: FakeClock) -> None:
    engine = Engine(settings(groups_allowlist=("admins", "ops")))
    assert_deny(engine.decide(bearer(token_at(clock)), clock.now, lookup), 403, "group_not_allowed", None)


def test_user_in_the_groups_allowlist_is_allowed(clock: FakeClock) -> None:
    engine = Engine(settings(groups_allowlist=("admins", "everyone")))
    assert isinstance(engine.decide(bearer(token_at(clock)), clock.now, lookup), Allow)


def test_unusable_group_name_cannot_satisfy_the_allowlist(clock: FakeClock) -> None:
    engine = Engine(settings(groups_allowlist=("admins",)))
    token = token_at(clock, groups=["admins\n", "admins,x"])
    assert_deny(engine.decide(bearer(token), clock.now, lookup), 403, "group_not_allowed", None)


def test_unknown_kid_asks_for_keys_once_then_denies(engine: Engine, clock: FakeClock) -> None:
    req = bearer(ROTATED.sign(claims(clock.now)))
    assert engine.decide(req, clock.now, lookup) == NeedKeys(ISSUER)
    assert_deny(
        engine.decide(req, clock.now, lookup, refetched=True), 401, "token_unknown_kid", INVALID_TOKEN_CHALLENGE
    )


def test_unknown_kid_is_allowed_once_the_refetched_keys_have_it(engine: Engine, clock: FakeClock) -> None:
    req = bearer(ROTATED.sign(claims(clock.now)))
    assert engine.decide(req, clock.now, lookup) == NeedKeys(ISSUER)
    rotated = build_keyset(jwks(RSA, ROTATED), ("RS256",))
    assert isinstance(engine.decide(req, clock.now, {ISSUER: rotated}.get, refetched=True), Allow)


def test_keys_not_loaded_is_a_503(engine: Engine, clock: FakeClock) -> None:
    assert_deny(engine.decide(bearer(token_at(clock)), clock.now, lambda issuer: None), 503, "keys_unavailable", None)


# -- the token cache ---------------------------------------------------------------


class CountingVerifier:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, msg: bytes, sig: bytes) -> bool:
        self.calls += 1
        return bool(self.inner.verify(msg, sig))


def counting(keys: KeySet) -> tuple[KeySet, list[CountingVerifier]]:
    counters: list[CountingVerifier] = []
    entries = []
    for entry in keys.entries:
        wrapped = {alg: CountingVerifier(v) for alg, v in entry.verifiers.items()}
        counters.extend(wrapped.values())
        entries.append(KeyEntry(kid=entry.kid, kty=entry.kty, verifiers=wrapped))
    by_kid: dict[str, tuple[KeyEntry, ...]] = {}
    for entry in entries:
        if entry.kid is not None:
            by_kid[entry.kid] = (*by_kid.get(entry.kid, ()), entry)
    return KeySet(entries=tuple(entries), skipped=keys.skipped, by_kid=by_kid), counters


def verifications(counters: list[CountingVerifier]) -> int:
    return sum(c.calls for c in counters)


def test_repeated_token_is_not_verified_again(clock: FakeClock) -> None:
    engine = Engine(settings())
    keys, counters = counting(KEYS)
    req = bearer(token_at(clock))
    first = engine.decide(req, clock.now, {ISSUER: keys}.get)
    clock.advance(1)
    second = engine.decide(req, clock.now, {ISSUER: keys}.get)
    assert isinstance(first, Allow) and first == second
    assert verifications(counters) == 1
    assert (engine.cache.hits, engine.cache.misses) == (1, 1)


def test_cached_entry_does_not_outlive_the_tokens_exp(clock: FakeClock) -> None:
    engine = Engine(settings(token_cache_ttl=3600.0))
    keys, counters = counting(KEYS)
    req = bearer(token_at(clock, exp=int(clock.now) + 60))
    assert isinstance(engine.decide(req, clock.now, {ISSUER: keys}.get), Allow)
    clock.advance(61)  # past exp, still within the 30 s skew: verified again, not served from cache
    assert isinstance(engine.decide(req, clock.now, {ISSUER: keys}.get), Allow)
    assert verifications(counters) == 2
    clock.advance(30)  # past exp + skew: a cache that ignored exp would still allow
    assert_deny(engine.decide(req, clock.now, {ISSUER: keys}.get), 401, "token_expired", INVALID_TOKEN_CHALLENGE)


def test_cached_entry_does_not_outlive_the_cache_ttl(clock: FakeClock) -> None:
    engine = Engine(settings(token_cache_ttl=300.0))
    keys, counters = counting(KEYS)
    req = bearer(token_at(clock, exp=int(clock.now) + 3600))
    engine.decide(req, clock.now, {ISSUER: keys}.get)
    clock.advance(299)
    engine.decide(req, clock.now, {ISSUER: keys}.get)
    assert verifications(counters) == 1
    clock.advance(1)
    engine.decide(req, clock.now, {ISSUER: keys}.get)
    assert verifications(counters) == 2


def test_rejected_token_is_not_cached(engine: Engine, clock: FakeClock) -> None:
    keys, counters = counting(KEYS)
    forged = forge.flip_signature_byte(token_at(clock))
    for _ in range(2):
        decision = engine.decide(bearer(forged), clock.now, {ISSUER: keys}.get)
        assert isinstance(decision, Deny) and decision.status == 401
    assert verifications(counters) == 2
    assert len(engine.cache) == 0
