"""Shared stacks of the adversarial suite, and its summary table at the end of the run."""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from jose import jwk

from tests.adversarial import table
from tests.support.idp import IdP, run_idp
from tests.support.servers import authorization_stub, authz_process, free_port
from tests.support.tokens import AUDIENCE, SigningKey, b64url, es256, jwks, rs256, rsa_key

# Tests in other suites that cover a family of this one; their outcome is shown under the table.
REFERENCED = {
    "tests/integration/test_server.py::test_unknown_kid_flood_causes_at_most_one_fetch": "tokens: 1,000 unknown kids, <= 1 fetch (in-process)",
    "tests/unit/test_wycheproof.py::test_vector": "tokens: Wycheproof JWS vectors (verification layer)",
    "tests/unit/test_paths_engine.py::test_bypass_attempts_never_skip": "paths: skip-rule bypass strings (pure)",
    "tests/e2e/test_login.py::test_replayed_callback_is_refused": "login: replayed callback through Envoy and Redis",
    "tests/e2e/test_login.py::test_callback_from_another_browser_is_refused": "login: another browser through Envoy",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    table.finish(terminalreporter, "adversarial inputs: cases by family", REFERENCED)


AUDIENCE_B = "authz-at"
SKIP = "/public/"


@dataclass
class Keys:
    """Every key the token and JWKS families use. Only some are published, some broken on purpose."""

    rsa1: SigningKey = field(default_factory=lambda: rs256("rsa-1", 0))
    rsa2: SigningKey = field(default_factory=lambda: rs256("rsa-2", 1))
    ec1: SigningKey = field(default_factory=lambda: es256("ec-1"))
    issuer_b: SigningKey = field(default_factory=lambda: rs256("rsa-b", 2))
    attacker: SigningKey = field(default_factory=lambda: rs256("attacker", 3))
    weak: SigningKey = field(default_factory=lambda: SigningKey("weak-1024", "RS256", rsa_key(1024)))
    off_curve: SigningKey = field(default_factory=lambda: es256("bad-ec"))
    short_ec: SigningKey = field(default_factory=lambda: es256("short-ec"))
    hmac_secret: bytes = b"a-shared-secret-that-must-never-verify"

    def issuer_a_jwks(self) -> dict[str, Any]:
        published = jwks(self.rsa1, self.rsa2, self.ec1, self.weak)["keys"]
        bad_ec = self.off_curve.public_jwk()
        y = bytearray(_unb64(bad_ec["y"]))
        y[-1] ^= 0x01  # the genuine key with one bit changed: no longer a point on P-256
        bad_ec["y"] = b64url(bytes(y))
        short = self.short_ec.public_jwk()
        short["x"] = b64url(_unb64(short["x"])[1:])
        enc = {**self.rsa2.public_jwk(), "kid": "enc-rsa", "use": "enc"}
        ops = {**self.rsa2.public_jwk(), "kid": "ops-rsa", "key_ops": ["encrypt"]}
        ops.pop("use", None)
        leaked = {**jwk.construct(self.rsa1.private_pem, "RS256").to_dict(), "kid": "leaked"}
        leaked = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in leaked.items()}
        oct_key = {"kty": "oct", "kid": "hmac", "k": b64url(self.hmac_secret), "alg": "HS256"}
        return {"keys": [*published, bad_ec, short, enc, ops, leaked, oct_key]}


def _unb64(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass
class BearerStack:
    """authz as a real process trusting issuers A (RS256/ES256) and B (RS256, typ at+jwt only)."""

    a: IdP
    b: IdP
    c: IdP  # used by one test only, so its unknown-kid refetch is not rate limited by another case
    attacker: IdP  # serves the attacker's keys; authz must never ask it for anything
    keys: Keys
    port: int
    http_port: int
    stub: Any
    logs: list[str]

    def check(self, request: Any, timeout: float = 10.0) -> Any:
        return self.stub.Check(request, timeout=timeout)


def _drain(proc: subprocess.Popen[bytes], sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sink.append(line.decode(errors="replace"))


@pytest.fixture(scope="session")
def bearer_stack() -> Iterator[BearerStack]:
    keys = Keys()
    with (
        run_idp() as a, run_idp() as b, run_idp() as c, run_idp() as attacker,
        tempfile.TemporaryDirectory() as tmp,
    ):  # fmt: skip
        a.state.jwks = keys.issuer_a_jwks()
        b.state.jwks = jwks(keys.issuer_b)
        c.state.jwks = jwks(keys.issuer_b)
        attacker.state.jwks = jwks(keys.attacker)
        port, http_port = free_port(), free_port()
        config = {
            "listen": f"127.0.0.1:{port}",
            "http_listen": f"127.0.0.1:{http_port}",
            "skip_auth_urls": [SKIP],
            "issuers": [
                {"issuer": a.issuer, "audiences": [AUDIENCE]},
                {"issuer": b.issuer, "audiences": [AUDIENCE_B], "algorithms": ["RS256"],
                 "token_types": ["at+jwt"]},
                {"issuer": c.issuer, "audiences": [AUDIENCE]},
            ],
        }  # fmt: skip
        path = Path(tmp) / "authz.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {"AUTHZ_LISTEN": config["listen"]}
        with authz_process(env, "--config", str(path)) as proc:
            logs: list[str] = []
            threading.Thread(target=_drain, args=(proc, logs), daemon=True).start()
            channel, stub = authorization_stub(port)
            try:
                yield BearerStack(a, b, c, attacker, keys, port, http_port, stub, logs)
            finally:
                channel.close()


def dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
