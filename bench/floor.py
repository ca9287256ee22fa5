"""The floor: a no-op ext_authz server on the same stack as authz (grpc.aio, xds-protos).

It answers every Check with one prebuilt OK CheckResponse carrying one identity header,
so it is the fastest a Python gRPC server can answer here. Run as
``python -m bench.floor HOST:PORT`` (SIGTERM stops it).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
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


class Floor(pb_grpc.AuthorizationServicer):
    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:
        return RESPONSE


async def serve(address: str) -> None:
    # The same server options as authz.server.App, so only the Check handler differs.
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 1 << 20),
            ("grpc.max_concurrent_streams", 1000),
        ],
        maximum_concurrent_rpcs=1000,
    )
    pb_grpc.add_AuthorizationServicer_to_server(Floor(), server)
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
    asyncio.run(serve(sys.argv[1]))
