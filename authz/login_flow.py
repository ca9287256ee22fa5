"""The browser flow's I/O: login state and sessions in the store, the token endpoint, keys.

Decisions come from :class:`LoginPolicy` and :class:`Engine`; this module only fetches and
stores what they need, in order. Every failure becomes a Deny: an error page for a bad
callback, 503 when the provider or the session store is down (never a login loop).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from authz import cookies, metrics
from authz.decision import Decision, Deny
from authz.engine import Engine
from authz.errors import AuthzError, DependencyUnavailable, FlowError, TokenError, UnknownKeyError
from authz.identity import Identity
from authz.jwks import KeyManager
from authz.login import LoginPolicy, RandomBytes
from authz.oidc_client import OIDCClient
from authz.request import AuthRequest
from authz.sessions import Session, SessionStore, digest

log = logging.getLogger("authz.login")
REFRESH_LOCK_TTL = 10.0
REFRESH_WAIT = 3.0
REFRESH_WITHOUT_ID_TOKEN = 3600.0
ANSWERS_MAX = 10_000  # session answers remembered (one per session and Cookie header)


class LoginFlow:
    def __init__(
        self,
        policy: LoginPolicy,
        engine: Engine,
        keys: KeyManager,
        store: SessionStore,
        client: OIDCClient,
        *,
        clock: Callable[[], float],
        rand: RandomBytes = secrets.token_bytes,
    ) -> None:
        self.policy = policy
        self.engine = engine
        self.keys = keys
        self.store = store
        self.client = client
        self._clock = clock
        self._rand = rand
        self._issuer = engine.settings.login_issuer
        s = engine.settings.session
        self._max_age = s.max_age
        self._idle = s.idle_timeout
        # digest(Cookie header) -> (digest(session id), the session record, its answer).
        self._answers: OrderedDict[str, tuple[str, weakref.ref[Session], Decision]] = OrderedDict()

    def handles(self, req: AuthRequest) -> bool:
        return req.path.split("?", 1)[0] in self.policy.paths

    async def check(self, req: AuthRequest) -> Decision:
        """A request without a bearer token: our own endpoints, a session, or a login."""
        try:
            path = req.path.split("?", 1)[0]
            if path == self.policy.callback_path:
                return await self._callback(req)
            if path == self.policy.logout_path:
                return await self._logout(req)
            if path != self.policy.login_path:
                decision = await self._from_session(req)
                if decision is not None:
                    return decision
            return await self._unauthenticated(
                req, "missing_credentials" if path != self.policy.login_path else "login"
            )
        except FlowError as exc:
            return self.policy.error_page(exc.code)
        except DependencyUnavailable as exc:
            return self.engine.deny(503, exc.code)

    # -- sessions ---------------------------------------------------------------

    def _session_id(self, req: AuthRequest) -> str | None:
        sid = cookies.parse(req.headers.get("cookie")).get(self.policy.cookie_name)
        return sid if cookies.valid_id(sid) else None

    async def _from_session(self, req: AuthRequest) -> Decision | None:
        strip = self.engine.strip
        # The answer depends only on the session record and the Cookie header (the cookies passed
        # upstream): while the store hands back the same record, a repeated request reuses it,
        # found by the header's digest before the header is parsed. Keyed by digests: the header
        # holds the session id, which is never kept in memory.
        key = ""
        if strip is not None:
            cookie = req.headers.get("cookie")
            if not cookie:
                return None
            key = digest(cookie)
            known = self._answers.get(key)
            if known is not None:
                session = await self.store.get_by_digest(known[0])
                if (
                    session is not None
                    and known[1]() is session
                    and self.policy.session_verdict(session, self._clock()) == "valid"
                ):
                    return known[2]
        sid = self._session_id(req)
        if sid is None:
            return None
        sid_digest = digest(sid)
        session = await self.store.get_by_digest(sid_digest)
        if session is None:
            return None
        now = self._clock()
        verdict = self.policy.session_verdict(session, now)
        if verdict in ("expired", "idle"):
            await self.store.delete(sid)
            return None
        if verdict == "refresh":
            refreshed = await self._refresh(sid, session)
            if refreshed is None:
                return None
            session = refreshed
        elif verdict == "touch":
            session = session.touched(now)
            await self.store.put(sid, session, self._ttl(session, now))
        if strip is None:  # the names the request carries decide what is stripped
            return self._authorize(session, req, self.engine.spoofed_headers(req))
        # A record whose answer is remembered for this header was answered above, so this is a
        # new record or a new header.
        answers = self._answers
        decision = self._authorize(session, req, strip)
        if len(answers) >= ANSWERS_MAX:
            answers.popitem(last=False)
        # A record the store dropped is not kept (weak reference).
        answers[key] = (sid_digest, weakref.ref(session), decision)
        return decision

    def _authorize(self, session: Session, req: AuthRequest, strip: tuple[str, ...]) -> Decision:
        identity = Identity(session.user, session.groups, session.issuer, session.id_token_expires_at)
        return self.engine.authorize(identity, strip, "session", self.engine.upstream_cookie(req))

    def _ttl(self, session: Session, now: float) -> float:
        return max(1.0, min(self._max_age - (now - session.created_at), self._idle))

    async def _reread(self, sid: str) -> Session | None:
        """The session as the store has it now, past this process's read cache."""
        forget = getattr(self.store, "forget", None)
        if forget is not None:
            forget(sid)
        return await self.store.get(sid)

    async def _refresh(self, sid: str, session: Session) -> Session | None:
        """The refreshed session, or None when a login is needed; counted by result."""
        try:
            refreshed, result = await self._refresh_once(sid, session)
        except DependencyUnavailable as exc:
            metrics.SESSION_REFRESHES.labels("busy" if exc.code == "session_refresh_busy" else "unavailable").inc()
            raise
        metrics.SESSION_REFRESHES.labels(result).inc()
        return refreshed

    async def _refresh_once(self, sid: str, session: Session) -> tuple[Session | None, str]:
        """One refresh per session across replicas (store lock); others wait for its result."""
        # Named by the digest the session is stored under: the store learns nothing new (the
        # CSRF token, also derived from the id, must never be written to it).
        lock = "refresh:" + digest(sid)
        if not await self.store.lock(lock, REFRESH_LOCK_TTL):
            deadline = self._clock() + REFRESH_WAIT
            while self._clock() < deadline:
                await asyncio.sleep(0.1)
                current = await self._reread(sid)
                if current is None:
                    return None, "gone"
                if current.id_token_expires_at > self._clock():
                    return current, "waited"
            raise DependencyUnavailable("session_refresh_busy", "refresh by another replica did not finish")
        try:
            # The record read before the lock may be stale: another replica can have refreshed
            # it since (this process's read cache still holds the old one). Refreshing with a
            # rotated-away refresh token makes the provider revoke the whole grant.
            current = await self._reread(sid)
            if current is None:
                return None, "gone"
            if current.id_token_expires_at > self._clock():
                return current, "not_needed"
            session = current
            endpoint = (await self.keys.ensure_discovery(self._issuer)).get("token_endpoint")
            if not isinstance(endpoint, str):
                raise DependencyUnavailable("provider_unavailable", "no token_endpoint")
            try:
                tokens = await self.client.refresh(endpoint, session.refresh_token)
                if tokens.id_token:
                    identity = await self._validate_id_token(tokens.id_token, None)
                else:
                    # No new ID token (allowed on refresh): the identity stays; the grant is
                    # good for the new access token's lifetime.
                    lifetime = min(tokens.expires_in or REFRESH_WITHOUT_ID_TOKEN, REFRESH_WITHOUT_ID_TOKEN)
                    identity = Identity(session.user, session.groups, session.issuer, self._clock() + lifetime)
            except (FlowError, TokenError) as exc:
                log.info("refresh failed; login needed", extra={"reason": exc.code})
                await self.store.delete(sid)
                return None, "failed"
            now = self._clock()
            updated = Session(
                user=identity.user,
                groups=identity.groups,
                issuer=identity.issuer,
                id_token=tokens.id_token or session.id_token,
                refresh_token=tokens.refresh_token,
                id_token_expires_at=identity.expires_at,
                created_at=session.created_at,
                last_seen=now,
            )
            await self.store.put(sid, updated, self._ttl(updated, now))
            return updated, "ok"
        finally:
            await self.store.unlock(lock)

    # -- login ------------------------------------------------------------------

    async def _authorization_endpoint(self) -> str:
        if self.policy.oidc.auth_url:
            return self.policy.oidc.auth_url
        endpoint = (await self.keys.ensure_discovery(self._issuer)).get("authorization_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise DependencyUnavailable("provider_unavailable", "no authorization_endpoint")
        return endpoint

    async def _unauthenticated(self, req: AuthRequest, reason: str) -> Decision:
        if not self.policy.is_browser(req):
            return self.policy.api_unauthorized(reason)
        try:
            endpoint = await self._authorization_endpoint()
            state, record, redirect = self.policy.start(endpoint, self.policy.return_to(req), self._clock(), self._rand)
            await self.store.put_state(state, record, 600.0)
        except DependencyUnavailable as exc:
            metrics.LOGINS.labels("failed", exc.code).inc()
            raise
        metrics.LOGINS.labels("start", reason).inc()
        return redirect

    async def _validate_id_token(self, token: str, nonce: str | None) -> Identity:
        validator = self.engine.validator
        try:
            return validator.validate(token, self._clock(), self.keys.lookup, nonce=nonce)
        except UnknownKeyError as exc:
            await self.keys.refetch_unknown_kid(exc.issuer)
            return validator.validate(token, self._clock(), self.keys.lookup, nonce=nonce)

    async def _callback(self, req: AuthRequest) -> Decision:
        """The provider's redirect back: a session, or a failed login counted by its code."""
        try:
            return await self._finish_login(req)
        except AuthzError as exc:
            metrics.LOGINS.labels("failed", exc.code).inc()
            raise

    async def _finish_login(self, req: AuthRequest) -> Decision:
        params = self.policy.query(req)
        if "error" in params:
            # The provider's own error and description are shown, never used as a label.
            metrics.LOGINS.labels("failed", "provider_error").inc()
            return self.policy.error_page(
                "provider_error", params.get("error", "")[:200], params.get("error_description", "")[:500]
            )
        if "iss" in params and params["iss"] != self._issuer:
            raise FlowError("callback_issuer_mismatch", "authorization response from another issuer")
        state, code = params.get("state", ""), params.get("code", "")
        if not cookies.valid_id(state) or not code or len(code) > 2048:
            raise FlowError("callback_invalid", "state or code missing")
        record = self.policy.check_state(state, await self.store.take_state(state), req, self._clock())
        endpoint = (await self.keys.ensure_discovery(self._issuer)).get("token_endpoint")
        if not isinstance(endpoint, str):
            raise DependencyUnavailable("provider_unavailable", "no token_endpoint")
        tokens = await self.client.exchange(endpoint, code, record.verifier)
        try:
            identity = await self._validate_id_token(tokens.id_token, record.nonce)
        except TokenError as exc:
            raise FlowError(exc.code, "ID token rejected") from exc
        if not self.engine.policy.allows(identity):
            metrics.LOGINS.labels("failed", "group_not_allowed").inc()
            return self.engine.deny(403, "group_not_allowed")
        now = self._clock()
        sid = secrets.token_urlsafe(32)  # new id at every login; a pre-login id is never reused
        session = Session(
            user=identity.user,
            groups=identity.groups,
            issuer=identity.issuer,
            id_token=tokens.id_token,
            refresh_token=tokens.refresh_token,
            id_token_expires_at=identity.expires_at,
            created_at=now,
            last_seen=now,
        )
        await self.store.put(sid, session, self._ttl(session, now))
        metrics.LOGINS.labels("complete", "ok").inc()
        log.info("login", extra={"issuer": identity.issuer})
        return self.policy.login_complete(sid, state, record.return_to)

    # -- logout -----------------------------------------------------------------

    async def _logout(self, req: AuthRequest) -> Decision:
        sid = self._session_id(req)
        if sid is None:
            return self.policy.logged_out(req, self.policy.logout_target(None, ""))
        if not self.policy.logout_allowed(req, sid):
            return self.engine.deny(403, "csrf_invalid")
        session = await self._reread(sid)  # the newest record: its refresh token is the live one
        await self.store.delete(sid)
        discovery: dict[str, Any] = {}
        try:
            discovery = await self.keys.ensure_discovery(self._issuer)
        except AuthzError:
            pass
        revocation = discovery.get("revocation_endpoint")
        if session is not None and session.refresh_token and isinstance(revocation, str):
            await self.client.revoke(revocation, session.refresh_token)
        end_session = discovery.get("end_session_endpoint")
        target = self.policy.logout_target(
            end_session if isinstance(end_session, str) else None, session.id_token if session else ""
        )
        return self.policy.logged_out(req, target)


__all__ = ["Deny", "LoginFlow"]
