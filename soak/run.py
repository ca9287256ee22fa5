"""``python -m soak``: capacity first, then ~70% of it for ten minutes, every answer checked.

    python -m soak [--minutes 10] [--fraction 0.7] [--calibrate 20] [--warmup 60] [--connections 32]

Exits 0 when there were no errors (connection failures, timeouts, 5xx), no wrong decisions
(a status, identity or reason other than the one required) and authz's RSS at the end was
within --tolerance (10%) of its RSS after the warm-up. Prints the figures as it goes and a
JSON summary at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from demo.envoy_config import bootstrap
from soak.client import Load, Probe, Tally, percentile
from tests.adversarial.rawhttp import send
from tests.adversarial.stub_op import StubOP, run_stub_op
from tests.support import forge
from tests.support.envoy import run_envoy
from tests.support.servers import ROOT, authz_process, free_port
from tests.support.tokens import unsigned

CLIENT_ID = "authz-soak"
SECRET = "soak-secret"
HOST = "app.example.com"


@dataclass
class Stack:
    op: StubOP
    port: int  # Envoy's listener
    authz_pid: int
    envoy_pid: int


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    with run_stub_op(CLIENT_ID, SECRET) as op:
        echo_port, grpc_port, listen, admin = free_port(), free_port(), free_port(), free_port()
        echo = subprocess.Popen(  # noqa: S603 (this interpreter, our module)
            [sys.executable, "-m", "soak.upstream", str(echo_port)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env = {
            "OIDC_PROVIDER": op.issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": SECRET,
            "REDIRECT_URL": f"http://127.0.0.1:{listen}/authservice/oidc/callback", "SKIP_AUTH_URLS": "/public/",
            "AUTHZ_LISTEN": f"127.0.0.1:{grpc_port}", "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        try:
            with authz_process(env) as proc:
                threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, b"")], daemon=True).start()  # type: ignore[union-attr]
                config = bootstrap(listen_port=listen, admin_port=admin, authz_port=grpc_port, upstream_port=echo_port)
                with run_envoy(config, admin) as envoy:
                    yield Stack(op, listen, proc.pid, envoy.pid)
        finally:
            echo.terminate()
            echo.wait(timeout=10)


def _request(path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def log_in(s: Stack, email: str) -> str:
    """A browser login through Envoy; the session cookie's value."""
    start = send(s.port, "GET", "/app", [("accept", "text/html"), ("sec-fetch-mode", "navigate")])
    binding = (start.header("set-cookie") or "").split(";", 1)[0]
    callback = s.op.authorize(start.header("location") or "", email=email)
    parts = urlsplit(callback)
    done = send(s.port, "GET", f"{parts.path}?{parts.query}", [("cookie", binding)])
    assert done.status == 302, done.status
    cookie = next(c for c in done.headers["set-cookie"] if c.startswith("authservice_session="))
    return cookie.split(";", 1)[0].partition("=")[2]


def probes(s: Stack, tokens: int, sessions: int) -> list[Probe]:
    """The mix: 40% valid bearer tokens (many distinct, so signatures are verified, not only cached),
    25% invalid tokens, 25% browser sessions, 9.5% no credentials, 0.5% browsers sent to log in."""
    valid = []
    for i in range(tokens):
        email = f"user{i}@example.com"
        token = s.op.id_token(email=email, sub=str(i))
        valid.append(Probe("valid", _request(f"/api/{i}", [("authorization", f"Bearer {token}")]), 200, user=email))
    now = int(time.time())
    good = s.op.id_token()
    bad_tokens = {
        "token_expired": s.op.id_token(exp=now - 3600, iat=now - 7200),
        "token_audience_invalid": s.op.id_token(aud="someone-else"),
        "token_signature_invalid": forge.flip_signature_byte(good, 3),
        "token_alg_not_allowed": unsigned({"alg": "none"}, {"iss": s.op.issuer, "aud": CLIENT_ID}, b"x"),
        "token_malformed": "not.a.jwt",
        "token_issuer_untrusted": s.op.id_token(iss="https://elsewhere.example.com"),
        "token_user_claim_invalid": s.op.id_token(email=""),
    }
    invalid = [Probe("invalid", _request("/api/x", [("authorization", f"Bearer {t}")]), 401, reason=r)
               for r, t in bad_tokens.items()]  # fmt: skip
    session = []
    for i in range(sessions):
        email = f"person{i}@example.com"
        sid = log_in(s, email)
        headers = [("cookie", f"theme=dark; authservice_session={sid}"), ("accept", "application/json")]
        session.append(Probe("session", _request(f"/ui/{i}", headers), 200, user=email))
    anonymous = [
        Probe("anonymous", _request("/api/x", [("accept", "application/json")]), 401, reason="missing_credentials"),
        Probe("anonymous", _request("/public/x", []), 200),
    ]
    # A browser without a session starts a login, whose state authz keeps for 10 minutes: a few
    # per second, as real users arriving, not a flood (tests/adversarial/test_flood.py is that).
    browser = [Probe("browser", _request("/notebooks", [("accept", "text/html"), ("sec-fetch-mode", "navigate")]), 302)]
    mix: list[Probe] = []
    for part, share in ((valid, 400), (invalid, 250), (session, 250), (anonymous, 95), (browser, 5)):
        mix += [part[i % len(part)] for i in range(share * 10)]
    return mix


