"""Envoy bootstraps for the demo and the end-to-end tests: ext_authz (gRPC) in front of an upstream."""

from __future__ import annotations

from typing import Any

# The gateway's ext_authz timeout. The login callback's token exchange must finish inside it
# (authz's exchange timeout defaults to 4 s).
EXT_AUTHZ_TIMEOUT = "5s"

# The gateway's access log, one JSON object a line: the request, the answer, and who was let in or
# turned away and why, from the dynamic metadata authz returns with every decision (authz/envoy.py).
# The path is logged without its query, which can carry an authorization code. The manifests'
# gateway access log (manifests/README.md, "Access log: who and why") uses these same fields.
_AUTHZ_METADATA = "envoy.filters.http.ext_authz"
ACCESS_LOG_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authz_decision": f"%DYNAMIC_METADATA({_AUTHZ_METADATA}:decision)%",
    "authz_reason": f"%DYNAMIC_METADATA({_AUTHZ_METADATA}:reason)%",
    "authz_auth_method": f"%DYNAMIC_METADATA({_AUTHZ_METADATA}:auth_method)%",
    "user": f"%DYNAMIC_METADATA({_AUTHZ_METADATA}:user)%",
}


def _cluster(name: str, port: int, *, http2: bool = False, tls: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    if tls is not None:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                **tls,
            },
        }
    return cluster


def ext_authz_filter(cluster: str = "authz", timeout: str = EXT_AUTHZ_TIMEOUT) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": timeout},
            "failure_mode_allow": False,
            "status_on_error": {"code": "ServiceUnavailable"},
            "include_peer_certificate": False,
        },
    }


def access_log(path: str) -> dict[str, Any]:
    """A file access log (``/dev/stdout`` works) in :data:`ACCESS_LOG_FORMAT`."""
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {
                "json_format": dict(ACCESS_LOG_FORMAT),
                "formatters": [
                    {
                        "name": "envoy.formatter.req_without_query",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.formatter.req_without_query.v3."
                            "ReqWithoutQuery"
                        },
                    }
                ],
            },
        },
    }


def bootstrap(
    *,
    listen_port: int,
    admin_port: int,
    authz_port: int,
    upstream_port: int,
    routes: list[tuple[str, int]] | None = None,
    authz_tls: dict[str, Any] | None = None,
    extra_filters: list[dict[str, Any]] | None = None,
    use_ext_authz: bool = True,
    extra_clusters: list[dict[str, Any]] | None = None,
    access_log_path: str | None = None,
) -> dict[str, Any]:
    """A gateway-like Envoy: every request goes through authz, then to the upstream.

    ``routes`` adds (path prefix, port) pairs routed to other local servers (e.g. the
    provider under /dex/), still behind ext_authz (authz skips them by SKIP_AUTH_URLS).
    ``access_log_path``: write the access log (:data:`ACCESS_LOG_FORMAT`) there; none by default,
    so load tests measure the check, not the log.
    """
    clusters = [_cluster("upstream", upstream_port)]
    route_entries: list[dict[str, Any]] = []
    for index, (prefix, port) in enumerate(routes or []):
        clusters.append(_cluster(f"extra{index}", port))
        route_entries.append({"match": {"prefix": prefix}, "route": {"cluster": f"extra{index}", "timeout": "30s"}})
    route_entries.append({"match": {"prefix": "/"}, "route": {"cluster": "upstream"}})
    http_filters = list(extra_filters or [])
    if use_ext_authz:
        clusters.append(_cluster("authz", authz_port, http2=True, tls=authz_tls))
        http_filters.append(ext_authz_filter())
    clusters.extend(extra_clusters or [])
    http_filters.append(
        {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    )
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "gateway",
                                        "normalize_path": True,
                                        "merge_slashes": True,
                                        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
                                        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
                                        "route_config": {
                                            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": route_entries}]
                                        },
                                        "http_filters": http_filters,
                                        **({"access_log": [access_log(access_log_path)]} if access_log_path else {}),
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }
