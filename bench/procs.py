"""The processes a benchmark run starts, and what /proc says about them.

Every server listens on 127.0.0.1 only, on a free port; every process is started by
this module and stopped by it (SIGTERM, then SIGKILL), by its own pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from tests.support.servers import wait_serving  # the same health wait the tests use

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENVOY = str(Path(sys.executable).parent / "envoy")
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grpc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: no authz/OIDC settings leak in from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "CLIENT_", "AUTHZ_", "SESSION_"))}
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    env.setdefault("AUTHZ_ADMIN_LISTEN", f"127.0.0.1:{free_port()}")  # one admin port per process, not 9192 each
    return env


# -- /proc ----------------------------------------------------------------------


def _tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (e.g. authz workers)."""
    total = 0
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def rss_mb(pid: int) -> dict[int, float]:
    """Resident set size (MB) of each process in the tree that runs Python (the workers)."""
    sizes: dict[int, float] = {}
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes[member] = int(line.split()[1]) / 1024
    return sizes


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread of one process: the main thread (the event loop) and the
    others by name (gRPC's C-core threads, Python threads)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = "main thread (event loop)" if int(tid) == pid else text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rpartition(")")[2].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet(max_wait: float, threshold: float, log: Any = print) -> float:
    """Wait (at most ``max_wait`` s) until the 1-minute load average is under ``threshold``."""
    deadline = time.monotonic() + max_wait
    load = loadavg()
    while load >= threshold and time.monotonic() < deadline:
        log(f"load average {load:.2f} >= {threshold:.2f}; waiting for a quieter moment")
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
        load = loadavg()
    return load


# -- processes ------------------------------------------------------------------


class Proc:
    """One started process, with its log file; ``stop`` is safe to call twice."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.popen.pid
        self.port = 0
        self.http_port = 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


@contextmanager
def started(proc: Proc):  # type: ignore[no-untyped-def]
    try:
        yield proc
    finally:
        proc.stop()


def _wait_grpc(proc: Proc, timeout: float = 20.0) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise RuntimeError(f"{proc.name} did not listen:\n{proc.tail()}") from None


def floor(workdir: Path, name: str = "floor", *, busy_us: float = 0.0) -> Proc:
    """The no-op floor; ``busy_us``: the floor after that much busy Python per Check."""
    port = free_port()
    argv = [PY, "-m", "bench.floor", f"127.0.0.1:{port}"] + ([f"--busy-us={busy_us:g}"] if busy_us else [])
    proc = Proc(name, argv, workdir / f"{name}.log", env=grpc_env())
    proc.port = port
    _wait_grpc(proc)
    return proc


@dataclass(frozen=True)
class Group:
    """Several processes serving one port: loads measure their CPU together."""

    pid: tuple[int, ...]
    port: int


def floors(workdir: Path, count: int) -> tuple[list[Proc], Group]:
    """``count`` floor processes on one port (SO_REUSEPORT), as ``authz serve --workers`` runs."""
    port = free_port()
    group = [
        Proc(f"floor-x{count}-{i}", [PY, "-m", "bench.floor", f"127.0.0.1:{port}", "--reuse-port"],
             workdir / f"floor-x{count}-{i}.log", env=grpc_env())
        for i in range(count)
    ]  # fmt: skip
    deadline = time.monotonic() + 20
    for proc in group:
        while "serving" not in proc.tail(200):
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start:\n{proc.tail()}")
            time.sleep(0.05)
    return group, Group(tuple(p.pid for p in group), port)


def authz(
    workdir: Path, name: str, env: dict[str, str], config: dict[str, Any] | None = None, *, workers: int = 1
) -> Proc:
    """``python -m authz serve`` with env (oidc-authservice names) and an optional YAML config.

    Returns once the process is started; :func:`wait_ready` waits for health SERVING, so
    several can start at once.
    """
    port, http_port = free_port(), free_port()
    full = {"AUTHZ_LISTEN": f"127.0.0.1:{port}", "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{http_port}", **env}
    argv = [PY, "-m", "authz", "serve"]
    if config is not None:
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        argv += ["--config", str(path)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    proc = Proc(name, argv, workdir / f"{name}.log", env=grpc_env(full))
    proc.port, proc.http_port = port, http_port
    return proc


def wait_ready(proc: Proc, timeout: float = 60) -> None:
    try:
        wait_serving(proc.port, timeout=timeout)
    except TimeoutError:
        raise RuntimeError(f"{proc.name} did not become ready:\n{proc.tail()}") from None


def redis(workdir: Path) -> Proc:
    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--protected-mode", "yes", "--dir", str(workdir)]  # fmt: skip
    proc = Proc("redis", argv, workdir / "redis.log")
    proc.port = port
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline or not proc.alive():
            proc.stop()
            raise RuntimeError("redis-server did not start:\n" + proc.tail())
        time.sleep(0.05)


def envoy(workdir: Path, name: str, config: dict[str, Any], admin_port: int) -> Proc:
    """Envoy with one worker thread, so it takes the same share of the 2 cores in every case."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config))
    argv = [ENVOY, "-c", str(path), "--use-dynamic-base-id", "--disable-hot-restart", "-l", "warning",
            "--concurrency", "1"]  # fmt: skip
    proc = Proc(name, argv, workdir / f"{name}.log")
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", admin_port), timeout=1) as sock:
                sock.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if b" 200 " in sock.recv(64):
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline or not proc.alive():
            proc.stop()
            raise RuntimeError(f"{name} did not start:\n{proc.tail()}")
        time.sleep(0.1)


def http_status(port: int, path: str, headers: dict[str, str]) -> int:
    """The status of one HTTP/1.1 GET to 127.0.0.1:port."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: app.example.com\r\n{head}Connection: close\r\n\r\n".encode())
        return int(sock.recv(64).split(b" ", 2)[1])


def metrics_text(proc: Proc) -> str:
    """authz's /metrics (one worker's, when there are several)."""
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").partition("\r\n\r\n")[2]


def checks_by_decision(proc: Proc) -> dict[str, float]:
    """authz_checks_total summed per decision label (allow / deny / redirect)."""
    totals: dict[str, float] = {}
    for line in metrics_text(proc).splitlines():
        if line.startswith("authz_checks_total{"):
            labels, _, value = line.rpartition(" ")
            decision = labels.split('decision="', 1)[1].split('"', 1)[0]
            totals[decision] = totals.get(decision, 0.0) + float(value)
    return totals
