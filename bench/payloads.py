"""What the load generators send: signing keys, ~1 KB JWTs, realistic CheckRequests, gRPC frames.

Tokens are signed here with ``cryptography`` directly (no JOSE library), so that making
tens of thousands of distinct tokens for one run takes seconds, not minutes.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

AUDIENCE = "authz-bench"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
GROUP = "bench-users"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_b64(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _uint(value: int, size: int | None = None) -> str:
    size = size or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


@dataclass
class Key:
    """A signing key and its public JWK."""

    kid: str
    alg: str  # RS256 or ES256
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> Key:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> Key:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        if self.alg == "RS256":
            return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": _uint(numbers.n), "e": _uint(numbers.e)}  # fmt: skip
        return {"kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}  # fmt: skip

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, alg: str | None = None) -> str:
        header = {"alg": alg or self.alg, "typ": "JWT", "kid": kid or self.kid}
        signing_input = f"{_json_b64(header)}.{_json_b64(claims)}".encode()
        if self.alg == "RS256":
            sig = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode()}.{b64url(sig)}"


def jwks(keys: Iterable[Key]) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(issuer: str, now: float, serial: int = 0, *, lifetime: int = 3600, **extra: Any) -> dict[str, Any]:
    """Claims of a typical provider access token; ``serial`` makes each token distinct.

    Padded so the signed RS256 token is about 1 KB, as a Dex or Keycloak token is.
    """
    base: dict[str, Any] = {
        "iss": issuer,
        "sub": f"CiQ{serial:08d}-5f2c-4e1a-9b3d-c0012ab34cd7EgVsb2NhbA",
        "aud": AUDIENCE,
        "exp": int(now) + lifetime,
        "iat": int(now) - 5,
        "nbf": int(now) - 5,
        "jti": f"{serial:012d}-{secrets.token_hex(4)}",
        "email": f"user{serial}@example.com",
        "email_verified": True,
        "name": "Jane Q. Bench-User",
        "groups": [GROUP, "everyone", "org:8f14e45fceea167a5a36dedd4bea2543"],
        "scope": "openid profile email groups offline_access read:orders write:orders",
        "at_hash": "x4mG7l2cQ1i0Qm0pSx9mBg",
        "sid": "8f14e45f-ceea-167a-5a36-dedd4bea2543",
    }
    base.update(extra)
    return base


def session_cookie_header(cookie_name: str, sid: str) -> str:
    return f"_ga=GA1.2.1837461029.1717990000; {cookie_name}={sid}; theme=dark; session_hint=eu-1"


def check_request(
    *,
    path: str = "/api/v1/orders/78112/items?include=product,price&page=2",
    authorization: str | None = None,
    cookie: str | None = None,
    request_id: str = "3f6c2a8e-91b4-4d1e-b7a2-5c0d9e8f1a23",
    host: str = "app.example.com",
) -> bytes:
    """A serialized CheckRequest like Envoy's for a browser or SPA request (~15 headers)."""
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
    http.host = host
    http.path = path
    http.scheme = "https"
    http.protocol = "HTTP/2"
    attrs.request.time.FromSeconds(1718000123)
    headers = {
        ":authority": host,
        ":method": "GET",
        ":path": path,
        ":scheme": "https",
        "user-agent": USER_AGENT,
        "accept": "application/json, text/plain, */*",
        "accept-language": "en-GB,en;q=0.9,de;q=0.8",
        "accept-encoding": "gzip, deflate, br, zstd",
        "referer": f"https://{host}/orders/78112",
        "origin": f"https://{host}",
        "sec-fetch-mode": "cors",
        "x-forwarded-for": "203.0.113.57, 198.51.100.4",
        "x-forwarded-proto": "https",
        "x-request-id": request_id,
        "x-envoy-external-address": "203.0.113.57",
    }
    if authorization is not None:
        headers["authorization"] = authorization
    if cookie is not None:
        headers["cookie"] = cookie
    http.headers.update(headers)
    return req.SerializeToString()


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message (uncompressed), as h2load must send it."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def write_frames(path: str, messages: Iterable[bytes]) -> int:
    """Length-prefixed gRPC frames, one per message (the own load client's input)."""
    count = 0
    with open(path, "wb") as fh:
        for message in messages:
            fh.write(grpc_frame(message))
            count += 1
    return count


