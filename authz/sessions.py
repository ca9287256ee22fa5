"""Session and login-state records, and the in-memory store.

Records are plain values; stores only keep them (no policy). Keys are digests of the
session id / state, so a store dump holds no usable cookie.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from authz.errors import DependencyUnavailable


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Session:
    user: str
    groups: tuple[str, ...]
    issuer: str
    id_token: str
    refresh_token: str
    id_token_expires_at: float
    created_at: float
    last_seen: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        data = json.loads(text)
        data["groups"] = tuple(data["groups"])
        return cls(**data)

    def touched(self, now: float) -> Session:
        return replace(self, last_seen=now)


@dataclass(frozen=True, slots=True)
class LoginState:
    """What the callback needs to finish a login started by one browser."""

    nonce: str
    verifier: str
    binding_hash: str  # digest of the value of the browser's login cookie
    return_to: str
    created_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LoginState:
        return cls(**json.loads(text))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SessionStore(Protocol):
    """Raises DependencyUnavailable("session_store_unavailable") when the store is down."""

    async def get(self, sid: str) -> Session | None: ...
    async def get_by_digest(self, sid_digest: str) -> Session | None:
        """The session whose id has this :func:`digest` (what ``get`` looks up)."""
        ...

    async def put(self, sid: str, session: Session, ttl: float) -> None: ...
    async def delete(self, sid: str) -> None: ...
    async def put_state(self, state: str, record: LoginState, ttl: float) -> None: ...
    async def take_state(self, state: str) -> LoginState | None: ...
    async def lock(self, name: str, ttl: float) -> bool: ...
    async def unlock(self, name: str) -> None: ...
    async def close(self) -> None: ...


class MemoryStore:
    """Bounded, TTL'd, one process. Oldest entries go first when full.

    Login states are kept apart from sessions, each bounded by ``max_entries``: anyone can make
    authz keep a login state by asking for a page, and such a flood must push out only other
    pending logins, never the session of a user who is logged in.
    """

    def __init__(self, max_entries: int, clock: Any) -> None:
        self._max = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # sessions and refresh locks
        self._states: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # login states

    def _get(self, key: str, table: OrderedDict[str, tuple[float, Any]] | None = None) -> Any:
        table = self._data if table is None else table
        entry = table.get(key)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            del table[key]
            return None
        return entry[1]

    def _put(self, key: str, value: Any, ttl: float, table: OrderedDict[str, tuple[float, Any]] | None = None) -> None:
        table = self._data if table is None else table
        if len(table) >= self._max and key not in table:
            table.popitem(last=False)
        table[key] = (self._clock() + ttl, value)

    def __len__(self) -> int:
        return len(self._data) + len(self._states)

    def session_count(self) -> int:
        """Sessions held now (not pending logins or refresh locks); for the admin Status."""
        return sum(1 for key in self._data if key.startswith("s:"))

    async def get(self, sid: str) -> Session | None:
        return await self.get_by_digest(digest(sid))

    async def get_by_digest(self, sid_digest: str) -> Session | None:
        value: Session | None = self._get("s:" + sid_digest)
        return value

    async def put(self, sid: str, session: Session, ttl: float) -> None:
        self._put("s:" + digest(sid), session, ttl)

    async def delete(self, sid: str) -> None:
        self._data.pop("s:" + digest(sid), None)

    async def put_state(self, state: str, record: LoginState, ttl: float) -> None:
        self._put("l:" + digest(state), record, ttl, self._states)

    async def take_state(self, state: str) -> LoginState | None:
        key = "l:" + digest(state)
        value: LoginState | None = self._get(key, self._states)
        self._states.pop(key, None)
        return value

    async def lock(self, name: str, ttl: float) -> bool:
        if self._get("k:" + name) is not None:
            return False
        self._put("k:" + name, True, ttl)
        return True

    async def unlock(self, name: str) -> None:
        self._data.pop("k:" + name, None)

    async def close(self) -> None:
        self._data.clear()
        self._states.clear()


__all__ = ["DependencyUnavailable", "LoginState", "MemoryStore", "Session", "SessionStore", "digest"]
