"""Load settings from a YAML file and environment variables, once, into :class:`Settings`.

Environment variables use arrikto/oidc-authservice names and defaults, so its ConfigMap
works unchanged; the YAML file sets the same and more (several issuers). The environment
overrides the file. Every problem is collected and reported at once (:class:`ConfigError`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from authz.errors import ConfigError
from authz.settings import (
    DEFAULT_ALGORITHMS,
    DEFAULT_GROUPS_CLAIM,
    DEFAULT_URL_PREFIX,
    DEFAULT_USERID_CLAIM,
    SUPPORTED_ALGORITHMS,
    IssuerSettings,
    OIDCClientSettings,
    SessionSettings,
    Settings,
    TLSSettings,
)

log = logging.getLogger("authz.config")

# Environment variable -> dotted key in the YAML structure.
ENV_KEYS: dict[str, str] = {
    "AUTHZ_LISTEN": "listen",
    "AUTHZ_HTTP_LISTEN": "http_listen",
    "AUTHZ_WORKERS": "workers",
    "AUTHZ_SHUTDOWN_GRACE": "shutdown_grace",
    "AUTHZ_MAX_CONCURRENT_CHECKS": "max_concurrent_checks",
    "AUTHZ_TLS_CERT": "tls.cert_file",
    "AUTHZ_TLS_KEY": "tls.key_file",
    "AUTHZ_TLS_CLIENT_CA": "tls.client_ca_file",
    "LOG_LEVEL": "log_level",
    "OIDC_PROVIDER": "oidc.issuer",
    "OIDC_AUTH_URL": "oidc.auth_url",
    "CLIENT_ID": "oidc.client_id",
    "CLIENT_SECRET": "oidc.client_secret",
    "REDIRECT_URL": "oidc.redirect_url",
    "OIDC_SCOPES": "oidc.scopes",
    "OIDC_TOKEN_AUTH_METHOD": "oidc.token_auth_method",
    "AFTER_LOGIN_URL": "oidc.after_login_url",
    "AFTER_LOGOUT_URL": "oidc.after_logout_url",
    "AUTHSERVICE_URL_PREFIX": "url_prefix",
    "SKIP_AUTH_URLS": "skip_auth_urls",
    "USERID_HEADER": "userid_header",
    "USERID_PREFIX": "userid_prefix",
    "USERID_CLAIM": "userid_claim",
    "GROUPS_CLAIM": "groups_claim",
    "GROUPS_HEADER": "groups_header",
    "GROUPS_ALLOWLIST": "groups_allowlist",
    "CA_BUNDLE": "ca_bundle",
    "SESSION_STORE_TYPE": "session.store",
    "SESSION_STORE_REDIS_ADDR": "session.redis_addr",
    "SESSION_STORE_REDIS_PWD": "session.redis_password",
    "SESSION_STORE_REDIS_DB": "session.redis_db",
    "SESSION_MAX_AGE": "session.max_age",
    "SESSION_IDLE_TIMEOUT": "session.idle_timeout",
    "SESSION_SAME_SITE": "session.same_site",
    "SESSION_DOMAIN": "session.domain",
    "SESSION_COOKIE_NAME": "session.cookie_name",
    "SESSION_COOKIE_SECURE": "session.secure",
}

# oidc-authservice variables that only change its own web pages, ports or storage:
# accepted with a warning naming what to do instead.
ENV_IGNORED: dict[str, str] = {
    "CLIENT_NAME": "authz has no login pages of its own",
    "THEME": "authz has no login pages of its own",
    "THEMES_URL": "authz has no login pages of its own",
    "TEMPLATE_PATH": "authz has no login pages of its own",
    "HOMEPAGE_URL": "authz has no home page; set AFTER_LOGIN_URL",
    "SERVER_HOSTNAME": "use AUTHZ_LISTEN",
    "SERVER_PORT": "use AUTHZ_LISTEN (gRPC, default 0.0.0.0:9191)",
    "PORT": "use AUTHZ_LISTEN (gRPC, default 0.0.0.0:9191)",
    "WEB_SERVER_PORT": "authz has no web server port",
    "READINESS_PROBE_PORT": "use AUTHZ_HTTP_LISTEN (/readyz) or the gRPC health service",
    "SESSION_STORE_PATH": "BoltDB is not supported; use SESSION_STORE_TYPE=redis",
    "OIDC_STATE_STORE_PATH": "login state lives in the session store",
    "STORE_PATH": "BoltDB is not supported; use SESSION_STORE_TYPE=redis",
    "CACHE_ENABLED": "verified tokens are always cached, bounded by the token's expiry",
    "CACHE_EXPIRATION_MINUTES": "verified tokens are always cached, bounded by the token's expiry",
    "STRICT_SESSION_VALIDATION": "sessions are always checked against the session store",
    "VERIFY_AUTH_URL": "authz answers Envoy's ext_authz Check, not an HTTP verify endpoint",
    "SCHEME_DEFAULT": "the scheme comes from Envoy's CheckRequest",
    "SCHEME_HEADER": "the scheme comes from Envoy's CheckRequest",
}

# oidc-authservice variables whose meaning authz does not implement; ignoring them could
# change who gets in, so they stop start-up.
ENV_REJECTED: dict[str, str] = {
    "USERID_TRANSFORMERS": "identity transformation is not supported; unset it",
    "EXTERNAL_AUTHZ_URL": "external authorization is not supported; unset it",
    "AUTHZ_CONFIG_PATH": "per-host authorization files are not supported; use GROUPS_ALLOWLIST",
    "ACCESS_TOKEN_AUTHN": "opaque access tokens are not supported; bearer tokens must be JWTs",
    "AUTH_HEADER": "credentials are read from the Authorization header only; unset it",
    "TOKEN_HEADER": "credentials are read from the Authorization header only; unset it",
    "ID_TOKEN_HEADER": "credentials are read from the Authorization header only; unset it",
    "TOKEN_SCHEME": "the bearer scheme is 'Bearer'; unset it",
    "USERID_TOKEN_HEADER": "forwarding tokens upstream is not supported; unset it",
    "AUDIENCES": "set audiences per issuer in the YAML config (issuers[].audiences)",
}

_TOP_KEYS = {
    "listen",
    "http_listen",
    "workers",
    "log_level",
    "shutdown_grace",
    "max_concurrent_checks",
    "url_prefix",
    "skip_auth_urls",
    "userid_header",
    "userid_prefix",
    "userid_claim",
    "groups_claim",
    "groups_header",
    "groups_allowlist",
    "clock_skew",
    "max_token_bytes",
    "token_cache_size",
    "token_cache_ttl",
    "jwks_stale_window",
    "ca_bundle",
    "realm",
    "oidc",
    "issuers",
    "session",
    "tls",
}
_OIDC_KEYS = {"issuer", "audiences", "algorithms", "jwks_uri", "required"} | {
    f.name for f in fields(OIDCClientSettings)
}
_ISSUER_KEYS = {f.name for f in fields(IssuerSettings)}
_SESSION_KEYS = {f.name for f in fields(SessionSettings)} | {"redis_addr", "redis_password", "redis_db"}
_TLS_KEYS = {f.name for f in fields(TLSSettings)}
_LOG_LEVELS = {"DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"}
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def _default(cls: type, name: str) -> Any:
    """The declared default of a settings field (slots hide it from the class)."""
    for f in fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | None = None
) -> tuple[Settings, list[str]]:
    """Build :class:`Settings` from ``config_file`` (YAML) overridden by ``environ``.

    Returns the settings and a list of warnings. Raises :class:`ConfigError` listing every
    problem when anything is invalid.
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    warnings: list[str] = []
    raw: dict[str, Any] = {}
    path = config_file or env.get("AUTHZ_CONFIG") or None
    if path:
        raw = _read_yaml(path, problems)
    _overlay_env(raw, env, problems, warnings)
    settings = _Builder(raw, problems, warnings).build()
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, warnings


