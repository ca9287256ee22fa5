"""Session reads from Redis over one pipelined connection of our own (GET only).

A session Check that misses the read cache does one GET. Through redis-py's asyncio client
that costs about 55-110 µs of CPU (connection pool, retry wrapper, a timeout task and
stream reads, some 350 Python calls); here a GET is one ``transport.write`` and a future
resolved by the protocol when its reply arrives, replies taken in order off one connection.

Only plain connections are served: ``redis://`` and ``unix://`` URLs with host, port, path,
db, username and password (:func:`reader_for` returns None for anything else, e.g.
``rediss://`` or extra query options, and reads stay on redis-py). Errors are redis-py's
exception types, so the store handles them as it handles redis-py's: a lost connection or
a reply later than ``timeout`` fails every GET waiting on the connection, and the next GET
connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.asyncio.connection import Connection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_PLAIN = {"host", "port", "path", "db", "username", "password", "connection_class"}
_CRLF = b"\r\n"


def reader_for(url: str, *, timeout: float, connect_timeout: float) -> RedisReads | None:
    """A pipelined GET connection for a plain Redis URL; None when the URL needs redis-py."""
    try:
        options = parse_url(url)
    except ValueError:
        return None
    if not set(options) <= _PLAIN or options.get("connection_class", Connection) not in (
        Connection,
        UnixDomainSocketConnection,
    ):
        return None
    return RedisReads(
        host=str(options.get("host") or "localhost"),
        port=int(options.get("port") or 6379),
        path=options.get("path"),
        db=int(options.get("db") or 0),
        username=options.get("username"),
        password=options.get("password"),
        timeout=timeout,
        connect_timeout=connect_timeout,
    )


class _Lost(RedisConnectionError):
    """The server closed or reset the connection (not a timeout, not a bad reply)."""


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisReads:
    """GETs pipelined over one connection, opened on first use and again after a failure."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str | None,
        db: int,
        username: str | None,
        password: str | None,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._timeout, self._connect_timeout = timeout, connect_timeout
        hello: list[bytes] = []
        if password:
            auth = (username.encode(), password.encode()) if username else (password.encode(),)
            hello.append(_command(b"AUTH", *auth))
        if db:
            hello.append(_command(b"SELECT", str(db).encode()))
        self._hello = hello
        self._conn: _Pipeline | None = None
        self._lock = asyncio.Lock()

    async def get(self, key: str) -> bytes | None:
        """The value at ``key`` (None: no such key). Raises redis-py's ConnectionError,
        TimeoutError or ResponseError (all RedisError).

        A GET whose connection the server closed or reset before the reply (Redis restarted,
        a proxy's idle timeout) is sent once more on a new connection, as redis-py retries;
        a late reply or a refused connection is not retried.
        """
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        raw = key.encode()
        command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw)
        try:
            reply = await conn.send(command)
        except _Lost:
            reply = await (await self._connect()).send(command)
        if reply is not None and reply.__class__ is not bytes:
            raise ResponseError("unexpected reply to GET")
        return reply

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _connect(self) -> _Pipeline:
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            loop = asyncio.get_running_loop()
            timeout = self._timeout

            def factory() -> _Pipeline:
                return _Pipeline(loop, timeout)

            try:
                if self._path:
                    opening = loop.create_unix_connection(factory, self._path)
                else:
                    opening = loop.create_connection(factory, self._host, self._port)
                _, opened = await asyncio.wait_for(opening, self._connect_timeout)
            except TimeoutError as exc:
                raise RedisTimeoutError("timed out connecting") from exc
            except OSError as exc:
                raise RedisConnectionError(f"cannot connect: {exc.strerror or type(exc).__name__}") from exc
            try:
                for hello in self._hello:
                    reply = await opened.send(hello)
                    if reply != "OK":
                        raise ResponseError("AUTH or SELECT refused")
            except BaseException:
                opened.close()
                raise
            self._conn = opened
            return opened


class _Pipeline(asyncio.Protocol):
    """One connection: commands written as they come, replies matched to waiters in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # (future, deadline) in the order the commands were written.
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._failure: Exception | None = None
        self.closed = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        waiting = self._waiting
        pos = 0
        while waiting:
            end = buffer.find(_CRLF, pos)
            if end < 0:
                break
            kind = buffer[pos]
            reply: Any
            if kind == 36:  # "$": bulk string, or nil ($-1)
                try:
                    size = int(buffer[pos + 1 : end])
                except ValueError:
                    self._fail(RedisConnectionError("unreadable reply from Redis"))
                    return
                if size < 0:
                    reply, after = None, end + 2
                else:
                    after = end + 2 + size + 2
                    if after > len(buffer):
                        break
                    reply = bytes(buffer[end + 2 : after - 2])
            elif kind == 43:  # "+": simple string
                reply, after = buffer[pos + 1 : end].decode("utf-8", "replace"), end + 2
            elif kind == 45:  # "-": error
                reply, after = ResponseError(buffer[pos + 1 : end].decode("utf-8", "replace")), end + 2
            else:  # no command sent here has another kind of reply
                self._fail(RedisConnectionError("unexpected reply from Redis"))
                return
            pos = after
            future = waiting.popleft()[0]
            if not future.done():  # a cancelled waiter's reply is dropped
                if reply.__class__ is ResponseError:
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        if pos:
            del buffer[:pos]
        if not waiting and buffer:
            self._fail(RedisConnectionError("reply from Redis that nobody asked for"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        failure = self._failure or _Lost("connection to Redis lost")
        self._failure = failure
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(failure)

    # -- commands -----------------------------------------------------------------------

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed or self._transport is None:
            raise self._failure or _Lost("connection to Redis lost")
        future = self._loop.create_future()
        deadline = self._loop.time() + self._timeout
        self._waiting.append((future, deadline))
        self._transport.write(command)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expire)
        return future

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._fail(RedisConnectionError("connection to Redis closed"))

    def _expire(self) -> None:
        """The oldest waiting command past its deadline fails the connection (every reply
        behind it would be as late); otherwise wait for the oldest's deadline."""
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if self._loop.time() >= deadline:
            self._fail(RedisTimeoutError("Redis did not answer in time"))
        else:
            self._timer = self._loop.call_at(deadline, self._expire)

    def _fail(self, failure: Exception) -> None:
        self._failure = failure
        self.closed = True
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails every waiter
