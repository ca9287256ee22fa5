"""The floor: a no-op ext_authz server on the same stack as authz (grpc.aio, xds-protos).

It answers every Check with one prebuilt OK CheckResponse carrying one identity header,
serialized once at start and sent as those bytes (no serializer per call, as authz does with
its prebuilt answers), so it is the fastest a Python gRPC server can answer here. Run as
``python -m bench.floor HOST:PORT [--reuse-port] [--busy-us=N]`` (SIGTERM stops it;
``--busy-us``: spin N µs of Python per Check first, a calibration, not a floor).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from time import perf_counter
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.rpc import code_pb2, status_pb2

RESPONSE = pb.CheckResponse(
    status=status_pb2.Status(code=code_pb2.OK),
    ok_response=pb.OkHttpResponse(
        headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="kubeflow-userid", value="user0@example.com"),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ]
    ),
)


WIRE = RESPONSE.SerializeToString()


async def check(request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> bytes:
    return WIRE


def busy_check(micros: float) -> Any:
    """The floor's Check, after ``micros`` µs of busy Python (a calibration: what a handler that
    takes that long costs on this stack, beyond the time itself)."""
    seconds = micros / 1e6

    async def check(request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> bytes:
        end = perf_counter() + seconds
        while perf_counter() < end:
            pass
        return WIRE

    return check


def handler(busy_us: float = 0.0) -> grpc.GenericRpcHandler:
    method = grpc.unary_unary_rpc_method_handler(
        busy_check(busy_us) if busy_us > 0 else check,
        request_deserializer=pb.CheckRequest.FromString,
        response_serializer=None,
    )
    return grpc.method_handlers_generic_handler("envoy.service.auth.v3.Authorization", {"Check": method})


async def serve(address: str, *, reuse_port: bool = False, busy_us: float = 0.0) -> None:
    # The same server options as authz.server.App, so only the Check handler differs
    # (``reuse_port``: several floors on one port, as ``authz serve --workers`` runs).
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", 1 << 20),
            ("grpc.max_concurrent_streams", 1000),
        ],
        maximum_concurrent_rpcs=1000,
    )
    server.add_generic_rpc_handlers((handler(busy_us),))
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("serving", flush=True)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    busy = [float(a.split("=", 1)[1]) for a in sys.argv[2:] if a.startswith("--busy-us=")]
    asyncio.run(serve(sys.argv[1], reuse_port="--reuse-port" in sys.argv[2:], busy_us=busy[-1] if busy else 0.0))
