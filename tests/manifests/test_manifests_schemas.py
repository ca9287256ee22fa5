"""Every object the manifests emit is validated against a schema, and every YAML file is accounted for.

Core Kubernetes kinds go through ``kubernetes-validate --strict`` (its Python API) for the oldest and
the newest Kubernetes release we support; Istio and cert-manager kinds through the CRD schemas in
``../shared/schemas`` with ``jsonschema``, made strict the way ``kubectl apply`` (field validation
Strict) treats unknown fields; the Prometheus Operator's kinds (manifests/monitoring), for which no
CRD file ships there, through the strict schemas of monitoring_schemas.py. A kind that none of them
knows fails the test.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from manifest_helpers import MANIFESTS, OVERLAYS, Obj, kustomize_targets, load_yaml_docs
from monitoring_schemas import SCHEMAS as MONITORING_SCHEMAS

# Oldest Kubernetes the manifests support (native gRPC probes, matchLabelKeys and nodeTaintsPolicy in
# topology spread are on by default there) and the newest release kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())

CRD_FILES = (
    "istio-crds.gen.yaml",
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
)

# Files under manifests/ that are neither rendered by a kustomization nor Kubernetes objects to
# validate here; each has its own consistency test in test_manifests_policy.py.
SNIPPETS = {
    "examples/dex-config.yaml",  # Dex's config file
    "overlays/extension-provider/mesh-config/istio-operator.yaml",  # no CRD schema exists for it
    "overlays/extension-provider/mesh-config/istiod-values.yaml",  # Helm values
}


def example_object_files() -> list[str]:
    """Kubernetes objects kept outside the kustomizations: examples to copy or apply by hand."""
    files = {p for p in MANIFESTS.rglob("*.example.yaml")}
    files |= {p for p in (MANIFESTS / "examples").glob("*.yaml")}
    rel = {p.relative_to(MANIFESTS).as_posix() for p in files}
    return sorted(rel - SNIPPETS)


_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _strict(schema: Any) -> Any:
    """Disallow unknown fields wherever the CRD lists the fields (as kubectl's strict validation does)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_schemas(schemas_dir: Path) -> dict[tuple[str, str, str], Any]:
    """(group, version, kind) -> strict JSON schema of the whole object."""
    out: dict[tuple[str, str, str], Any] = {}
    for name in CRD_FILES:
        for crd in load_yaml_docs(schemas_dir / name):
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {}).update(
                    {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": _OBJECT_META,
                    }
                )
                schema["required"] = sorted({*schema.get("required", []), "metadata"})
                key = (spec["group"], version["name"], spec["names"]["kind"])
                out[key] = _strict(schema)
    out.update(MONITORING_SCHEMAS)  # no CRD file for the Prometheus Operator's kinds: written by hand
    return out


def validate_object(obj: Obj, schemas_dir: Path) -> str:
    """Validate one object; return which validator took it. Raise AssertionError when invalid."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    assert api_version and kind, f"object without apiVersion/kind: {obj}"
    label = f"{kind} {obj.get('metadata', {}).get('name')}"
    group, _, version = api_version.rpartition("/")
    crds = crd_schemas(schemas_dir)
    if (group, version, kind) in crds:
        errors = sorted(
            jsonschema.Draft7Validator(crds[(group, version, kind)]).iter_errors(obj),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, f"{label} does not match its CRD schema:\n" + "\n".join(
            f"  {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )
        return "crd"
    if any(g == group and k == kind for g, _, k in crds):
        pytest.fail(f"{label}: {api_version} is not a version the {kind} CRD serves")
    for k8s in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, k8s, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{label}: unknown kind {api_version}/{kind} (no Kubernetes or CRD schema)")
        except kubernetes_validate.ValidationError as e:
            path = ".".join(map(str, e.path))
            pytest.fail(f"{label} is invalid for Kubernetes {k8s}: {path}: {e.message}")
    return "kubernetes"


def test_every_overlay_and_the_base_build(rendered: dict[str, list[Obj]]) -> None:
    assert "base" in rendered
    for overlay in OVERLAYS:
        assert f"overlays/{overlay}" in rendered
    for target, objs in rendered.items():
        assert objs, f"{target} rendered no objects"


@pytest.mark.parametrize("target", kustomize_targets())
def test_rendered_objects_validate(
    target: str, rendered: dict[str, list[Obj]], schemas_dir: Path
) -> None:
    for obj in rendered[target]:
        validate_object(obj, schemas_dir)


@pytest.mark.parametrize("path", example_object_files())
def test_example_objects_validate(path: str, schemas_dir: Path) -> None:
    docs = load_yaml_docs(MANIFESTS / path)
    assert docs, f"{path} holds no object"
    for obj in docs:
        validate_object(obj, schemas_dir)


def test_validators_reject_mistakes(rendered: dict[str, list[Obj]], schemas_dir: Path) -> None:
    """The validation above can fail: a misspelt field is caught by both validators."""
    objs = rendered["overlays/envoyfilter"]
    gateway = copy.deepcopy(next(o for o in objs if o["kind"] == "Gateway"))
    gateway["spec"]["servers"][1]["tls"]["credentialname"] = "typo"
    with pytest.raises(AssertionError, match="credentialname"):
        validate_object(gateway, schemas_dir)
    deployment = copy.deepcopy(next(o for o in objs if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readonlyRootFilesystem"] = True
    with pytest.raises(pytest.fail.Exception, match="readonlyRootFilesystem"):
        validate_object(deployment, schemas_dir)
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(pytest.fail.Exception, match="unknown kind"):
        validate_object(unknown, schemas_dir)


def _referenced_files(kustomization: Path) -> set[Path]:
    doc = yaml.safe_load(kustomization.read_text())
    refs: list[str] = [*doc.get("resources", []), *doc.get("components", [])]
    refs += [p["path"] for p in doc.get("patches", []) if "path" in p]
    refs += doc.get("patchesStrategicMerge", [])
    out = set()
    for ref in refs:
        path = (kustomization.parent / ref).resolve()
        assert path.exists(), f"{kustomization} refers to missing {ref}"
        if path.is_file():
            out.add(path)
    return out


def test_every_yaml_file_is_rendered_or_checked() -> None:
    """No YAML file under manifests/ escapes validation: it is rendered, an example, or a snippet."""
    referenced: set[Path] = set()
    kustomizations = set(MANIFESTS.rglob("kustomization.yaml"))
    for k in kustomizations:
        referenced |= _referenced_files(k)
    checked = {MANIFESTS / p for p in [*example_object_files(), *SNIPPETS]}
    for p in SNIPPETS:
        assert (MANIFESTS / p).is_file(), f"snippet {p} is gone: update SNIPPETS"
    stray = [
        p.relative_to(MANIFESTS).as_posix()
        for p in sorted(MANIFESTS.rglob("*.y*ml"))
        if p not in kustomizations and p.resolve() not in referenced and p not in checked
    ]
    assert not stray, f"YAML files that no kustomization renders and no test checks: {stray}"
