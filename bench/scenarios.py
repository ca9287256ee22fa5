"""The scenarios: what is started, what load it gets, and which run is its baseline.

Every comparison runs its targets in interleaved rounds (A B, B A, A B, ...), so a slow
minute of the machine hits both sides alike; ratios are medians of same-round ratios.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_client

from authz.sessions import Session, digest
from bench import load, payloads, procs
from bench.load import Sample
from bench.payloads import AUDIENCE, GROUP, Key
from demo.envoy_config import bootstrap
from tests.support.idp import IdP

API_PATH = "/api/v1/orders/78112/items?include=product,price&page=2"
COOKIE_NAME = "authservice_session"


@dataclass(frozen=True)
class Scale:
    seconds: float  # one measured run
    rounds: int  # interleaved rounds per comparison (plus one warm-up run each)
    distinct: int  # distinct tokens or sessions made per run, at most
    memory_tokens: int
    memory_sessions: int
    growth_sessions: int
    profile_seconds: float
    curve: tuple[float, ...]  # offered load, as fractions of the floor's closed-loop throughput
    concurrency: int = 32  # calls in flight, for every closed-loop run


FULL = Scale(seconds=1.0, rounds=10, distinct=5000, memory_tokens=1_000_000, memory_sessions=100_000,
             growth_sessions=100_000, profile_seconds=8.0, curve=(0.25, 0.5, 0.75, 1.0, 1.25))  # fmt: skip
QUICK = Scale(seconds=0.5, rounds=1, distinct=400, memory_tokens=1500, memory_sessions=300,
              growth_sessions=600, profile_seconds=0.0, curve=(0.5, 1.0))  # fmt: skip


@dataclass
class Comparison:
    """One scenario: the samples of every target, per round."""

    key: str
    title: str
    subject: str
    baseline: str
    samples: dict[str, list[Sample]]
    load: str  # how it was driven
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def ratio(self, metric: str, subject: str | None = None, baseline: str | None = None) -> float:
        """Median over rounds of subject/baseline for ``metric`` (rps, p50_ms, p99_ms, cpu_per_1k)."""
        a = self.samples[subject or self.subject]
        b = self.samples[baseline or self.baseline]
        pairs = [getattr(x, metric) / getattr(y, metric) for x, y in zip(a, b, strict=True) if getattr(y, metric)]
        return statistics.median(pairs) if pairs else float("nan")


# A calibration run beside the cached comparison: the floor after this much busy Python per
# Check (about authz's own in-process work on a cached Check: parse, lookup, metrics, answer).
BUSY_US = 4.0
BUSY_NAME = f"floor + {BUSY_US:g} µs"


def interleave(
    runs: dict[str, Callable[[int], Sample]], rounds: int, log: Callable[[str], None]
) -> dict[str, list[Sample]]:
    """Run each target once to warm up (round -1, discarded), then ``rounds`` alternating rounds."""
    names = list(runs)
    for name in names:
        runs[name](-1)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            sample = runs[name](i)
            samples[name].append(sample)
            log(f"    round {i + 1}/{rounds} {name:<14} {sample.completed:>7} calls  "
                f"{sample.cpu_per_1k:6.3f} cpu-s/1k  p50 {sample.p50_ms:6.2f} ms  errors {sample.errors}")  # fmt: skip
    return samples


class Bench:
    """Everything a run starts, in one block; ``close`` stops it all (reverse order)."""

    def __init__(self, scale: Scale, workdir: Path, log: Callable[[str], None] = print) -> None:
        self.scale = scale
        self.dir = workdir
        self.log = log
        self.stack = ExitStack()
        self.results: list[Comparison] = []
        self.floor_capacity = 0.0
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise

    # -- start ------------------------------------------------------------------

    def _start(self) -> None:
        scale, d = self.scale, self.dir
        self.now = time.time()
        self.idp = IdP()
        self.idp.start()
        self.stack.callback(self.idp.stop)
        self.rsa = Key.rsa("bench-rsa-1")
        self.ec = Key.ec("bench-ec-1")
        self.idp.state.jwks = payloads.jwks([self.rsa, self.ec])
        self.issuer = self.idp.issuer

        # Growth: 50 keys in one JWKS; 10 issuers (10 JWKS servers), each with its own key.
        self.many_keys = [Key.ec(f"bench-ec-{i}") for i in range(50)]
        self.keys_idp = self._idp(self.many_keys)
        self.issuer_keys = [Key.ec(f"issuer-{i}") for i in range(10)]
        self.issuer_idps = [self._idp([key]) for key in self.issuer_keys]

        self.redis = self._proc(procs.redis(d))
        self.redis_db = redis_client.Redis(host="127.0.0.1", port=self.redis.port)
        self.floor = self._proc(procs.floor(d))
        self.floor_busy = self._proc(procs.floor(d, "floor-busy", busy_us=BUSY_US))
        two_floors, self.floor_x2 = procs.floors(d, 2)
        for proc in two_floors:
            self._proc(proc)

        base = self._env()
        rules = {"skip_auth_urls": [f"/static/app{i}/v{i % 7}/" for i in range(1000)],
                 "groups_allowlist": [f"team-{i}" for i in range(999)] + [GROUP]}  # fmt: skip
        issuers = {"issuers": [{"issuer": idp.issuer, "audiences": [AUDIENCE]} for idp in self.issuer_idps[1:]]}
        starting = {
            "authz": procs.authz(d, "authz", base),
            "authz-rules": procs.authz(d, "authz-rules", {**base, "SKIP_AUTH_URLS": "", "GROUPS_ALLOWLIST": ""}, rules),
            "authz-keys": procs.authz(d, "authz-keys", {**base, "OIDC_PROVIDER": self.keys_idp.issuer}),
            "authz-1-issuer": procs.authz(d, "authz-1-issuer", {**base, "OIDC_PROVIDER": self.issuer_idps[0].issuer}),
            "authz-10-issuers": procs.authz(
                d, "authz-10-issuers", {**base, "OIDC_PROVIDER": self.issuer_idps[0].issuer}, issuers
            ),
            "authz-nocache": procs.authz(d, "authz-nocache", base, {"session": {"cache_ttl": 0}}),
            "authz-w2": procs.authz(d, "authz-w2", base, workers=2),
        }
        for proc in starting.values():
            self._proc(proc)
        for proc in starting.values():
            procs.wait_ready(proc)
        self.authz = starting

        self.log("signing tokens")
        n, runs = scale.distinct, scale.rounds + 1
        key0, issuer0 = self.issuer_keys[0], self.issuer_idps[0].issuer
        jobs = [(self.rsa, self.issuer, 0, n * runs), (key0, issuer0, 10_000_000, n * runs),
                (key0, issuer0, 20_000_000, n * runs)]  # fmt: skip
        # Per run, n tokens in all: n/50 of each of the 50 keys, n/10 of each of the 10 issuers.
        jobs += [(self.many_keys[i % 50], self.keys_idp.issuer, 30_000_000 + i * n, -(-n // 50))
                 for i in range(runs * 50)]  # fmt: skip
        jobs += [(self.issuer_keys[i % 10], self.issuer_idps[i % 10].issuer, 40_000_000 + i * n, -(-n // 10))
                 for i in range(runs * 10)]  # fmt: skip
        signed = payloads.sign_many(jobs, self.now)
        rsa_tokens, keys_one, issuers_one = signed[0], signed[1], signed[2]
        keys_fifty, issuers_ten = signed[3 : 3 + runs * 50], signed[3 + runs * 50 :]
        self.cached_token = self.rsa.sign(payloads.claims(self.issuer, self.now, 1))

        self.frames: dict[str, Path] = {}
        self._h2load_file("cached", self._bearer(self.cached_token))
        for i in range(runs):
            part = slice(i * n, (i + 1) * n)
            self._frames(f"distinct-{i}", [self._bearer(t) for t in rsa_tokens[part]])
            self._frames(f"keys-1-{i}", [self._bearer(t) for t in keys_one[part]])
            self._frames(f"keys-50-{i}", [self._bearer(t) for t in self._mix(keys_fifty, i, n, 50)])
            self._frames(f"issuers-1-{i}", [self._bearer(t) for t in issuers_one[part]])
            self._frames(f"issuers-10-{i}", [self._bearer(t) for t in self._mix(issuers_ten, i, n, 10)])
        forged = payloads.forged_tokens(self.issuer, self.rsa, self.now, n * runs)
        self._frames("forged", [payloads.check_request(authorization=v) for v in forged])
        junk = payloads.junk_tokens(self.issuer, self.rsa, self.now, n * runs)
        self._frames(
            "junk", [payloads.check_request(authorization=v, request_id=f"junk-{i}") for i, v in enumerate(junk)]
        )

        self.sids = [f"bench-{i:07d}-" + digest(str(i))[:24] for i in range(max(scale.growth_sessions, 1000))]
        self._frames("session-1000", [self._cookie(sid) for sid in self.sids[:1000]])
        self._frames("session-1", [self._cookie(self.sids[0])])
        self.session_runs: list[list[str]] = []
        for i in range(runs):
            start = (i * n) % max(1, scale.growth_sessions - n + 1)
            self.session_runs.append(self.sids[start : start + n])
            self._frames(f"session-many-{i}", [self._cookie(sid) for sid in self.session_runs[-1]])

    def _idp(self, keys: list[Key]) -> IdP:
        idp = IdP()
        idp.start()
        self.stack.callback(idp.stop)
        idp.state.jwks = payloads.jwks(keys)
        return idp

    def _proc(self, proc: procs.Proc) -> procs.Proc:
        self.stack.callback(proc.stop)
        return proc

    def _env(self) -> dict[str, str]:
        return {
            "OIDC_PROVIDER": self.issuer,
            "CLIENT_ID": AUDIENCE,
            "REDIRECT_URL": "http://127.0.0.1:8080/authservice/oidc/callback",
            "SESSION_STORE_TYPE": "redis",
            "SESSION_STORE_REDIS_ADDR": f"127.0.0.1:{self.redis.port}",
            "SESSION_COOKIE_NAME": COOKIE_NAME,
            "SKIP_AUTH_URLS": "/static/",
            "GROUPS_ALLOWLIST": GROUP,
        }

    @staticmethod
    def _mix(batches: list[list[str]], run: int, n: int, per_run: int) -> list[str]:
        """Interleave the token lists of one run (tokens of different keys or issuers, in turn)."""
        lists = batches[run * per_run : (run + 1) * per_run]
        return [lst[j] for j in range(len(lists[0])) for lst in lists][:n]

    @staticmethod
    def _bearer(token: str) -> bytes:
        return payloads.check_request(authorization="Bearer " + token)

    @staticmethod
    def _cookie(sid: str) -> bytes:
        return payloads.check_request(cookie=payloads.session_cookie_header(COOKIE_NAME, sid))

    def _frames(self, name: str, messages: list[bytes]) -> None:
        path = self.dir / f"{name}.frames"
        payloads.write_frames(str(path), messages)
        self.frames[name] = path

    def _h2load_file(self, name: str, message: bytes) -> None:
        path = self.dir / f"{name}.grpc"
        path.write_bytes(payloads.grpc_frame(message))
        self.frames[name] = path

    def close(self) -> None:
        self.stack.close()

    # -- runners ------------------------------------------------------------------

    def _h2load(
        self, proc: procs.Proc | procs.Group, frames: str, *, clients: int = 2, rps: float = 0.0
    ) -> Callable[[int], Sample]:
        streams = max(1, self.scale.concurrency // clients)

        def run(i: int) -> Sample:
            seconds = self.scale.seconds if i >= 0 else self.scale.seconds / 2
            return load.h2load(proc.pid, proc.port, self.frames[frames], seconds=seconds, clients=clients,
                               streams=streams, rps=rps, log_file=self.dir / "h2load.log")  # fmt: skip

        return run

    def _client(self, proc: procs.Proc, frames: Callable[[int], str], *, once: bool) -> Callable[[int], Sample]:
        def run(i: int) -> Sample:
            seconds = self.scale.seconds if i >= 0 else self.scale.seconds / 2
            return load.client(proc.pid, proc.port, self.frames[frames(i)], seconds=seconds,
                               concurrency=self.scale.concurrency, once=once)  # fmt: skip

        return run

    def _expect(self, proc: procs.Proc, decision: str, run: Callable[[int], Sample]) -> Callable[[int], Sample]:
        """Wrap a run: authz must have answered (nearly) every call with ``decision``."""

        def checked(i: int) -> Sample:
            before = procs.checks_by_decision(proc)
            sample = run(i)
            after = procs.checks_by_decision(proc)
            total = sum(after.values()) - sum(before.values())
            wanted = after.get(decision, 0.0) - before.get(decision, 0.0)
            if sample.errors or total < sample.completed or wanted < 0.99 * total:
                raise RuntimeError(
                    f"{proc.name}: expected {decision} for every call; got {after} (was {before}), "
                    f"{sample.completed} completed, {sample.errors} errors; log:\n{proc.tail()}"
                )
            return sample

        return checked

    def _write_sessions(self, sids: list[str]) -> None:
        """Sessions as RedisStore.put writes them (fresh last_seen, so none is touched meanwhile)."""
        now = time.time()
        id_token = self.rsa.sign(payloads.claims(self.issuer, now, 7))
        pipe = self.redis_db.pipeline(transaction=False)
        for index, sid in enumerate(sids):
            session = Session(
                user=f"user{index}@example.com", groups=(GROUP, "everyone"), issuer=self.issuer, id_token=id_token,
                refresh_token="Chl" + digest(sid)[:40], id_token_expires_at=now + 7200, created_at=now, last_seen=now,
            )  # fmt: skip
            pipe.set("authz:s:" + digest(sid), session.to_json(), px=3_600_000)
            if index % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def _compare(self, key: str, title: str, runs: dict[str, Callable[[int], Sample]], subject: str,
                 baseline: str = "floor", how: str = "") -> Comparison:  # fmt: skip
        self.log(f"{key}: {title}")
        result = Comparison(key, title, subject, baseline, interleave(runs, self.scale.rounds, self.log), how)
        self.results.append(result)
        return result

    # -- scenarios ----------------------------------------------------------------

    def cached(self) -> Comparison:
        a = self.authz["authz"]
        result = self._compare(
            "cached", "one valid bearer token repeated (cached)",
            {"floor": self._h2load(self.floor, "cached"), "authz": self._expect(a, "allow", self._h2load(a, "cached")),
             BUSY_NAME: self._h2load(self.floor_busy, "cached")},
            "authz", how="h2load",
        )  # fmt: skip
        result.notes.append(
            f"{BUSY_NAME}: the floor spinning {BUSY_US:g} µs of Python per Check before it answers, about what "
            "authz's own work on a cached Check takes in-process. Its ratio is what that much handler time "
            "costs on this serving stack, measured in the same run."
        )
        self.floor_capacity = statistics.median(s.rps for s in result.samples["floor"])
        return result

    def distinct(self) -> Comparison:
        a = self.authz["authz"]
        return self._compare(
            "distinct", "distinct valid tokens, each seen once (RS256 signature verified every time)",
            {"floor": self._client(self.floor, lambda i: f"distinct-{i + 1}", once=True),
             "authz": self._expect(a, "allow", self._client(a, lambda i: f"distinct-{i + 1}", once=True))},
            "authz", how="bench.client",
        )  # fmt: skip

    def session(self) -> Comparison:
        a = self.authz["authz"]
        self._write_sessions(self.sids[:1000])
        return self._compare(
            "session", "session cookie, Redis store (1,000 sessions in turn; 2 s read cache)",
            {"floor": self._client(self.floor, lambda i: "session-1000", once=False),
             "authz": self._expect(a, "allow", self._client(a, lambda i: "session-1000", once=False))},
            "authz", how="bench.client",
        )  # fmt: skip

    def invalid(self) -> Comparison:
        a = self.authz["authz"]
        return self._compare(
            "invalid", "invalid tokens (deny path): 8 kinds of junk in turn, each value distinct",
            {"floor": self._client(self.floor, lambda i: "junk", once=False),
             "authz": self._expect(a, "deny", self._client(a, lambda i: "junk", once=False))},
            "authz", how="bench.client",
        )  # fmt: skip

    def forged(self) -> Comparison:
        a = self.authz["authz"]
        return self._compare(
            "forged", "forged signatures (trusted issuer and kid), each distinct: one RS256 check each",
            {"floor": self._client(self.floor, lambda i: "forged", once=False),
             "authz": self._expect(a, "deny", self._client(a, lambda i: "forged", once=False))},
            "authz", how="bench.client",
        )  # fmt: skip

    def envoy(self) -> list[Comparison]:
        d = self.dir
        envoys: dict[str, tuple[procs.Proc, tuple[int, ...]]] = {}
        for name, server in (
            ("envoy+authz", self.authz["authz"]),
            ("envoy+floor", self.floor),
            ("envoy+jwt_authn", None),
        ):
            listen, admin = procs.free_port(), procs.free_port()
            config = self._envoy_config(listen, admin, server)
            proc = self._proc(procs.envoy(d, name.replace("+", "-"), config, admin))
            proc.port = listen
            envoys[name] = (proc, (proc.pid,) if server is None else (proc.pid, server.pid))
        headers = {
            "authorization": "Bearer " + self.cached_token,
            "user-agent": payloads.USER_AGENT,
            "accept": "application/json, text/plain, */*",
            "accept-language": "en-GB,en;q=0.9,de;q=0.8",
            "accept-encoding": "gzip, deflate, br, zstd",
            "referer": "https://app.example.com/orders/78112",
            "origin": "https://app.example.com",
            "sec-fetch-mode": "cors",
            "x-forwarded-for": "203.0.113.57, 198.51.100.4",
            "x-request-id": "3f6c2a8e-91b4-4d1e-b7a2-5c0d9e8f1a23",
        }

        # Both auth filters really check: a forged token gets 401 (the floor lets everything in).
        forged = self.cached_token[:-8] + ("AAAAAAAA" if not self.cached_token.endswith("AAAAAAAA") else "BBBBBBBB")
        for name in ("envoy+authz", "envoy+jwt_authn"):
            status = procs.http_status(envoys[name][0].port, API_PATH, {"authorization": "Bearer " + forged})
            if status != 401:
                raise RuntimeError(f"{name}: a forged token got {status}, not 401")

        def runner(proc: procs.Proc, pids: tuple[int, ...]) -> Callable[[int], Sample]:
            def run(i: int) -> Sample:
                seconds = self.scale.seconds if i >= 0 else self.scale.seconds / 2
                return load.wrk(pids, f"http://127.0.0.1:{proc.port}{API_PATH}", headers, seconds=seconds,
                                connections=self.scale.concurrency)  # fmt: skip

            return run

        runs = {name: runner(proc, pids) for name, (proc, pids) in envoys.items()}
        result = self._compare(
            "envoy", "via Envoy (wrk, HTTP/1.1): Envoy + authz vs Envoy + floor; vs Envoy jwt_authn",
            runs, "envoy+authz", "envoy+floor", how="wrk",
        )  # fmt: skip
        result.notes.append(
            "CPU here is the serving stack's: Envoy plus its ext_authz server (jwt_authn: Envoy alone)."
        )
        for proc, _ in envoys.values():
            proc.stop()
        return [result]

    def _envoy_config(self, listen: int, admin: int, server: procs.Proc | None) -> dict[str, Any]:
        extra: list[dict[str, Any]] = []
        if server is None:
            extra.append({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"bench": {
                        "issuer": self.issuer, "audiences": [AUDIENCE],
                        "local_jwks": {"inline_string": json.dumps(payloads.jwks([self.rsa, self.ec]))},
                        "claim_to_headers": [{"header_name": "kubeflow-userid", "claim_name": "email"}],
                        "jwt_cache_config": {"jwt_cache_size": 1000},
                    }},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
                },
            })  # fmt: skip
        config = bootstrap(listen_port=listen, admin_port=admin, authz_port=server.port if server else 0,
                           upstream_port=1, extra_filters=extra, use_ext_authz=server is not None)  # fmt: skip
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        # Envoy answers itself after the auth filter, so no upstream server takes CPU.
        hcm["route_config"]["virtual_hosts"][0]["routes"] = [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
        ]
        return config

    def workers(self) -> Comparison:
        w1, w2 = self.authz["authz"], self.authz["authz-w2"]
        result = self._compare(
            "workers", "--workers 2 vs --workers 1 (cached token; 8 connections)",
            {"floor": self._h2load(self.floor, "cached", clients=8),
             "floor x2": self._h2load(self.floor_x2, "cached", clients=8),
             "authz": self._h2load(w1, "cached", clients=8), "authz --workers 2": self._h2load(w2, "cached", clients=8)},
            "authz --workers 2", "authz", how="h2load",
        )  # fmt: skip
        # Two no-op floors on one port against one: what a second process costs gRPC itself.
        result.extra["pairs"] = [("authz --workers 2", "floor x2")]
        return result

    def growth(self) -> list[Comparison]:
        a = self.authz
        out = [
            self._compare(
                "rules", "1 -> 1,000 skip rules and 1 -> 1,000 allowlist groups (cached token)",
                {"floor": self._h2load(self.floor, "cached"),
                 "1 rule": self._expect(a["authz"], "allow", self._h2load(a["authz"], "cached")),
                 "1,000 rules": self._expect(a["authz-rules"], "allow", self._h2load(a["authz-rules"], "cached"))},
                "1,000 rules", "1 rule", how="h2load",
            ),
            self._compare(
                "keys", "1 -> 50 keys in the JWKS (distinct ES256 tokens, signature verified every time)",
                {"floor": self._client(self.floor, lambda i: f"keys-1-{i + 1}", once=True),
                 "1 key": self._expect(a["authz-1-issuer"], "allow",
                                       self._client(a["authz-1-issuer"], lambda i: f"keys-1-{i + 1}", once=True)),
                 "50 keys": self._expect(a["authz-keys"], "allow",
                                         self._client(a["authz-keys"], lambda i: f"keys-50-{i + 1}", once=True))},
                "50 keys", "1 key", how="bench.client",
            ),
            self._compare(
                "issuers", "1 -> 10 issuers (distinct ES256 tokens of every issuer in turn, verified every time)",
                {"floor": self._client(self.floor, lambda i: f"issuers-1-{i + 1}", once=True),
                 "1 issuer": self._expect(a["authz-1-issuer"], "allow",
                                          self._client(a["authz-1-issuer"], lambda i: f"issuers-1-{i + 1}", once=True)),
                 "10 issuers": self._expect(a["authz-10-issuers"], "allow",
                                            self._client(a["authz-10-issuers"], lambda i: f"issuers-10-{i + 1}", once=True))},
                "10 issuers", "1 issuer", how="bench.client",
            ),
        ]  # fmt: skip
        out.append(self._sessions_growth())
        return out

    def _sessions_growth(self) -> Comparison:
        a, nocache = self.authz["authz"], self.authz["authz-nocache"]
        self._write_sessions(self.sids[: self.scale.growth_sessions])
        many = f"{self.scale.growth_sessions:,}"

        def with_fresh(run: Callable[[int], Sample]) -> Callable[[int], Sample]:
            def fresh(i: int) -> Sample:
                # Re-stamp this run's sessions, so none is old enough to be touched (written) meanwhile.
                self._write_sessions(self.sids[:1])
                self._write_sessions(self.session_runs[i + 1])
                return run(i)

            return fresh

        one = lambda i: "session-1"  # noqa: E731
        many_frames = lambda i: f"session-many-{i + 1}"  # noqa: E731
        result = self._compare(
            "sessions", f"1 -> {many} sessions in Redis, store read on every check (session.cache_ttl 0)",
            {"floor": self._client(self.floor, one, once=False),
             "1 session": with_fresh(self._expect(nocache, "allow", self._client(nocache, one, once=False))),
             f"{many} sessions": with_fresh(self._expect(nocache, "allow", self._client(nocache, many_frames, once=True))),
             "1 session, cached": with_fresh(self._expect(a, "allow", self._client(a, one, once=False))),
             f"{many} sessions, cached": with_fresh(self._expect(a, "allow", self._client(a, many_frames, once=True)))},
            f"{many} sessions", "1 session", how="bench.client",
        )  # fmt: skip
        result.extra["pairs"] = [(f"{many} sessions, cached", "1 session, cached")]
        return result

    def curve(self) -> Comparison:
        """Latency against offered load (open loop, h2load --rps), for the plot."""
        a = self.authz["authz"]
        capacity = self.floor_capacity or 1000.0
        runs: dict[str, Callable[[int], Sample]] = {}
        for fraction in self.scale.curve:
            rate = fraction * capacity
            runs[f"floor@{fraction:g}"] = self._h2load(self.floor, "cached", rps=rate)
            runs[f"authz@{fraction:g}"] = self._h2load(a, "cached", rps=rate)
        self.log("curve: latency against offered load")
        names = list(runs)
        samples: dict[str, list[Sample]] = {name: [] for name in names}
        for i, name in enumerate(names):
            samples[name].append(runs[name](i))
        result = Comparison("curve", "latency against offered load", "authz", "floor", samples, "h2load --rps")
        result.extra["capacity"] = capacity
        self.results.append(result)
        return result

    def profile(self) -> dict[str, Any]:
        """py-spy samples of authz under the cached-token load, and CPU per thread (authz vs floor)."""
        a = self.authz["authz"]
        out: dict[str, Any] = {"threads": {}}
        for proc in (self.floor, a):
            before = procs.thread_cpu(proc.pid)
            sample = load.h2load(proc.pid, proc.port, self.frames["cached"], seconds=self.scale.seconds,
                                 log_file=self.dir / "h2load.log")  # fmt: skip
            after = procs.thread_cpu(proc.pid)
            out["threads"][proc.name] = {
                name: 1e6 * (after[name] - before.get(name, 0.0)) / max(1, sample.completed) for name in after
            }
        if self.scale.profile_seconds <= 0:
            return out
        seconds = self.scale.profile_seconds
        raw = self.dir / "profile.txt"
        loader = subprocess.Popen(
            ["h2load", "-c", "2", "-m", "16", "-D", f"{round(seconds + 3)}s", "-d", str(self.frames["cached"]),
             "-H", "content-type: application/grpc", "-H", "te: trailers",
             f"http://127.0.0.1:{a.port}{load.CHECK_PATH}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1)
            subprocess.run([str(Path(procs.PY).parent / "py-spy"), "record", "-p", str(a.pid), "-d", f"{round(seconds)}",
                            "-r", "250", "-f", "raw", "-o", str(raw)],
                           capture_output=True, timeout=seconds + 60, check=True)  # fmt: skip
        finally:
            loader.wait(timeout=seconds + 30)
        out["stacks"] = raw.read_text()
        return out

    def memory(self) -> dict[str, Any]:
        """The in-process memory run (``python -m bench.memory``), against this run's JWKS and Redis."""
        key = self.dir / "memory-key.pem"
        key.write_bytes(payloads._pem(self.ec))
        self.log(f"memory: {self.scale.memory_tokens:,} distinct tokens, then {self.scale.memory_sessions:,} sessions")
        proc = subprocess.run(
            [procs.PY, "-m", "bench.memory", "--issuer", self.issuer, "--key", str(key), "--kid", self.ec.kid,
             "--redis", f"127.0.0.1:{self.redis.port}", "--tokens", str(self.scale.memory_tokens),
             "--sessions", str(self.scale.memory_sessions)],
            capture_output=True, text=True, timeout=1800, env=procs.grpc_env(),
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"bench.memory failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result
