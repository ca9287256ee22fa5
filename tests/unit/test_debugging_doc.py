"""docs/debugging.md stays true to the code: the reason codes it explains exist, the `authz` flags it
uses are the CLI's, and the admin methods it calls are in the proto."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from authz.admin.v1 import admin_pb2
from authz.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "debugging.md").read_text(encoding="utf-8").replace("\\\n", " ")
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "authz").rglob("*.py"))
SUBCOMMANDS = ("explain", "token inspect", "check-config", "serve")
# `authz <subcommand> ...` up to the end of the command: a pipe, redirect, backtick, comment or line end.
COMMAND = re.compile(r"(?:^|[\s`(])authz\s+(" + "|".join(SUBCOMMANDS) + r")\b([^|<>`#;\n]*)", re.MULTILINE)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def _section(heading: str) -> str:
    match = re.search(rf"^## [^\n]*{heading}[^\n]*\n(.*?)(?=^## |\Z)", DOC, re.MULTILINE | re.DOTALL)
    assert match, f"docs/debugging.md has no section '{heading}'"
    return match.group(1)


def _table_codes() -> list[str]:
    """The codes in the first column of the reasons table."""
    cells = re.findall(r"^\| (`[^|]*`) \|", _section("deny reasons"), re.MULTILINE)
    return [code for cell in cells for code in re.findall(r"`([a-z0-9_]+)`", cell)]


def _help(subcommand: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        _parser().parse_args([*subcommand.split(), "--help"])
    return out.getvalue()


def test_every_reason_code_in_the_reasons_table_exists_in_authz() -> None:
    codes = _table_codes()
    assert len(set(codes)) >= 10, codes
    assert {"missing_credentials", "token_expired", "group_not_allowed", "keys_unavailable"} <= set(codes)
    missing = sorted(code for code in codes if f'"{code}"' not in SOURCE)
    assert not missing, f"reason codes in docs/debugging.md that authz/ never gives: {missing}"


def test_the_reasons_table_has_ten_rows() -> None:
    rows = re.findall(r"^\| `[a-z_]+`", _section("deny reasons"), re.MULTILINE)
    assert len(rows) == 10, rows


def test_every_other_name_in_the_reasons_section_is_in_authz() -> None:
    """Codes in the prose, settings, metrics: each snake_case name in backticks is a word of the source."""
    names = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`", _section("deny reasons")))
    assert len(names) > len(set(_table_codes()))
    missing = sorted(name for name in names if not re.search(rf"\b{name}\b", SOURCE))
    assert not missing, f"names in the reasons section of docs/debugging.md not in authz/: {missing}"


def test_every_authz_flag_in_the_doc_is_in_the_cli_parser() -> None:
    used: dict[str, set[str]] = {}
    for subcommand, rest in COMMAND.findall(DOC):
        used.setdefault(subcommand, set()).update(FLAG.findall(rest))
    assert {"--path", "--token", "--cookie", "--browser", "--admin", "--offline", "--json"} <= used["explain"]
    assert "--no-keys" in used["token inspect"]
    for subcommand, flags in used.items():
        text = _help(subcommand)
        unknown = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text))
        assert not unknown, f"`authz {subcommand}` has no {unknown} (docs/debugging.md)"


def test_every_admin_method_in_the_doc_is_in_the_proto() -> None:
    service = admin_pb2.DESCRIPTOR.services_by_name["Admin"]
    named = set(re.findall(r"\b" + re.escape(service.full_name) + r"/(\w+)", DOC))
    assert not named - set(service.methods_by_name), sorted(named - set(service.methods_by_name))
    assert named == set(service.methods_by_name), "every admin method has a recipe"
