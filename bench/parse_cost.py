"""Parse cost of an ext_authz CheckRequest: xds-protos (upb) vs envoy-data-plane.

Run:  .venv/bin/python bench/parse_cost.py

Part 1 times "parse the serialized CheckRequest and read the path and the
authorization header" with both libraries.  Timing on shared machines is
noisy, so the two measurements are interleaved (alternating rounds, with the
order flipped every round) and only medians and their ratio are reported.

Part 2 checks what gRPC server reflection can see with each library.  Each
case runs in a fresh interpreter so that one library's registrations cannot
leak into the other's descriptor pool.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import subprocess
import sys
import textwrap
import time

AUTH_SERVICE = "envoy.service.auth.v3.Authorization"

ROUNDS = 21           # interleaved rounds per library
TARGET_BATCH_S = 0.1  # wall time aimed for per batch


# --------------------------------------------------------------------------
# Part 1: parse cost
# --------------------------------------------------------------------------

def _jwt_like(n_bytes: int = 1024) -> str:
    """A deterministic header.payload.signature string of about n_bytes."""
    import base64
    import hashlib

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k-2024-01"}).encode())
    claims = {
        "iss": "https://login.example.com/",
        "sub": "user|5f2c1e9a7b3d4c0012ab34cd",
        "aud": ["https://api.example.com", "https://login.example.com/userinfo"],
        "iat": 1718000000,
        "exp": 1718003600,
        "azp": "Xy7pQ2mN8vR4tL1kJ6hG3fD9sA0zWcBe",
        "scope": "openid profile email read:orders write:orders read:invoices",
        "email": "jane.doe@example.com",
        "roles": ["customer", "beta-tester"],
        "org_id": "org_8f14e45fceea167a5a36dedd4bea2543",
        "pad": "",
    }
    sig = b64(hashlib.sha512(b"sig").digest() * 4)  # ~342 chars, like RS256
    while True:
        token = f"{header}.{b64(json.dumps(claims).encode())}.{sig}"
        if len(token) >= n_bytes:
            return token
        claims["pad"] += "x"


def build_request_bytes() -> bytes:
    """A realistic ~2 KB CheckRequest, built and serialized with xds-protos."""
    from envoy.service.auth.v3 import external_auth_pb2

    req = external_auth_pb2.CheckRequest()
    attrs = req.attributes

    src = attrs.source.address.socket_address
    src.address, src.port_value = "203.0.113.57", 51724
    dst = attrs.destination.address.socket_address
    dst.address, dst.port_value = "10.0.3.14", 8443

    http = attrs.request.http
    http.id = "9734162518459275301"
    http.method = "GET"
    http.host = "api.example.com"
    http.path = "/v1/orders/78112/items?include=product,price&page=2&per_page=50"
    http.scheme = "https"
    http.protocol = "HTTP/2"
    attrs.request.time.FromSeconds(1718000123)

    headers = {
        ":authority": "api.example.com",
        ":method": "GET",
        ":path": http.path,
        ":scheme": "https",
        "user-agent": (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
        ),
        "accept": "application/json, text/plain, */*",
        "accept-language": "en-GB,en;q=0.9,de;q=0.8",
        "accept-encoding": "gzip, deflate, br, zstd",
        "cookie": "_ga=GA1.2.1837461029.1717990000; session_hint=eu-1; theme=dark",
        "referer": "https://app.example.com/orders/78112",
        "origin": "https://app.example.com",
        "x-forwarded-for": "203.0.113.57, 198.51.100.4",
        "x-forwarded-proto": "https",
        "x-request-id": "3f6c2a8e-91b4-4d1e-b7a2-5c0d9e8f1a23",
        "x-envoy-external-address": "203.0.113.57",
        "authorization": "Bearer " + _jwt_like(1024),
    }
    http.headers.update(headers)
    # context_extensions deliberately left empty.
    return req.SerializeToString()


def _batch_timer(parse_and_read, data: bytes):
    def run(n: int) -> float:
        """Seconds per call over n calls (GC paused, as timeit does)."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                parse_and_read(data)
            return (time.perf_counter() - t0) / n
        finally:
            if gc_was_enabled:
                gc.enable()
    return run


def bench_parse() -> dict:
    import google.protobuf
    from envoy.service.auth.v3 import external_auth_pb2
    from envoy_data_plane.envoy.service.auth.v3 import CheckRequest as EdpCheckRequest
    from google.protobuf.internal import api_implementation

    data = build_request_bytes()

    def xds_parse(b: bytes):
        m = external_auth_pb2.CheckRequest.FromString(b)
        http = m.attributes.request.http
        return http.path, http.headers["authorization"]

    def edp_parse(b: bytes):
        m = EdpCheckRequest.parse(b)
        http = m.attributes.request.http
        return http.path, http.headers["authorization"]

    # Both must decode the same thing, or the comparison is meaningless.
    a, b = xds_parse(data), edp_parse(data)
    assert a == b, (a[0], b[0])
    auth_len = len(a[1])

    runners = {"xds-protos": _batch_timer(xds_parse, data),
               "envoy-data-plane": _batch_timer(edp_parse, data)}

    # Calibrate batch sizes so each batch takes roughly TARGET_BATCH_S.
    batch = {}
    for name, run in runners.items():
        run(20)  # warm-up
        per = run(50)
        batch[name] = max(20, int(TARGET_BATCH_S / per))

    samples = {name: [] for name in runners}
    order = list(runners)
    for i in range(ROUNDS):
        for name in (order if i % 2 == 0 else order[::-1]):
            samples[name].append(runners[name](batch[name]))

    med = {name: statistics.median(s) for name, s in samples.items()}
    return {
        "size": len(data),
        "auth_len": auth_len,
        "n_headers": len(external_auth_pb2.CheckRequest.FromString(data)
                         .attributes.request.http.headers),
        "batch": batch,
        "median_us": {k: v * 1e6 for k, v in med.items()},
        "min_us": {k: min(s) * 1e6 for k, s in samples.items()},
        "max_us": {k: max(s) * 1e6 for k, s in samples.items()},
        "ratio": med["envoy-data-plane"] / med["xds-protos"],
        # Same-round pairs share machine conditions; their ratio drifts less.
        "paired_ratio": statistics.median(
            e / x for e, x in zip(samples["envoy-data-plane"], samples["xds-protos"], strict=True)),
        "protobuf": google.protobuf.__version__,
        "backend": api_implementation.Type(),
    }


