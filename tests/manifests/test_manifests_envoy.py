"""The EnvoyFilter patch values are real Envoy configuration, checked by the real Envoy binary.

Istio's CRD schema leaves ``configPatches[].patch.value`` open, so a misspelt or misplaced field there
is accepted by the API server and only rejected by the gateway at run time (often by dropping the
listener). Here the ext_authz filter and the connection-manager MERGE patch from the rendered
``envoyfilter`` overlay are put into a bootstrap the way Istio applies them, a static listener whose
HTTP connection manager has the patched fields merged in and ext_authz before the router, plus a
static cluster named exactly like the filter's gRPC cluster, and ``envoy --mode validate`` must accept it.
(Validate mode does not resolve the gRPC cluster name, so test_manifests_policy.py checks that the
name is Istio's name for the rendered authz Service.)
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from manifest_helpers import Obj

HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def config_patches(objs: list[Obj]) -> list[dict[str, Any]]:
    return [p for o in objs if o["kind"] == "EnvoyFilter" for p in o["spec"]["configPatches"]]


def ext_authz_patch(objs: list[Obj]) -> dict[str, Any]:
    found = [
        p
        for p in config_patches(objs)
        if p["applyTo"] == "HTTP_FILTER"
        and p["patch"]["value"].get("name") == "envoy.filters.http.ext_authz"
    ]
    assert len(found) == 1, f"expected one ext_authz HTTP_FILTER patch, found {len(found)}"
    return found[0]


def hcm_merge_patches(objs: list[Obj]) -> list[dict[str, Any]]:
    return [
        p
        for p in config_patches(objs)
        if p["applyTo"] == "NETWORK_FILTER"
        and p["patch"]["operation"] == "MERGE"
        and p["match"]["listener"]["filterChain"]["filter"]["name"] == HCM_NAME
    ]


def proto_merge(base: Any, patch: Any) -> Any:
    """Merge like Istio's MERGE operation (proto.Merge): messages recursively, lists appended."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = proto_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        return [*base, *copy.deepcopy(patch)]
    return copy.deepcopy(patch)


def gateway_bootstrap(objs: list[Obj]) -> dict[str, Any]:
    ext_authz = ext_authz_patch(objs)["patch"]["value"]
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": "gateway",
        "route_config": {
            "name": "gateway",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                }
            ],
        },
        "http_filters": [copy.deepcopy(ext_authz), ROUTER],
    }
    for patch in hcm_merge_patches(objs):
        typed = patch["patch"]["value"]["typed_config"]
        assert typed["@type"] == HCM_TYPE, "MERGE patch must carry the HCM type URL"
        hcm = proto_merge(hcm, typed)
    cluster = ext_authz["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8443}},
                    "filter_chains": [{"filters": [{"name": HCM_NAME, "typed_config": hcm}]}],
                }
            ],
            "clusters": [
                {
                    "name": cluster,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                            "HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": cluster,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": 9191,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        }
    }


def envoy_validate(
    envoy_bin: Path, bootstrap: dict[str, Any], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap, indent=2))
    return subprocess.run(
        [str(envoy_bin), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_envoyfilter_patches_pass_envoy_validate(
    overlays: dict[str, list[Obj]], envoy_bin: Path, tmp_path: Path
) -> None:
    objs = overlays["envoyfilter"]
    assert hcm_merge_patches(objs), "no HTTP connection manager MERGE patch in the envoyfilter overlay"
    bootstrap = gateway_bootstrap(objs)
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = [f["name"] for f in hcm["typed_config"]["http_filters"]]
    assert filters == ["envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    proc = envoy_validate(envoy_bin, bootstrap, tmp_path)
    assert proc.returncode == 0, f"envoy rejected the patched configuration:\n{proc.stdout}\n{proc.stderr}"
    assert "OK" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "breakage",
    ["underscores_action_at_top_level", "unknown_ext_authz_field", "bad_enum_value"],
)
def test_envoy_validate_rejects_broken_patches(
    breakage: str, overlays: dict[str, list[Obj]], envoy_bin: Path, tmp_path: Path
) -> None:
    """The validation above can fail: Envoy rejects the mistakes the CRD schema lets through."""
    bootstrap = gateway_bootstrap(overlays["envoyfilter"])
    resources = bootstrap["static_resources"]
    hcm = resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    if breakage == "underscores_action_at_top_level":
        hcm["headers_with_underscores_action"] = "REJECT_REQUEST"
    elif breakage == "unknown_ext_authz_field":
        hcm["http_filters"][0]["typed_config"]["failure_mode_allowed"] = False
    else:
        hcm["path_with_escaped_slashes_action"] = "UNESCAPE"
    proc = envoy_validate(envoy_bin, bootstrap, tmp_path)
    assert proc.returncode != 0, f"envoy accepted a broken configuration ({breakage})"
