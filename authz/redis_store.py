"""Sessions in Redis, shared by every authz process and replica.

A short in-process cache (``cache_ttl``, default 2 s) sits in front of reads, so a
logout on one replica takes effect on every other within ``cache_ttl``. Session reads,
the one store call on the Check path, go over a pipelined connection of their own
(:mod:`authz.redis_reads`; plain URLs); everything else over redis-py asyncio. Connection
errors become DependencyUnavailable("session_store_unavailable"); both reconnect by
themselves on the next call.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from authz import metrics
from authz.errors import DependencyUnavailable
from authz.redis_reads import RedisReads, reader_for
from authz.sessions import LoginState, Session, digest

log = logging.getLogger("authz.redis")
_PREFIX = "authz:"
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_Record = TypeVar("_Record")


class _OperationMetrics:
    """The metric children of one store operation, bound once (labels() locks on every call)."""

    __slots__ = ("error", "ok", "seconds")

    def __init__(self, operation: str) -> None:
        self.ok = metrics.SESSION_OPS.labels(operation, "ok")
        self.error = metrics.SESSION_OPS.labels(operation, "error")
        self.seconds = metrics.SESSION_STORE_SECONDS.labels(operation)


def _decode(parse: Callable[[bytes], _Record], raw: bytes | None, operation: str) -> _Record | None:
    """A stored record, or None when there is none or this version cannot read it."""
    if not raw:
        return None
    try:
        return parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        # Written by another authz version (rolling upgrade) or damaged: treated as absent, so
        # the user is asked to log in again instead of getting a 500 on every request.
        log.warning("unreadable record", extra={"operation": operation, "error": type(exc).__name__})
        return None


class RedisStore:
    def __init__(self, url: str, *, cache_ttl: float, cache_size: int, clock: Any, timeout: float = 1.0) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=30,
        )
        # Session reads (the only store call on the Check path) over a pipelined connection of
        # their own; None for URLs only redis-py serves (rediss://, extra options).
        self._reads: RedisReads | None = reader_for(url, timeout=timeout, connect_timeout=timeout)
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Session | None]] = OrderedDict()
        self._clock = clock
        self._locks: dict[str, str] = {}
        self._metrics: dict[str, _OperationMetrics] = {}  # by operation: a fixed name at each call site

    async def _call(self, operation: str, coro: Any) -> Any:
        measured = self._metrics.get(operation)
        if measured is None:
            measured = self._metrics[operation] = _OperationMetrics(operation)
        started = time.perf_counter()
        try:
            result = await coro
        except (RedisError, OSError) as exc:
            measured.seconds.observe(time.perf_counter() - started)
            measured.error.inc()
            log.warning("session store unavailable", extra={"operation": operation, "error": type(exc).__name__})
            raise DependencyUnavailable("session_store_unavailable", type(exc).__name__) from exc
        measured.seconds.observe(time.perf_counter() - started)
        measured.ok.inc()
        return result

    async def get(self, sid: str) -> Session | None:
        return await self.get_by_digest(digest(sid))

    async def get_by_digest(self, key: str) -> Session | None:
        """The session whose id has this digest (:func:`authz.sessions.digest`)."""
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        reads = self._reads
        name = _PREFIX + "s:" + key
        raw = await self._call("get", reads.get(name) if reads is not None else self._redis.get(name))
        session = _decode(Session.from_json, raw, "get")
        if self._cache_ttl > 0:
            cache = self._cache
            cache.pop(key, None)
            # Entries go in in expiry order (one TTL for all): drop the expired ones from the
            # front, so the cache holds only the sessions seen in the last cache_ttl seconds.
            while cache:
                oldest = next(iter(cache))
                if cache[oldest][0] > now and len(cache) < self._cache_size:
                    break
                del cache[oldest]
            cache[key] = (now + self._cache_ttl, session)
        return session

    async def put(self, sid: str, session: Session, ttl: float) -> None:
        key = digest(sid)
        await self._call("put", self._redis.set(_PREFIX + "s:" + key, session.to_json(), px=max(int(ttl * 1000), 1)))
        self._cache.pop(key, None)

    async def delete(self, sid: str) -> None:
        key = digest(sid)
        self._cache.pop(key, None)
        await self._call("delete", self._redis.delete(_PREFIX + "s:" + key))

    async def put_state(self, state: str, record: LoginState, ttl: float) -> None:
        await self._call(
            "put_state", self._redis.set(_PREFIX + "l:" + digest(state), record.to_json(), px=int(ttl * 1000))
        )

    async def take_state(self, state: str) -> LoginState | None:
        raw = await self._call("take_state", self._redis.getdel(_PREFIX + "l:" + digest(state)))
        return _decode(LoginState.from_json, raw, "take_state")

    async def lock(self, name: str, ttl: float) -> bool:
        token = secrets.token_hex(16)
        ok = await self._call("lock", self._redis.set(_PREFIX + "k:" + name, token, nx=True, px=int(ttl * 1000)))
        if ok:
            self._locks[name] = token
        return bool(ok)

    async def unlock(self, name: str) -> None:
        token = self._locks.pop(name, None)
        if token is not None:
            await self._call("unlock", self._redis.eval(_UNLOCK, 1, _PREFIX + "k:" + name, token))

    async def ping(self) -> None:
        """Raises DependencyUnavailable when Redis does not answer (the admin Status)."""
        await self._call("ping", self._redis.ping())

    def forget(self, sid: str) -> None:
        """Drop a session from this process's read cache (after it changed here)."""
        self._cache.pop(digest(sid), None)

    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        await self._redis.aclose()
