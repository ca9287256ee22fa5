"""Instructions per Check under callgrind: authz against the floor, free of the machine's noise.

    python -m bench.instructions            # 1,000 cached-token Checks each
    python -m bench.instructions --calls 500 --tree /path/to/other/checkout

Timing on a shared 2-core machine swings by tens of percent from one minute to the next,
which hides a change of a few percent. Valgrind's callgrind counts the instructions a
process executes (all threads), so the ratio of instructions per Check, authz / floor,
is repeatable to about 1%. It is a proxy for CPU per Check: it ignores cache misses, and
valgrind's virtual CPU lacks some extensions (e.g. SHA), so OpenSSL takes slower generic
code there. Each server warms up with 300 calls; counting is then zeroed, N calls are
made with h2load, and the count is dumped (callgrind_control). Needs valgrind.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import grpc

from bench import payloads, procs
from bench.load import CHECK_PATH
from tests.support.idp import IdP


def _h2load(port: int, data: Path, calls: int) -> None:
    out = subprocess.run(
        ["h2load", "-n", str(calls), "-c", "2", "-m", "16", "-d", str(data), "-H", "content-type: application/grpc",
         "-H", "te: trailers", f"http://127.0.0.1:{port}{CHECK_PATH}"],
        capture_output=True, text=True, timeout=900,
    ).stdout  # fmt: skip
    if f"{calls} succeeded" not in out:
        raise RuntimeError(f"h2load: not every call succeeded:\n{out[-1500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument(
        "--tree", action="append", default=[], help="another checkout's root, to compare authz versions"
    )
    args = parser.parse_args()
    trees = [str(procs.ROOT), *args.tree]
    with tempfile.TemporaryDirectory(prefix="authz-instr-") as tmp:
        work = Path(tmp)
        idp = IdP()
        idp.start()
        key = payloads.Key.rsa("bench-rsa-1")
        idp.state.jwks = payloads.jwks([key])
        data = work / "cached.grpc"
        token = key.sign(payloads.claims(idp.issuer, time.time()))
        data.write_bytes(payloads.grpc_frame(payloads.check_request(authorization="Bearer " + token)))
        env = {"OIDC_PROVIDER": idp.issuer, "CLIENT_ID": payloads.AUDIENCE, "SKIP_AUTH_URLS": "/static/",
               "GROUPS_ALLOWLIST": payloads.GROUP}  # fmt: skip
        servers: list[tuple[str, subprocess.Popen[bytes], int, Path]] = []
        try:
            for index, tree in enumerate(["floor", *trees]):
                port, http_port = procs.free_port(), procs.free_port()
                out = work / f"callgrind.{index}"
                argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", procs.PY, "-m"]
                argv += ["bench.floor", f"127.0.0.1:{port}"] if tree == "floor" else ["authz", "serve"]
                child_env = procs.grpc_env({**env, "AUTHZ_LISTEN": f"127.0.0.1:{port}",
                                            "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                                            "PYTHONPATH": str(procs.ROOT if tree == "floor" else tree)})  # fmt: skip
                cwd = procs.ROOT if tree == "floor" else tree
                log = open(work / f"server.{index}.log", "wb")  # closed when the process exits
                popen = subprocess.Popen(argv, cwd=cwd, env=child_env, stdout=log, stderr=subprocess.STDOUT)
                servers.append((tree, popen, port, out))
            for tree, _, port, _ in servers:
                if tree == "floor":
                    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                        grpc.channel_ready_future(channel).result(timeout=600)
                else:
                    procs.wait_serving(port, 600)
            counts: dict[str, float] = {}
            for tree, popen, port, out in servers:
                _h2load(port, data, 300)
                subprocess.run(["callgrind_control", "-z", str(popen.pid)], capture_output=True, check=True)
                _h2load(port, data, args.calls)
                subprocess.run(["callgrind_control", "-d", str(popen.pid)], capture_output=True, check=True)
                time.sleep(1)
                dump = max(glob.glob(f"{out}.*"), key=os.path.getmtime)
                found = re.search(r"^summary: (\d+)", Path(dump).read_text(), re.M)
                if found is None:
                    raise RuntimeError(f"no summary in {dump}")
                counts[tree] = int(found.group(1)) / args.calls
        finally:
            for _, popen, _, _ in servers:
                popen.terminate()
            for _, popen, _, _ in servers:
                popen.wait(timeout=60)
            idp.stop()
    floor = counts.pop("floor")
    print(f"instructions per cached-token Check, {args.calls:,} calls each (callgrind)")
    for tree, count in counts.items():
        print(f"  authz ({tree}) / floor: {count / floor:.3f}x")


if __name__ == "__main__":
    main()
