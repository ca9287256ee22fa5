"""JWKS documents to verification keys (pure: no I/O).

Keys are built once, when a key set is loaded, for every algorithm the issuer accepts
and the key fits; a Check only looks one up. Unusable keys (RSA under 2048 bits,
off-curve EC points, unknown ``kty``, ``use`` other than ``sig``, ``key_ops`` without
``verify``, symmetric keys) are skipped without dropping the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jose import jwk as jose_jwk
from jose.exceptions import JOSEError

from authz.errors import TokenError, UnknownKeyError
from authz.jws import b64url_decode
from authz.settings import MIN_RSA_BITS

log = logging.getLogger("authz.keys")

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_EC_COORD_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
_PSS_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
}


class Verifier(Protocol):
    def verify(self, msg: bytes, sig: bytes) -> bool: ...


class _PSSVerifier:
    """RSASSA-PSS (RFC 7518 3.5): MGF1 with the same hash, salt length = hash length."""

    __slots__ = ("_hash", "_key", "_padding")

    def __init__(self, key: rsa.RSAPublicKey, alg: str) -> None:
        hash_cls = _PSS_HASHES[alg]
        self._key = key
        self._hash = hash_cls()
        self._padding = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=self._hash.digest_size)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, msg, self._padding, self._hash)
        except (InvalidSignature, ValueError):
            return False
        return True


class _PKCS1Verifier:
    """RSASSA-PKCS1-v1_5 (RS256/384/512), called on ``cryptography`` directly.

    What python-jose's key did per call, minus its wrapper (0.8 µs a check): the same key
    and hash, the padding and hash objects made once.
    """

    __slots__ = ("_hash", "_key", "_padding")

    def __init__(self, key: rsa.RSAPublicKey, hash_cls: type[hashes.HashAlgorithm]) -> None:
        self._key = key
        self._hash = hash_cls()
        self._padding = padding.PKCS1v15()

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, msg, self._padding, self._hash)
        except InvalidSignature:
            return False
        return True


class _ECDSAVerifier:
    """ECDSA (ES256/384/512) with a JWS signature: R || S, each exactly the curve's byte length."""

    __slots__ = ("_algorithm", "_key", "_size")

    def __init__(self, key: ec.EllipticCurvePublicKey, hash_cls: type[hashes.HashAlgorithm]) -> None:
        self._key = key
        self._size = (key.key_size + 7) // 8
        self._algorithm = ec.ECDSA(hash_cls())

    def verify(self, msg: bytes, sig: bytes) -> bool:
        size = self._size
        if len(sig) != 2 * size:
            return False
        der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        try:
            self._key.verify(der, msg, self._algorithm)
        except Exception:  # as python-jose: any failure is "does not verify"
            return False
        return True


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str | None
    kty: str
    verifiers: dict[str, Verifier]


