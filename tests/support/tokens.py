"""Test keys, JWKS documents and token minting (python-jose for signing)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jws

ISSUER = "https://issuer.test"
AUDIENCE = "authz-test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


_JOSE_KEYS: dict[tuple[int, str], Any] = {}
_RSA_CACHE: dict[int, list[rsa.RSAPrivateKey]] = {}


def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: a few per size are made once per test session."""
    keys = _RSA_CACHE.setdefault(bits, [])
    while len(keys) <= index:
        keys.append(rsa.generate_private_key(public_exponent=65537, key_size=bits))
    return keys[index]


@dataclass
class SigningKey:
    kid: str | None
    alg: str
    private: Any
    use: str | None = "sig"
    publish_alg: bool = True

    @property
    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk(self) -> dict[str, Any]:
        data = dict(jwk.construct(self.public_pem, self.alg).to_dict())
        if self.kid is not None:
            data["kid"] = self.kid
        if self.use is not None:
            data["use"] = self.use
        if not self.publish_alg:
            data.pop("alg", None)
        return data

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        extra = dict(headers or {})
        if self.kid is not None:
            extra.setdefault("kid", self.kid)
        # A prepared jose key: loading a PEM re-checks the RSA key, which costs milliseconds.
        key = _JOSE_KEYS.get((id(self.private), self.alg))
        if key is None:
            key = _JOSE_KEYS[(id(self.private), self.alg)] = jwk.construct(self.private_pem, self.alg)
        return jws.sign(json.dumps(claims).encode(), key, headers=extra, algorithm=self.alg)


def rs256(kid: str | None = "rsa-1", index: int = 0) -> SigningKey:
    return SigningKey(kid=kid, alg="RS256", private=rsa_key(2048, index))


def es256(kid: str | None = "ec-1") -> SigningKey:
    return SigningKey(kid=kid, alg="ES256", private=ec.generate_private_key(ec.SECP256R1()))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def claims(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    now = time.time() if now is None else now
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "email": "alice@example.com",
        "groups": ["team-a", "everyone"],
        "iat": int(now),
        "exp": int(now) + 600,
    }
    for key, value in overrides.items():
        if value is DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


DROP = object()


def unsigned(header: dict[str, Any], payload: dict[str, Any] | bytes, signature: bytes = b"") -> str:
    """A compact JWS built by hand (for malformed and forged tokens)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"{b64url_json(header)}.{b64url(body)}.{b64url(signature)}"


@dataclass
class FakeClock:
    now: float = field(default_factory=lambda: 1_800_000_000.0)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