def _read_yaml(path: str, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        problems.append(f"--config {path}: cannot read ({exc.strerror}); fix the path")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"--config {path}: not valid YAML ({exc}); fix the syntax")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"--config {path}: must be a mapping of settings at the top level")
        return {}
    return data


def _overlay_env(raw: dict[str, Any], env: Mapping[str, str], problems: list[str], warnings: list[str]) -> None:
    for name, why in ENV_REJECTED.items():
        if env.get(name):
            problems.append(f"{name}: not supported by authz: {why}")
    for name, why in ENV_IGNORED.items():
        if env.get(name):
            warnings.append(f"{name} is ignored: {why}")
    for name, key in ENV_KEYS.items():
        value = env.get(name)
        if value is None or (value == "" and name not in ("USERID_PREFIX",)):
            continue
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[leaf] = value


def _csv(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # oidc-authservice splits on commas; Kubeflow manifests also use spaces for scopes.
        return tuple(p for p in re.split(r"[,\s]+", value.strip()) if p)
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return (str(value),)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Builder:
    """Turns the merged raw mapping into Settings, appending every problem found."""

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
        elif parts.scheme == "http" and not _is_loopback(parts.hostname):
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
        algs = _csv(value) or DEFAULT_ALGORITHMS
        for alg in algs:
            if alg not in SUPPORTED_ALGORITHMS:
                self.bad(
                    where,
                    f"{alg!r} is not accepted (never 'none' or HMAC); choose from {', '.join(SUPPORTED_ALGORITHMS)}",
                )
        return tuple(a for a in algs if a in SUPPORTED_ALGORITHMS) or DEFAULT_ALGORITHMS

    def build(self) -> Settings | None:
        raw = self.raw
        self.unknown(raw, _TOP_KEYS)
        oidc_raw = self.section("oidc", _OIDC_KEYS)
        session_raw = self.section("session", _SESSION_KEYS)
        tls_raw = self.section("tls", _TLS_KEYS)

        user_claim = str(raw.get("userid_claim") or DEFAULT_USERID_CLAIM)
        groups_claim = str(raw.get("groups_claim") or DEFAULT_GROUPS_CLAIM)
        user_prefix = str(raw.get("userid_prefix") or "")
        ca_bundle = self.file("ca_bundle (CA_BUNDLE)", raw.get("ca_bundle"))

        oidc = self.oidc(oidc_raw)
        issuers: list[IssuerSettings] = []
        login_issuer = str(oidc_raw.get("issuer") or "").strip()
        if login_issuer:
            self.url("oidc.issuer (OIDC_PROVIDER)", login_issuer)
            if not oidc.client_id:
                self.bad("oidc.client_id (CLIENT_ID)", "required when OIDC_PROVIDER is set")
            audiences = _csv(oidc_raw.get("audiences")) or (oidc.client_id,)
            issuers.append(
                IssuerSettings(
                    issuer=login_issuer,
                    audiences=audiences,
                    algorithms=self.algorithms("oidc.algorithms", oidc_raw.get("algorithms")),
                    user_claim=user_claim,
                    groups_claim=groups_claim,
                    user_prefix=user_prefix,
                    ca_bundle=ca_bundle,
                    jwks_uri=self.url("oidc.jwks_uri", oidc_raw.get("jwks_uri")) or None,
                    required=self.boolean("oidc.required", oidc_raw.get("required"), True),
                )
            )
        extra = raw.get("issuers") or []
        if not isinstance(extra, list):
            self.bad("issuers", "must be a list of issuer mappings")
            extra = []
        for index, item in enumerate(extra):
            issuer = self.issuer(f"issuers[{index}]", item, user_claim, groups_claim, user_prefix, ca_bundle)
            if issuer is not None:
                issuers.append(issuer)
        if not issuers:
            self.bad("OIDC_PROVIDER", "no trusted issuer: set OIDC_PROVIDER or issuers[] in YAML")
        seen: set[str] = set()
        for issuer in issuers:
            if issuer.issuer in seen:
                self.bad("issuers", f"issuer {issuer.issuer!r} is listed twice")
            seen.add(issuer.issuer)

        url_prefix = str(raw.get("url_prefix") or DEFAULT_URL_PREFIX)
        if not (url_prefix.startswith("/") and url_prefix.endswith("/")):
            self.bad("url_prefix (AUTHSERVICE_URL_PREFIX)", f"{url_prefix!r} must start and end with '/'")
        skip = _csv(raw.get("skip_auth_urls"))
        for entry in skip:
            if not entry.startswith("/") or "?" in entry or "#" in entry:
                self.bad("skip_auth_urls (SKIP_AUTH_URLS)", f"{entry!r} must be a path starting with '/'")
        if login_issuer and not oidc.redirect_url:
            self.warnings.append(
                "browser login is off: set REDIRECT_URL to the absolute URL of "
                f"{url_prefix}oidc/callback on the gateway; bearer tokens are still accepted"
            )

        if any(entry == "/" for entry in skip):
            self.warnings.append("SKIP_AUTH_URLS contains '/': authentication is skipped for every path")
        log_level = str(raw.get("log_level") or "INFO").upper()
        if log_level not in _LOG_LEVELS:
            self.bad(
                "log_level (LOG_LEVEL)",
                f"{log_level!r}: choose one of {', '.join(sorted(_LOG_LEVELS))}",
            )

        settings = Settings(
            issuers=tuple(issuers),
            listen=self.address("listen (AUTHZ_LISTEN)", raw.get("listen"), _default(Settings, "listen")),
            http_listen=self.address(
                "http_listen (AUTHZ_HTTP_LISTEN)", raw.get("http_listen"), _default(Settings, "http_listen")
            ),
            workers=self.integer("workers (AUTHZ_WORKERS)", raw.get("workers"), 1, minimum=1),
            log_level={"WARN": "WARNING", "FATAL": "CRITICAL"}.get(log_level, log_level),
            shutdown_grace=self.number(
                "shutdown_grace (AUTHZ_SHUTDOWN_GRACE)", raw.get("shutdown_grace"), _default(Settings, "shutdown_grace")
            ),
            max_concurrent_checks=self.integer(
                "max_concurrent_checks",
                raw.get("max_concurrent_checks"),
                _default(Settings, "max_concurrent_checks"),
                minimum=1,
            ),
            url_prefix=url_prefix,
            skip_auth_urls=skip,
            userid_header=self.header(
                "userid_header (USERID_HEADER)", raw.get("userid_header"), _default(Settings, "userid_header")
            ),
            groups_header=self.header(
                "groups_header (GROUPS_HEADER)", raw.get("groups_header"), _default(Settings, "groups_header")
            ),
            groups_allowlist=_csv(raw.get("groups_allowlist")) or ("*",),
            clock_skew=self.number("clock_skew", raw.get("clock_skew"), _default(Settings, "clock_skew")),
            max_token_bytes=self.integer(
                "max_token_bytes", raw.get("max_token_bytes"), _default(Settings, "max_token_bytes"), minimum=256
            ),
            token_cache_size=self.integer(
                "token_cache_size", raw.get("token_cache_size"), _default(Settings, "token_cache_size")
            ),
            token_cache_ttl=self.number(
                "token_cache_ttl", raw.get("token_cache_ttl"), _default(Settings, "token_cache_ttl")
            ),
            jwks_stale_window=self.number(
                "jwks_stale_window", raw.get("jwks_stale_window"), _default(Settings, "jwks_stale_window")
            ),
            ca_bundle=ca_bundle,
            realm=str(raw.get("realm") or _default(Settings, "realm")),
            oidc=oidc,
            session=self.session(session_raw),
            tls=self.tls(tls_raw),
            login_issuer=login_issuer,
        )
        if settings.workers > 1 and settings.login_enabled and settings.session.store == "memory":
            self.bad(
                "session.store (SESSION_STORE_TYPE)",
                "memory sessions are per process: with AUTHZ_WORKERS > 1 use SESSION_STORE_TYPE=redis",
            )
        if settings.userid_header == settings.groups_header:
            self.bad("groups_header (GROUPS_HEADER)", "must differ from USERID_HEADER")
        return settings

    def oidc(self, raw: dict[str, Any]) -> OIDCClientSettings:
        scopes = _csv(raw.get("scopes")) or _default(OIDCClientSettings, "scopes")
        if "openid" not in scopes:
            scopes = ("openid", *scopes)
        method = str(raw.get("token_auth_method") or _default(OIDCClientSettings, "token_auth_method"))
        if method not in ("client_secret_basic", "client_secret_post"):
            self.bad(
                "oidc.token_auth_method",
                f"{method!r}: use client_secret_basic or client_secret_post",
            )
        redirect = str(raw.get("redirect_url") or "").strip()
        if redirect:
            self.url("oidc.redirect_url (REDIRECT_URL)", redirect)
        return OIDCClientSettings(
            client_id=str(raw.get("client_id") or ""),
            client_secret=str(raw.get("client_secret") or ""),
            redirect_url=redirect,
            scopes=scopes,
            auth_url=self.url("oidc.auth_url (OIDC_AUTH_URL)", raw.get("auth_url")),
            token_auth_method=method,
            after_login_url=str(raw.get("after_login_url") or ""),
            after_logout_url=str(raw.get("after_logout_url") or ""),
            exchange_timeout=self.number(
                "oidc.exchange_timeout", raw.get("exchange_timeout"), _default(OIDCClientSettings, "exchange_timeout")
            ),
        )

    def issuer(
        self, where: str, item: Any, user_claim: str, groups_claim: str, user_prefix: str, ca_bundle: str | None
    ) -> IssuerSettings | None:
        if not isinstance(item, dict):
            self.bad(where, "must be a mapping with at least issuer and audiences")
            return None
        self.unknown(item, _ISSUER_KEYS, f"{where}.")
        name = self.url(f"{where}.issuer", item.get("issuer"), required=True)
        audiences = _csv(item.get("audiences"))
        if not audiences:
            self.bad(f"{where}.audiences", "required: list the audiences tokens must carry")
        jwks_file = self.file(f"{where}.jwks_file", item.get("jwks_file"))
        jwks_uri = self.url(f"{where}.jwks_uri", item.get("jwks_uri")) or None
        if jwks_file and jwks_uri:
            self.bad(where, "set jwks_uri or jwks_file, not both")
        return IssuerSettings(
            issuer=name,
            audiences=audiences,
            algorithms=self.algorithms(f"{where}.algorithms", item.get("algorithms")),
            user_claim=str(item.get("user_claim") or user_claim),
            groups_claim=str(item.get("groups_claim") or groups_claim),
            user_prefix=str(item.get("user_prefix") if item.get("user_prefix") is not None else user_prefix),
            ca_bundle=self.file(f"{where}.ca_bundle", item.get("ca_bundle")) or ca_bundle,
            key_fetch_token_file=self.file(f"{where}.key_fetch_token_file", item.get("key_fetch_token_file")),
            jwks_uri=jwks_uri,
            jwks_file=jwks_file,
            token_types=tuple(t.lower().removeprefix("application/") for t in _csv(item.get("token_types"))),
            required=self.boolean(f"{where}.required", item.get("required"), True),
        )

    def session(self, raw: dict[str, Any]) -> SessionSettings:
        store = str(raw.get("store") or "memory").lower()
        redis_url = str(raw.get("redis_url") or "")
        if store == "boltdb":
            store = "memory"  # oidc-authservice's default; warned about via SESSION_STORE_PATH
        if store not in ("memory", "redis"):
            self.bad("session.store (SESSION_STORE_TYPE)", f"{store!r}: use memory or redis")
        if store == "redis" and not redis_url:
            addr = str(raw.get("redis_addr") or "127.0.0.1:6379")
            db = self.integer("session.redis_db (SESSION_STORE_REDIS_DB)", raw.get("redis_db"), 0)
            password = str(raw.get("redis_password") or "")
            # Percent-encoded: a password with "@", "/", "#", "?" or ":" would otherwise be read as
            # part of the host or path, and Redis would be dialled at the wrong address.
            auth = f":{quote(password, safe='')}@" if password else ""
            redis_url = f"redis://{auth}{addr}/{db}"
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            self.bad("session.redis_url", "must be a redis://, rediss:// or unix:// URL")
        same_site = str(raw.get("same_site") or _default(SessionSettings, "same_site")).capitalize()
        if same_site not in ("Lax", "Strict", "None"):
            self.bad("session.same_site (SESSION_SAME_SITE)", f"{same_site!r}: use Lax, Strict or None")
        secure = self.boolean("session.secure (SESSION_COOKIE_SECURE)", raw.get("secure"), True)
        if same_site == "None" and not secure:
            self.bad("session.same_site (SESSION_SAME_SITE)", "None requires secure cookies")
        return SessionSettings(
            store=store,
            redis_url=redis_url,
            cookie_name=str(raw.get("cookie_name") or _default(SessionSettings, "cookie_name")),
            max_age=self.number(
                "session.max_age (SESSION_MAX_AGE)", raw.get("max_age"), _default(SessionSettings, "max_age"), minimum=1
            ),
            idle_timeout=self.number(
                "session.idle_timeout (SESSION_IDLE_TIMEOUT)",
                raw.get("idle_timeout"),
                _default(SessionSettings, "idle_timeout"),
                minimum=1,
            ),
            same_site=same_site,
            domain=str(raw.get("domain") or ""),
            secure=secure,
            max_sessions=self.integer(
                "session.max_sessions", raw.get("max_sessions"), _default(SessionSettings, "max_sessions"), minimum=1
            ),
            cache_ttl=self.number("session.cache_ttl", raw.get("cache_ttl"), _default(SessionSettings, "cache_ttl")),
        )

    def tls(self, raw: dict[str, Any]) -> TLSSettings:
        tls = TLSSettings(
            cert_file=self.file("tls.cert_file (AUTHZ_TLS_CERT)", raw.get("cert_file")) or "",
            key_file=self.file("tls.key_file (AUTHZ_TLS_KEY)", raw.get("key_file")) or "",
            client_ca_file=self.file("tls.client_ca_file (AUTHZ_TLS_CLIENT_CA)", raw.get("client_ca_file")) or "",
        )
        if bool(tls.cert_file) != bool(tls.key_file):
            self.bad("tls", "set both cert_file (AUTHZ_TLS_CERT) and key_file (AUTHZ_TLS_KEY)")
        if tls.client_ca_file and not tls.cert_file:
            self.bad(
                "tls.client_ca_file",
                "client certificates need server TLS: set cert_file and key_file",
            )
        return tls


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with secrets masked (for ``check-config``)."""
    import dataclasses

    data = dataclasses.asdict(settings)
    if data["oidc"]["client_secret"]:
        data["oidc"]["client_secret"] = "***"
    url = data["session"]["redis_url"]
    if url and "@" in url:
        scheme, _, rest = url.partition("://")
        data["session"]["redis_url"] = f"{scheme}://***@{rest.rpartition('@')[2]}"
    return data


__all__ = ["ENV_KEYS", "load_settings", "masked", "replace"]
