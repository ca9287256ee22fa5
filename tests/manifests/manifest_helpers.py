"""Paths and helpers shared by the deployment manifest tests.

Imported by name from the test modules (not from conftest, which other test folders have too), so
keep this module name unique in the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"
# CI clones the repository with shared/ beside it.
SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas"

# The overlays the README promises, each a complete `kubectl apply -k` target.
OVERLAYS = ("envoyfilter", "extension-provider", "redis")

Obj = dict[str, Any]


def kustomize_targets() -> list[str]:
    """Every directory under manifests/ whose kustomization is buildable on its own (not a Component)."""
    targets = []
    for path in sorted(MANIFESTS.rglob("kustomization.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind", "Kustomization") == "Kustomization":
            targets.append(path.parent.relative_to(MANIFESTS).as_posix())
    return targets


# libyaml when present: the Istio CRD file alone is ~1 MB.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_docs(path: Path) -> list[Obj]:
    return parse_yaml_stream(path.read_text())


def parse_yaml_stream(text: str) -> list[Obj]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o
        for o in objs
        if o.get("kind") == kind and (name is None or o.get("metadata", {}).get("name") == name)
    ]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


