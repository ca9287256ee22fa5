"""An asyncio HTTP/1.1 keep-alive client that checks every answer against what it must be."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Probe:
    """One request and the answer it must get."""

    kind: str  # valid / invalid / session / anonymous / browser
    raw: bytes
    status: int
    user: str | None = None  # the kubeflow-userid the upstream must see (allowed requests)
    reason: str | None = None  # authz's reason code in the deny body


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    wrong: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


def _judge(probe: Probe, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """None when the answer is right, else what is wrong with it."""
    if status != probe.status:
        return f"{probe.kind}: status {status}, want {probe.status}"
    if probe.user is not None:
        try:
            seen = json.loads(body)["headers"]
        except (ValueError, KeyError, TypeError):
            return f"{probe.kind}: upstream answer unreadable"
        if seen.get("kubeflow-userid") != probe.user:
            return f"{probe.kind}: upstream saw {seen.get('kubeflow-userid')!r}, want {probe.user!r}"
    if probe.reason is not None:
        try:
            reason = json.loads(body).get("reason")
        except (ValueError, AttributeError):
            reason = None
        if reason != probe.reason:
            return f"{probe.kind}: reason {reason!r}, want {probe.reason!r}"
    if probe.kind == "browser" and "/auth?" not in headers.get("location", ""):
        return "browser: no redirect to the provider"
    return None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


class Load:
    """``connections`` keep-alive connections sending probes at ``rate`` per second (0: as fast as they can)."""

    def __init__(self, port: int, probes: list[Probe], connections: int, timeout: float = 10.0) -> None:
        self.port = port
        self.probes = probes
        self.connections = connections
        self.timeout = timeout

    async def run(self, seconds: float, rate: float, max_requests: int, tally: Tally) -> None:
        started = time.perf_counter()
        deadline = started + seconds
        counter = 0
        rng = random.Random(7)  # noqa: S311 (which probe comes next, not a secret)

        async def worker() -> None:
            nonlocal counter
            reader = writer = None
            while True:
                now = time.perf_counter()
                if now >= deadline or counter >= max_requests:
                    break
                index = counter
                counter += 1
                if rate:
                    due = started + index / rate
                    if due > now:
                        await asyncio.sleep(due - now)
                probe = self.probes[rng.randrange(len(self.probes))]
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    sent_at = time.perf_counter()
                    writer.write(probe.raw)
                    assert reader is not None
                    status, headers, body = await asyncio.wait_for(_read_response(reader), self.timeout)
                    tally.latencies.append(time.perf_counter() - sent_at)
                    if headers.get("connection", "").lower() == "close":
                        writer.close()
                        reader = writer = None
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                        ValueError) as exc:  # fmt: skip
                    tally.sent += 1
                    tally.errors += 1
                    tally.note(f"{probe.kind}: {type(exc).__name__}")
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                tally.sent += 1
                tally.by_kind[probe.kind] = tally.by_kind.get(probe.kind, 0) + 1
                if status >= 500:
                    tally.errors += 1
                    tally.note(f"{probe.kind}: HTTP {status} {body[:100]!r}")
                    continue
                problem = _judge(probe, status, headers, body)
                if problem is None:
                    tally.ok += 1
                else:
                    tally.wrong += 1
                    tally.note(problem)
            if writer is not None:
                writer.close()

        await asyncio.gather(*(worker() for _ in range(self.connections)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
