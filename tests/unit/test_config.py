"""load_settings: oidc-authservice environment names and defaults, the YAML file, and one bad
input per validation rule (each problem must name its field); plus ``authz check-config``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.connection import parse_url

from authz.config import ENV_IGNORED, ENV_REJECTED, load_settings, masked
from authz.errors import ConfigError
from authz.settings import IssuerSettings

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-client-value"
GOOD = {
    "OIDC_PROVIDER": "https://idp.example.com/dex",
    "CLIENT_ID": "kubeflow-oidc-authservice",
    "CLIENT_SECRET": SECRET,
    "REDIRECT_URL": "https://kubeflow.example.com/authservice/oidc/callback",
}


def load(env: dict[str, str] | None = None, config: dict[str, Any] | str | None = None, tmp_path: Path | None = None):
    path = None
    if config is not None:
        assert tmp_path is not None
        file = tmp_path / "authz.yaml"
        file.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        path = str(file)
    return load_settings(dict(env or {}), path)


def problems(env: dict[str, str] | None = None, config: Any = None, tmp_path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(env, config, tmp_path)
    assert info.value.problems, "ConfigError without problems"
    return info.value.problems


# -- environment only, oidc-authservice names -----------------------------------------


def test_env_only_config_gets_oidc_authservice_defaults() -> None:
    settings, warnings = load(GOOD)
    assert warnings == []
    assert settings.issuers == (
        IssuerSettings(
            issuer="https://idp.example.com/dex",
            audiences=("kubeflow-oidc-authservice",),
            algorithms=("RS256", "ES256"),
            user_claim="email",
            groups_claim="groups",
            user_prefix="",
        ),
    )
    assert settings.login_issuer == "https://idp.example.com/dex"
    assert settings.oidc.client_id == "kubeflow-oidc-authservice"
    assert settings.oidc.client_secret == SECRET
    assert settings.url_prefix == "/authservice/"
    assert settings.oidc.scopes == ("openid", "email")
    assert settings.skip_auth_urls == ()
    assert settings.userid_header == "kubeflow-userid"
    assert settings.groups_header == "kubeflow-groups"
    assert settings.groups_allowlist == ("*",)
    assert settings.session.store == "memory"
    assert (settings.session.secure, settings.session.same_site) == (True, "Lax")


def test_env_values_are_applied() -> None:
    settings, _ = load(
        {
            **GOOD,
            "AUTHSERVICE_URL_PREFIX": "/login/",
            "OIDC_SCOPES": "profile,email groups",
            "SKIP_AUTH_URLS": "/dex/,/public/ , /healthz",
            "USERID_HEADER": "X-Auth-User",
            "USERID_PREFIX": "oidc:",
            "USERID_CLAIM": "preferred_username",
            "GROUPS_CLAIM": "roles",
            "GROUPS_HEADER": "x-auth-groups",
            "GROUPS_ALLOWLIST": "admins,ops",
        }
    )
    assert settings.url_prefix == "/login/"
    assert settings.oidc.scopes == ("openid", "profile", "email", "groups")
    assert settings.skip_auth_urls == ("/dex/", "/public/", "/healthz")
    assert (settings.userid_header, settings.groups_header) == ("x-auth-user", "x-auth-groups")
    issuer = settings.issuers[0]
    assert (issuer.user_prefix, issuer.user_claim, issuer.groups_claim) == ("oidc:", "preferred_username", "roles")
    assert settings.groups_allowlist == ("admins", "ops")


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [("openid", ("openid",)), ("email,openid", ("email", "openid")), ("profile", ("openid", "profile"))],
)
def test_openid_scope_is_always_requested(scopes: str, expected: tuple[str, ...]) -> None:
    assert load({**GOOD, "OIDC_SCOPES": scopes})[0].oidc.scopes == expected


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:5556/dex", "http://localhost:5556/dex", "http://[::1]:5556/dex", "http://127.0.0.2/"],
)
def test_plain_http_issuer_is_allowed_on_loopback(issuer: str) -> None:
    assert load({**GOOD, "OIDC_PROVIDER": issuer})[0].issuers[0].issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    ["http://dex.auth.svc.cluster.local:5556/dex", "http://localhost.evil.test/", "http://127.0.0.1.nip.io/",
     "http://10.0.0.1/", "http://0.0.0.0:5556/"],
)  # fmt: skip
def test_plain_http_issuer_elsewhere_is_a_problem(issuer: str) -> None:
    assert problems({**GOOD, "OIDC_PROVIDER": issuer}) == [
        f"oidc.issuer (OIDC_PROVIDER): {issuer!r} must use https:// (plain http only on loopback)"
    ]


@pytest.mark.parametrize("name", sorted(ENV_REJECTED))
def test_rejected_oidc_authservice_variable_is_a_problem(name: str) -> None:
    found = problems({**GOOD, name: "anything"})
    assert len(found) == 1 and found[0].startswith(f"{name}: not supported by authz")


@pytest.mark.parametrize("name", sorted(ENV_IGNORED))
def test_ignored_oidc_authservice_variable_is_a_warning(name: str) -> None:
    settings, warnings = load({**GOOD, name: "anything"})
    assert warnings == [f"{name} is ignored: {ENV_IGNORED[name]}"]
    assert settings.issuers[0].issuer == GOOD["OIDC_PROVIDER"]


def test_provider_without_redirect_url_warns_that_browser_login_is_off() -> None:
    settings, warnings = load({k: v for k, v in GOOD.items() if k != "REDIRECT_URL"})
    assert not settings.login_enabled
    assert len(warnings) == 1 and warnings[0].startswith("browser login is off: set REDIRECT_URL")
    assert load(GOOD)[0].login_enabled


def test_empty_variables_count_as_unset() -> None:
    settings, warnings = load({**GOOD, "USERID_HEADER": "", "USERID_TRANSFORMERS": "", "SESSION_STORE_PATH": ""})
    assert settings.userid_header == "kubeflow-userid"
    assert warnings == []


# -- sessions ------------------------------------------------------------------------


def test_redis_session_store_builds_a_url_from_addr_password_and_db() -> None:
    settings, _ = load(
        {
            **GOOD,
            "SESSION_STORE_TYPE": "redis",
            "SESSION_STORE_REDIS_ADDR": "redis.auth.svc:6379",
            "SESSION_STORE_REDIS_PWD": "hunter2",
            "SESSION_STORE_REDIS_DB": "2",
        }
    )
    assert settings.session.store == "redis"
    assert settings.session.redis_url == "redis://:hunter2@redis.auth.svc:6379/2"


def test_redis_session_store_defaults() -> None:
    settings, _ = load({**GOOD, "SESSION_STORE_TYPE": "redis"})
    assert settings.session.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("password", ["p@ss/w#rd", "a:b?c%d", "with space", "ümlaut"])
def test_redis_password_with_url_characters_reaches_redis_intact(password: str) -> None:
    settings, _ = load(
        {
            **GOOD,
            "SESSION_STORE_TYPE": "redis",
            "SESSION_STORE_REDIS_ADDR": "redis:6379",
            "SESSION_STORE_REDIS_PWD": password,
        }
    )
    # What the Redis client will connect with.
    assert parse_url(settings.session.redis_url) == {"password": password, "host": "redis", "port": 6379, "db": 0}


def test_same_site_none_needs_secure_cookies() -> None:
    env = {**GOOD, "SESSION_SAME_SITE": "None", "SESSION_COOKIE_SECURE": "false"}
    assert problems(env) == ["session.same_site (SESSION_SAME_SITE): None requires secure cookies"]
    settings, _ = load({**GOOD, "SESSION_SAME_SITE": "none"})
    assert (settings.session.same_site, settings.session.secure) == ("None", True)


def test_masked_hides_client_secret_and_redis_password() -> None:
    settings, _ = load(
        {**GOOD, "SESSION_STORE_TYPE": "redis", "SESSION_STORE_REDIS_ADDR": "redis:6379",
         "SESSION_STORE_REDIS_PWD": "hunter2@x", "SESSION_STORE_REDIS_DB": "1"}
    )  # fmt: skip
    data = masked(settings)
    text = json.dumps(data)
    assert SECRET not in text and "hunter2" not in text
    assert data["oidc"]["client_secret"] == "***"
    assert data["session"]["redis_url"] == "redis://***@redis:6379/1"
    assert data["oidc"]["client_id"] == GOOD["CLIENT_ID"]  # only secrets are masked


def test_masked_leaves_empty_secrets_empty() -> None:
    data = masked(load({k: v for k, v in GOOD.items() if k != "CLIENT_SECRET"})[0])
    assert data["oidc"]["client_secret"] == ""
    assert data["session"]["redis_url"] == ""


# -- YAML file -----------------------------------------------------------------------

JWKS_DOC = {"keys": []}


def test_yaml_with_several_issuers(tmp_path: Path) -> None:
    jwks_file = tmp_path / "sa-jwks.json"
    jwks_file.write_text(json.dumps(JWKS_DOC))
    config = {
        "userid_prefix": "oidc:",
        "oidc": {
            "issuer": "https://idp.example.com/dex",
            "client_id": "kubeflow",
            "client_secret": SECRET,
            "redirect_url": "https://kubeflow.example.com/authservice/oidc/callback",
        },
        "issuers": [
            {
                "issuer": "https://kubernetes.default.svc.cluster.local",
                "audiences": ["kubeflow", "istio-ingressgateway"],
                "algorithms": ["RS256"],
                "user_claim": "sub",
                "user_prefix": "",
                "jwks_file": str(jwks_file),
                "token_types": ["application/at+jwt", "JWT"],
            },
            {"issuer": "https://ci.example.com", "audiences": "deploy", "jwks_uri": "https://ci.example.com/jwks"},
        ],
    }
    settings, warnings = load(config=config, tmp_path=tmp_path)
    assert warnings == []
    login, sa, ci = settings.issuers
    assert (login.issuer, login.audiences, login.user_prefix) == ("https://idp.example.com/dex", ("kubeflow",), "oidc:")
    assert sa == IssuerSettings(
        issuer="https://kubernetes.default.svc.cluster.local",
        audiences=("kubeflow", "istio-ingressgateway"),
        algorithms=("RS256",),
        user_claim="sub",
        user_prefix="",
        jwks_file=str(jwks_file),
        token_types=("at+jwt", "jwt"),
    )
    assert (ci.audiences, ci.jwks_uri, ci.user_prefix, ci.user_claim) == (
        ("deploy",), "https://ci.example.com/jwks", "oidc:", "email"
    )  # fmt: skip


def test_env_overrides_the_file(tmp_path: Path) -> None:
    config = {
        "userid_header": "x-file-user",
        "userid_prefix": "file:",
        "groups_allowlist": ["from-file"],
        "oidc": {"issuer": "https://file-idp.example.com", "client_id": "file-client"},
    }
    env = {"OIDC_PROVIDER": "https://env-idp.example.com", "USERID_HEADER": "x-env-user", "USERID_PREFIX": ""}
    settings, _ = load(env, config, tmp_path)
    assert settings.issuers[0].issuer == "https://env-idp.example.com"
    assert settings.issuers[0].audiences == ("file-client",)  # not overridden: kept from the file
    assert settings.userid_header == "x-env-user"
    assert settings.issuers[0].user_prefix == ""  # an empty USERID_PREFIX still overrides
    assert settings.groups_allowlist == ("from-file",)


def test_config_path_from_authz_config_variable(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({"oidc": {"issuer": "https://idp.example.com", "client_id": "c"}}))
    settings, _ = load_settings({"AUTHZ_CONFIG": str(file)}, None)
    assert settings.login_issuer == "https://idp.example.com"


# -- one input per validation rule -------------------------------------------------------
# Each case: (environment added to GOOD, YAML config or None, the problem expected, exactly).

ENV_RULES: dict[str, tuple[dict[str, str], str]] = {
    "issuer-not-a-url": ({"OIDC_PROVIDER": "idp.example.com"}, "oidc.issuer (OIDC_PROVIDER): 'idp.example.com' must be an absolute https:// URL"),
    "issuer-ftp": ({"OIDC_PROVIDER": "ftp://idp.example.com"}, "oidc.issuer (OIDC_PROVIDER): 'ftp://idp.example.com' must be an absolute https:// URL"),
    "client-id-missing": ({"CLIENT_ID": ""}, "oidc.client_id (CLIENT_ID): required when OIDC_PROVIDER is set"),
    "url-prefix-slashes": ({"AUTHSERVICE_URL_PREFIX": "authservice"}, "url_prefix (AUTHSERVICE_URL_PREFIX): 'authservice' must start and end with '/'"),
    "skip-url-relative": ({"SKIP_AUTH_URLS": "/ok/,dex/"}, "skip_auth_urls (SKIP_AUTH_URLS): 'dex/' must be a path starting with '/'"),
    "skip-url-query": ({"SKIP_AUTH_URLS": "/dex/?x=1"}, "skip_auth_urls (SKIP_AUTH_URLS): '/dex/?x=1' must be a path starting with '/'"),
    "userid-header-name": ({"USERID_HEADER": "kubeflow:userid"}, "userid_header (USERID_HEADER): 'kubeflow:userid' is not a valid header name (letters, digits, '-')"),
    "groups-header-name": ({"GROUPS_HEADER": "groups\r\nx"}, "groups_header (GROUPS_HEADER): 'groups\\r\\nx' is not a valid header name (letters, digits, '-')"),
    "groups-header-same": ({"GROUPS_HEADER": "Kubeflow-UserID"}, "groups_header (GROUPS_HEADER): must differ from USERID_HEADER"),
    "log-level": ({"LOG_LEVEL": "loud"}, "log_level (LOG_LEVEL): 'LOUD': choose one of CRITICAL, DEBUG, ERROR, FATAL, INFO, WARN, WARNING"),
    "listen-no-port": ({"AUTHZ_LISTEN": "9191"}, "listen (AUTHZ_LISTEN): '9191' must be HOST:PORT, e.g. 0.0.0.0:9191"),
    "http-listen-port-range": ({"AUTHZ_HTTP_LISTEN": "0.0.0.0:99999"}, "http_listen (AUTHZ_HTTP_LISTEN): '0.0.0.0:99999' must be HOST:PORT, e.g. 0.0.0.0:9191"),
    "workers-zero": ({"AUTHZ_WORKERS": "0"}, "workers (AUTHZ_WORKERS): must be >= 1, got 0"),
    "workers-word": ({"AUTHZ_WORKERS": "two"}, "workers (AUTHZ_WORKERS): must be an integer, got 'two'"),
    "grace-negative": ({"AUTHZ_SHUTDOWN_GRACE": "-1"}, "shutdown_grace (AUTHZ_SHUTDOWN_GRACE): must be a finite number >= 0, got '-1'"),
    "grace-nan": ({"AUTHZ_SHUTDOWN_GRACE": "nan"}, "shutdown_grace (AUTHZ_SHUTDOWN_GRACE): must be a finite number >= 0, got 'nan'"),
    "grace-word": ({"AUTHZ_SHUTDOWN_GRACE": "soon"}, "shutdown_grace (AUTHZ_SHUTDOWN_GRACE): must be a number, got 'soon'"),
    "token-auth-method": ({"OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"}, "oidc.token_auth_method: 'private_key_jwt': use client_secret_basic or client_secret_post"),
    "redirect-url-http": ({"REDIRECT_URL": "http://kubeflow.example.com/authservice/oidc/callback"}, "oidc.redirect_url (REDIRECT_URL): 'http://kubeflow.example.com/authservice/oidc/callback' must use https:// (plain http only on loopback)"),
    "auth-url-javascript": ({"OIDC_AUTH_URL": "javascript:alert(1)"}, "oidc.auth_url (OIDC_AUTH_URL): 'javascript:alert(1)' must be an absolute https:// URL"),
    "ca-bundle-missing": ({"CA_BUNDLE": "/nonexistent/ca.pem"}, "ca_bundle (CA_BUNDLE): '/nonexistent/ca.pem' is not a readable file"),
    "session-store-type": ({"SESSION_STORE_TYPE": "mongodb"}, "session.store (SESSION_STORE_TYPE): 'mongodb': use memory or redis"),
    "redis-db": ({"SESSION_STORE_TYPE": "redis", "SESSION_STORE_REDIS_DB": "first"}, "session.redis_db (SESSION_STORE_REDIS_DB): must be an integer, got 'first'"),
    "same-site-value": ({"SESSION_SAME_SITE": "sometimes"}, "session.same_site (SESSION_SAME_SITE): 'Sometimes': use Lax, Strict or None"),
    "same-site-none-insecure": ({"SESSION_SAME_SITE": "None", "SESSION_COOKIE_SECURE": "0"}, "session.same_site (SESSION_SAME_SITE): None requires secure cookies"),
    "cookie-secure-word": ({"SESSION_COOKIE_SECURE": "maybe"}, "session.secure (SESSION_COOKIE_SECURE): must be true or false, got 'maybe'"),
    "session-max-age": ({"SESSION_MAX_AGE": "0"}, "session.max_age (SESSION_MAX_AGE): must be a finite number >= 1, got '0'"),
    "session-idle": ({"SESSION_IDLE_TIMEOUT": "inf"}, "session.idle_timeout (SESSION_IDLE_TIMEOUT): must be a finite number >= 1, got 'inf'"),
    "no-issuer": ({"OIDC_PROVIDER": "", "CLIENT_ID": ""}, "OIDC_PROVIDER: no trusted issuer: set OIDC_PROVIDER or issuers[] in YAML"),
}  # fmt: skip


@pytest.mark.parametrize("rule", list(ENV_RULES))
def test_env_rule(rule: str) -> None:
    extra, expected = ENV_RULES[rule]
    env = {k: v for k, v in {**GOOD, **extra}.items() if v != ""}  # "" here means: unset
    assert problems(env) == [expected]


def test_tls_needs_both_cert_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    assert problems({**GOOD, "AUTHZ_TLS_CERT": str(cert)}) == [
        "tls: set both cert_file (AUTHZ_TLS_CERT) and key_file (AUTHZ_TLS_KEY)"
    ]


def test_unreadable_tls_key_is_a_problem(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    assert problems({**GOOD, "AUTHZ_TLS_CERT": str(cert), "AUTHZ_TLS_KEY": "/nonexistent/key.pem"}) == [
        "tls.key_file (AUTHZ_TLS_KEY): '/nonexistent/key.pem' is not a readable file"
    ]


def test_client_ca_needs_server_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    assert problems({**GOOD, "AUTHZ_TLS_CLIENT_CA": str(ca)}) == [
        "tls.client_ca_file: client certificates need server TLS: set cert_file and key_file"
    ]


YAML_RULES: dict[str, tuple[Any, str]] = {
    "unknown-top-key": ({"userid_heder": "x"}, "userid_heder: unknown setting; known: "),
    "unknown-oidc-key": ({"oidc": {"client_secrets": "x"}}, "oidc.client_secrets: unknown setting; known: "),
    "unknown-session-key": ({"session": {"redis_pass": "x"}}, "session.redis_pass: unknown setting; known: "),
    "unknown-tls-key": ({"tls": {"cert": "x"}}, "tls.cert: unknown setting; known: "),
    "unknown-issuer-key": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "audience": "a"}]}, "issuers[0].audience: unknown setting; known: "),
    "section-not-mapping": ({"session": ["redis"]}, "session: must be a mapping"),
    "issuers-not-list": ({"issuers": {"issuer": "https://a.test"}}, "issuers: must be a list of issuer mappings"),
    "issuer-not-mapping": ({"issuers": ["https://a.test"]}, "issuers[0]: must be a mapping with at least issuer and audiences"),
    "issuer-url-missing": ({"issuers": [{"audiences": ["a"]}]}, "issuers[0].issuer: required: set an absolute https:// URL"),
    "issuer-audiences-missing": ({"issuers": [{"issuer": "https://a.test"}]}, "issuers[0].audiences: required: list the audiences tokens must carry"),
    "issuer-hs256": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "algorithms": ["RS256", "HS256"]}]}, "issuers[0].algorithms: 'HS256' is not accepted (never 'none' or HMAC); choose from "),
    "issuer-none": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "algorithms": "none"}]}, "issuers[0].algorithms: 'none' is not accepted (never 'none' or HMAC); choose from "),
    "oidc-hs512": ({"oidc": {"algorithms": ["HS512"]}}, "oidc.algorithms: 'HS512' is not accepted (never 'none' or HMAC); choose from "),
    "issuer-jwks-uri-http": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "jwks_uri": "http://a.test/keys"}]}, "issuers[0].jwks_uri: 'http://a.test/keys' must use https:// (plain http only on loopback)"),
    "issuer-jwks-file-missing": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "jwks_file": "/nonexistent.json"}]}, "issuers[0].jwks_file: '/nonexistent.json' is not a readable file"),
    "issuer-required-word": ({"issuers": [{"issuer": "https://a.test", "audiences": ["a"], "required": "sometimes"}]}, "issuers[0].required: must be true or false, got 'sometimes'"),
    "issuer-twice": ({"issuers": [{"issuer": GOOD["OIDC_PROVIDER"], "audiences": ["a"]}]}, f"issuers: issuer {GOOD['OIDC_PROVIDER']!r} is listed twice"),
    "max-token-bytes": ({"max_token_bytes": 100}, "max_token_bytes: must be >= 256, got 100"),
    "clock-skew": ({"clock_skew": -5}, "clock_skew: must be a finite number >= 0, got -5"),
    "redis-url-scheme": ({"session": {"redis_url": "http://redis:6379"}}, "session.redis_url: must be a redis://, rediss:// or unix:// URL"),
    "top-level-list": ("- a\n- b\n", "--config {path}: must be a mapping of settings at the top level"),
    "yaml-syntax": ("oidc: [unclosed\n", "--config {path}: not valid YAML ("),
}  # fmt: skip


@pytest.mark.parametrize("rule", list(YAML_RULES))
def test_yaml_rule(rule: str, tmp_path: Path) -> None:
    config, expected = YAML_RULES[rule]
    found = problems(GOOD, config, tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(expected.format(path=tmp_path / "authz.yaml"))


def test_both_jwks_uri_and_jwks_file_is_a_problem(tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text("{}")
    item = {"issuer": "https://a.test", "audiences": ["a"], "jwks_uri": "https://a.test/k", "jwks_file": str(jwks_file)}
    assert problems(GOOD, {"issuers": [item]}, tmp_path) == ["issuers[0]: set jwks_uri or jwks_file, not both"]


def test_unreadable_config_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(GOOD, str(missing))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"--config {missing}: cannot read (")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    env = {
        "OIDC_PROVIDER": "http://dex.auth.svc:5556/dex",
        "USERID_HEADER": "bad header",
        "LOG_LEVEL": "loud",
        "AUTHSERVICE_URL_PREFIX": "authservice",
        "SESSION_SAME_SITE": "sometimes",
        "AUTHZ_WORKERS": "0",
        "USERID_TRANSFORMERS": "[]",
    }
    config = {"userid_heder": "x", "issuers": [{"issuer": "https://a.test", "algorithms": ["HS256"]}]}
    found = problems(env, config, tmp_path)
    for field in (
        "USERID_TRANSFORMERS:",
        "userid_heder:",
        "oidc.issuer (OIDC_PROVIDER):",
        "oidc.client_id (CLIENT_ID):",
        "issuers[0].audiences:",
        "issuers[0].algorithms:",
        "url_prefix (AUTHSERVICE_URL_PREFIX):",
        "log_level (LOG_LEVEL):",
        "workers (AUTHZ_WORKERS):",
        "userid_header (USERID_HEADER):",
        "session.same_site (SESSION_SAME_SITE):",
    ):
        assert sum(p.startswith(field) for p in found) == 1, (field, found)
    assert len(found) == 11


# -- authz check-config ----------------------------------------------------------------


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [sys.executable, "-m", "authz", "check-config"],
        env=clean, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_check_config_with_bad_env_exits_2_and_lists_every_problem() -> None:
    env = {"OIDC_PROVIDER": "http://dex:5556/dex", "USERID_HEADER": "bad header", "USERID_TRANSFORMERS": "x",
           "CLIENT_SECRET": SECRET}  # fmt: skip
    expected = problems(env)
    assert len(expected) == 4
    result = check_config(env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "authz: invalid configuration:"
    assert lines[1:] == [f"  - {p}" for p in expected]
    assert SECRET not in result.stderr


def test_check_config_with_good_env_prints_json_without_the_secret() -> None:
    env = {**GOOD, "SESSION_STORE_TYPE": "redis", "SESSION_STORE_REDIS_PWD": "hunter2", "SESSION_STORE_PATH": "/x"}
    result = check_config(env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["issuers"][0]["issuer"] == GOOD["OIDC_PROVIDER"]
    assert data["oidc"]["client_secret"] == "***"
    assert data["session"]["redis_url"] == "redis://***@127.0.0.1:6379/0"
    for secret in (SECRET, "hunter2"):
        assert secret not in result.stdout and secret not in result.stderr
    assert "SESSION_STORE_PATH is ignored" in result.stderr
