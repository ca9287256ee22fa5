"""The image the Deployment runs: pinned Python, non-root, the same uid and entrypoint as the manifests.

`docker build` cannot run on the development machines, so the Dockerfile is checked by reading it.
"""

from __future__ import annotations

import json
import re
import tomllib

from manifest_helpers import REPO_ROOT, Obj, one

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def test_python_base_is_pinned() -> None:
    args = dict(a.split("=", 1) for w, a in instructions() if w == "ARG" and "=" in a)
    image = args["PYTHON_IMAGE"]
    m = re.fullmatch(r"python:(3\.(\d+)\.\d+)-slim(-[a-z]+)?", image)
    assert m, f"base image {image!r} must pin an exact Python release, slim variant"
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and int(m[2]) >= 11
    for word, rest in instructions():
        if word == "FROM":
            assert rest.split()[0] == "${PYTHON_IMAGE}", f"unpinned stage: FROM {rest}"


def test_runs_as_the_manifests_non_root_user(overlays: dict[str, list[Obj]]) -> None:
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "USER must be numeric so runAsNonRoot can verify it"
    assert int(uid) != 0 and int(gid) != 0
    for objs in overlays.values():
        pod = one(objs, "Deployment", "authz")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == int(uid)
        assert pod["securityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_is_authz_serve(overlays: dict[str, list[Obj]]) -> None:
    stage = final_stage()
    entrypoint = json.loads(next(r for w, r in reversed(stage) if w == "ENTRYPOINT"))
    cmd = json.loads(next(r for w, r in reversed(stage) if w == "CMD"))
    assert entrypoint == ["authz"] and cmd == ["serve"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "authz" in scripts
    exposed = {p for w, r in stage if w == "EXPOSE" for p in r.split()}
    assert {"9191", "9090"} <= exposed
    for objs in overlays.values():
        container = one(objs, "Deployment", "authz")["spec"]["template"]["spec"]["containers"][0]
        assert "command" not in container, "the Deployment must not bypass the image's entrypoint"
        assert container.get("args", cmd) == cmd


def test_build_context_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must exclude everything first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "authz"} <= allowed
    assert not allowed & {".venv", ".git", "tests", "node_modules", "demo"}