def run_phase(load: Load, seconds: float, rate: float, tally: Tally) -> float:
    started = time.perf_counter()
    asyncio.run(load.run(seconds, rate, max_requests=int((rate or 20000) * seconds * 1.5) + 1000, tally=tally))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soak")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--fraction", type=float, default=0.7)
    p.add_argument("--calibrate", type=float, default=20.0, help="seconds at full speed to measure capacity")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds of the soak before the RSS baseline")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--tokens", type=int, default=5000)
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument("--slice", type=float, default=30.0, help="seconds between progress lines")
    args = p.parse_args(argv)
    with stack() as s:
        mix = probes(s, args.tokens, args.sessions)
        load = Load(s.port, mix, args.connections)
        run_phase(load, 5.0, 0, Tally())  # connections, caches and the JIT-less interpreter warmed up
        cal = Tally()
        elapsed = run_phase(load, args.calibrate, 0, cal)
        capacity = cal.sent / elapsed
        rate = capacity * args.fraction
        p50 = percentile(cal.latencies, 0.5) * 1000
        print(f"capacity {capacity:,.0f} req/s through Envoy ({args.connections} connections, p50 {p50:.1f} ms, "
              f"{cal.errors} errors, {cal.wrong} wrong); soak at {rate:,.0f} req/s for {args.minutes:g} min",
              flush=True)
        total = Tally()
        baseline: int | None = None
        rss_start = rss(s.authz_pid)
        cpu_start = cpu_seconds(s.authz_pid)
        soak_started = time.monotonic()
        end = soak_started + args.minutes * 60
        while (left := end - time.monotonic()) > 0.5:
            part = Tally()
            took = run_phase(load, min(args.slice, left), rate, part)
            for name in ("sent", "ok", "errors", "wrong"):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            for kind, n in part.by_kind.items():
                total.by_kind[kind] = total.by_kind.get(kind, 0) + n
            total.examples += part.examples[: 10 - len(total.examples)]
            total.latencies += part.latencies[:: max(1, len(part.latencies) // 2000)]
            now_rss = rss(s.authz_pid)
            if baseline is None and time.monotonic() - soak_started >= args.warmup:
                baseline = now_rss
            p50, p99 = percentile(part.latencies, 0.5) * 1000, percentile(part.latencies, 0.99) * 1000
            print(f"{time.monotonic() - soak_started:6.0f}s  {part.sent / took:7,.0f} req/s  p50 {p50:5.1f} ms  "
                  f"p99 {p99:6.1f} ms  errors {part.errors}  wrong {part.wrong}  authz RSS {now_rss / 2**20:.1f} MiB",
                  flush=True)
        rss_end = rss(s.authz_pid)
        cpu = cpu_seconds(s.authz_pid) - cpu_start
        envoy_rss = rss(s.envoy_pid)
    baseline = baseline or rss_start
    growth = (rss_end - baseline) / baseline
    summary: dict[str, Any] = {
        "capacity_rps": round(capacity), "soak_rps": round(total.sent / (args.minutes * 60)), "minutes": args.minutes,
        "requests": total.sent, "errors": total.errors, "wrong_decisions": total.wrong, "by_kind": total.by_kind,
        "p50_ms": round(percentile(total.latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(total.latencies, 0.99) * 1000, 2),
        "authz_rss_after_warmup_mib": round(baseline / 2**20, 1), "authz_rss_end_mib": round(rss_end / 2**20, 1),
        "authz_rss_growth_pct": round(growth * 100, 1), "authz_cpu_seconds": round(cpu, 1),
        "envoy_rss_end_mib": round(envoy_rss / 2**20, 1), "examples": total.examples,
    }  # fmt: skip
    print(json.dumps(summary))
    ok = total.errors == 0 and total.wrong == 0 and abs(growth) <= args.tolerance and total.sent > 0
    print("soak passed" if ok else "soak FAILED", flush=True)
    return 0 if ok else 1
