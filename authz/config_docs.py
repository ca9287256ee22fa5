"""docs/configuration.md, generated from the settings model so it cannot drift from it.

Every YAML key and environment variable, its type, its default and what it means come from
:mod:`authz.settings` (field defaults, annotations and ``metadata["doc"]``), :data:`EXTRA_KEYS`
(keys that are not fields) and :mod:`authz.config_env` (the variable names). ``python -m authz.config_docs``
prints the page (``make docs`` writes it); ``--check FILE`` exits 1 when FILE is not what it would print.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from authz.config_env import ENV_IGNORED, ENV_KEYS, ENV_REJECTED, OIDC_AUTHSERVICE_NAMES
from authz.settings import (
    DEFAULT_ALGORITHMS,
    DEFAULT_GROUPS_CLAIM,
    DEFAULT_REDIS_ADDR,
    DEFAULT_USERID_CLAIM,
    Settings,
)


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """A YAML key authz.config reads that is not a Settings field: its type, its default, what it means."""

    type: object
    default: object  # None: unset (the description says what that means)
    doc: str


# The YAML keys authz.config accepts that are not Settings fields: their values are folded into other
# settings (the login issuer's IssuerSettings, every issuer's defaults, session.redis_url).
# docs/configuration.md documents them from here, with the fields' own metadata.
EXTRA_KEYS: dict[str, KeyDoc] = {
    "userid_prefix": KeyDoc(
        str, "", "Prepended to the user claim's value in `userid_header`; the default `user_prefix` of every issuer."
    ),
    "userid_claim": KeyDoc(
        str, DEFAULT_USERID_CLAIM, "Claim that names the user; the default `user_claim` of every issuer."
    ),
    "groups_claim": KeyDoc(
        str, DEFAULT_GROUPS_CLAIM, "Claim with the user's groups; the default `groups_claim` of every issuer."
    ),
    "oidc.issuer": KeyDoc(
        str,
        "",
        "Issuer URL of the login provider, e.g. `https://host/dex`: browsers log in there, and its tokens are "
        "trusted (the first issuer; discovery and JWKS are fetched from it). Required unless `issuers` are listed.",
    ),
    "oidc.audiences": KeyDoc(
        tuple[str, ...], None, "Accepted `aud` values of the login provider's tokens; unset: `[client_id]`."
    ),
    "oidc.algorithms": KeyDoc(
        tuple[str, ...], DEFAULT_ALGORITHMS, "Accepted signature algorithms of the login provider's tokens."
    ),
    "oidc.jwks_uri": KeyDoc(str, None, "URL of the login provider's JWKS; unset: the `jwks_uri` of discovery."),
    "oidc.required": KeyDoc(
        bool, True, "`true`: authz is not ready until the login provider's keys are loaded; `false`: ready without."
    ),
    "session.redis_addr": KeyDoc(str, DEFAULT_REDIS_ADDR, "Redis `HOST:PORT`, with `store: redis` and no `redis_url`."),
    "session.redis_password": KeyDoc(str, "", "Redis password; masked by `check-config`, never logged."),
    "session.redis_db": KeyDoc(int, 0, "Redis database number."),
}


# authz/cli.py's flags (of both `authz serve` and `authz check-config`) and the variable each overrides.
_FLAGS = (
    ("--config", "FILE", "AUTHZ_CONFIG"),
    ("--listen", "HOST:PORT", "AUTHZ_LISTEN"),
    ("--http-listen", "HOST:PORT", "AUTHZ_HTTP_LISTEN"),
    ("--admin-listen", "HOST:PORT", "AUTHZ_ADMIN_LISTEN"),
    ("--workers", "N", "AUTHZ_WORKERS"),
)
# Read by load_settings itself rather than mapped onto a key.
_CONFIG_VARIABLE = "AUTHZ_CONFIG"
_SAME = "same name and meaning as oidc-authservice"
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One documented setting."""

    key: str  # the YAML key, dotted ("session.max_age", "issuers[].audiences"); a derived field: its name
    type: str
    doc: str
    value: Any  # the default; dataclasses.MISSING when the setting has none
    env: tuple[str, ...] = ()
    source: str = ""  # a derived field: the key it is taken from

    @property
    def default(self) -> str:
        return _shown(self.value)


@dataclass(frozen=True, slots=True)
class Section:
    """A YAML mapping ("" for the top level, "oidc", "issuers[]") and its keys, sorted."""

    key: str
    doc: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Reference:
    sections: tuple[Section, ...]
    derived: tuple[Entry, ...]  # Settings fields that no key of their own sets

    def entries(self) -> dict[str, Entry]:
        """Every YAML key's entry, by dotted key."""
        return {e.key: e for s in self.sections for e in s.entries}


