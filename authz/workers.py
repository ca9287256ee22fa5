"""``--workers N``: N serving processes on one gRPC port (SO_REUSEPORT), each with its own
caches, under a parent that forwards signals and serves the HTTP side port for all of them:
``/metrics`` aggregates every worker (Prometheus multiprocess mode), ``/readyz`` is ready
when every worker is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from authz import logs
from authz.errors import ConfigError
from authz.settings import Settings

log = logging.getLogger("authz.workers")


def _worker(settings: Settings, index: int, ready: SynchronizedArray[Any]) -> None:
    from authz.server import serve

    logs.setup(settings.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM

    def on_ready(value: bool) -> None:
        ready[index] = 1 if value else 0

    try:
        asyncio.run(serve(settings, reuse_port=True, serve_http=False, on_ready=on_ready))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"authz: invalid configuration: {problem}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        log.error("cannot serve", extra={"detail": str(exc)})
        sys.exit(1)
    ready[index] = 0
    sys.exit(0)


def run_workers(settings: Settings) -> int:
    import multiprocessing

    metrics_dir = tempfile.mkdtemp(prefix="authz-metrics-")
    # Set before any worker imports prometheus_client, so every worker writes its samples
    # to files in this directory and the parent can add them up.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Array("b", settings.workers)
    procs = [
        ctx.Process(target=_worker, args=(settings, i, ready), name=f"authz-worker-{i}")
        for i in range(settings.workers)
    ]
    for proc in procs:
        proc.start()
    log.info("workers started", extra={"workers": len(procs), "pids": [p.pid for p in procs]})
    try:
        return asyncio.run(_supervise(settings, procs, ready, metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _supervise(settings: Settings, procs: list[Any], ready: SynchronizedArray[Any], metrics_dir: str) -> int:
    from prometheus_client import CollectorRegistry, multiprocess

    from authz.admin_http import AdminHTTP

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    admin = AdminHTTP(ready=lambda: all(ready[:]) and all(p.is_alive() for p in procs), registry=registry)
    host, _, port = settings.http_listen.rpartition(":")
    await admin.start(host.strip("[]"), int(port))

    def forward(signum: int) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, forward, sig)
    codes = []
    for proc in procs:
        await loop.run_in_executor(None, proc.join)
        codes.append(proc.exitcode or 0)
        if proc.pid is not None:
            multiprocess.mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
        forward(signal.SIGTERM)  # one worker gone: stop the rest, let the orchestrator restart us
    await admin.close()
    return max(codes)
