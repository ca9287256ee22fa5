"""oidc-authservice compatibility: its environment variables, mapped onto authz's settings.

Variables that only affect oidc-authservice's own pages, ports or storage are accepted with a
warning; those whose meaning authz does not implement stop start-up, because ignoring them
could change who gets in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Environment variable -> dotted key in the YAML structure.
ENV_KEYS: dict[str, str] = {
    "AUTHZ_LISTEN": "listen",
    "AUTHZ_HTTP_LISTEN": "http_listen",
    "AUTHZ_ADMIN_LISTEN": "admin_listen",
    "AUTHZ_WORKERS": "workers",
    "AUTHZ_SHUTDOWN_GRACE": "shutdown_grace",
    "AUTHZ_MAX_CONCURRENT_CHECKS": "max_concurrent_checks",
    "AUTHZ_TLS_CERT": "tls.cert_file",
    "AUTHZ_TLS_KEY": "tls.key_file",
    "AUTHZ_TLS_CLIENT_CA": "tls.client_ca_file",
    "AUTHZ_TRACING": "tracing.enabled",
    "AUTHZ_TRACING_EXPORTER": "tracing.exporter",
    "AUTHZ_TRACING_ENDPOINT": "tracing.endpoint",
    "AUTHZ_TRACING_SAMPLE_RATIO": "tracing.sample_ratio",
    "OTEL_SERVICE_NAME": "tracing.service_name",
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

# The ENV_KEYS names that arrikto/oidc-authservice reads too, each with how authz's reading
# differs ("" where it does not). Documentation only (docs/configuration.md): every other name in
# ENV_KEYS is authz's own.
OIDC_AUTHSERVICE_NAMES: dict[str, str] = {
    "OIDC_PROVIDER": "",
    "OIDC_AUTH_URL": "",
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    "REDIRECT_URL": (
        "no default: without it browser login is off (oidc-authservice derives it from `AUTHSERVICE_URL_PREFIX`)"
    ),
    "OIDC_SCOPES": "",
    "AFTER_LOGIN_URL": "used only when there is no safe page to return to",
    "AFTER_LOGOUT_URL": "defaults to the site's `/`",
    "AUTHSERVICE_URL_PREFIX": "a path (`/authservice/`), not an absolute URL",
    "SKIP_AUTH_URLS": "",
    "USERID_HEADER": "",
    "USERID_PREFIX": "",
    "USERID_CLAIM": "",
    "GROUPS_CLAIM": "",
    "GROUPS_HEADER": "",
    "GROUPS_ALLOWLIST": "",
    "CA_BUNDLE": "",
    "LOG_LEVEL": "",
    "SESSION_STORE_TYPE": "`boltdb` means `memory`; `redisfailover` is not supported",
    "SESSION_STORE_REDIS_ADDR": "",
    "SESSION_STORE_REDIS_PWD": "",
    "SESSION_STORE_REDIS_DB": "",
    "SESSION_MAX_AGE": "",
    "SESSION_SAME_SITE": "",
    "SESSION_DOMAIN": "",
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


def overlay_env(raw: dict[str, Any], env: Mapping[str, str], problems: list[str], warnings: list[str]) -> None:
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
