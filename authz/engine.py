"""The decision core: an AuthRequest in, a Decision out. No I/O, no clock, no awaiting.

``now`` and a key lookup are passed in. When a token names a ``kid`` the key set lacks,
the core answers :class:`NeedKeys` once; the edge refetches (rate limited) and asks again
with ``refetched=True``.
"""

from __future__ import annotations

import copy

from authz import cookies
from authz.decision import Allow, Decision, Deny, NeedKeys, json_deny
from authz.errors import AuthzError, ForbiddenError, UnknownKeyError
from authz.identity import GroupPolicy, Identity, normalize_header_name
from authz.paths import PathRules
from authz.request import AuthRequest, bearer_token
from authz.settings import Settings
from authz.token_cache import CacheEntry, TokenCache
from authz.tokens import KeyLookup, TokenValidator

# The most identity-header spellings every allow lists for removal (2 ** dashes per name; the
# default names have 2 each); beyond it, the names a request carries are tested instead.
MAX_STRIP = 32


class Engine:
    """Decides every Check. Built once at start from Settings."""

    def __init__(self, settings: Settings, token_cache: TokenCache | None = None) -> None:
        self.settings = settings
        self.validator = TokenValidator(
            settings.issuers, clock_skew=settings.clock_skew, max_bytes=settings.max_token_bytes
        )
        self.skip = PathRules(settings.skip_auth_urls)
        self.policy = GroupPolicy(settings.groups_allowlist)
        self.cache = token_cache or TokenCache(settings.token_cache_size, settings.token_cache_ttl)
        self._identity_headers = frozenset({settings.userid_header, settings.groups_header})
        self._identity_lengths = frozenset(len(name) for name in self._identity_headers)
        self._spoof_names = _spellings(self._identity_headers)
        # Every allow strips each spelling of the identity headers, sent or not: Envoy lower-cases
        # every header name it accepts and removes headers by lower-case name, so this list takes
        # out any copy a client sent without reading the request's header names. None (too many
        # spellings to list): the names sent are read and tested instead.
        spellings = self._spoof_names
        self.strip: tuple[str, ...] | None = None
        if spellings is not None and len(spellings) <= MAX_STRIP:
            self.strip = tuple(sorted(spellings | self._identity_headers))
        self._skip_allow = Allow(reason="skip_auth", remove=self.strip) if self.strip is not None else None
        self._denies: dict[tuple[int, str], Deny] = {}
        self._bearer_challenge = f'Bearer realm="{settings.realm}"'
        self._session_cookie = settings.session.cookie_name if settings.login_enabled else ""

    def with_cache(self, cache: TokenCache) -> Engine:
        """The same rules (shared, not rebuilt) with another token cache."""
        twin = copy.copy(self)
        twin.cache = cache
        return twin

    # -- public -----------------------------------------------------------------

    def decide(self, req: AuthRequest, now: float, keys: KeyLookup, *, refetched: bool = False) -> Decision | NeedKeys:
        if self.skip.matches(req.path):
            cookie = self.upstream_cookie(req)
            if cookie is None and self._skip_allow is not None:
                return self._skip_allow
            strip = self.strip_names(req)
            if cookie is None:
                return Allow(reason="skip_auth", remove=strip)
            if cookie:
                return Allow(reason="skip_auth", headers=(("cookie", cookie),), remove=strip)
            return Allow(reason="skip_auth", remove=(*strip, "cookie"))
        headers = req.headers
        auth = headers.get("authorization")
        if auth is None:
            return self.deny(401, "missing_credentials")
        try:
            identity, entry = self._authenticate(auth, now, keys)
        except UnknownKeyError as exc:
            if not refetched:
                return NeedKeys(exc.issuer)
            return self.deny(exc.status, exc.code)
        except AuthzError as exc:
            return self.deny(exc.status, exc.code)
        session_cookie = self._session_cookie
        if (
            entry is None  # the token cache is off
            or (session_cookie and session_cookie in headers.get("cookie", ""))
            or self.strip is None
        ):
            return self.authorize(identity, self.strip_names(req), "bearer", self.upstream_cookie(req))
        # Nothing request-specific in the answer: it depends on the identity alone, so it is
        # built once per token.
        decision: Decision | None = entry.decision
        if decision is None:
            decision = entry.decision = self.authorize(identity, self.strip, "bearer")
        return decision

    def skips(self, path: str) -> bool:
        """True when the request target falls under SKIP_AUTH_URLS (see PathRules.matches)."""
        return self.skip.matches(path)

    def authenticate_bearer(self, value: str, now: float, keys: KeyLookup) -> Identity:
        """Identity of an Authorization header value; raises AuthzError."""
        return self._authenticate(value, now, keys)[0]

    def _authenticate(self, value: str, now: float, keys: KeyLookup) -> tuple[Identity, CacheEntry | None]:
        # Keyed by the whole header value: a hit means this exact value was parsed and verified.
        key = self.cache.key(value)
        entry = self.cache.lookup(key, now)
        if entry is not None:
            return entry.identity, entry
        identity = self.validator.validate(bearer_token(value), now, keys)
        return identity, self.cache.put(key, identity, now)

    def authorize(
        self, identity: Identity, strip: tuple[str, ...], reason: str, upstream_cookie: str | None = None
    ) -> Decision:
        """Allow with identity headers, or 403 when no group is on the allowlist.

        ``strip``: the header names to take out (:meth:`strip_names`); the identity headers
        set are overwritten, not removed. ``upstream_cookie``: the Cookie header to send
        upstream instead of the client's (the session cookie taken out); "" removes the header.
        """
        if not self.policy.allows(identity):
            return self.deny(ForbiddenError.status, "group_not_allowed")
        settings = self.settings
        headers: tuple[tuple[str, str], ...] = ((settings.userid_header, identity.user),)
        if identity.groups:
            headers += ((settings.groups_header, ",".join(identity.groups)),)
        written = {name for name, _ in headers}
        remove = tuple(name for name in strip if name not in written)
        if upstream_cookie is not None:
            if upstream_cookie:
                headers += (("cookie", upstream_cookie),)
            else:
                remove += ("cookie",)
        return Allow(reason=reason, headers=headers, remove=remove, identity=identity)

    def strip_names(self, req: AuthRequest) -> tuple[str, ...]:
        """The header names an allow of ``req`` takes out: every spelling of the identity
        headers (:attr:`strip`), or, where they are too many to list, those the client sent."""
        return self.strip if self.strip is not None else self.spoofed_headers(req)

    def upstream_cookie(self, req: AuthRequest) -> str | None:
        """The Cookie header without our session cookie; None when it carries none.

        The session id never reaches an upstream, whichever way the request was allowed.
        """
        name = self._session_cookie
        cookie = req.headers.get("cookie")
        if not name or cookie is None or name not in cookie:
            return None
        return cookies.without(cookie, {name})

    def spoofed_headers(self, req: AuthRequest) -> tuple[str, ...]:
        """Names of client-sent headers that claim to be an identity header (any case, "_"
        for "-"): what :meth:`strip_names` falls back on, and what Explain reports."""
        spellings = self._spoof_names
        if spellings is not None:
            sent = list(req.headers)
            joined = "".join(sent)
            # Names that lower-casing leaves alone normalize by "_" -> "-" only, so they claim
            # an identity header exactly when they are one of its spellings (set test in C).
            if joined == joined.lower() and spellings.isdisjoint(sent):
                return ()
        names, lengths = self._identity_headers, self._identity_lengths
        # Normalizing keeps the length of every name that can match (identity header names are
        # ASCII), so names of another length are skipped without being normalized.
        return tuple(name for name in req.headers if len(name) in lengths and normalize_header_name(name) in names)

    def deny(self, status: int, reason: str) -> Deny:
        """A prebuilt deny for (status, reason); 401s carry an RFC 6750 challenge."""
        cached = self._denies.get((status, reason))
        if cached is not None:
            return cached
        extra: tuple[tuple[str, str], ...] = ()
        if status == 401:
            challenge = self._bearer_challenge
            # RFC 6750 3.1: no error code when no bearer credential was presented at all.
            if reason not in ("missing_credentials", "authorization_scheme_unsupported"):
                challenge += ', error="invalid_token"'
            extra = (("www-authenticate", challenge),)
        deny = json_deny(status, reason, extra)
        if len(self._denies) < 256:
            self._denies[(status, reason)] = deny
        return deny


def _spellings(names: frozenset[str]) -> frozenset[str] | None:
    """Every lower-case name that normalizes to one of ``names``: each "-" may be "_".

    None when there would be too many to list (then every name is normalized instead).
    """
    out: set[str] = set()
    for name in names:
        if "_" in name:
            continue  # nothing normalizes to a name with "_"
        parts = name.split("-")
        if len(parts) > 9:
            return None
        for mask in range(1 << (len(parts) - 1)):
            out.add(parts[0] + "".join(("_" if mask >> i & 1 else "-") + part for i, part in enumerate(parts[1:])))
    return frozenset(out)
