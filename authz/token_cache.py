"""A bounded cache of verified tokens: a repeated token costs a dict lookup, not a signature check."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from authz.identity import Identity


class CacheEntry:
    """One verified Authorization value: its identity, until when, and the engine's decision.

    ``decision`` is what the engine answers for this identity on a request with nothing to
    strip (no spoofed identity header, no session cookie); it is built on first use, so a
    repeated token costs neither a signature check nor rebuilding the answer.
    """

    __slots__ = ("decision", "identity", "until")

    def __init__(self, identity: Identity, until: float) -> None:
        self.identity = identity
        self.until = until
        self.decision: Any = None


class TokenCache:
    """Keyed by a digest of the Authorization header value (the token itself is never kept).

    An entry expires no later than the token's ``exp`` and no later than ``ttl`` after it
    was verified; when full, the oldest entry goes first.
    """

    __slots__ = ("__weakref__", "_entries", "_size", "_ttl", "hits", "misses")

    def __init__(self, size: int, ttl: float) -> None:
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._size = size
        self._ttl = ttl
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(value: str) -> bytes:
        # SHA-256 runs in OpenSSL (SHA extensions where the CPU has them); hashlib's BLAKE2
        # is the portable reference code, slower for a 1 KB token.
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()

    def lookup(self, key: bytes, now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            if now < entry.until:
                self.hits += 1
                return entry
            del self._entries[key]
        self.misses += 1
        return None

    def peek(self, key: bytes, now: float) -> CacheEntry | None:
        """The live entry for ``key``, changing nothing (no statistics, no eviction)."""
        entry = self._entries.get(key)
        return entry if entry is not None and now < entry.until else None

    def get(self, key: bytes, now: float) -> Identity | None:
        entry = self.lookup(key, now)
        return entry.identity if entry is not None else None

    def put(self, key: bytes, identity: Identity, now: float) -> CacheEntry | None:
        """Remember a verified identity; None when the cache is off (size 0)."""
        if self._size <= 0:
            return None
        entries = self._entries
        if len(entries) >= self._size and key not in entries:
            entries.popitem(last=False)
        entry = entries[key] = CacheEntry(identity, min(identity.expires_at, now + self._ttl))
        return entry

    def clear(self) -> None:
        self._entries.clear()
