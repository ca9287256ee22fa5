"""Session reads over our own pipelined Redis connection (authz/redis_reads.py), against a
real redis-server on loopback, and against scripted servers for what Redis will not do on
request (answer late, answer garbage)."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authz.errors import DependencyUnavailable
from authz.redis_reads import RedisReads, reader_for
from authz.redis_store import RedisStore
from authz.sessions import Session
from tests.support.redis_server import REDIS_SERVER, RedisServer, run_redis

pytestmark = pytest.mark.e2e


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with run_redis() as r:
        yield r


def client(r: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=r.port, db=db)


def reads(url: str, timeout: float = 1.0) -> RedisReads:
    found = reader_for(url, timeout=timeout, connect_timeout=timeout)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("url", "served"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://:pw@127.0.0.1:6379/3", True),
        ("redis://user:pw@redis.example:6380", True),
        ("unix:///run/redis.sock?db=2", True),
        ("rediss://127.0.0.1:6379/0", False),  # TLS: redis-py
        ("redis://127.0.0.1:6379/0?socket_timeout=5", False),  # an option we do not implement
        ("redis://127.0.0.1:6379/0?protocol=3", False),
    ],
)
def test_which_urls_are_served(url: str, served: bool) -> None:
    assert (reader_for(url, timeout=1, connect_timeout=1) is not None) is served


async def test_values_and_missing_keys_each_reach_their_own_caller(server: RedisServer) -> None:
    c = client(server)
    for i in range(300):
        c.set(f"k{i}", f"value-{i}-".encode() * (i % 7 + 1))
    c.set("empty", b"")
    r = reads(server.url)
    try:
        keys = [f"k{i}" for i in range(300)] + ["missing", "empty"] + [f"k{i}" for i in range(299, -1, -1)]
        got = await asyncio.gather(*(r.get(k) for k in keys))  # all written before any reply
        assert got == [c.get(k) for k in keys]
        assert got[300] is None and got[301] == b""
    finally:
        await r.close()


async def test_password_username_and_db(server: RedisServer) -> None:
    c = client(server)
    c.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pw", "~*", "+get", "+auth", "+select")
    client(server, db=3).set("here", b"in db 3")
    c.config_set("requirepass", "s3cret")
    r_db3 = reads(f"redis://:s3cret@127.0.0.1:{server.port}/3")
    r_user = reads(f"redis://reader:reader-pw@127.0.0.1:{server.port}/3")
    r_db0 = reads(f"redis://:s3cret@127.0.0.1:{server.port}/0")
    r_wrong = reads(f"redis://:wrong@127.0.0.1:{server.port}/3")
    r_none = reads(f"redis://127.0.0.1:{server.port}/3")
    try:
        assert await r_db3.get("here") == b"in db 3"
        assert await r_user.get("here") == b"in db 3"
        assert await r_db0.get("here") is None
        with pytest.raises(ResponseError):
            await r_wrong.get("here")
        with pytest.raises(ResponseError):  # NOAUTH
            await r_none.get("here")
    finally:
        for r in (r_db3, r_user, r_db0, r_wrong, r_none):
            await r.close()


async def test_an_error_reply_fails_only_its_own_get(server: RedisServer) -> None:
    c = client(server)
    c.rpush("a-list", b"x")
    c.set("s", b"ok")
    r = reads(server.url)
    try:
        results = await asyncio.gather(r.get("s"), r.get("a-list"), r.get("s"), return_exceptions=True)
        assert results[0] == b"ok" and results[2] == b"ok"
        assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    finally:
        await r.close()


async def test_redis_stopped_then_back(server: RedisServer) -> None:
    client(server).set("s", b"v")
    r = reads(server.url)
    try:
        assert await r.get("s") == b"v"
        server.stop()
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                await r.get("s")
        server.start()  # empty again: nothing is saved
        assert await r.get("s") is None
        client(server).set("s", b"v2")
        assert await r.get("s") == b"v2"
    finally:
        await r.close()


async def test_unix_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="authz-redis-unix-") as tmp:
        sock = Path(tmp) / "redis.sock"
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
             "--dir", tmp, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while not sock.exists():
                assert time.monotonic() < deadline, "redis-server did not open its socket"
                time.sleep(0.02)
            redis.Redis(unix_socket_path=str(sock), db=2).set("u", b"over unix")
            r = reads(f"unix://{sock}?db=2")
            try:
                assert await r.get("u") == b"over unix"
            finally:
                await r.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# -- scripted servers: late, garbage, unasked-for replies --------------------------


class Scripted:
    """A TCP server on loopback that answers each GET with what ``reply`` says (None: never)."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"*"):
                    parts = []
                    for _ in range(int(line[1:])):
                        await reader.readline()
                        parts.append((await reader.readline()).rstrip(b"\r\n"))
                    answer = self.reply(parts) if callable(self.reply) else self.reply
                    if answer is not None:
                        writer.write(answer)
                        await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent() -> AsyncIterator[Scripted]:
    s = Scripted(None)
    await s.start()
    yield s
    await s.stop()


