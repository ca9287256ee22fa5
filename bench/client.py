"""A gRPC load client for scenarios that need a different CheckRequest per call.

h2load repeats one body; this client sends the serialized CheckRequests of a frames file
(see :func:`bench.payloads.write_frames`) in order, from ``--concurrency`` concurrent
calls spread over ``--channels`` HTTP/2 connections. Requests are passed as bytes, so the
client spends nothing on protobuf. Bounded by ``--max-requests`` and ``--seconds``; with
``--once`` each message is sent at most once (the run ends when they are used up).

Prints one JSON object: completed calls, errors, elapsed seconds and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

from bench.payloads import read_frames

METHOD = "/envoy.service.auth.v3.Authorization/Check"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(
    target: str, messages: list[bytes], *, concurrency: int, channels: int, max_requests: int, seconds: float,
    once: bool, rate: float = 0.0,
) -> dict[str, float]:  # fmt: skip
    chans = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)
    ]
    for chan in chans:
        await asyncio.wait_for(chan.channel_ready(), 10)
    calls = [chan.unary_unary(METHOD) for chan in chans]  # bytes in, bytes out
    limit = min(max_requests, len(messages)) if once else max_requests
    latencies: list[float] = []
    errors = 0
    next_index = 0
    started = time.perf_counter()
    deadline = started + seconds
    interval = concurrency / rate if rate > 0 else 0.0

    async def worker(n: int) -> None:
        nonlocal next_index, errors
        call = calls[n % len(calls)]
        due = started + interval * n / concurrency
        while True:
            now = time.perf_counter()
            if next_index >= limit or now >= deadline:
                return
            if interval:
                if due > now:
                    await asyncio.sleep(due - now)
                due += interval
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                await call(messages[index % len(messages)], timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    for chan in chans:
        await chan.close()
    latencies.sort()
    return {
        "completed": len(latencies),
        "errors": errors,
        "elapsed": elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("target")
    parser.add_argument("frames")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="offered load (calls/s); 0: closed loop")
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()
    messages = list(read_frames(args.frames))
    result = asyncio.run(
        run(args.target, messages, concurrency=args.concurrency, channels=args.channels,
            max_requests=args.max_requests, seconds=args.seconds, once=args.once, rate=args.rate)
    )  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
