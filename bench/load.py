"""Load generators (h2load, wrk, bench.client), each bounded in time and count.

Each run returns a :class:`Sample`: calls completed, throughput, latency percentiles,
and the CPU seconds the server's process tree spent meanwhile (from /proc, so the load
generator's own CPU is not counted).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.procs import PY, cpu_seconds, grpc_env

CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"


@dataclass(frozen=True)
class Sample:
    completed: int
    errors: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    cpu: float  # server CPU seconds during the run

    @property
    def rps(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.cpu / self.completed if self.completed else float("nan")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


Pids = int | tuple[int, ...]


def _cpu(pids: Pids) -> float:
    return sum(cpu_seconds(pid) for pid in ((pids,) if isinstance(pids, int) else pids))


def _measured(pids: Pids, run: Callable[[], tuple[int, int, float, float, float]]) -> Sample:
    cpu0 = _cpu(pids)
    completed, errors, elapsed, p50, p99 = run()
    return Sample(completed, errors, elapsed, p50, p99, _cpu(pids) - cpu0)


def h2load(
    pid: Pids, port: int, data_file: Path, *, seconds: float, clients: int = 2, streams: int = 16,
    rps: float = 0.0, log_file: Path,
) -> Sample:  # fmt: skip
    """gRPC over h2c: POST of one length-prefixed CheckRequest, repeated."""
    argv = ["h2load", "-c", str(clients), "-m", str(streams), "-D", f"{round(seconds * 1000)}ms",
            "-d", str(data_file), "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"--log-file={log_file}", f"http://127.0.0.1:{port}{CHECK_PATH}"]  # fmt: skip
    if rps > 0:
        argv[1:1] = ["--rps", f"{max(1.0, rps / clients):.0f}"]

    def run() -> tuple[int, int, float, float, float]:
        log_file.unlink(missing_ok=True)  # h2load appends to it
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
        found = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
        if not found:
            raise RuntimeError(f"h2load output not understood:\n{out[-2000:]}")
        # Elapsed: the span of the logged calls (h2load's own total includes connection set-up).
        starts, ends, latencies = [], [], []
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                start, took = int(parts[0]), int(parts[2])
                starts.append(start)
                ends.append(start + took)
                latencies.append(took / 1000)
        elapsed = (max(ends) - min(starts)) / 1e6 if starts else 0.0
        return (len(latencies), int(found.group(3)), elapsed,
                _percentile(latencies, 0.5), _percentile(latencies, 0.99))  # fmt: skip

    return _measured(pid, run)


def client(
    pid: Pids, port: int, frames: Path, *, seconds: float, concurrency: int = 32, channels: int = 2,
    max_requests: int = 1_000_000, once: bool = False, rate: float = 0.0,
) -> Sample:  # fmt: skip
    """bench.client: a different CheckRequest per call (from a frames file)."""
    argv = [PY, "-m", "bench.client", f"127.0.0.1:{port}", str(frames), "--seconds", f"{seconds:g}",
            "--concurrency", str(concurrency), "--channels", str(channels), "--max-requests", str(max_requests),
            "--rate", str(rate)]  # fmt: skip
    if once:
        argv.append("--once")

    def run() -> tuple[int, int, float, float, float]:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, env=grpc_env())
        if proc.returncode != 0:
            raise RuntimeError(f"bench.client failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        return int(r["completed"]), int(r["errors"]), float(r["elapsed"]), float(r["p50_ms"]), float(r["p99_ms"])

    # The client takes a moment to start and connect; only its own timed window counts,
    # but the server's CPU is read around the whole process, so the idle part is tiny.
    return _measured(pid, run)


def wrk(pid: Pids, url: str, headers: dict[str, str], *, seconds: float, connections: int = 32) -> Sample:
    """HTTP/1.1 through Envoy; ``pid``: the processes whose CPU is counted (Envoy and its ext_authz server)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)

    def run() -> tuple[int, int, float, float, float]:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
        found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        if not found:
            raise RuntimeError(f"wrk output not understood:\n{out[-2000:]}")
        elapsed = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = int(bad.group(1)) if bad else 0
        socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if socket_errors:
            errors += sum(int(x) for x in socket_errors.groups())
        lat = {q: _ms(v, u) for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
        return int(found.group(1)) - errors, errors, elapsed, lat.get("50", float("nan")), lat.get("99", float("nan"))

    return _measured(pid, run)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
