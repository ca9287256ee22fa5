"""Hand-built JWS tokens for attack and edge-case tests.

Unlike ``SigningKey.sign`` (python-jose, which always adds ``typ: JWT`` and re-serializes the
header), these sign exactly the header and payload bytes given, so a test controls every byte:
no ``typ``, duplicate JSON members, non-UTF-8 payloads, HMAC with an arbitrary secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.tokens import SigningKey, b64url

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _bytes(part: dict[str, Any] | bytes) -> bytes:
    return part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()


def signing_input(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    return f"{b64url(_bytes(header))}.{b64url(_bytes(payload))}"


def raw_signature(private: Any, alg: str, message: bytes) -> bytes:
    """The JWS signature (RFC 7518 section 3) of ``message`` with a private key."""
    hash_cls = _HASHES[alg[2:]]
    if alg.startswith("RS"):
        assert isinstance(private, rsa.RSAPrivateKey)
        return private.sign(message, padding.PKCS1v15(), hash_cls())
    if alg.startswith("PS"):
        assert isinstance(private, rsa.RSAPrivateKey)
        pss = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
        return private.sign(message, pss, hash_cls())
    if alg.startswith("ES"):
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hash_cls())))
        size = (private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise ValueError(f"cannot sign {alg}")


def sign(
    key: SigningKey,
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    *,
    alg: str | None = None,
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed with ``key``."""
    message = signing_input(header, payload)
    signature = raw_signature(key.private, alg or key.alg, message.encode("ascii"))
    return f"{message}.{b64url(signature)}"


def hmac_sign(secret: bytes, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    """A compact HS256/HS384/HS512 JWS (the algorithm is taken from the header) keyed by ``secret``."""
    head = json.loads(_bytes(header))
    message = signing_input(header, payload)
    mac = hmac.new(secret, message.encode("ascii"), _HMAC[head["alg"]]).digest()
    return f"{message}.{b64url(mac)}"


def public_jwk_json(key: SigningKey) -> bytes:
    """The public JWK exactly as a provider publishes it, as bytes (an HMAC-confusion secret)."""
    return json.dumps(key.public_jwk(), separators=(",", ":")).encode()


def flip_signature_byte(token: str, index: int = 0) -> str:
    """The same token with one bit of one decoded signature byte changed."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[index] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def segments(token: str) -> list[str]:
    return token.split(".")