async def test_no_answer_fails_every_waiting_get_after_the_timeout_then_reconnects(silent: Scripted) -> None:
    r = reads(f"redis://127.0.0.1:{silent.port}/0", timeout=0.3)
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(r.get(f"k{i}") for i in range(20)), return_exceptions=True)
        waited = time.monotonic() - started
        assert all(isinstance(x, RedisTimeoutError) for x in results), results
        assert 0.25 < waited < 3.0
        silent.reply = b"$2\r\nok\r\n"
        assert await r.get("k") == b"ok"
        assert silent.connections == 2  # the late connection was dropped, not reused
    finally:
        await r.close()


async def test_a_get_whose_connection_the_server_drops_is_sent_again_once(silent: Scripted) -> None:
    """As after a Redis restart or a proxy's idle timeout: the server closes the connection
    with GETs waiting; they are sent once more on a new connection. A refused connection is
    not retried."""
    r = reads(f"redis://127.0.0.1:{silent.port}/0", timeout=5)
    try:
        first = asyncio.gather(r.get("a"), r.get("b"))
        while not silent.writers:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        silent.reply = lambda parts: b"$" + str(len(parts[1])).encode() + b"\r\n" + parts[1] + b"\r\n"
        silent.writers[0].transport.abort()  # closed with both GETs unanswered
        assert await asyncio.wait_for(first, 3) == [b"a", b"b"]
        assert silent.connections == 2
    finally:
        await r.close()
    await silent.stop()
    r = reads(f"redis://127.0.0.1:{silent.port}/0", timeout=5)
    with pytest.raises(RedisConnectionError):
        await r.get("a")  # nothing listens: refused


async def test_a_cancelled_get_does_not_shift_the_replies_of_the_others(silent: Scripted) -> None:
    r = reads(f"redis://127.0.0.1:{silent.port}/0", timeout=5)
    try:
        first = asyncio.ensure_future(r.get("first"))
        second = asyncio.ensure_future(r.get("second"))
        await asyncio.sleep(0.05)
        first.cancel()
        third = asyncio.ensure_future(r.get("third"))
        await asyncio.sleep(0.05)
        # The three replies, in order, as Redis sends them: the cancelled GET's is dropped.
        silent.writers[0].write(b"$5\r\nfirst\r\n$6\r\nsecond\r\n$5\r\nthird\r\n")
        assert await asyncio.wait_for(second, 2) == b"second"
        assert await asyncio.wait_for(third, 2) == b"third"
        assert first.cancelled()
    finally:
        await r.close()


@pytest.mark.parametrize(
    "garbage",
    [b"*1\r\n$1\r\nx\r\n", b"$x\r\nzz\r\n", b":12\r\n"],
    ids=["array", "bad-length", "integer"],
)
async def test_an_unexpected_reply_drops_the_connection(garbage: bytes) -> None:
    s = Scripted(garbage)
    await s.start()
    r = reads(f"redis://127.0.0.1:{s.port}/0", timeout=2)
    try:
        with pytest.raises(RedisConnectionError):
            await r.get("k")
        s.reply = b"$-1\r\n"
        assert await r.get("k") is None
        assert s.connections == 2
    finally:
        await r.close()
        await s.stop()


async def test_store_answers_unavailable_when_redis_is_down(server: RedisServer) -> None:
    store = RedisStore(server.url, cache_ttl=0, cache_size=10, clock=time.time)
    now = time.time()
    session = Session("u@example.com", ("g",), "https://idp.example", "t", "", now + 600, now, now)
    try:
        assert store._reads is not None  # reads take the pipelined connection
        await store.put("sid", session, 600)
        got = await store.get("sid")
        assert got is not None and got.user == "u@example.com"
        server.stop()
        with pytest.raises(DependencyUnavailable) as err:
            await store.get("sid")
        assert err.value.code == "session_store_unavailable"
    finally:
        await store.close()
