"""The fuzzers' inputs (hypothesis strategies), one per property of tests/fuzz/harness.py.

Each target pairs a strategy with the check it feeds. The same targets run briefly in
``make test`` (tests/fuzz/test_fuzz.py) and for a million inputs in ``make fuzz``
(``python -m tests.fuzz``).
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tests.fuzz import harness as hz

B64 = string.ascii_letters + string.digits + "-_"
TOKENISH = B64 + ".=+/ ~%\\\x00\r\n,;\"'"
NOW = int(time.time())

# Nested JSON is costly to generate; most fields get a scalar, a few get nested values.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=4,
)
weird_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "\r\n", "\x00", "\u2028", "a\x85b", "../", "%2e%2e", "\\", "admin", "*", "null", "1e400"]
)


def _mutate(token: str, edits: list[tuple[int, int, str]]) -> str:
    """Byte-level edits of a genuine token: replace, insert, delete, truncate, swap segments."""
    chars = list(token)
    for op, pos, text in edits:
        if not chars:
            break
        i = pos % len(chars)
        if op == 0:
            chars[i] = text[:1] or "A"
        elif op == 1:
            chars[i:i] = list(text)
        elif op == 2:
            del chars[i : i + 1 + len(text)]
        elif op == 3:
            chars = chars[:i]
        else:
            parts = "".join(chars).split(".")
            j, k = pos % len(parts), len(text) % len(parts)
            parts[j], parts[k] = parts[k], parts[j]
            chars = list(".".join(parts))
    return "".join(chars)


edits = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.text(st.sampled_from(TOKENISH), max_size=4)),
    min_size=1,
    max_size=4,
)

alg = st.sampled_from(["RS256", "ES256", "RS384", "RS512", "PS256", "ES384", "HS256", "none", "NONE", "EdDSA", ""]) | scalars
kid = st.sampled_from(["fuzz-rsa", "fuzz-ec", None, "", "../x"]) | scalars
jose_header = st.fixed_dictionaries(
    {"alg": alg},
    optional={
        "kid": kid, "typ": st.sampled_from(["JWT", "at+jwt", ""]) | scalars, "crit": json_values,
        "jku": st.just("http://127.0.0.1:9/keys"), "jwk": json_values, "x5c": json_values, "enc": scalars,
        "zip": scalars, "b64": st.booleans(), "cty": scalars,
    },
)  # fmt: skip
timestamp = st.sampled_from([NOW + 600, NOW - 600, NOW + 10, NOW - 10, NOW + 7200, 0, -1, 10**20, 253402300800]) | scalars
claims_payload = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([hz.ISSUER, hz.ISSUER + "/", hz.ISSUER.upper(), "https://other"]) | scalars,
        "aud": st.sampled_from([hz.AUDIENCE, [hz.AUDIENCE], [hz.AUDIENCE, "x"], "x", []]) | json_values,
        "azp": st.sampled_from([hz.AUDIENCE, "x"]) | scalars,
        "exp": timestamp, "nbf": timestamp, "iat": timestamp,
        "email": st.sampled_from(["alice@example.com", "", "a\r\nb", "a\x00"]) | weird_text | scalars,
        "groups": json_values, "nonce": scalars,
    },
)  # fmt: skip

header_names = st.sampled_from([
    "kubeflow-userid", "kubeflow_userid", "KUBEFLOW-USERID", "Kubeflow_Groups", "kubeflow-groups", "cookie",
    "authorization", "x-forwarded-for", "x-envoy-original-path", ":path", ":authority", "sec-fetch-mode", "accept",
]) | st.text(st.sampled_from(string.ascii_letters + "-_:"), min_size=1, max_size=12)  # fmt: skip
paths = st.sampled_from(["/public/", "/public/x", "/healthz", "/app", "/authservice/logout", "/authservice/login",
                         "/authservice/oidc/callback"]).flatmap(
    lambda base: st.text(st.sampled_from("/.%;\\?#aAzZ019uUcCeEfF~ \t") | st.characters(codec="utf-8"),
                         max_size=16).map(lambda tail: base + tail))  # fmt: skip
cookie_header = st.lists(
    st.tuples(st.sampled_from([hz.COOKIE, hz.COOKIE + "_login_x", "other", ""]) | st.text(max_size=8),
              st.sampled_from(["GENUINE", "", '"GENUINE"']) | st.text(max_size=50)),
    max_size=8,
).map(lambda pairs: pairs)  # fmt: skip


Target = tuple[Any, Callable[..., None]]


def _token_mutation(h: hz.Harness, which: int, changes: list[tuple[int, int, str]]) -> None:
    hz.check_token(h, _mutate(h.tokens[which % 3], changes))


def _cookies(h: hz.Harness, pairs: list[tuple[str, str]], sep: str, navigate: bool) -> None:
    header = sep.join(f"{k}={v.replace('GENUINE', h.sid)}" for k, v in pairs)
    hz.check_cookie(h, header, navigate)


TARGETS: dict[str, Target] = {
    "token-bytes": (st.tuples(st.binary(max_size=600).map(lambda b: b.decode("latin-1"))), hz.check_token),
    "token-text": (st.tuples(st.text(st.sampled_from(TOKENISH), max_size=600)), hz.check_token),
    "token-mutation": (st.tuples(st.integers(0, 2), edits), _token_mutation),
    "token-claims": (st.tuples(jose_header, claims_payload, st.sampled_from(["ec", "ec", "attacker", "rsa"])),
                     hz.check_signed_claims),
    "cookie": (st.tuples(cookie_header, st.sampled_from(["; ", ";", ",", " ;; "]), st.booleans()), _cookies),
    "headers": (st.tuples(st.dictionaries(header_names, weird_text, max_size=6), st.booleans(), paths),
                hz.check_headers),
    "path": (st.tuples(paths | st.text(max_size=40), st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"])),
             hz.check_path),
    "redirect": (st.tuples(st.text(st.sampled_from("/\\.:@%?#&=abcevilom09\t\r\n ") | st.characters(codec="utf-8"),
                                   max_size=40)), hz.check_redirect),
    "checkrequest-bytes": (st.tuples(st.binary(max_size=400)), hz.check_raw_request),
}
