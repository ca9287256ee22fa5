"""A bounded cache of verified tokens: a repeated token costs a dict lookup, not a signature check."""

from __future__ import annotations

import hashlib

from authz.identity import Identity


class TokenCache:
    """Keyed by a digest of the token (the token itself is never kept).

    An entry expires no later than the token's ``exp`` and no later than ``ttl`` after it
    was verified; when full, the oldest entry goes first.
    """

    __slots__ = ("_entries", "_size", "_ttl", "hits", "misses")

    def __init__(self, size: int, ttl: float) -> None:
        self._entries: dict[bytes, tuple[Identity, float]] = {}
        self._size = size
        self._ttl = ttl
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.blake2b(token.encode("ascii"), digest_size=16).digest()

    def get(self, key: bytes, now: float) -> Identity | None:
        entry = self._entries.get(key)
        if entry is not None:
            if now < entry[1]:
                self.hits += 1
                return entry[0]
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: bytes, identity: Identity, now: float) -> None:
        if self._size <= 0:
            return
        entries = self._entries
        if len(entries) >= self._size and key not in entries:
            del entries[next(iter(entries))]
        entries[key] = (identity, min(identity.expires_at, now + self._ttl))

    def clear(self) -> None:
        self._entries.clear()