def reference() -> Reference:
    """The settings model as documentation entries.

    Raises ValueError when the model is not fully documented: a field without ``metadata["doc"]``,
    a type with no documented form, or an ENV_KEYS name whose key is not a documented setting.
    """
    env: dict[str, list[str]] = {}
    for name, key in ENV_KEYS.items():
        env.setdefault(key, []).append(name)
    hints = typing.get_type_hints(Settings)
    top: list[Entry] = []
    sections: list[tuple[bool, Section]] = []
    derived: list[Entry] = []
    for f in dataclasses.fields(Settings):
        kind = hints[f.name]
        doc = _doc(Settings, f)
        value = _default(f)
        if "source" in f.metadata:
            derived.append(Entry(f.name, _type_name(kind), doc, value, source=str(f.metadata["source"])))
            continue
        if typing.get_origin(kind) is tuple and _is_dataclass(typing.get_args(kind)[0]):
            value = f.metadata.get("yaml_default", value)  # the YAML key's default, not the field's
            prefix = f"{f.name}[]"
            sections.append((True, Section(prefix, doc, _entries(typing.get_args(kind)[0], prefix + ".", env))))
        elif _is_dataclass(kind):
            sections.append((False, Section(f.name, doc, _entries(kind, f.name + ".", env))))
        top.append(Entry(f.name, _type_name(kind), doc, value, tuple(env.get(f.name, ()))))
    # Mappings first (oidc, session, ...), then lists of mappings (issuers[]), each in field order.
    ordered = [Section("", "", tuple(top))] + [s for _, s in sorted(sections, key=lambda item: item[0])]
    by_key = {s.key: list(s.entries) for s in ordered}
    for key, extra in EXTRA_KEYS.items():
        section, _, _ = key.rpartition(".")
        by_key[section].append(Entry(key, _type_name(extra.type), extra.doc, extra.default, tuple(env.get(key, ()))))
    ref = Reference(
        tuple(Section(s.key, s.doc, tuple(sorted(by_key[s.key], key=lambda e: e.key))) for s in ordered),
        tuple(derived),
    )
    known = ref.entries()
    for name, key in ENV_KEYS.items():
        if key not in known:
            raise ValueError(f"ENV_KEYS[{name!r}] = {key!r} is not a documented setting")
    return ref