@dataclass(frozen=True, slots=True)
class KeySet:
    """The usable keys of one issuer, indexed by ``kid``."""

    entries: tuple[KeyEntry, ...]
    skipped: int = 0
    by_kid: dict[str, tuple[KeyEntry, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def verifier(self, issuer: str, kid: str | None, alg: str) -> Verifier:
        """The one key that may verify a token with this ``kid`` and ``alg``.

        ``kid`` is an exact lookup. Without a ``kid`` a key is chosen only when exactly
        one key fits the algorithm. Raises UnknownKeyError or TokenError.
        """
        if kid is not None:
            candidates = self.by_kid.get(kid)
            if candidates is None:
                raise UnknownKeyError(issuer, "kid not in key set")
        else:
            candidates = self.entries
        fitting = [entry.verifiers[alg] for entry in candidates if alg in entry.verifiers]
        if not fitting:
            raise TokenError("token_alg_key_mismatch", "no key of this kid fits alg")
        if len(fitting) > 1:
            raise TokenError("token_kid_required", "several keys fit; token names none")
        return fitting[0]


def _rsa_bits(entry: dict[str, Any]) -> int:
    n = entry.get("n")
    if not isinstance(n, str):
        return 0
    return int.from_bytes(b64url_decode(n), "big").bit_length()


def _fits(entry: dict[str, Any], alg: str) -> bool:
    declared = entry.get("alg")
    if declared is not None and declared != alg:
        return False
    kty = entry.get("kty")
    if alg[:2] in ("RS", "PS"):
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and entry.get("crv") == _EC_CURVES[alg]
    return False


def _build_verifier(entry: dict[str, Any], alg: str) -> Verifier:
    if alg in _PSS_HASHES:
        n = int.from_bytes(b64url_decode(entry["n"]), "big")
        e = int.from_bytes(b64url_decode(entry["e"]), "big")
        return _PSSVerifier(rsa.RSAPublicNumbers(e, n).public_key(), alg)
    if entry.get("kty") == "EC":
        size = _EC_COORD_BYTES[entry["crv"]]
        for coord in ("x", "y"):
            if len(b64url_decode(entry[coord])) != size:
                raise ValueError("EC coordinate of wrong length")
    public = {k: entry[k] for k in ("kty", "n", "e", "crv", "x", "y") if k in entry}
    # python-jose still builds and checks the key, as strictly as before; the check then calls
    # the ``cryptography`` key it holds directly.
    key = jose_jwk.construct(public, algorithm=alg)
    if not key.is_public():
        raise ValueError("private key material")
    prepared = getattr(key, "prepared_key", None)
    if isinstance(prepared, rsa.RSAPublicKey) and alg[:2] == "RS":
        return _PKCS1Verifier(prepared, key.hash_alg)
    if isinstance(prepared, ec.EllipticCurvePublicKey) and alg in _EC_CURVES:
        return _ECDSAVerifier(prepared, key.hash_alg)
    return key  # type: ignore[no-any-return]


def _usable(entry: Any) -> str | None:
    """None when the JWK may be used for signatures, else why not."""
    if not isinstance(entry, dict):
        return "not an object"
    kty = entry.get("kty")
    if kty not in ("RSA", "EC"):
        return f"kty {kty!r} not supported"
    if entry.get("use", "sig") != "sig":
        return "use is not sig"
    ops = entry.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return "key_ops lacks verify"
    if "d" in entry or "p" in entry:
        return "private key published"
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        return "kid is not a string"
    if kty == "RSA":
        try:
            bits = _rsa_bits(entry)
        except TokenError:
            return "bad modulus encoding"
        if bits < MIN_RSA_BITS:
            return f"RSA key of {bits} bits"
    return None


def build_keyset(document: Any, algorithms: Iterable[str]) -> KeySet:
    """Build the usable keys of a JWKS document for the given accepted algorithms.

    Never raises for a bad key (it is skipped and counted); a document that is not a
    JWKS at all gives an empty KeySet.
    """
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return KeySet(entries=(), skipped=0)
    algs = tuple(algorithms)
    entries: list[KeyEntry] = []
    skipped = 0
    for raw in keys:
        why = _usable(raw)
        verifiers: dict[str, Verifier] = {}
        if why is None:
            for alg in algs:
                if not _fits(raw, alg):
                    continue
                try:
                    verifiers[alg] = _build_verifier(raw, alg)
                except (JOSEError, ValueError, KeyError, TypeError, TokenError) as exc:
                    why = f"cannot build key: {type(exc).__name__}"
                    verifiers = {}
                    break
            if why is None and not verifiers:
                why = "fits no accepted algorithm"
        if why is not None:
            skipped += 1
            kid = raw.get("kid") if isinstance(raw, dict) else None
            log.warning("skipping unusable JWK", extra={"kid": str(kid)[:64], "why": why})
            continue
        entries.append(KeyEntry(kid=raw.get("kid"), kty=raw["kty"], verifiers=verifiers))
    by_kid: dict[str, list[KeyEntry]] = {}
    for entry in entries:
        if entry.kid is not None:
            by_kid.setdefault(entry.kid, []).append(entry)
    return KeySet(
        entries=tuple(entries),
        skipped=skipped,
        by_kid={kid: tuple(group) for kid, group in by_kid.items()},
    )
