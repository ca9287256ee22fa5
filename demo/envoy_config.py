"""Envoy bootstraps for the demo and the end-to-end tests: ext_authz (gRPC) in front of an upstream."""

from __future__ import annotations

from typing import Any

# The gateway's ext_authz timeout. The login callback's token exchange must finish inside it
# (authz's exchange timeout defaults to 4 s).
EXT_AUTHZ_TIMEOUT = "5s"


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
) -> dict[str, Any]:
    """A gateway-like Envoy: every request goes through authz, then to the upstream.

    ``routes`` adds (path prefix, port) pairs routed to other local servers (e.g. the
    provider under /dex/), still behind ext_authz (authz skips them by SKIP_AUTH_URLS).
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