def render() -> str:
    """The Markdown of docs/configuration.md."""
    ref = reference()
    entries = ref.entries()
    out: list[str] = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m authz.config_docs` from authz/settings.py, authz/config.py and",
        "     authz/config_env.py: edit those, then run `make docs`. -->",
        "",
        "authz reads its settings once, at start, into one immutable object. Each source overrides the ones",
        "after it:",
        "",
        "1. command-line flags;",
        "2. environment variables: arrikto/oidc-authservice's names, so its ConfigMap works unchanged, and",
        "   authz's own (`AUTHZ_*`);",
        f"3. the YAML file (`--config FILE`, or `{_CONFIG_VARIABLE}=FILE`);",
        "4. the defaults below.",
        "",
        "Every problem is reported at once, naming the setting and the fix, and authz exits with status 2.",
        "`authz check-config` validates the settings and prints them as JSON, secrets masked.",
        "",
        "Values: a *list* is a YAML list or a comma- or space-separated string (the only form an environment",
        "variable has); a *boolean* is `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`; durations are *numbers*",
        "of seconds. An empty environment variable counts as unset, except `USERID_PREFIX` (empty: no prefix).",
        "",
        "## Flags",
        "",
        "`authz serve` and `authz check-config` take:",
        "",
        "| Flag | Overrides |",
        "|---|---|",
    ]
    for flag, metavar, var in _FLAGS:
        target = " (the YAML file's path)" if var == _CONFIG_VARIABLE else f" and `{ENV_KEYS[var]}`"
        out.append(_row(f"`{flag} {metavar}`", f"`{var}`{target}"))
    out += [
        "",
        "## Environment variables",
        "",
        f"*{_SAME.capitalize()}*: an arrikto/oidc-authservice ConfigMap entry means the same",
        "to authz. Where authz reads one of its variables differently, the difference is named. The other",
        "variables are authz's own.",
        "",
        "| Variable | YAML key | oidc-authservice |",
        "|---|---|---|",
    ]
    variables = {name: key for name, key in ENV_KEYS.items()}
    variables[_CONFIG_VARIABLE] = ""
    for name in sorted(variables):
        key = variables[name]
        out.append(_row(f"`{name}`", f"`{key}`" if key else "— (the YAML file's path; `--config`)", _origin(name)))
    out += ["", "## YAML keys", "", "Unknown keys are errors.", ""]
    for section in ref.sections:
        if section.key:
            out += [f"### `{section.key}`", "", _section_intro(section), ""]
        else:
            out += ["### Top level", ""]
        out += ["| Key | Variable | Type | Default | Description |", "|---|---|---|---|---|"]
        for e in section.entries:
            variable = ", ".join(f"`{v}`" for v in e.env) or "—"
            out.append(_row(f"`{e.key}`", variable, e.type, e.default, e.doc))
        out.append("")
    out += [
        "## Derived settings",
        "",
        "`authz check-config` also prints these fields, which no key of their own sets:",
        "",
        "| Field | Taken from | Type | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for e in ref.derived:
        source = entries[e.source]
        via = f"`{e.source}`" + "".join(f" (`{v}`)" for v in source.env)
        out.append(_row(f"`{e.key}`", via, e.type, e.default, e.doc))
    out += [
        "",
        "## oidc-authservice variables authz ignores",
        "",
        "Set to a non-empty value, these are accepted with a warning at start that says what to use instead:",
        "",
        "| Variable | Why |",
        "|---|---|",
    ]
    out += [_row(names, why) for names, why in _grouped(ENV_IGNORED)]
    out += [
        "",
        "## oidc-authservice variables that stop start-up",
        "",
        "authz does not implement these, and ignoring them could change who gets in: set to a non-empty value,",
        "each stops start-up with its reason.",
        "",
        "| Variable | Why |",
        "|---|---|",
    ]
    out += [_row(names, why) for names, why in _grouped(ENV_REJECTED)]
    return "\n".join(out) + "\n"


def _entries(cls: type, prefix: str, env: dict[str, list[str]]) -> tuple[Entry, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        Entry(
            prefix + f.name, _type_name(hints[f.name]), _doc(cls, f), _default(f), tuple(env.get(prefix + f.name, ()))
        )
        for f in dataclasses.fields(cls)
    )


def _doc(cls: type, f: dataclasses.Field[Any]) -> str:
    doc = str(f.metadata.get("doc") or "").strip()
    if not doc:
        raise ValueError(f"{cls.__name__}.{f.name} has no description: add metadata=_doc('...') in authz/settings.py")
    return doc


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _is_dataclass(kind: object) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _type_name(kind: object) -> str:
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _type_name(rest[0])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return "list of mappings" if _is_dataclass(args[0]) else f"list of {_type_name(args[0])}s"
    if _is_dataclass(kind):
        return "mapping"
    if isinstance(kind, type) and kind in _TYPE_NAMES:
        return _TYPE_NAMES[kind]
    raise ValueError(f"type {kind!r} has no documented form: add it to authz/config_docs.py")


def _shown(value: Any) -> str:
    """A default as the page shows it."""
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "unset"
    if dataclasses.is_dataclass(value):
        return "—"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, int | float):
        return f"`{value!r}`"
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(_yaml_scalar(str(v)) for v in value) + "]`"
    return f"`{value}`" if value else '`""`'


def _yaml_scalar(text: str) -> str:
    plain = text and all(c.isalnum() or c in "_-./:+" for c in text)
    return text if plain else f'"{text}"'


def _origin(name: str) -> str:
    if name in OIDC_AUTHSERVICE_NAMES:
        difference = OIDC_AUTHSERVICE_NAMES[name]
        return f"same name as oidc-authservice; differs: {difference}" if difference else _SAME
    if name.startswith("OTEL_"):
        return "OpenTelemetry's standard variable"
    return "authz only"


def _section_intro(section: Section) -> str:
    if section.key.endswith("[]"):
        required = " and ".join(f"`{e.key.rpartition('.')[2]}`" for e in section.entries if e.default == "required")
        name = section.key[:-2]
        return f"Each entry of `{name}` is one trusted issuer, a mapping of these keys; {required} are required."
    return f"{section.doc} Under `{section.key}:` in the YAML file."


def _grouped(reasons: dict[str, str]) -> list[tuple[str, str]]:
    """Variables that share a reason, on one row, in the order they are declared."""
    by_reason: dict[str, list[str]] = {}
    for name, why in reasons.items():
        by_reason.setdefault(why, []).append(f"`{name}`")
    return [(", ".join(names), why) for why, names in by_reason.items()]


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m authz.config_docs", description="print docs/configuration.md")
    parser.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from the generated page")
    args = parser.parse_args(argv)
    text = render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.check, encoding="utf-8") as fh:
            current = fh.read()
    except OSError:
        current = None
    if current != text:
        print(f"{args.check} is not what `python -m authz.config_docs` generates: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
