"""base64url as JWS needs it: unpadded, URL alphabet, one spelling per value (canonical)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz.errors import TokenError
from authz.jws import b64url_decode

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reference(segment: str) -> bytes | None:
    """Decode, then accept only if encoding the result gives back the very same text."""
    if any(c not in ALPHABET for c in segment) or len(segment) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == segment else None


def decoded(segment: str) -> bytes | None:
    try:
        return b64url_decode(segment)
    except TokenError as exc:
        assert exc.code == "token_malformed"
        return None


@given(st.binary(max_size=64))
def test_every_value_round_trips(data: bytes) -> None:
    assert b64url_decode(base64.urlsafe_b64encode(data).rstrip(b"=").decode()) == data


@given(st.text(alphabet=ALPHABET + "+/=. \n\x00é", max_size=16))
def test_agrees_with_decode_and_re_encode(segment: str) -> None:
    assert decoded(segment) == reference(segment)


@pytest.mark.parametrize(
    ("segment", "why"),
    [("QR", "unused bits set (Q is 16: 0b010000 -> low 4 bits of R)"), ("QUJ", "unused bits set (J is 0b001001)"),
     ("QUJD=", "padding"), ("QUJ+", "standard alphabet"), ("Q", "length 1 mod 4"), ("QU JD", "space"),
     ("QU\n", "final newline"), ("QUJD\n", "final newline"), ("QUJD\r", "final CR")],
)  # fmt: skip
def test_refuses_what_is_not_canonical_base64url(segment: str, why: str) -> None:
    assert decoded(segment) is None, why
