"""RedisStore's read cache keeps only sessions seen within cache_ttl, and never more than its cap."""

from __future__ import annotations

from authz.redis_store import RedisStore
from authz.sessions import Session
from tests.support.tokens import FakeClock


class _FakeRedis:
    def __init__(self) -> None:
        self.gets = 0

    async def get(self, key: str) -> bytes:
        self.gets += 1
        return Session("u", (), "i", "t", "", 2e9, 0.0, 0.0).to_json().encode()


async def test_expired_entries_leave_and_the_cap_holds():
    clock = FakeClock()
    store = RedisStore("redis://127.0.0.1:1/0", cache_ttl=2.0, cache_size=100, clock=clock)
    fake = _FakeRedis()
    store._redis = fake  # type: ignore[assignment]
    store._reads = fake  # type: ignore[assignment]
    for i in range(500):
        await store.get(f"sid-{i}")
    assert len(store._cache) == 100
    await store.get("sid-499")
    assert fake.gets == 500  # a hit within the TTL
    clock.advance(3.0)
    await store.get("fresh")
    assert len(store._cache) == 1  # everything older than the TTL is gone
