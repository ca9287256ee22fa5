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
DEFAULT_REDIS_ADDR = "127.0.0.1:6379"  # SESSION_STORE_REDIS_ADDR, when no redis_url is given

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


def _doc(text: str, **extra: object) -> dict[str, object]:
    """Field metadata: what the setting means, for docs/configuration.md (``python -m authz.config_docs``)."""
    return {"doc": text, **extra}


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """One trusted token issuer (an OIDC provider, or the Kubernetes service-account issuer)."""

    issuer: str = field(
        metadata=_doc(
            "Issuer URL; a token's `iss` must equal it. Discovery is read from "
            "`<issuer>/.well-known/openid-configuration` unless `jwks_uri` or `jwks_file` is set."
        )
    )
    audiences: tuple[str, ...] = field(
        metadata=_doc("Accepted `aud` values; when a token names several audiences, its `azp` must be one of these.")
    )
    algorithms: tuple[str, ...] = field(
        default=DEFAULT_ALGORITHMS,
        metadata=_doc("Accepted signature algorithms: RS, PS or ES with 256, 384 or 512 (never `none`, never HMAC)."),
    )
    user_claim: str = field(
        default=DEFAULT_USERID_CLAIM, metadata=_doc("Claim that names the user; default: the top-level `userid_claim`.")
    )
    groups_claim: str = field(
        default=DEFAULT_GROUPS_CLAIM,
        metadata=_doc("Claim with the user's groups; default: the top-level `groups_claim`."),
    )
    user_prefix: str = field(
        default="", metadata=_doc("Prepended to the user claim's value; default: the top-level `userid_prefix`.")
    )
    ca_bundle: str | None = field(
        default=None,
        metadata=_doc("PEM file to verify this issuer's TLS certificate; default: the top-level `ca_bundle`."),
    )
    jwks_uri: str | None = field(
        default=None,
        metadata=_doc("URL of the issuer's JWKS; unset: the `jwks_uri` of discovery. Not with `jwks_file`."),
    )
    jwks_file: str | None = field(
        default=None, metadata=_doc("A local JWKS file, read instead of fetching keys. Not with `jwks_uri`.")
    )
    # Accepted JOSE ``typ`` values (case-insensitive, "application/" prefix ignored);
    # empty: any or none. Set e.g. ("at+jwt",) to refuse ID tokens as access tokens.
    token_types: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Accepted JOSE `typ` values (case-insensitive, an `application/` prefix ignored), e.g. `[at+jwt]` "
            "to refuse ID tokens as access tokens; empty: any `typ`, or none."
        ),
    )
    required: bool = field(
        default=True,
        metadata=_doc(
            "`true`: authz is not ready (`/readyz`, gRPC health) until this issuer's keys are loaded; "
            "`false`: ready without them."
        ),
    )
    # A bearer token file sent when fetching discovery/JWKS (the Kubernetes API server's
    # /openid/v1/jwks needs one: /var/run/secrets/kubernetes.io/serviceaccount/token).
    key_fetch_token_file: str | None = field(
        default=None,
        metadata=_doc(
            "A file holding a bearer token sent when fetching discovery and keys (the Kubernetes API server's "
            "`/openid/v1/jwks` needs one: `/var/run/secrets/kubernetes.io/serviceaccount/token`)."
        ),
    )


