"""Memory after many distinct tokens and sessions, driven in-process through CheckHandler.check.

Sending 1,000,000 distinct tokens over gRPC would take this machine well over ten minutes,
so this drives the same objects ``authz serve`` builds (``authz.server.build``: engine,
token cache, key manager against the run's JWKS server, login flow with the Redis store)
by calling the handler directly, one CheckRequest at a time: every token is signature-
checked and cached exactly as a served one. A second process signs the ES256 tokens ahead
(a bounded window), so the signing cost is off this process. Then sessions are written to
Redis in RedisStore's format and each is looked up once by its cookie.

Prints one JSON object: RSS (MB) at start, after the tokens, after the sessions, the peak,
and the sizes of the bounded caches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import redis as redis_client
from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz.config import load_settings
from authz.server import build
from authz.sessions import Session, digest
from bench import payloads

BATCH = 2000
WINDOW = 4  # batches signed ahead; bounds what waits in this process


def _status() -> dict[str, float]:
    sizes = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            sizes[line.split(":")[0]] = int(line.split()[1]) / 1024
    return sizes


async def run(args: argparse.Namespace) -> dict[str, object]:
    env = {
        "OIDC_PROVIDER": args.issuer,
        "CLIENT_ID": payloads.AUDIENCE,
        "REDIRECT_URL": "http://127.0.0.1:8080/authservice/oidc/callback",
        "SESSION_STORE_TYPE": "redis",
        "SESSION_STORE_REDIS_ADDR": args.redis,
        "SESSION_COOKIE_NAME": "authservice_session",
        "LOG_LEVEL": "WARNING",
    }
    settings, _ = load_settings(env)
    c = build(settings)
    c.keys.start()
    deadline = time.monotonic() + 30
    while not c.keys.ready:
        if time.monotonic() > deadline:
            raise RuntimeError("keys not loaded")
        await asyncio.sleep(0.05)
    handler, started = c.handler, time.monotonic()
    out: dict[str, object] = {"rss_start_mb": _status()["VmRSS"]}

    # A fresh message per check, as the server gets: a protobuf message keeps every value ever
    # set in its arena, so reusing one would grow this process, not authz.
    template = pb.CheckRequest.FromString(payloads.check_request(authorization="Bearer x"))
    pem = Path(args.key).read_bytes()
    now = time.time()
    allowed = checked = 0
    with ProcessPoolExecutor(1) as signer:
        pending: deque[Future[list[str]]] = deque()
        next_start = 0

        def submit() -> None:
            nonlocal next_start
            if next_start < args.tokens:
                stop = min(next_start + BATCH, args.tokens)
                job = (pem, args.kid, "ES256", args.issuer, now, next_start, stop)
                pending.append(signer.submit(payloads._sign_batch, job))
                next_start = stop

        for _ in range(WINDOW):
            submit()
        while pending:
            tokens = pending.popleft().result()
            submit()
            for token in tokens:
                message = pb.CheckRequest()
                message.CopyFrom(template)
                message.attributes.request.http.headers["authorization"] = "Bearer " + token
                response = await handler.check(message)
                checked += 1
                allowed += response.HasField("ok_response")
            if time.monotonic() - started > args.max_seconds:
                break
    out.update(tokens=checked, tokens_allowed=allowed, rss_after_tokens_mb=_status()["VmRSS"],
               token_cache_entries=len(c.engine.cache))  # fmt: skip

    del template.attributes.request.http.headers["authorization"]
    now = time.time()  # sessions fresh now: none is old enough to be touched (rewritten) on read
    host, _, port = args.redis.rpartition(":")
    db = redis_client.Redis(host=host, port=int(port))
    id_token = payloads.Key.ec("id").sign(payloads.claims(args.issuer, now, 0))
    sids = [f"mem-{i:07d}-" + digest(str(i))[:24] for i in range(args.sessions)]
    pipe = db.pipeline(transaction=False)
    for index, sid in enumerate(sids):
        session = Session(
            user=f"user{index}@example.com", groups=(payloads.GROUP, "everyone"), issuer=args.issuer,
            id_token=id_token, refresh_token="Chl" + digest(sid)[:40], id_token_expires_at=now + 7200,
            created_at=now, last_seen=now,
        )  # fmt: skip
        pipe.set("authz:s:" + digest(sid), session.to_json(), px=3_600_000)
        if index % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    db.close()
    sessions_allowed = 0
    for sid in sids:
        message = pb.CheckRequest()
        message.CopyFrom(template)
        message.attributes.request.http.headers["cookie"] = payloads.session_cookie_header("authservice_session", sid)
        response = await handler.check(message)
        sessions_allowed += response.HasField("ok_response")
    store_cache = getattr(getattr(handler.login, "store", None), "_cache", {})
    status = _status()
    out.update(sessions=len(sids), sessions_allowed=sessions_allowed, rss_after_sessions_mb=status["VmRSS"],
               rss_peak_mb=status["VmHWM"], session_cache_entries=len(store_cache),
               seconds=round(time.monotonic() - started, 1))  # fmt: skip
    await c.keys.close()
    for close in c.closers:
        await close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--key", required=True, help="PEM of the issuer's ES256 signing key")
    parser.add_argument("--kid", required=True)
    parser.add_argument("--redis", required=True, help="HOST:PORT")
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
