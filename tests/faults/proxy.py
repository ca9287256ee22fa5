"""A TCP proxy on 127.0.0.1 that can make a dependency slow or unreachable, for fault tests.

Put it between authz and the provider or Redis: ``delay`` holds every chunk coming back from
the dependency for that many seconds; ``down`` refuses new connections (accepted, then closed)
and cuts the open ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class DelayProxy:
    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.delay = 0.0
        self.down = False
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Close every open connection (what a crash of the dependency looks like)."""
        self._loop.call_soon_threadsafe(lambda: [w.close() for w in list(self._writers)])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if slow and self.delay:
                        await asyncio.sleep(self.delay)
                    if self.down:
                        break
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
        self._writers.difference_update((writer, up_writer))

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


@contextlib.contextmanager
def delay_proxy(backend_port: int, port: int = 0) -> Iterator[DelayProxy]:
    proxy = DelayProxy(backend_port)
    proxy.port = port
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
