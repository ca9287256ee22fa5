"""docs/configuration.md is generated from the settings model (authz.config_docs) and must not drift from it:
the committed page is what ``make docs`` writes, it names every key, variable and field with a description,
and the defaults it shows are the ones load_settings produces."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from authz import config_docs
from authz.cli import _parser
from authz.config import (
    _ISSUER_KEYS,
    _OIDC_KEYS,
    _SESSION_KEYS,
    _TLS_KEYS,
    _TOP_KEYS,
    _TRACING_KEYS,
    ENV_IGNORED,
    ENV_KEYS,
    ENV_REJECTED,
    load_settings,
)
from authz.config_docs import EXTRA_KEYS
from authz.config_env import OIDC_AUTHSERVICE_NAMES
from authz.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
MINIMAL_ENV = {"OIDC_PROVIDER": "https://idp.example", "CLIENT_ID": "x"}
YAML_ISSUER = {"issuers": [{"issuer": "https://k8s.example", "audiences": ["authz"]}]}


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def ref() -> config_docs.Reference:
    return config_docs.reference()


def load(tmp_path: Path, env: dict[str, str], config: dict[str, Any] | None = None) -> Settings:
    path = None
    if config is not None:
        path = tmp_path / "authz.yaml"
        path.write_text(yaml.safe_dump(config))
    return load_settings(env, str(path) if path else None)[0]


def section(page: str, heading: str) -> str:
    start = page.index(f"\n## {heading}\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end > 0 else None]


def test_committed_page_is_what_make_docs_writes(page: str) -> None:
    expected = config_docs.render()
    diff = "".join(
        list(difflib.unified_diff(page.splitlines(True), expected.splitlines(True), "committed", "model"))[:40]
    )
    assert page == expected, f"docs/configuration.md is stale: run `make docs` and commit it\n{diff}"


def test_check_flag_exits_1_with_one_line_when_the_file_differs(tmp_path: Path, capsys: Any) -> None:
    fresh, stale = tmp_path / "fresh.md", tmp_path / "stale.md"
    fresh.write_text(config_docs.render())
    assert config_docs.main(["--check", str(fresh)]) == 0
    stale.write_text(config_docs.render().replace("`0.0.0.0:9191`", "`0.0.0.0:1`"))
    assert config_docs.main(["--check", str(stale)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make docs" in err


def _dataclasses(cls: type) -> list[type]:
    found = [cls]
    for kind in typing.get_type_hints(cls).values():
        for candidate in (kind, *typing.get_args(kind)):
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate) and candidate not in found:
                found += _dataclasses(candidate)
    return found


def test_every_settings_field_has_a_description() -> None:
    classes = _dataclasses(Settings)
    assert len(classes) == 6
    undocumented = [
        f"{c.__name__}.{f.name}" for c in classes for f in dataclasses.fields(c) if not f.metadata.get("doc")
    ]
    assert not undocumented, f"add metadata=_doc('...') to {undocumented} in authz/settings.py, then run `make docs`"


def test_an_undocumented_field_stops_the_generator() -> None:
    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        new_setting: int = 1

    with pytest.raises(ValueError, match=r"Undocumented.new_setting has no description"):
        config_docs._entries(Undocumented, "", {})


def test_every_yaml_key_config_accepts_is_documented_and_no_other(page: str, ref: config_docs.Reference) -> None:
    accepted = (
        set(_TOP_KEYS)
        | {f"oidc.{k}" for k in _OIDC_KEYS}
        | {f"session.{k}" for k in _SESSION_KEYS}
        | {f"tls.{k}" for k in _TLS_KEYS}
        | {f"tracing.{k}" for k in _TRACING_KEYS}
        | {f"issuers[].{k}" for k in _ISSUER_KEYS}
    )
    entries = ref.entries()
    missing = sorted(accepted - {k for k, e in entries.items() if e.doc.strip()})
    assert not missing, f"document {missing}: a field's metadata, or EXTRA_KEYS in authz/config_docs.py"
    assert sorted(set(entries) - accepted) == [], "the page documents keys that config.py rejects"
    for key in accepted:
        assert f"| `{key}` |" in page, f"{key} is not on the page: run `make docs`"


def test_every_field_is_on_the_page(page: str, ref: config_docs.Reference) -> None:
    keys = set(ref.entries()) | {e.key for e in ref.derived}
    expected = []
    for f in dataclasses.fields(Settings):
        expected.append(f.name)
        kind = typing.get_type_hints(Settings)[f.name]
        nested, prefix = (typing.get_args(kind)[0], f"{f.name}[].") if typing.get_args(kind) else (kind, f"{f.name}.")
        if dataclasses.is_dataclass(nested):
            expected += [prefix + g.name for g in dataclasses.fields(nested)]
    assert len(expected) > 60  # the loop is not vacuous
    for key in expected:
        assert key in keys and f"| `{key}` |" in page, f"{key} is not on the page: run `make docs`"
    assert [e.key for e in ref.derived] == ["login_issuer"]
    assert "| `login_issuer` | `oidc.issuer` (`OIDC_PROVIDER`) |" in page


def test_every_environment_variable_is_documented(page: str, ref: config_docs.Reference) -> None:
    entries = ref.entries()
    index = section(page, "Environment variables")
    for name, key in ENV_KEYS.items():
        assert name in entries[key].env
        assert f"| `{name}` | `{key}` |" in index, f"{name} is not in the index: run `make docs`"
    assert "| `AUTHZ_CONFIG` |" in index
    for heading, reasons in (
        ("oidc-authservice variables authz ignores", ENV_IGNORED),
        ("oidc-authservice variables that stop start-up", ENV_REJECTED),
    ):
        text = section(page, heading)
        for name, why in reasons.items():
            row = next(line for line in text.splitlines() if f"`{name}`" in line)
            assert row.endswith(f"| {why} |"), row


def test_only_oidc_authservice_names_are_marked_as_its_own(page: str) -> None:
    assert set(OIDC_AUTHSERVICE_NAMES) <= set(ENV_KEYS)
    index = section(page, "Environment variables")
    for name in ENV_KEYS:
        row = next(line for line in index.splitlines() if line.startswith(f"| `{name}` |"))
        if name in OIDC_AUTHSERVICE_NAMES:
            assert not name.startswith(("AUTHZ_", "OTEL_"))
            assert "oidc-authservice" in row.split("|")[3], row
        else:
            assert "oidc-authservice" not in row.split("|")[3], row
    assert "same name and meaning as oidc-authservice |" in page


def test_flags_are_those_of_the_cli(page: str) -> None:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("serve", "check-config"):
        flags = {o for a in sub.choices[command]._actions for o in a.option_strings if o.startswith("--")}
        assert flags - {"--help"} == {flag for flag, _, _ in config_docs._FLAGS}, command
    flags_section = section(page, "Flags")
    for flag, metavar, var in config_docs._FLAGS:
        assert f"| `{flag} {metavar}` | `{var}`" in flags_section


def _effective(settings: Settings, key: str) -> Any:
    if key.startswith("issuers[]."):
        return getattr(settings.issuers[-1], key.removeprefix("issuers[]."))
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("env", "config", "set_by_config"),
    [
        # The login issuer from the environment; issuers[] keys are read off the login issuer.
        (MINIMAL_ENV, None, {"oidc", "oidc.client_id", "issuers", "login_issuer"}),
        # One issuer from YAML, nothing else: every other setting is at its default.
        ({}, YAML_ISSUER, {"issuers"}),
    ],
    ids=["env-login-issuer", "yaml-issuer"],
)
def test_defaults_shown_are_what_load_settings_produces(
    env: dict[str, str],
    config: dict[str, Any] | None,
    set_by_config: set[str],
    tmp_path: Path,
    ref: config_docs.Reference,
) -> None:
    settings = load(tmp_path, env, config)
    checked = 0
    for entry in [*ref.entries().values(), *ref.derived]:
        if entry.key in EXTRA_KEYS or entry.key in set_by_config or entry.value is dataclasses.MISSING:
            continue
        assert _effective(settings, entry.key) == entry.value, f"{entry.key}: the page shows {entry.default}"
        checked += 1
    assert checked > 50  # the loop is not vacuous


def _redis(settings: Settings) -> Any:
    return urlsplit(settings.session.redis_url)


# How each EXTRA_KEYS default shows in the effective settings: (environment, value read off the settings).
_EXTRA_EFFECTIVE: dict[str, tuple[dict[str, str], Any]] = {
    "userid_prefix": ({}, lambda s: s.issuers[0].user_prefix),
    "userid_claim": ({}, lambda s: s.issuers[0].user_claim),
    "groups_claim": ({}, lambda s: s.issuers[0].groups_claim),
    "oidc.issuer": ({"OIDC_PROVIDER": ""}, lambda s: s.login_issuer),
    # Unset means [client_id], as the page says.
    "oidc.audiences": ({}, lambda s: None if s.issuers[0].audiences == (s.oidc.client_id,) else s.issuers[0].audiences),
    "oidc.algorithms": ({}, lambda s: s.issuers[0].algorithms),
    "oidc.jwks_uri": ({}, lambda s: s.issuers[0].jwks_uri),
    "oidc.required": ({}, lambda s: s.issuers[0].required),
    "session.redis_addr": ({"SESSION_STORE_TYPE": "redis"}, lambda s: _redis(s).netloc),
    "session.redis_password": ({"SESSION_STORE_TYPE": "redis"}, lambda s: _redis(s).password or ""),
    "session.redis_db": ({"SESSION_STORE_TYPE": "redis"}, lambda s: int(_redis(s).path.strip("/"))),
}


def test_defaults_shown_for_keys_that_are_not_fields(tmp_path: Path) -> None:
    assert set(_EXTRA_EFFECTIVE) == set(EXTRA_KEYS), "say in _EXTRA_EFFECTIVE how a new EXTRA_KEYS default shows"
    for key, (extra_env, effective) in _EXTRA_EFFECTIVE.items():
        env = {**MINIMAL_ENV, **extra_env}
        config = YAML_ISSUER if env.get("OIDC_PROVIDER") == "" else None
        settings = load(tmp_path, {k: v for k, v in env.items() if v}, config)
        assert effective(settings) == EXTRA_KEYS[key].default, f"{key}: the page shows {EXTRA_KEYS[key].default!r}"
