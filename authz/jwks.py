"""The key manager: discovery and JWKS for every trusted issuer, kept fresh in the background.

- refreshed before expiry (Cache-Control max-age, clamped to sane bounds);
- on an unknown ``kid``, one refetch shared by every waiting request (single flight) and
  at most one per UNKNOWN_KID_MIN_INTERVAL per issuer;
- last good keys served while the provider fails, up to the stale window;
- a provider unreachable at start is retried with backoff and jitter; meanwhile the
  issuer has no keys, so its tokens are denied (503) and health stays NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authz import metrics
from authz.errors import DependencyUnavailable
from authz.fetch import Fetcher
from authz.keys import KeySet, build_keyset
from authz.settings import (
    DEFAULT_JWKS_REFRESH,
    JWKS_REFRESH_MAX,
    JWKS_REFRESH_MIN,
    RETRY_BACKOFF_INITIAL,
    RETRY_BACKOFF_MAX,
    UNKNOWN_KID_MIN_INTERVAL,
    IssuerSettings,
)

log = logging.getLogger("authz.jwks")
Clock = Callable[[], float]


class _IssuerState:
    __slots__ = (
        "discovery",
        "fetched_at",
        "inflight",
        "jwks_uri",
        "keyset",
        "last_error",
        "last_error_at",
        "last_kid_refetch",
        "refresh_at",
        "settings",
        "usable_until",
    )

    def __init__(self, settings: IssuerSettings) -> None:
        self.settings = settings
        self.keyset: KeySet | None = None
        self.usable_until = 0.0
        self.refresh_at = 0.0
        self.last_kid_refetch = float("-inf")
        self.inflight: asyncio.Task[None] | None = None
        self.discovery: dict[str, Any] | None = None
        self.jwks_uri = settings.jwks_uri
        self.fetched_at = 0.0
        self.last_error = ""
        self.last_error_at = 0.0


@dataclass(frozen=True, slots=True)
class IssuerKeysView:
    """One issuer's key state for operators (the admin service's Keys). Times are wall-clock
    seconds; 0 when it has not happened."""

    issuer: str
    jwks_uri: str
    loaded: bool
    keys: tuple[tuple[str, str, str], ...]  # (kid, algorithms, kty)
    skipped: int
    fetched_at: float
    next_refresh_at: float
    usable_until: float
    last_error: str
    last_error_at: float
    required: bool


class KeyManager:
    """Owns the key sets of all issuers. ``lookup`` is synchronous and cheap (hot path)."""

    def __init__(
        self,
        issuers: tuple[IssuerSettings, ...],
        fetcher: Fetcher,
        *,
        stale_window: float,
        clock: Clock = time.monotonic,
        on_change: Callable[[], None] | None = None,
        unknown_kid_interval: float = UNKNOWN_KID_MIN_INTERVAL,
    ) -> None:
        self._states = {i.issuer: _IssuerState(i) for i in issuers}
        for name in self._states:  # no keys yet: what the keys alerts look for
            metrics.KEYS_LOADED.labels(name).set(0)
            metrics.KEYS_FRESH_UNTIL.labels(name).set(0)
            metrics.KEYS_USABLE_UNTIL.labels(name).set(0)
        self._fetcher = fetcher
        self._stale_window = stale_window
        self._clock = clock
        self._on_change = on_change
        self._kid_interval = unknown_kid_interval
        self._tasks: list[asyncio.Task[None]] = []
        self.fetch_count = 0

    # -- hot path ---------------------------------------------------------------

    def lookup(self, issuer: str) -> KeySet | None:
        state = self._states.get(issuer)
        if state is None or state.keyset is None:
            return None
        if self._clock() > state.usable_until:
            return None
        return state.keyset

    @property
    def ready(self) -> bool:
        """Keys are loaded for every issuer marked required."""
        return all(self.lookup(name) is not None for name, s in self._states.items() if s.settings.required)

    def discovery(self, issuer: str) -> dict[str, Any] | None:
        state = self._states.get(issuer)
        return state.discovery if state else None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        for state in self._states.values():
            self._tasks.append(asyncio.create_task(self._keep_fresh(state)))

    async def close(self) -> None:
        # A fetch still running (shielded from its waiters) is stopped too, and its outcome
        # collected, so none is left to fail unobserved after the fetcher is closed.
        inflight = [s.inflight for s in self._states.values() if s.inflight is not None]
        for task in (*self._tasks, *inflight):
            task.cancel()
        await asyncio.gather(*self._tasks, *inflight, return_exceptions=True)
        self._tasks.clear()
        await self._fetcher.aclose()

    def kid_refetch_due(self, issuer: str) -> bool:
        """Whether :meth:`refetch_unknown_kid` would fetch (or join a fetch) now.

        False when it would return at once without I/O: the issuer is unknown, or no fetch is
        in flight and the last unknown-kid refetch was less than the interval ago. Synchronous
        and cheap, so a Check can deny an unknown kid without awaiting.
        """
        state = self._states.get(issuer)
        if state is None:
            return False
        return state.inflight is not None or self._clock() - state.last_kid_refetch >= self._kid_interval

    async def refetch_unknown_kid(self, issuer: str) -> str:
        """Refetch once for an unknown kid: shared, and rate limited per issuer.

        Returns "refetched", "rate_limited", "unknown_issuer" or the failed fetch's reason code.
        """
        state = self._states.get(issuer)
        if state is None:
            return "unknown_issuer"
        if state.inflight is None:
            now = self._clock()
            if now - state.last_kid_refetch < self._kid_interval:
                return "rate_limited"
            state.last_kid_refetch = now
        try:
            await self._refresh(state)
        except DependencyUnavailable as exc:
            return exc.code
        return "refetched"

    def issuers(self) -> tuple[str, ...]:
        return tuple(self._states)

    def _wall(self, t: float) -> float:
        """Wall-clock seconds of a time on this manager's (monotonic) clock; 0 stays 0 (never)."""
        return t + (time.time() - self._clock()) if t > 0 else 0.0

    def view(self, issuer: str) -> IssuerKeysView | None:
        """The operator's view of one issuer's keys (no secrets: key ids, algorithms, times)."""
        state = self._states.get(issuer)
        if state is None:
            return None
        wall = self._wall
        keyset = state.keyset
        keys = tuple(
            (entry.kid or "", ",".join(sorted(entry.verifiers)), entry.kty)
            for entry in (keyset.entries if keyset else ())
        )
        return IssuerKeysView(
            issuer=issuer,
            jwks_uri=state.settings.jwks_file or state.jwks_uri or "",
            loaded=self.lookup(issuer) is not None,
            keys=keys,
            skipped=keyset.skipped if keyset else 0,
            fetched_at=wall(state.fetched_at),
            next_refresh_at=wall(state.refresh_at),
            usable_until=wall(state.usable_until),
            last_error=state.last_error,
            last_error_at=wall(state.last_error_at),
            required=state.settings.required,
        )

    async def ensure_discovery(self, issuer: str) -> dict[str, Any]:
        """The issuer's discovery document, fetched now if not yet known."""
        state = self._states[issuer]
        if state.discovery is None:
            await self._discover(state)
        assert state.discovery is not None
        return state.discovery

    # -- internals --------------------------------------------------------------

    async def _keep_fresh(self, state: _IssuerState) -> None:
        backoff = RETRY_BACKOFF_INITIAL
        while True:
            try:
                await self._refresh(state)
                backoff = RETRY_BACKOFF_INITIAL
                delay = max(state.refresh_at - self._clock(), 1.0)
            except DependencyUnavailable as exc:
                log.warning(
                    "key refresh failed",
                    extra={
                        "issuer": state.settings.issuer,
                        "reason": exc.code,
                        "detail": exc.detail,
                    },
                )
                delay = backoff * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)
                backoff = min(backoff * 2, RETRY_BACKOFF_MAX)
            await asyncio.sleep(delay)

    async def _refresh(self, state: _IssuerState) -> None:
        """Fetch keys once; concurrent callers share the same fetch."""
        if state.inflight is None:
            state.inflight = asyncio.create_task(self._fetch(state))
        task = state.inflight
        try:
            await asyncio.shield(task)
        except DependencyUnavailable as exc:
            if state.inflight is task:
                state.last_error, state.last_error_at = exc.code, self._clock()
            raise
        finally:
            if task.done() and state.inflight is task:
                state.inflight = None

    async def _discover(self, state: _IssuerState) -> None:
        issuer = state.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            fetched = await self._fetcher.get_json(
                url, state.settings.ca_bundle, "discovery_failed", state.settings.key_fetch_token_file
            )
        except DependencyUnavailable:
            metrics.KEY_FETCHES.labels(issuer, "discovery_error").inc()
            raise
        doc = fetched.document
        if not isinstance(doc, dict) or doc.get("issuer") != issuer:
            metrics.KEY_FETCHES.labels(issuer, "discovery_error").inc()
            raise DependencyUnavailable("discovery_failed", "discovery issuer does not match")
        state.discovery = doc
        if state.jwks_uri is None:
            jwks_uri = doc.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                metrics.KEY_FETCHES.labels(issuer, "discovery_error").inc()
                raise DependencyUnavailable("discovery_failed", "no jwks_uri")
            state.jwks_uri = jwks_uri

    async def _fetch(self, state: _IssuerState) -> None:
        settings = state.settings
        issuer = settings.issuer
        self.fetch_count += 1
        max_age: float | None
        if settings.jwks_file:
            try:
                document = await asyncio.to_thread(_read_file, settings.jwks_file)
            except DependencyUnavailable:
                metrics.KEY_FETCHES.labels(issuer, "error").inc()
                raise
            max_age = None
        else:
            if state.jwks_uri is None:
                await self._discover(state)
            assert state.jwks_uri is not None
            try:
                fetched = await self._fetcher.get_json(
                    state.jwks_uri, settings.ca_bundle, "jwks_fetch_failed", settings.key_fetch_token_file
                )
            except DependencyUnavailable:
                metrics.KEY_FETCHES.labels(issuer, "error").inc()
                raise
            document, max_age = fetched.document, fetched.max_age
        keyset = build_keyset(document, settings.algorithms)
        if not keyset.entries:
            metrics.KEY_FETCHES.labels(issuer, "no_usable_keys").inc()
            raise DependencyUnavailable("jwks_empty", "no usable key in JWKS")
        interval = DEFAULT_JWKS_REFRESH if max_age is None else max_age
        interval = min(max(interval, JWKS_REFRESH_MIN), JWKS_REFRESH_MAX)
        now = self._clock()
        was_ready = self.ready
        state.keyset = keyset
        state.fetched_at = now
        state.last_error = ""
        state.refresh_at = now + interval * 0.8
        state.usable_until = now + interval + self._stale_window
        metrics.KEY_FETCHES.labels(issuer, "ok").inc()
        metrics.KEYS_LOADED.labels(issuer).set(len(keyset))
        metrics.KEYS_FRESH_UNTIL.labels(issuer).set(self._wall(now + interval))
        metrics.KEYS_USABLE_UNTIL.labels(issuer).set(self._wall(state.usable_until))
        log.info(
            "keys loaded",
            extra={
                "issuer": issuer,
                "keys": len(keyset),
                "skipped": keyset.skipped,
                "refresh_in": round(interval * 0.8),
            },
        )
        if self._on_change is not None and was_ready != self.ready:
            self._on_change()


def _read_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise DependencyUnavailable("jwks_fetch_failed", f"cannot read {path}") from exc
