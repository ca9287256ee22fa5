"""Compact JWS parsing and signature verification (RFC 7515, RFC 8725).

Strict: base64url without padding, UTF-8 JSON objects without duplicate keys or
NaN/Infinity, JWE and ``zip`` refused before anything else is parsed, unknown ``crit``
refused, ``jku``/``x5u``/``jwk``/``x5c`` never followed (they play no part in choosing
the key). Raises :class:`TokenError` with a stable code.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from authz.errors import TokenError

# "-" and "_" to their standard spelling; "+", "/" and "=" to "!", which no base64 decodes.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"", b"==", b"=")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
# Bits of the last character that carry no data, by segment length mod 4 (must be zero).
_UNUSED_BITS = {2: 0b1111, 3: 0b11}
MAX_KID_LENGTH = 256
# Header memo bounds (see HeaderMemo): a few keys per issuer, a header of a few hundred bytes.
MAX_CACHED_HEADERS = 32
MAX_CACHED_HEADER = 1024


# Not frozen: one is built per verified token, and a frozen __init__ costs 0.5 µs more.
@dataclass(slots=True)
class ParsedJWS:
    """A structurally valid compact JWS whose signature is not yet checked."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url; raises TokenError("token_malformed")."""
    rest = len(segment) % 4
    if rest == 1:
        raise TokenError("token_malformed", "bad base64url")
    try:
        # To standard base64 in one bytes.translate, with "+", "/" and "=" turned into a byte
        # strict mode refuses, so only the url-safe alphabet decodes; non-ASCII fails encode().
        standard = segment.encode("ascii").translate(_TO_STANDARD)
        data = binascii.a2b_base64(standard + _PADDING[rest], strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token_malformed", "bad base64url") from exc
    # Canonical form only: the last character's unused bits must be zero, so one value has
    # one spelling (the same test as re-encoding and comparing, without the re-encoding).
    # Every character is in the alphabet here, or a2b_base64 would have refused it.
    if rest and _VALUE[segment[-1]] & _UNUSED_BITS[rest]:
        raise TokenError("token_malformed", "non-canonical base64url")
    return data


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # a repeated name kept one entry for two members
        raise TokenError("token_malformed", "duplicate JSON member")
    return result


def _reject_constant(name: str) -> Any:
    raise TokenError("token_malformed", f"JSON constant {name} not allowed")


# One decoder for every parse (json.loads with hooks would build a new one each call).
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def strict_json_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object; duplicate keys and NaN/Infinity refused."""
    try:
        text = data.decode("utf-8")
        value = _DECODER.decode(text)
    except TokenError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TokenError("token_malformed", "not UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise TokenError("token_malformed", "not a JSON object")
    return value


class HeaderMemo:
    """What parse_compact learnt about JWS headers, by their base64url text (a header's
    outcome depends on that text alone, so a repeat skips decoding and checking it).

    - ``verified``: headers of tokens whose signature verified (every token of one signing
      key has the same one), kept by :meth:`keep_verified`. Only the issuer's signatures can
      fill it, so junk cannot evict them.
    - ``seen``: any other header parse_compact decided on: the header when it passed its
      checks, the (code, detail) of its TokenError when it failed them. A flood of distinct
      headers clears it, and costs no more than parsing them.

    Both bounded at MAX_CACHED_HEADERS, cleared when full; headers over MAX_CACHED_HEADER
    characters are never kept.
    """

    __slots__ = ("seen", "verified")

    def __init__(self) -> None:
        self.verified: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, dict[str, Any] | tuple[str, str]] = {}

    def keep_verified(self, head_b64: str, header: dict[str, Any]) -> None:
        """Remember the header of a token whose signature verified."""
        verified = self.verified
        if head_b64 not in verified and len(head_b64) <= MAX_CACHED_HEADER:
            if len(verified) >= MAX_CACHED_HEADERS:
                verified.clear()
            verified[head_b64] = header


def parse_compact(token: str, max_bytes: int, memo: HeaderMemo | None = None) -> ParsedJWS:
    """Split and decode a compact JWS; check the header's structure.

    ``memo``, when given, answers for a header it knows (:class:`HeaderMemo`) and learns the
    others: a known header skips decoding and checking, a known refused one raises a new
    TokenError with the same code and detail. Either way the header's checks come first, as
    without it. A remembered dict is shared by every token that carries it: never modify
    ``ParsedJWS.header``.
    """
    if len(token) > max_bytes:
        raise TokenError("token_too_large", f"over {max_bytes} bytes")
    parts = token.split(".", 4)  # at most five pieces, however many dots a token has
    if len(parts) != 3:
        if len(parts) == 5 and "." not in parts[4]:  # exactly four dots
            raise TokenError("token_encrypted", "JWE is not accepted")
        raise TokenError("token_malformed", "not three segments")
    head_b64, payload_b64, sig_b64 = parts
    header = memo.verified.get(head_b64) if memo is not None else None
    if header is None:
        if memo is None:
            header = _parse_header(head_b64, None)
        else:
            known = memo.seen.get(head_b64)
            if known.__class__ is dict:  # the decoder builds plain dicts; cheaper than isinstance
                header = known
            elif known is None:
                header = _parse_header(head_b64, memo.seen)
            else:
                raise TokenError(*known)  # a new exception: a raised one carries its traceback
    if not sig_b64:
        raise TokenError("token_signature_missing", "empty signature")
    payload = b64url_decode(payload_b64)
    signature = b64url_decode(sig_b64)
    if not signature:
        raise TokenError("token_signature_missing", "empty signature")
    return ParsedJWS(header, payload, f"{head_b64}.{payload_b64}".encode("ascii"), signature)


def _parse_header(head_b64: str, seen: dict[str, dict[str, Any] | tuple[str, str]] | None) -> dict[str, Any]:
    """Decode and check a header; its outcome kept in ``seen`` when given (bounded: cleared
    when full; a flood of distinct headers only costs the parse)."""
    try:
        header = strict_json_object(b64url_decode(head_b64))
        _check_header(header)  # before the signature: "alg: none" reports as such
    except TokenError as exc:
        if seen is not None and exc.__class__ is TokenError and len(head_b64) <= MAX_CACHED_HEADER:
            if len(seen) >= MAX_CACHED_HEADERS:
                seen.clear()
            seen[head_b64] = (exc.code, exc.detail)
        raise
    if seen is not None and len(head_b64) <= MAX_CACHED_HEADER:
        if len(seen) >= MAX_CACHED_HEADERS:
            seen.clear()
        seen[head_b64] = header
    return header


def _check_header(header: dict[str, Any]) -> None:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenError("token_header_invalid", "alg missing")
    if alg.lower() == "none":
        raise TokenError("token_alg_not_allowed", "alg none")
    if "enc" in header or "zip" in header:
        raise TokenError("token_encrypted", "enc/zip header")
    if "crit" in header:
        # No JWS extension is understood, so any crit list must be refused (RFC 7515 4.1.11).
        raise TokenError("token_header_invalid", "unsupported crit")
    if header.get("b64") is False:
        raise TokenError("token_header_invalid", "unencoded payload")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
        raise TokenError("token_header_invalid", "kid not a short string")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise TokenError("token_header_invalid", "typ not a string")