def read_frames(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        data = fh.read()
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset + 1 : offset + 5], "big")
        yield data[offset + 5 : offset + 5 + size]
        offset += 5 + size


def junk_tokens(issuer: str, key: Key, now: float, count: int) -> Iterator[str]:
    """Distinct invalid Authorization values, cycling through 8 kinds a junk flood has.

    Every kind can be rejected before any signature check; forged signatures, which need
    one by their nature, are :func:`forged_tokens`.
    """
    good_header = _json_b64({"alg": key.alg, "typ": "JWT", "kid": key.kid})
    for i in range(count):
        kind = i % 8
        body = _json_b64(claims(issuer, now, i))
        if kind == 0:
            yield "Bearer " + secrets.token_urlsafe(24)  # not a JWT
        elif kind == 1:
            yield f"Bearer {good_header}.{body}.{secrets.token_urlsafe(256)}!"  # bad characters
        elif kind == 2:
            yield f"Bearer {_json_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.x"
        elif kind == 3:
            yield f"Bearer {_json_b64({'alg': 'HS256', 'typ': 'JWT'})}.{body}.{b64url(os.urandom(32))}"
        elif kind == 4:
            other = _json_b64(claims("https://untrusted.example.com", now, i))
            yield f"Bearer {good_header}.{other}.{b64url(os.urandom(256))}"
        elif kind == 5:
            yield "Basic " + b64url(f"user{i}:password".encode())
        elif kind == 6:
            unknown = _json_b64({"alg": key.alg, "typ": "JWT", "kid": f"rotated-{i}"})
            yield f"Bearer {unknown}.{body}.{b64url(os.urandom(256))}"  # unknown kid (refetch rate limited)
        else:
            yield f"Bearer {good_header}.{secrets.token_urlsafe(600)}.{b64url(os.urandom(256))}"  # payload not JSON


def forged_tokens(issuer: str, key: Key, now: float, count: int) -> Iterator[str]:
    """Distinct well-formed tokens of the trusted issuer and key with a random signature."""
    header = _json_b64({"alg": key.alg, "typ": "JWT", "kid": key.kid})
    for i in range(count):
        yield f"Bearer {header}.{_json_b64(claims(issuer, now, i))}.{b64url(os.urandom(256))}"


# -- many tokens at once (both cores) ----------------------------------------------

_LOADED: dict[bytes, Key] = {}


def _pem(key: Key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sign_batch(job: tuple[bytes, str, str, str, float, int, int]) -> list[str]:
    from cryptography.hazmat.primitives import serialization

    pem, kid, alg, issuer, now, start, stop = job
    key = _LOADED.get(pem)
    if key is None:
        key = _LOADED[pem] = Key(kid, alg, serialization.load_pem_private_key(pem, None))
    return [key.sign(claims(issuer, now, serial)) for serial in range(start, stop)]


def sign_many(jobs: list[tuple[Key, str, int, int]], now: float, processes: int = 2) -> list[list[str]]:
    """Distinct valid tokens: for each (key, issuer, first serial, count), that many tokens."""
    from concurrent.futures import ProcessPoolExecutor

    batches: list[tuple[int, tuple[bytes, str, str, str, float, int, int]]] = []
    for index, (key, issuer, first, count) in enumerate(jobs):
        pem = _pem(key)
        for start in range(first, first + count, 500):
            batches.append((index, (pem, key.kid, key.alg, issuer, now, start, min(start + 500, first + count))))
    results: list[list[str]] = [[] for _ in jobs]
    with ProcessPoolExecutor(processes) as pool:
        for (index, _), tokens in zip(batches, pool.map(_sign_batch, [b for _, b in batches]), strict=True):
            results[index].extend(tokens)
    return results
