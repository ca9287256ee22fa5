"""Native TLS without a mesh: real Envoy reaches authz over mTLS; no client cert, no service;
a rotated certificate file is picked up without a restart."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from demo.echo import serve as serve_echo
from demo.envoy_config import bootstrap
from tests.support.envoy import run_envoy
from tests.support.idp import run_idp
from tests.support.pki import CA, write
from tests.support.servers import authz_process, free_port
from tests.support.tokens import AUDIENCE, claims, jwks, rs256

pytestmark = pytest.mark.e2e


def server_serial(port: int, ca: CA, client_cert: str, client_key: str) -> int:
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    ctx.load_cert_chain(client_cert, client_key)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_envoy_reaches_authz_over_mtls_and_rotation_is_picked_up(tmp_path):
    ca = CA.create()
    cert, key, serial1 = ca.issue("authz", server=True)
    ccert, ckey, _ = ca.issue("gateway", server=False)
    paths = {
        "ca": write(tmp_path / "ca.pem", ca.pem),
        "cert": write(tmp_path / "tls.crt", cert),
        "key": write(tmp_path / "tls.key", key),
        "ccert": write(tmp_path / "client.crt", ccert),
        "ckey": write(tmp_path / "client.key", ckey),
    }
    with run_idp() as idp:
        idp.state.jwks = jwks(rs256())
        echo = serve_echo(0)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        grpc_port, listen, admin = free_port(), free_port(), free_port()
        env = {
            "OIDC_PROVIDER": idp.issuer, "CLIENT_ID": AUDIENCE,
            "AUTHZ_LISTEN": f"127.0.0.1:{grpc_port}", "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "AUTHZ_TLS_CERT": paths["cert"], "AUTHZ_TLS_KEY": paths["key"], "AUTHZ_TLS_CLIENT_CA": paths["ca"],
        }  # fmt: skip
        tls = {
            "sni": "localhost",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [{"certificate_chain": {"filename": paths["ccert"]},
                                      "private_key": {"filename": paths["ckey"]}}],
                "validation_context": {"trusted_ca": {"filename": paths["ca"]},
                                       "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "localhost"}}]},
            },
        }  # fmt: skip
        config = bootstrap(listen_port=listen, admin_port=admin, authz_port=grpc_port,
                           upstream_port=echo.server_address[1], authz_tls=tls)  # fmt: skip
        with authz_process(env, wait=False), run_envoy(config, admin):
            creds = grpc.ssl_channel_credentials(ca.pem, ckey, ccert)
            deadline = time.monotonic() + 15
            with grpc.secure_channel(f"127.0.0.1:{grpc_port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                while True:
                    try:
                        if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                            break
                    except grpc.RpcError:
                        pass
                    assert time.monotonic() < deadline, "authz over TLS never became SERVING"
                    time.sleep(0.1)
            token = rs256().sign(claims(iss=idp.issuer))
            resp = httpx.get(f"http://127.0.0.1:{listen}/app", headers={"authorization": f"Bearer {token}"})
            assert resp.status_code == 200
            assert resp.json()["headers"]["kubeflow-userid"] == "alice@example.com"

            # Without a client certificate the handshake is refused.
            no_cert = grpc.ssl_channel_credentials(ca.pem)
            with grpc.secure_channel(f"127.0.0.1:{grpc_port}", no_cert, options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
                with pytest.raises(grpc.RpcError) as err:
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            # Plain text is refused too.
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                with pytest.raises(grpc.RpcError):
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)

            assert server_serial(grpc_port, ca, paths["ccert"], paths["ckey"]) == serial1
            cert2, key2, serial2 = ca.issue("authz", server=True)
            # Replace both files (key first, as a Secret volume update does atomically).
            write(tmp_path / "tls.key.new", key2)
            write(tmp_path / "tls.crt.new", cert2)
            os.replace(tmp_path / "tls.key.new", paths["key"])
            os.replace(tmp_path / "tls.crt.new", paths["cert"])
            deadline = time.monotonic() + 10
            while server_serial(grpc_port, ca, paths["ccert"], paths["ckey"]) != serial2:
                assert time.monotonic() < deadline, "rotated certificate not picked up"
                time.sleep(0.2)
            resp = httpx.get(f"http://127.0.0.1:{listen}/app", headers={"authorization": f"Bearer {token}"})
            assert resp.status_code == 200
        echo.shutdown()
