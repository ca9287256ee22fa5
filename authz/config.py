"""Load settings from a YAML file and environment variables, once, into :class:`Settings`.

Environment variables use arrikto/oidc-authservice names and defaults, so its ConfigMap
works unchanged; the YAML file sets the same and more (several issuers). The environment
overrides the file. Every problem is collected and reported at once (:class:`ConfigError`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from authz.config_env import ENV_IGNORED, ENV_KEYS, ENV_REJECTED, overlay_env
from authz.config_fields import FieldReader, csv, default
from authz.errors import ConfigError
from authz.settings import (
    DEFAULT_GROUPS_CLAIM,
    DEFAULT_REDIS_ADDR,
    DEFAULT_URL_PREFIX,
    DEFAULT_USERID_CLAIM,
    IssuerSettings,
    OIDCClientSettings,
    SessionSettings,
    Settings,
    TLSSettings,
    TracingSettings,
)

log = logging.getLogger("authz.config")

_TOP_KEYS = {
    "listen",
    "http_listen",
    "admin_listen",
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
    "tracing",
}
_OIDC_KEYS = {"issuer", "audiences", "algorithms", "jwks_uri", "required"} | {
    f.name for f in fields(OIDCClientSettings)
}
_ISSUER_KEYS = {f.name for f in fields(IssuerSettings)}
_SESSION_KEYS = {f.name for f in fields(SessionSettings)} | {"redis_addr", "redis_password", "redis_db"}
_TLS_KEYS = {f.name for f in fields(TLSSettings)}
_TRACING_KEYS = {f.name for f in fields(TracingSettings)}
_TRACING_EXPORTERS = ("otlp", "console")
_LOG_LEVELS = {"DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"}


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
    overlay_env(raw, env, problems, warnings)
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


class _Builder(FieldReader):
    """Turns the merged raw mapping into Settings, appending every problem found."""

    def build(self) -> Settings | None:
        raw = self.raw
        self.unknown(raw, _TOP_KEYS)
        oidc_raw = self.section("oidc", _OIDC_KEYS)
        session_raw = self.section("session", _SESSION_KEYS)
        tls_raw = self.section("tls", _TLS_KEYS)
        tracing_raw = self.section("tracing", _TRACING_KEYS)

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
            audiences = csv(oidc_raw.get("audiences")) or (oidc.client_id,)
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
        skip = csv(raw.get("skip_auth_urls"))
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
            listen=self.address("listen (AUTHZ_LISTEN)", raw.get("listen"), default(Settings, "listen")),
            http_listen=self.address(
                "http_listen (AUTHZ_HTTP_LISTEN)", raw.get("http_listen"), default(Settings, "http_listen")
            ),
            admin_listen=self.address(
                "admin_listen (AUTHZ_ADMIN_LISTEN)", raw.get("admin_listen"), default(Settings, "admin_listen")
            ),
            workers=self.integer("workers (AUTHZ_WORKERS)", raw.get("workers"), 1, minimum=1),
            log_level={"WARN": "WARNING", "FATAL": "CRITICAL"}.get(log_level, log_level),
            shutdown_grace=self.number(
                "shutdown_grace (AUTHZ_SHUTDOWN_GRACE)", raw.get("shutdown_grace"), default(Settings, "shutdown_grace")
            ),
            max_concurrent_checks=self.integer(
                "max_concurrent_checks",
                raw.get("max_concurrent_checks"),
                default(Settings, "max_concurrent_checks"),
                minimum=1,
            ),
            url_prefix=url_prefix,
            skip_auth_urls=skip,
            userid_header=self.header(
                "userid_header (USERID_HEADER)", raw.get("userid_header"), default(Settings, "userid_header")
            ),
            groups_header=self.header(
                "groups_header (GROUPS_HEADER)", raw.get("groups_header"), default(Settings, "groups_header")
            ),
            groups_allowlist=csv(raw.get("groups_allowlist")) or ("*",),
            clock_skew=self.number("clock_skew", raw.get("clock_skew"), default(Settings, "clock_skew")),
            max_token_bytes=self.integer(
                "max_token_bytes", raw.get("max_token_bytes"), default(Settings, "max_token_bytes"), minimum=256
            ),
            token_cache_size=self.integer(
                "token_cache_size", raw.get("token_cache_size"), default(Settings, "token_cache_size")
            ),
            token_cache_ttl=self.number(
                "token_cache_ttl", raw.get("token_cache_ttl"), default(Settings, "token_cache_ttl")
            ),
            jwks_stale_window=self.number(
                "jwks_stale_window", raw.get("jwks_stale_window"), default(Settings, "jwks_stale_window")
            ),
            ca_bundle=ca_bundle,
            realm=str(raw.get("realm") or default(Settings, "realm")),
            oidc=oidc,
            session=self.session(session_raw),
            tls=self.tls(tls_raw),
            tracing=self.tracing(tracing_raw),
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
        scopes = csv(raw.get("scopes")) or default(OIDCClientSettings, "scopes")
        if "openid" not in scopes:
            scopes = ("openid", *scopes)
        method = str(raw.get("token_auth_method") or default(OIDCClientSettings, "token_auth_method"))
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
                "oidc.exchange_timeout", raw.get("exchange_timeout"), default(OIDCClientSettings, "exchange_timeout")
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
        audiences = csv(item.get("audiences"))
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
            token_types=tuple(t.lower().removeprefix("application/") for t in csv(item.get("token_types"))),
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
            addr = str(raw.get("redis_addr") or DEFAULT_REDIS_ADDR)
            db = self.integer("session.redis_db (SESSION_STORE_REDIS_DB)", raw.get("redis_db"), 0)
            password = str(raw.get("redis_password") or "")
            # Percent-encoded: a password with "@", "/", "#", "?" or ":" would otherwise be read as
            # part of the host or path, and Redis would be dialled at the wrong address.
            auth = f":{quote(password, safe='')}@" if password else ""
            redis_url = f"redis://{auth}{addr}/{db}"
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            self.bad("session.redis_url", "must be a redis://, rediss:// or unix:// URL")
        same_site = str(raw.get("same_site") or default(SessionSettings, "same_site")).capitalize()
        if same_site not in ("Lax", "Strict", "None"):
            self.bad("session.same_site (SESSION_SAME_SITE)", f"{same_site!r}: use Lax, Strict or None")
        secure = self.boolean("session.secure (SESSION_COOKIE_SECURE)", raw.get("secure"), True)
        if same_site == "None" and not secure:
            self.bad("session.same_site (SESSION_SAME_SITE)", "None requires secure cookies")
        return SessionSettings(
            store=store,
            redis_url=redis_url,
            cookie_name=str(raw.get("cookie_name") or default(SessionSettings, "cookie_name")),
            max_age=self.number(
                "session.max_age (SESSION_MAX_AGE)", raw.get("max_age"), default(SessionSettings, "max_age"), minimum=1
            ),
            idle_timeout=self.number(
                "session.idle_timeout (SESSION_IDLE_TIMEOUT)",
                raw.get("idle_timeout"),
                default(SessionSettings, "idle_timeout"),
                minimum=1,
            ),
            same_site=same_site,
            domain=str(raw.get("domain") or ""),
            secure=secure,
            max_sessions=self.integer(
                "session.max_sessions", raw.get("max_sessions"), default(SessionSettings, "max_sessions"), minimum=1
            ),
            cache_ttl=self.number("session.cache_ttl", raw.get("cache_ttl"), default(SessionSettings, "cache_ttl")),
        )

    def tracing(self, raw: dict[str, Any]) -> TracingSettings:
        exporter = str(raw.get("exporter") or default(TracingSettings, "exporter")).lower()
        if exporter not in _TRACING_EXPORTERS:
            self.bad("tracing.exporter (AUTHZ_TRACING_EXPORTER)", f"{exporter!r}: use otlp or console")
        ratio = self.number(
            "tracing.sample_ratio (AUTHZ_TRACING_SAMPLE_RATIO)",
            raw.get("sample_ratio"),
            default(TracingSettings, "sample_ratio"),
        )
        if not 0.0 <= ratio <= 1.0:
            self.bad("tracing.sample_ratio (AUTHZ_TRACING_SAMPLE_RATIO)", f"{ratio}: must be between 0 and 1")
        endpoint = str(raw.get("endpoint") or "").strip()
        parts = urlsplit(endpoint)
        if endpoint and (parts.scheme not in ("http", "https") or not parts.hostname):
            # Plain http is fine here: spans go to a collector, usually over the mesh's mTLS.
            self.bad("tracing.endpoint (AUTHZ_TRACING_ENDPOINT)", f"{endpoint!r} must be an http:// or https:// URL")
        return TracingSettings(
            enabled=self.boolean("tracing.enabled (AUTHZ_TRACING)", raw.get("enabled"), False),
            exporter=exporter,
            endpoint=endpoint,
            service_name=str(raw.get("service_name") or default(TracingSettings, "service_name")),
            sample_ratio=ratio,
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


__all__ = ["ENV_IGNORED", "ENV_KEYS", "ENV_REJECTED", "load_settings", "masked"]