# --------------------------------------------------------------------------
# Part 2: server reflection
# --------------------------------------------------------------------------

# Runs in a fresh interpreter. argv[1] selects which library to import.
_REFLECTION_PROBE = textwrap.dedent(r'''
    import json, sys
    from concurrent import futures

    lib = sys.argv[1]
    svc = "envoy.service.auth.v3.Authorization"
    out = {"lib": lib}

    if lib == "xds-protos":
        from envoy.service.auth.v3 import external_auth_pb2  # noqa: F401
    else:
        import envoy_data_plane.envoy.service.auth.v3 as edp
        from envoy_data_plane.message_pool import default_message_pool
        out["edp_message_pool_urls"] = sorted(
            u for u in default_message_pool.url_to_type
            if "envoy.service.auth.v3" in u)
        out["edp_has_DESCRIPTOR"] = hasattr(edp.CheckRequest, "DESCRIPTOR")
        out["edp_server_base"] = [c.__module__ + "." + c.__qualname__
                                  for c in edp.AuthorizationBase.__mro__[1:2]]

    out["envoy_pb2_modules_loaded"] = sorted(
        m for m in sys.modules if m.startswith("envoy.") and m.endswith("_pb2"))

    from google.protobuf import descriptor_pool
    pool = descriptor_pool.Default()
    try:
        sd = pool.FindServiceByName(svc)
        out["FindServiceByName"] = "ok: %s in %s, methods=%s" % (
            sd.full_name, sd.file.name, [m.name for m in sd.methods])
    except KeyError as e:
        out["FindServiceByName"] = "KeyError: %s" % (e,)

    # Real server reflection round trip on a loopback port.
    import grpc
    from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    reflection.enable_server_reflection([svc, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol=svc)]
            resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=10))
        out["list_services"] = [s.name for s in resps[0].list_services_response.service]
        r = resps[1]
        if r.HasField("error_response"):
            out["file_containing_symbol"] = "error %d %s" % (
                r.error_response.error_code, r.error_response.error_message)
        else:
            out["file_containing_symbol"] = "ok: %d file descriptors" % len(
                r.file_descriptor_response.file_descriptor_proto)
    finally:
        server.stop(None)
    print(json.dumps(out))
''')


def probe_reflection(lib: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _REFLECTION_PROBE, lib],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"reflection probe for {lib} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_reflection() -> list[dict]:
    results = [probe_reflection("xds-protos"), probe_reflection("envoy-data-plane")]
    print()
    print(f"gRPC server reflection for {AUTH_SERVICE} (fresh interpreter per library)")
    for r in results:
        print(f"  [{r['lib']}]")
        print(f"    envoy *_pb2 modules loaded:        {len(r['envoy_pb2_modules_loaded'])}")
        print(f"    descriptor_pool.Default().FindServiceByName: {r['FindServiceByName']}")
        print(f"    reflection list_services:          {r['list_services']}")
        print(f"    reflection file_containing_symbol: {r['file_containing_symbol']}")
        if "edp_message_pool_urls" in r:
            print(f"    has DESCRIPTOR attribute:          {r['edp_has_DESCRIPTOR']}")
            print(f"    betterproto2 message_pool entries: {r['edp_message_pool_urls']}")
            print(f"    AuthorizationBase derives from:    {r['edp_server_base']}")
    return results


# --------------------------------------------------------------------------

def main() -> None:
    t0 = time.perf_counter()
    r = bench_parse()
    print(f"host: nproc={__import__('os').cpu_count()}  python={platform.python_version()}  "
          f"protobuf={r['protobuf']} ({r['backend']} backend)")
    print(f"CheckRequest: {r['size']} bytes serialized, {r['n_headers']} headers, "
          f"authorization value {r['auth_len']} chars")
    print(f"parse + read path + authorization; {ROUNDS} interleaved rounds, "
          f"median of per-round means")
    print()
    print(f"  {'library':<18} {'batch':>6} {'median us':>10} {'min us':>10} {'max us':>10}")
    for name in ("xds-protos", "envoy-data-plane"):
        print(f"  {name:<18} {r['batch'][name]:>6} {r['median_us'][name]:>10.1f} "
              f"{r['min_us'][name]:>10.1f} {r['max_us'][name]:>10.1f}")
    print(f"  ratio envoy-data-plane / xds-protos (medians): {r['ratio']:.0f}x  "
          f"(median of same-round ratios: {r['paired_ratio']:.0f}x)")
    check_reflection()
    print(f"\ntotal wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