@dataclass(frozen=True, slots=True)
class OIDCClientSettings:
    """The browser login client (used by the login flow)."""

    client_id: str = field(
        default="",
        metadata=_doc(
            "OIDC client id; required with `oidc.issuer`. Also the accepted audience of the login provider's "
            "tokens, unless `oidc.audiences` is set."
        ),
    )
    client_secret: str = field(
        default="",
        metadata=_doc(
            "Client secret for the token endpoint. Masked by `check-config`, never logged; set it in the "
            "environment (from a Secret), not in the YAML file."
        ),
    )
    redirect_url: str = field(
        default="",
        metadata=_doc(
            "Absolute URL of the login callback on the gateway, e.g. `https://host/authservice/oidc/callback`. "
            "Empty: browser login is off (with a warning) and only bearer tokens are accepted."
        ),
    )
    scopes: tuple[str, ...] = field(
        default=DEFAULT_SCOPES,
        metadata=_doc("Scopes to request; `openid` is always added. Kubeflow: `openid,email,groups,profile`."),
    )
    auth_url: str = field(
        default="", metadata=_doc("Authorization endpoint to send browsers to; empty: the one from discovery.")
    )
    token_auth_method: str = field(
        default="client_secret_basic",
        metadata=_doc("How authz authenticates at the token endpoint: `client_secret_basic` or `client_secret_post`."),
    )
    after_login_url: str = field(
        default="",
        metadata=_doc("Where a browser goes after login when there is no safe page to return to; empty: `/`."),
    )
    after_logout_url: str = field(
        default="",
        metadata=_doc(
            "Where the browser lands after logout (the `post_logout_redirect_uri`; a path is taken relative to "
            "`redirect_url`'s origin); empty: the site's `/`. Register it at the provider."
        ),
    )
    exchange_timeout: float = field(
        default=4.0,
        metadata=_doc("Seconds each call to the provider's token and revocation endpoints may take."),
    )


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Browser sessions: where they are kept, and their cookie."""

    store: str = field(
        default="memory",
        metadata=_doc(
            "`memory` (per replica) or `redis` (shared by replicas); oidc-authservice's `boltdb` means `memory`."
        ),
    )
    redis_url: str = field(
        default="",
        metadata=_doc(
            "Redis URL (`redis://`, `rediss://` or `unix://`). Empty with `store: redis`: built from "
            "`redis_addr`, `redis_password` and `redis_db`. Its password is masked by `check-config`."
        ),
    )
    cookie_name: str = field(
        default=DEFAULT_SESSION_COOKIE,
        metadata=_doc("Name of the session cookie; it holds only a random session id, replaced at every login."),
    )
    max_age: float = field(
        default=DEFAULT_SESSION_MAX_AGE, metadata=_doc("Seconds a session (and its cookie) lives at most.")
    )
    idle_timeout: float = field(
        default=DEFAULT_SESSION_IDLE, metadata=_doc("Seconds a session survives without a request.")
    )
    same_site: str = field(
        default=DEFAULT_SAME_SITE,
        metadata=_doc(
            "Cookie `SameSite`: `Lax`, `Strict` or `None` (`None` needs `secure`). With `Strict` the callback "
            "answers with a small page that navigates back."
        ),
    )
    domain: str = field(default="", metadata=_doc("Cookie `Domain`; empty: the cookie is sent to its host only."))
    secure: bool = field(
        default=True,
        metadata=_doc("Send cookies over HTTPS only. `false` only for plain-HTTP development."),
    )
    max_sessions: int = field(
        default=100_000,
        metadata=_doc(
            "Sessions kept at most by the `memory` store; also bounds a replica's cache of sessions read from Redis."
        ),
    )
    cache_ttl: float = field(
        default=2.0,
        metadata=_doc(
            "Seconds a replica reuses a session read from Redis, so a logout reaches every replica within it."
        ),
    )


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """TLS on the gRPC listener; plaintext unless `cert_file` is set."""

    cert_file: str = field(
        default="",
        metadata=_doc(
            "PEM certificate chain: serve gRPC over TLS (with `key_file`). Files are re-read when they change."
        ),
    )
    key_file: str = field(default="", metadata=_doc("PEM private key for `cert_file`."))
    client_ca_file: str = field(
        default="",
        metadata=_doc(
            "PEM CA bundle: require client certificates signed by it (mTLS). Needs `cert_file` and `key_file`."
        ),
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry tracing of Check (needs the ``otel`` extra); off by default."""

    enabled: bool = field(default=False, metadata=_doc("Trace every Check with OpenTelemetry."))
    exporter: str = field(
        default="otlp",  # otlp (gRPC, OTEL_EXPORTER_OTLP_* variables apply) | console
        metadata=_doc("`otlp` (gRPC; the `OTEL_EXPORTER_OTLP_*` variables apply) or `console` (stdout)."),
    )
    endpoint: str = field(
        default="",  # OTLP endpoint; "" leaves it to OTEL_EXPORTER_OTLP_ENDPOINT
        metadata=_doc("OTLP collector URL (`http://` or `https://`); empty: `OTEL_EXPORTER_OTLP_ENDPOINT` decides."),
    )
    service_name: str = field(default="authz", metadata=_doc("The spans' `service.name`."))
    sample_ratio: float = field(
        default=1.0,  # for traces the incoming context has not sampled already
        metadata=_doc("Share of traces recorded, 0 to 1, where the incoming trace context has not decided already."),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything authz needs, validated. Immutable after start."""

    issuers: tuple[IssuerSettings, ...] = field(
        # No default for the field: the YAML key's default is an empty list.
        metadata=_doc(
            "Trusted issuers besides the login provider (`oidc.issuer`, which comes first), each a mapping of the "
            "`issuers[]` keys below; at least one issuer is required.",
            yaml_default=(),
        )
    )
    listen: str = field(
        default=DEFAULT_LISTEN,
        metadata=_doc("gRPC address: Envoy's Check, `grpc.health.v1.Health` and server reflection."),
    )
    http_listen: str = field(
        default=DEFAULT_HTTP_LISTEN, metadata=_doc("Plain HTTP address: `/metrics`, `/healthz` and `/readyz`.")
    )
    admin_listen: str = field(
        default=DEFAULT_ADMIN_LISTEN,
        metadata=_doc("gRPC address of the operators' admin service (Explain, Keys, Status); loopback by default."),
    )
    workers: int = field(
        default=1,
        metadata=_doc(
            "Serving processes sharing the gRPC port, each with its own caches; the parent serves `/metrics` for "
            "all. With browser login on, more than one needs `session.store: redis` (refused otherwise)."
        ),
    )
    log_level: str = field(
        default="INFO",
        metadata=_doc(
            "`DEBUG` (adds one line per decision), `INFO`, `WARNING`, `ERROR` or `CRITICAL`; "
            "`WARN` and `FATAL` are accepted."
        ),
    )
    shutdown_grace: float = field(
        default=DEFAULT_SHUTDOWN_GRACE, metadata=_doc("Seconds in-flight checks may take to finish after SIGTERM.")
    )
    max_concurrent_checks: int = field(
        default=DEFAULT_MAX_CONCURRENT_CHECKS,
        metadata=_doc("Checks served at once; beyond it gRPC refuses the call and Envoy answers 503."),
    )
    url_prefix: str = field(
        default=DEFAULT_URL_PREFIX,
        metadata=_doc("Prefix of authz's own paths (`<prefix>login`, `<prefix>logout`); starts and ends with `/`."),
    )
    skip_auth_urls: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Path prefixes allowed without authentication (identity headers are still removed), e.g. `/dex/`. "
            "Matched at segment boundaries (`/dex` never matches `/dexter`); a non-canonical path is never skipped."
        ),
    )
    userid_header: str = field(
        default=DEFAULT_USERID_HEADER, metadata=_doc("Header that carries the user to the application.")
    )
    groups_header: str = field(
        default=DEFAULT_GROUPS_HEADER,
        metadata=_doc(
            "Header that carries the user's groups to the application (comma-joined); differs from `userid_header`."
        ),
    )
    groups_allowlist: tuple[str, ...] = field(
        default=("*",),
        metadata=_doc("Groups of which a user needs one (403 otherwise); `*` admits every authenticated user."),
    )
    clock_skew: float = field(
        default=DEFAULT_CLOCK_SKEW, metadata=_doc("Seconds of leeway when checking `exp`, `nbf` and `iat`.")
    )
    max_token_bytes: int = field(
        default=DEFAULT_MAX_TOKEN_BYTES, metadata=_doc("Largest bearer token accepted, in bytes (at least 256).")
    )
    token_cache_size: int = field(
        default=DEFAULT_TOKEN_CACHE_SIZE, metadata=_doc("Verified tokens kept in the cache at most.")
    )
    token_cache_ttl: float = field(
        default=DEFAULT_TOKEN_CACHE_TTL,
        metadata=_doc(
            "Seconds a verified token stays cached at most (never past its `exp`), so a key removed from the "
            "provider's JWKS stops being honoured within it."
        ),
    )
    jwks_stale_window: float = field(
        default=DEFAULT_JWKS_STALE_WINDOW,
        metadata=_doc("Seconds an issuer's keys stay usable while the issuer cannot be reached."),
    )
    ca_bundle: str | None = field(
        default=None,
        metadata=_doc(
            "PEM file to verify the providers' TLS certificates, the default of every issuer; "
            "unset: certifi's CA bundle."
        ),
    )
    realm: str = field(default="authz", metadata=_doc("The realm named in a 401's `WWW-Authenticate` header."))
    oidc: OIDCClientSettings = field(
        default_factory=OIDCClientSettings,
        metadata=_doc("Browser login: the login provider (also a trusted issuer) and authz as its OIDC client."),
    )
    session: SessionSettings = field(
        default_factory=SessionSettings, metadata=_doc("Browser sessions: where they are kept, and their cookie.")
    )
    tls: TLSSettings = field(
        default_factory=TLSSettings, metadata=_doc("TLS on the gRPC listener; plaintext unless `cert_file` is set.")
    )
    tracing: TracingSettings = field(
        default_factory=TracingSettings,
        metadata=_doc("OpenTelemetry tracing of Check (needs the `otel` extra); off by default."),
    )
    # The login issuer (OIDC_PROVIDER); "" when only bearer tokens are accepted.
    login_issuer: str = field(
        default="",
        metadata=_doc(
            "The login provider's issuer, taken from `oidc.issuer`; empty when only bearer tokens are accepted.",
            source="oidc.issuer",
        ),
    )

    @property
    def allow_all_groups(self) -> bool:
        return "*" in self.groups_allowlist

    @property
    def login_enabled(self) -> bool:
        """Browser login needs the provider and an absolute callback URL (REDIRECT_URL)."""
        return bool(self.login_issuer and self.oidc.redirect_url)
