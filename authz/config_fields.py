"""Reading and checking single configuration values; every problem is recorded, none raised."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from authz.settings import DEFAULT_ALGORITHMS, SUPPORTED_ALGORITHMS

_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def default(cls: type, name: str) -> Any:
    """The declared default of a settings field (slots hide it from the class)."""
    for f in fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)


def csv(value: Any) -> tuple[str, ...]:
    """A list setting from a comma/space separated string or a YAML list."""
    if value is None:
        return ()
    if isinstance(value, str):
        # oidc-authservice splits on commas; Kubeflow manifests also use spaces for scopes.
        return tuple(p for p in re.split(r"[,\s]+", value.strip()) if p)
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return (str(value),)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FieldReader:
    """Reads fields from the merged raw mapping, appending every problem found."""

    def __init__(self, raw: dict[str, Any], problems: list[str], warnings: list[str]) -> None:
        self.raw = raw
        self.problems = problems
        self.warnings = warnings

    def bad(self, field: str, message: str) -> None:
        self.problems.append(f"{field}: {message}")

    def section(self, name: str, allowed: set[str]) -> dict[str, Any]:
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            self.bad(name, "must be a mapping")
            return {}
        self.unknown(value, allowed, f"{name}.")
        return value

    def unknown(self, mapping: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
        for key in sorted(set(mapping) - allowed):
            self.bad(f"{prefix}{key}", f"unknown setting; known: {', '.join(sorted(allowed))}")

    def number(self, where: str, value: Any, default: float, *, minimum: float = 0) -> float:
        if value is None:
            return default
        try:
            result = float(value)
        except (TypeError, ValueError):
            self.bad(where, f"must be a number, got {value!r}")
            return default
        if not result >= minimum or result != result or result == float("inf"):
            self.bad(where, f"must be a finite number >= {minimum:g}, got {value!r}")
            return default
        return result

    def integer(self, where: str, value: Any, default: int, *, minimum: int = 0) -> int:
        if value is None:
            return default
        try:
            result = int(str(value).strip())
        except ValueError:
            self.bad(where, f"must be an integer, got {value!r}")
            return default
        if result < minimum:
            self.bad(where, f"must be >= {minimum}, got {result}")
            return default
        return result

    def boolean(self, where: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        self.bad(where, f"must be true or false, got {value!r}")
        return default

    def header(self, where: str, value: Any, default: str) -> str:
        name = str(value if value is not None else default).strip().lower()
        if not _HEADER_NAME.match(name):
            self.bad(where, f"{value!r} is not a valid header name (letters, digits, '-')")
        return name

    def address(self, where: str, value: Any, default: str) -> str:
        text = str(value if value is not None else default).strip()
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.bad(where, f"{text!r} must be HOST:PORT, e.g. 0.0.0.0:9191")
        return text

    def url(self, where: str, value: Any, *, required: bool = False) -> str:
        text = str(value or "").strip()
        if not text:
            if required:
                self.bad(where, "required: set an absolute https:// URL")
            return ""
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            self.bad(where, f"{text!r} must be an absolute https:// URL")
        elif parts.scheme == "http" and not is_loopback(parts.hostname):
            self.bad(where, f"{text!r} must use https:// (plain http only on loopback)")
        return text

    def file(self, where: str, value: Any) -> str | None:
        if not value:
            return None
        path = str(value)
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            self.bad(where, f"{path!r} is not a readable file")
        return path

    def algorithms(self, where: str, value: Any) -> tuple[str, ...]:
        algs = csv(value) or DEFAULT_ALGORITHMS
        for alg in algs:
            if alg not in SUPPORTED_ALGORITHMS:
                self.bad(
                    where,
                    f"{alg!r} is not accepted (never 'none' or HMAC); choose from {', '.join(SUPPORTED_ALGORITHMS)}",
                )
        return tuple(a for a in algs if a in SUPPORTED_ALGORITHMS) or DEFAULT_ALGORITHMS
