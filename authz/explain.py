"""Explain: the decision Check would make for a request, and why, without side effects.

The route through the code is Check's own (the handler's login routing, the engine's skip
rules, token validation, group policy, the login policy), so the answer is the one Check
gives. What Explain never does: create or touch a session, start a login (no state is
stored), refresh, fetch keys or call the provider, or write the token cache. Where Check would
do I/O, the step says so (``not_evaluated``) and the answer is what Check gives when that I/O
finds nothing new (an unknown kid stays unknown) — or ``login_flow`` when it depends on it.

Token and cookie values never appear in an explanation: headers that carry them are named,
not shown.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authz import cookies
from authz.decision import REDIRECT_STATUSES, Allow, Decision, Deny, NeedKeys
from authz.engine import Engine
from authz.errors import AuthzError, DependencyUnavailable, UnknownKeyError
from authz.identity import Identity
from authz.jwks import KeyManager
from authz.login_flow import LoginFlow
from authz.request import AuthRequest
from authz.token_cache import TokenCache
from authz.token_report import FAILED, INFO, NOT_EVALUATED, PASSED, SKIPPED, Step, report_authorization

# Header values shown as-is in an explanation; every other value is withheld.
_SHOWN_UPSTREAM = ("cookie",)


@dataclass(slots=True)
class Explanation:
    decision: str  # allow | deny | redirect | login_flow
    http_status: int
    reason: str
    auth_method: str  # bearer | session | skip | none
    steps: list[Step] = field(default_factory=list)
    user: str = ""
    groups: tuple[str, ...] = ()
    upstream_headers: tuple[tuple[str, str], ...] = ()
    removed_headers: tuple[str, ...] = ()
    redirect_to: str = ""
    summary: str = ""


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


class Explainer:
    """Built once beside the CheckHandler, from the same engine, keys and login flow."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyManager,
        login: LoginFlow | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.login = login
        self._clock = clock
        # The same rules without a token cache: explaining never adds an entry.
        self._uncached = engine.with_cache(TokenCache(0, 0))

    async def explain(self, req: AuthRequest) -> Explanation:
        target = f"{req.scheme or 'https'}://{req.host}" if req.host else ""
        steps: list[Step] = [Step("request", INFO, f"{req.method} {target}{_path_only(req.path)}")]
        spoofed = self.engine.spoofed_headers(req)
        if spoofed:
            steps.append(
                Step("identity_headers", INFO, "client-sent " + ", ".join(spoofed) + ": stripped, never trusted")
            )
        try:
            return await self._route(req, steps)
        except AuthzError as exc:
            deny = self.engine.deny(exc.status, exc.code)
            steps.append(Step("error", FAILED, exc.detail, exc.code))
            return self._finish(deny, steps, "none")

    async def _route(self, req: AuthRequest, steps: list[Step]) -> Explanation:
        login = self.login
        skip = self.engine.skips(req.path)
        if login is not None and login.handles(req):
            if _path_only(req.path) == login.policy.login_path:
                steps.append(Step("endpoint", INFO, f"{login.policy.login_path} is authz's login start"))
                return await self._unauthenticated(login, req, steps, "login")
            return self._login_endpoint(login, req, steps)
        if login is not None and "authorization" not in req.headers and not skip:
            steps.append(Step("skip_path", INFO, "not under SKIP_AUTH_URLS"))
            steps.append(Step("credentials", INFO, "no Authorization header: the browser session is checked"))
            return await self._session(login, req, steps)
        if skip:
            steps.append(Step("skip_path", PASSED, "the path is under SKIP_AUTH_URLS: no credentials needed"))
            result = self._uncached.decide(req, self._clock(), self.keys.lookup)
            assert not isinstance(result, NeedKeys)
            return self._finish(result, steps, "skip")
        steps.append(Step("skip_path", INFO, "not under SKIP_AUTH_URLS"))
        return self._bearer(req, steps)

    # -- bearer tokens ----------------------------------------------------------

    def _bearer(self, req: AuthRequest, steps: list[Step]) -> Explanation:
        value = req.headers.get("authorization")
        if value is None:
            steps.append(Step("credentials", FAILED, "no Authorization header", "missing_credentials"))
            return self._finish(self.engine.deny(401, "missing_credentials"), steps, "none")
        now = self._clock()
        cache = self.engine.cache
        entry = cache.peek(cache.key(value), now)
        if entry is not None:
            # Check answers from the cache: the identity verified earlier, until the entry expires.
            steps.append(Step("token.cache", PASSED, "verified earlier; Check answers from the token cache"))
            decision: Decision = self.engine.authorize(
                entry.identity, self.engine.strip_names(req), "bearer", self.engine.upstream_cookie(req)
            )
            self._groups_step(decision, steps)
            return self._finish(decision, steps, "bearer")
        steps.append(Step("token.cache", INFO, "not in the token cache: verified now"))
        report = report_authorization(self.engine.validator, value, now, self.keys.lookup)
        steps.extend(report.steps)
        result = self._uncached.decide(req, now, self.keys.lookup)
        if isinstance(result, NeedKeys):
            steps.append(
                Step(
                    "keys.refetch",
                    NOT_EVALUATED,
                    "Check refetches the issuer's keys once (at most every 30 s); Explain does not. "
                    "The answer below is Check's when the kid is still unknown after it.",
                )
            )
            result = self.engine.deny(UnknownKeyError.status, UnknownKeyError.code)
        self._groups_step(result, steps)
        return self._finish(result, steps, "bearer")

    def _groups_step(self, decision: Decision, steps: list[Step]) -> None:
        if isinstance(decision, Allow):
            if self.engine.settings.allow_all_groups:
                steps.append(Step("groups", PASSED, "GROUPS_ALLOWLIST allows every group"))
            else:
                steps.append(Step("groups", PASSED, "a group is on GROUPS_ALLOWLIST"))
        elif decision.reason == "group_not_allowed":
            allowed = ", ".join(self.engine.settings.groups_allowlist)
            steps.append(Step("groups", FAILED, f"no group on GROUPS_ALLOWLIST ({allowed})", "group_not_allowed"))

    # -- browser sessions -------------------------------------------------------

    async def _session(self, login: LoginFlow, req: AuthRequest, steps: list[Step]) -> Explanation:
        policy = login.policy
        raw = cookies.parse(req.headers.get("cookie")).get(policy.cookie_name)
        if raw is None:
            steps.append(Step("session.cookie", INFO, f"no {policy.cookie_name} cookie"))
            return await self._unauthenticated(login, req, steps, "missing_credentials")
        if not cookies.valid_id(raw):
            steps.append(Step("session.cookie", FAILED, f"{policy.cookie_name} is not a session id"))
            return await self._unauthenticated(login, req, steps, "missing_credentials")
        steps.append(Step("session.cookie", PASSED, f"{policy.cookie_name} cookie present"))
        try:
            session = await login.store.get(raw)
        except DependencyUnavailable as exc:
            steps.append(Step("session.lookup", FAILED, "the session store is unreachable", exc.code))
            return self._finish(self.engine.deny(503, exc.code), steps, "session")
        if session is None:
            steps.append(Step("session.lookup", FAILED, "no such session (expired, logged out, or another store)"))
            return await self._unauthenticated(login, req, steps, "missing_credentials")
        now = self._clock()
        verdict = policy.session_verdict(session, now)
        if verdict in ("expired", "idle"):
            what = "older than SESSION_MAX_AGE" if verdict == "expired" else "unused for SESSION_IDLE_TIMEOUT"
            steps.append(Step("session.lookup", FAILED, f"the session is {what}; Check deletes it"))
            return await self._unauthenticated(login, req, steps, "missing_credentials")
        steps.append(Step("session.lookup", PASSED, f"session of {session.user} (issuer {session.issuer})"))
        if verdict == "refresh":
            steps.append(
                Step(
                    "session.refresh",
                    NOT_EVALUATED,
                    "the ID token has expired: Check renews it with the refresh token at the provider; "
                    "Explain does not. Allowed if the provider renews it, else a new login.",
                )
            )
            return Explanation(
                decision="login_flow",
                http_status=0,
                reason="session_refresh",
                auth_method="session",
                steps=steps,
                user=session.user,
                groups=session.groups,
                summary=f"session of {session.user} needs a refresh at the provider; the outcome depends on it",
            )
        identity = Identity(session.user, session.groups, session.issuer, session.id_token_expires_at)
        decision = self.engine.authorize(
            identity, self.engine.strip_names(req), "session", self.engine.upstream_cookie(req)
        )
        self._groups_step(decision, steps)
        return self._finish(decision, steps, "session")

    async def _unauthenticated(self, login: LoginFlow, req: AuthRequest, steps: list[Step], reason: str) -> Explanation:
        policy = login.policy
        if not policy.is_browser(req):
            steps.append(
                Step("client", INFO, "not a browser navigation (method, Sec-Fetch-Mode, Accept): an API client")
            )
            steps.append(Step("credentials", FAILED, "no bearer token and no valid session", reason))
            return self._finish(policy.api_unauthorized(reason), steps, "none")
        steps.append(Step("client", INFO, "a browser navigation: sent to the provider's login"))
        endpoint = policy.oidc.auth_url
        if not endpoint:
            discovery = self.keys.discovery(self.engine.settings.login_issuer)
            found = discovery.get("authorization_endpoint") if discovery else None
            if not isinstance(found, str):
                steps.append(
                    Step(
                        "provider.discovery",
                        NOT_EVALUATED,
                        "the provider's discovery document is not loaded yet: Check fetches it now",
                    )
                )
                return Explanation(
                    decision="redirect",
                    http_status=302,
                    reason="login_redirect",
                    auth_method="none",
                    steps=steps,
                    summary="redirect to the provider's login (its address is not known until discovery)",
                )
            endpoint = found
        # The redirect as Check builds it; its state is not stored (no login is started).
        _, _, redirect = policy.start(endpoint, policy.return_to(req), self._clock(), secrets.token_bytes)
        return self._finish(redirect, steps, "none")

    def _login_endpoint(self, login: LoginFlow, req: AuthRequest, steps: list[Step]) -> Explanation:
        policy = login.policy
        path = _path_only(req.path)
        what = "login callback" if path == policy.callback_path else "logout"
        steps.append(
            Step(
                "endpoint",
                NOT_EVALUATED,
                f"{path} is authz's {what}: Check runs the login flow (provider and session store); Explain does not",
            )
        )
        return Explanation(
            decision="login_flow",
            http_status=0,
            reason="callback" if path == policy.callback_path else "logout",
            auth_method="none",
            steps=steps,
            summary=f"authz's own {what} endpoint",
        )

    # -- the answer -------------------------------------------------------------

    def _finish(self, decision: Decision, steps: list[Step], method: str) -> Explanation:
        if isinstance(decision, Allow):
            shown = tuple(
                (name, "(the client's cookies without the session cookie)" if name in _SHOWN_UPSTREAM else value)
                for name, value in decision.headers
            )
            identity = decision.identity
            user = identity.user if identity else ""
            return Explanation(
                decision="allow",
                http_status=200,
                reason=decision.reason,
                auth_method=method,
                steps=steps,
                user=user,
                groups=identity.groups if identity else (),
                upstream_headers=shown,
                removed_headers=decision.remove,
                summary=f"allowed ({decision.reason})" + (f" as {user}" if user else ""),
            )
        assert isinstance(decision, Deny)
        if decision.status in REDIRECT_STATUSES:
            location = dict(decision.headers).get("location", "")
            target = urlsplit(location)._replace(query="", fragment="").geturl()
            return Explanation(
                decision="redirect",
                http_status=decision.status,
                reason=decision.reason,
                auth_method=method,
                steps=steps,
                redirect_to=target,
                summary=f"{decision.status} to {target} ({decision.reason})",
            )
        return Explanation(
            decision="deny",
            http_status=decision.status,
            reason=decision.reason,
            auth_method=method,
            steps=steps,
            summary=f"denied {decision.status} ({decision.reason})",
        )


__all__ = ["FAILED", "INFO", "NOT_EVALUATED", "PASSED", "SKIPPED", "Explainer", "Explanation", "Step"]
