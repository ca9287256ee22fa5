"""Project Wycheproof JWS vectors, run at the JWS layer (parse_compact + KeySet.verifier).

Payloads are raw bytes, not JWT claims, so TokenValidator is not used. For each test group a
KeySet is built from the group's JWK with build_keyset (the public key; for HMAC groups, which
only have a secret, the secret itself, which must be refused).

Expectations:
- every ``invalid`` vector is rejected (a TokenError or a False verify);
- every ``valid`` vector in an algorithm we accept (RS*, PS*, ES*) verifies, except four that
  we reject on purpose, see ``JWK_ALG_MISMATCH``;
- algorithms we never accept (HS*, none, anything else) are rejected even when ``valid``;
- ``acceptable`` vectors (none in this file) are recorded with whatever we do, and that
  outcome must be the same on every run;
- JSON-serialization vectors are rejected (we only take compact JWS).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from authz.errors import TokenError
from authz.jws import parse_compact
from authz.keys import KeySet, build_keyset
from authz.settings import DEFAULT_MAX_TOKEN_BYTES, SUPPORTED_ALGORITHMS

VECTORS = Path(__file__).resolve().parents[2].parent / "shared/testdata/wycheproof/json_web_signature_test.json"
ACCEPTED = SUPPORTED_ALGORITHMS  # RS256..RS512, PS256..PS512, ES256..ES512
ISS = "https://wycheproof.test"
VERIFIED = "verified"

DATA = json.loads(VECTORS.read_text())

# RFC 7520 vectors marked valid whose JWK carries an "alg" naming another algorithm than the
# token's: a PS256 key used for a PS384 signature (Figures 20), and a P-521 key labelled "ES521"
# (not a registered algorithm) used for ES512 (Figures 27). RFC 7517 section 4.4: "alg" is the
# algorithm intended for use with the key, so build_keyset does not use the key for anything
# else, and Wycheproof's own JWK vectors (json_web_key_test.json tcId 19) reject "ES521" as a
# wrong algorithm. We reject these four on purpose; test_rfc7520_vectors_verify_without_the_
# misleading_jwk_alg shows the signatures themselves verify.
JWK_ALG_MISMATCH = {346: "token_alg_key_mismatch", 350: "token_alg_key_mismatch",
                    347: "token_unknown_kid", 351: "token_unknown_kid"}  # fmt: skip


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_alg(jws: str) -> str | None:
    """The alg a vector claims, read leniently (only to classify the vector, never to verify)."""
    try:
        header = json.loads(_b64(jws.split(".")[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def group_jwk(group: dict[str, Any]) -> dict[str, Any]:
    return group.get("public") or group["private"]


_KEYSETS: dict[int, KeySet] = {}


def keyset(index: int) -> KeySet:
    if index not in _KEYSETS:
        _KEYSETS[index] = build_keyset({"keys": [group_jwk(DATA["testGroups"][index])]}, ACCEPTED)
    return _KEYSETS[index]


def outcome(keys: KeySet, jws: str) -> str:
    """``verified``, ``signature_false`` or the TokenError code."""
    try:
        parsed = parse_compact(jws, DEFAULT_MAX_TOKEN_BYTES)
        verifier = keys.verifier(ISS, parsed.kid, parsed.alg)
        return VERIFIED if verifier.verify(parsed.signing_input, parsed.signature) else "signature_false"
    except TokenError as exc:
        return exc.code


def _cases() -> list[Any]:
    cases = []
    for index, group in enumerate(DATA["testGroups"]):
        for test in group["tests"]:
            cases.append(pytest.param(index, test, id=f"tc{test['tcId']}-{test['comment']}"))
    return cases


def expectation(test: dict[str, Any]) -> str:
    """What we must do with a vector: ``verify``, ``reject`` or ``record``."""
    if "JsonSerialization" in test["flags"]:
        return "reject"
    if header_alg(test["jws"]) not in ACCEPTED:
        return "reject"
    if test["result"] == "valid":
        return "reject" if test["tcId"] in JWK_ALG_MISMATCH else "verify"
    if test["result"] == "acceptable":
        return "record"
    return "reject"


@pytest.mark.parametrize(("group", "test"), _cases())
def test_vector(group: int, test: dict[str, Any]) -> None:
    result = outcome(keyset(group), test["jws"])
    expected = expectation(test)
    if expected == "verify":
        assert result == VERIFIED, f"{test['comment']}: {result}"
    elif expected == "reject":
        assert result != VERIFIED, f"{test['comment']} ({test['result']}) was accepted"
        if test["tcId"] in JWK_ALG_MISMATCH:
            assert result == JWK_ALG_MISMATCH[test["tcId"]]
        if "JsonSerialization" in test["flags"]:
            assert result == "token_malformed"
    else:
        assert outcome(keyset(group), test["jws"]) == result  # deterministic


def test_each_groups_key_is_built_or_refused_as_intended() -> None:
    """Guards against vacuous rejections: a vector is only meaningful if its key was loaded."""
    for index, group in enumerate(DATA["testGroups"]):
        jwk = group_jwk(group)
        keys = keyset(index)
        refused = (
            jwk["kty"] == "oct"
            or jwk.get("use", "sig") != "sig"
            or "verify" not in jwk.get("key_ops", ["verify"])
            or jwk.get("alg") == "ES521"
        )
        assert (len(keys), keys.skipped) == ((0, 1) if refused else (1, 0)), group["comment"]


@pytest.mark.parametrize("tc_id", sorted(JWK_ALG_MISMATCH))
def test_rfc7520_vectors_verify_without_the_misleading_jwk_alg(tc_id: int) -> None:
    # RFC 7520 publishes these keys without "alg"; so loaded, the signatures verify, which
    # shows the rejection above is the alg rule and not a PS384 or ES512 (P-521) defect.
    for group in DATA["testGroups"]:
        for test in group["tests"]:
            if test["tcId"] == tc_id:
                jwk = {k: v for k, v in group_jwk(group).items() if k != "alg"}
                assert outcome(build_keyset({"keys": [jwk]}, ACCEPTED), test["jws"]) == VERIFIED
                return
    pytest.fail(f"tcId {tc_id} not in the vector file")


def test_summary() -> None:
    """Tallies over the whole file; printed with ``-s``, asserted so a change is noticed."""
    tally: Counter[str] = Counter()
    skipped_algs: Counter[str] = Counter()
    acceptable: list[tuple[int, str]] = []
    for index, group in enumerate(DATA["testGroups"]):
        for test in group["tests"]:
            result = outcome(keyset(index), test["jws"])
            alg = header_alg(test["jws"])
            tally[f"{test['result']}/{'verified' if result == VERIFIED else 'rejected'}"] += 1
            if test["result"] == "valid" and alg not in ACCEPTED:
                skipped_algs[str(alg)] += 1
            if test["result"] == "acceptable":
                acceptable.append((test["tcId"], result))
    print(
        f"\nWycheproof JWS: {DATA['numberOfTests']} vectors; "
        f"valid verified {tally['valid/verified']}, valid rejected {tally['valid/rejected']} "
        f"(never-accepted algorithms {dict(skipped_algs)}, JWK alg mismatch {len(JWK_ALG_MISMATCH)}); "
        f"invalid rejected {tally['invalid/rejected']}, invalid verified {tally['invalid/verified']}; "
        f"acceptable {acceptable}"
    )
    assert DATA["numberOfTests"] == sum(tally.values()) == 401
    assert tally["invalid/verified"] == 0
    assert tally["invalid/rejected"] == 355
    assert dict(skipped_algs) == {"HS256": 10}
    assert tally["valid/verified"] == 46 - 10 - len(JWK_ALG_MISMATCH) == 32
    assert acceptable == []
