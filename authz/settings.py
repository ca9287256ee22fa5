"""Typed, immutable settings. Built once at start by :mod:`authz.config`; defaults are named here."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LISTEN = "0.0.0.0:9191"
DEFAULT_HTTP_LISTEN = "0.0.0.0:9090"
# The operators' gRPC admin service (Explain, Keys, Status): loopback only unless told otherwise.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9192"
DEFAULT_URL_PREFIX = "/authservice/"
DEFAULT_SCOPES = ("openid", "email")
DEFAULT_USERID_HEADER = "kubeflow-userid"
DEFAULT_USERID_CLAIM = "email"
DEFAULT_GROUPS_CLAIM = "groups"
DEFAULT_GROUPS_HEADER = "kubeflow-groups"
DEFAULT_ALGORITHMS = ("RS256", "ES256")
SUPPORTED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
DEFAULT_CLOCK_SKEW = 30.0
DEFAULT_MAX_TOKEN_BYTES = 8192
DEFAULT_SHUTDOWN_GRACE = 10.0
DEFAULT_MAX_CONCURRENT_CHECKS = 1000
DEFAULT_TOKEN_CACHE_SIZE = 10_000
# A cached verdict never outlives the token, nor this bound, so a key removed from
# the provider's JWKS stops being honoured within it.
DEFAULT_TOKEN_CACHE_TTL = 300.0
DEFAULT_SESSION_COOKIE = "authservice_session"
DEFAULT_SESSION_MAX_AGE = 86400.0
DEFAULT_SESSION_IDLE = 3600.0 * 8
DEFAULT_SAME_SITE = "Lax"

# Key fetching.
HTTP_CONNECT_TIMEOUT = 3.0
HTTP_READ_TIMEOUT = 5.0
HTTP_MAX_BODY = 1 << 20
HTTP_MAX_REDIRECTS = 3
DEFAULT_JWKS_REFRESH = 900.0  # when the provider sends no Cache-Control max-age
JWKS_REFRESH_MIN = 60.0
JWKS_REFRESH_MAX = 86400.0
DEFAULT_JWKS_STALE_WINDOW = 6 * 3600.0
UNKNOWN_KID_MIN_INTERVAL = 30.0
RETRY_BACKOFF_INITIAL = 0.5
RETRY_BACKOFF_MAX = 30.0
MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """One trusted token issuer (an OIDC provider, or the Kubernetes service-account issuer)."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    user_claim: str = DEFAULT_USERID_CLAIM
    groups_claim: str = DEFAULT_GROUPS_CLAIM
    user_prefix: str = ""
    ca_bundle: str | None = None
    jwks_uri: str | None = None
    jwks_file: str | None = None
    # Accepted JOSE ``typ`` values (case-insensitive, "application/" prefix ignored);
    # empty: any or none. Set e.g. ("at+jwt",) to refuse ID tokens as access tokens.
    token_types: tuple[str, ...] = ()
    required: bool = True
    # A bearer token file sent when fetching discovery/JWKS (the Kubernetes API server's
    # /openid/v1/jwks needs one: /var/run/secrets/kubernetes.io/serviceaccount/token).
    key_fetch_token_file: str | None = None


@dataclass(frozen=True, slots=True)
class OIDCClientSettings:
    """The browser login client (used by the login flow)."""

    client_id: str = ""
    client_secret: str = ""
    redirect_url: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    auth_url: str = ""
    token_auth_method: str = "client_secret_basic"
    after_login_url: str = ""
    after_logout_url: str = ""
    exchange_timeout: float = 4.0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    store: str = "memory"
    redis_url: str = ""
    cookie_name: str = DEFAULT_SESSION_COOKIE
    max_age: float = DEFAULT_SESSION_MAX_AGE
    idle_timeout: float = DEFAULT_SESSION_IDLE
    same_site: str = DEFAULT_SAME_SITE
    domain: str = ""
    secure: bool = True
    max_sessions: int = 100_000
    cache_ttl: float = 2.0


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry tracing of Check (needs the ``otel`` extra); off by default."""

    enabled: bool = False
    exporter: str = "otlp"  # otlp (gRPC, OTEL_EXPORTER_OTLP_* variables apply) | console
    endpoint: str = ""  # OTLP endpoint; "" leaves it to OTEL_EXPORTER_OTLP_ENDPOINT
    service_name: str = "authz"
    sample_ratio: float = 1.0  # for traces the incoming context has not sampled already


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything authz needs, validated. Immutable after start."""

    issuers: tuple[IssuerSettings, ...]
    listen: str = DEFAULT_LISTEN
    http_listen: str = DEFAULT_HTTP_LISTEN
    admin_listen: str = DEFAULT_ADMIN_LISTEN
    workers: int = 1
    log_level: str = "INFO"
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    max_concurrent_checks: int = DEFAULT_MAX_CONCURRENT_CHECKS
    url_prefix: str = DEFAULT_URL_PREFIX
    skip_auth_urls: tuple[str, ...] = ()
    userid_header: str = DEFAULT_USERID_HEADER
    groups_header: str = DEFAULT_GROUPS_HEADER
    groups_allowlist: tuple[str, ...] = ("*",)
    clock_skew: float = DEFAULT_CLOCK_SKEW
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE
    token_cache_ttl: float = DEFAULT_TOKEN_CACHE_TTL
    jwks_stale_window: float = DEFAULT_JWKS_STALE_WINDOW
    ca_bundle: str | None = None
    realm: str = "authz"
    oidc: OIDCClientSettings = field(default_factory=OIDCClientSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # The login issuer (OIDC_PROVIDER); "" when only bearer tokens are accepted.
    login_issuer: str = ""

    @property
    def allow_all_groups(self) -> bool:
        return "*" in self.groups_allowlist

    @property
    def login_enabled(self) -> bool:
        """Browser login needs the provider and an absolute callback URL (REDIRECT_URL)."""
        return bool(self.login_issuer and self.oidc.redirect_url)
