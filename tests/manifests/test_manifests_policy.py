"""What the manifests promise, checked on every rendered object.

Fail closed, keep the probes, never run as root; the Envoy wiring points at the rendered Service;
only the ingress gateway may call authz; the login endpoints are routed on the host that
REDIRECT_URL names; and the snippets that are applied outside kustomize (mesh config, Dex) agree
with the rendered configuration.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from manifest_helpers import MANIFESTS, OVERLAYS, Obj, find, kustomize_targets, load_yaml_docs, one

# The slowest check is the login callback: authz exchanges the authorization code at the provider's
# token endpoint (and may fetch its JWKS) inside the ext_authz call. The gateway's timeout for that
# call, in the EnvoyFilter and in the mesh config's extension provider, must be at least this long.
MIN_CHECK_TIMEOUT_SECONDS = 10.0

# The server's default drain after SIGTERM when AUTHZ_SHUTDOWN_GRACE is not set.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0

GATEWAY_LABELS = {"istio": "ingressgateway"}
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
TRUST_DOMAIN = "cluster.local"

MESH_CONFIG = MANIFESTS / "overlays" / "extension-provider" / "mesh-config"
DEX_CONFIG = MANIFESTS / "examples" / "dex-config.yaml"

# Variables authz reads (arrikto/oidc-authservice names plus our own): a typo in the ConfigMap would
# be silently ignored by the server.
KNOWN_VARIABLES = {
    "OIDC_PROVIDER", "CLIENT_ID", "CLIENT_SECRET", "AUTHSERVICE_URL_PREFIX", "REDIRECT_URL",
    "OIDC_SCOPES", "SKIP_AUTH_URLS", "USERID_HEADER", "USERID_PREFIX", "USERID_CLAIM",
    "GROUPS_CLAIM", "GROUPS_HEADER", "GROUPS_ALLOWLIST", "CA_BUNDLE", "LOG_LEVEL",
    "AFTER_LOGIN_URL", "AFTER_LOGOUT_URL", "SESSION_STORE_TYPE", "SESSION_STORE_REDIS_ADDR",
    "SESSION_STORE_REDIS_PWD", "SESSION_STORE_REDIS_DB", "SESSION_MAX_AGE", "SESSION_SAME_SITE",
    "SESSION_DOMAIN", "AUTHZ_LISTEN", "AUTHZ_HTTP_LISTEN", "AUTHZ_CONFIG", "AUTHZ_WORKERS",
    "AUTHZ_SHUTDOWN_GRACE", "AUTHZ_TLS_CERT", "AUTHZ_TLS_KEY", "AUTHZ_TLS_CLIENT_CA",
}  # fmt: skip

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


# --------------------------------------------------------------------------------------- helpers


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) in a nested structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")


def seconds(duration: str) -> float:
    """A protobuf/Istio duration such as 10s, 1.5s, 500ms or 1m."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(duration))
    assert m, f"not a duration: {duration!r}"
    return float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


def pod_spec(obj: Obj) -> dict[str, Any] | None:
    if obj["kind"] in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return None


def namespace_of(obj: Obj) -> str:
    ns = obj["metadata"].get("namespace")
    assert ns, f"{obj['kind']} {obj['metadata']['name']} has no namespace"
    return ns


def authz_config(objs: list[Obj]) -> dict[str, str]:
    return one(objs, "ConfigMap", "authz-config")["data"]


def authz_container(objs: list[Obj]) -> dict[str, Any]:
    spec = one(objs, "Deployment", "authz")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "authz")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def ext_authz_filters(objs: list[Obj]) -> list[tuple[Obj, dict[str, Any]]]:
    return [
        (o, p)
        for o in find(objs, "EnvoyFilter")
        for p in o["spec"]["configPatches"]
        if p["patch"].get("value", {}).get("name") == "envoy.filters.http.ext_authz"
    ]


def custom_policies(objs: list[Obj]) -> list[Obj]:
    return [o for o in find(objs, "AuthorizationPolicy") if o["spec"].get("action") == "CUSTOM"]


def mesh_config_providers() -> dict[str, list[dict[str, Any]]]:
    operator = one(load_yaml_docs(MESH_CONFIG / "istio-operator.yaml"), "IstioOperator")
    assert operator["apiVersion"] == "install.istio.io/v1alpha1"
    values = yaml.safe_load((MESH_CONFIG / "istiod-values.yaml").read_text())
    return {
        "istio-operator.yaml": operator["spec"]["meshConfig"]["extensionProviders"],
        "istiod-values.yaml": values["meshConfig"]["extensionProviders"],
    }


def uri_matches(match: dict[str, Any], path: str) -> bool:
    uri = match.get("uri")
    if uri is None:
        return True
    if "exact" in uri:
        return path == uri["exact"]
    if "prefix" in uri:
        return path.startswith(uri["prefix"])
    if "regex" in uri:
        return re.fullmatch(uri["regex"], path) is not None
    return False


def routed_on_gateway(objs: list[Obj], gateway: Obj, host: str, path: str) -> bool:
    gw_name = gateway["metadata"]["name"]
    gw_refs = {gw_name, f"{namespace_of(gateway)}/{gw_name}"}
    for vs in find(objs, "VirtualService"):
        spec = vs["spec"]
        if not gw_refs & set(spec.get("gateways", [])):
            continue
        if host not in spec["hosts"] and "*" not in spec["hosts"]:
            continue
        for route in spec.get("http", []):
            if any(uri_matches(m, path) for m in route.get("match", [{}])):
                return True
    return False


# ------------------------------------------------------------------- invariants over every object


@pytest.mark.parametrize("target", kustomize_targets())
def test_nothing_fails_open(target: str, rendered: dict[str, list[Obj]]) -> None:
    for obj in rendered[target]:
        for path, key, value in walk(obj):
            if key in {"failure_mode_allow", "failureModeAllow", "failOpen"}:
                assert value is False, f"{obj['kind']} {obj['metadata']['name']}{path} = {value}"


def test_mesh_config_does_not_fail_open() -> None:
    for name, providers in mesh_config_providers().items():
        for path, key, value in walk(providers):
            if key in {"failOpen", "fail_open"}:
                assert value is False, f"{name}{path} = {value}"


@pytest.mark.parametrize("target", kustomize_targets())
def test_workloads_keep_probes_and_never_run_as_root(
    target: str, rendered: dict[str, list[Obj]]
) -> None:
    workloads = [o for o in rendered[target] if pod_spec(o) is not None]
    for obj in workloads:
        label = f"{target}: {obj['kind']} {obj['metadata']['name']}"
        spec = pod_spec(obj)
        assert spec is not None
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{label} sets {flag}"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsUser") != 0, f"{label}: pod runAsUser 0"
        assert pod_sc.get("runAsGroup") != 0, f"{label}: pod runAsGroup 0"
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{label} container {c['name']}"
            sc = c.get("securityContext", {})
            run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            assert run_as_non_root is True, f"{where} may run as root (runAsNonRoot not true)"
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert uid is not None and uid != 0, f"{where}: runAsUser must be a non-zero uid"
            assert sc.get("runAsGroup", pod_sc.get("runAsGroup")) != 0, f"{where}: runAsGroup 0"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
            assert not sc.get("privileged"), f"{where} is privileged"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: writable root filesystem"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: keeps caps"
            assert not sc.get("capabilities", {}).get("add"), f"{where} adds capabilities"
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccomp not RuntimeDefault"
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    assert res in resources.get(kind, {}), f"{where}: no {kind}.{res}"
        for c in spec["containers"]:
            where = f"{label} container {c['name']}"
            assert "livenessProbe" in c, f"{where} has no liveness probe"
            assert "readinessProbe" in c, f"{where} has no readiness probe"


def test_every_overlay_runs_authz(overlays: dict[str, list[Obj]]) -> None:
    """The invariants above are not vacuous: each overlay renders the authz Deployment."""
    for name, objs in overlays.items():
        assert find(objs, "Deployment", "authz"), f"{name} renders no authz Deployment"


@pytest.mark.parametrize("target", kustomize_targets())
def test_no_secret_is_rendered(target: str, rendered: dict[str, list[Obj]]) -> None:
    """Secrets are created per cluster; an apply must never overwrite them with a placeholder."""
    assert not find(rendered[target], "Secret")


def test_example_secrets_hold_placeholders() -> None:
    for path in MANIFESTS.rglob("*.yaml"):
        for obj in load_yaml_docs(path):
            if isinstance(obj, dict) and obj.get("kind") == "Secret":
                assert "data" not in obj, f"{path}: example Secret with encoded data"
                for key, value in obj.get("stringData", {}).items():
                    assert value.startswith("REPLACE-"), f"{path}: {key} is not a placeholder"


# ------------------------------------------------------------------------------ the authz workload


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_authz_deployment(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    objs = overlays[overlay]
    deployment = one(objs, "Deployment", "authz")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert deployment["spec"]["replicas"] >= 2
    topology_keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
    assert "kubernetes.io/hostname" in topology_keys
    for tsc in spec["topologySpreadConstraints"]:
        assert selects(tsc["labelSelector"]["matchLabels"], pod["metadata"]["labels"])

    c = authz_container(objs)
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["grpc"]["port"] == 9191, f"{probe} must be a native gRPC probe on 9191"
    assert c["readinessProbe"]["grpc"].get("service") in {None, "", "envoy.service.auth.v3.Authorization"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["grpc"] == 9191

    # preStop + the server's drain must end before the kubelet's SIGKILL.
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0].endswith("sleep"), f"preStop should sleep, got {command}"
    pre_stop = float(command[1])
    config = authz_config(objs)
    grace = float(config.get("AUTHZ_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE_SECONDS))
    assert spec["terminationGracePeriodSeconds"] > pre_stop + grace
    # ... and the sidecar must keep carrying traffic for as long.
    proxy_config = yaml.safe_load(pod["metadata"]["annotations"]["proxy.istio.io/config"])
    assert seconds(proxy_config["terminationDrainDuration"]) >= pre_stop + grace
    assert seconds(proxy_config["terminationDrainDuration"]) < spec["terminationGracePeriodSeconds"]

    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be an emptyDir"

    assert {"configMapRef": {"name": "authz-config"}} in c["envFrom"]
    env = {e["name"]: e for e in c.get("env", [])}
    assert env["CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "authz-oidc-client"

    hpa = one(objs, "HorizontalPodAutoscaler", "authz")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "authz",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = one(objs, "PodDisruptionBudget", "authz")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])


@pytest.mark.parametrize("target", kustomize_targets())
def test_configmap_uses_known_variables(target: str, rendered: dict[str, list[Obj]]) -> None:
    for cm in find(rendered[target], "ConfigMap", "authz-config"):
        unknown = set(cm["data"]) - KNOWN_VARIABLES
        assert not unknown, f"variables authz does not read: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_port_9191_is_named_grpc(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    objs = overlays[overlay]
    service = one(objs, "Service", "authz")
    port = next(p for p in service["spec"]["ports"] if p["port"] == 9191)
    assert port["name"] == "grpc"
    assert port.get("appProtocol") == "grpc"
    labels = one(objs, "Deployment", "authz")["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], labels)
    container_ports = {p["name"]: p["containerPort"] for p in authz_container(objs)["ports"]}
    assert container_ports.get(port["targetPort"], port["targetPort"]) == 9191


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_only_gateway_and_prometheus(
    overlay: str, overlays: dict[str, list[Obj]]
) -> None:
    objs = overlays[overlay]
    labels = one(objs, "Deployment", "authz")["spec"]["template"]["metadata"]["labels"]
    policies = [
        p for p in find(objs, "NetworkPolicy") if selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert "Ingress" in spec["policyTypes"]
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    for rule in spec["ingress"]:
        assert rule.get("from"), "an ingress rule without 'from' admits everybody"
        ports = {p["port"] for p in rule["ports"]}
        for peer in rule["from"]:
            selector = peer.get("podSelector", {}).get("matchLabels")
            assert "ipBlock" not in peer
            if selector == GATEWAY_LABELS:
                assert "namespaceSelector" not in peer, "the gateway runs in authz's namespace"
            else:
                assert selector == prometheus, f"unexpected peer {peer}"
                assert 9191 not in ports, "Prometheus must not reach the Check port"


# ------------------------------------------------------------------------ wiring into the gateway


def check_ext_authz_wiring(objs: list[Obj]) -> None:
    """The gateway calls authz exactly once per request, fails closed, on the rendered Service."""
    service = one(objs, "Service", "authz")
    ns = namespace_of(service)
    fqdn = f"authz.{ns}.svc.cluster.local"
    filters = ext_authz_filters(objs)
    policies = custom_policies(objs)
    assert len(filters) + len(policies) == 1, "ext_authz must be wired exactly once"
    if filters:
        envoy_filter, patch = filters[0]
        assert envoy_filter["spec"]["workloadSelector"]["labels"] == GATEWAY_LABELS
        assert namespace_of(envoy_filter) == namespace_of(one(objs, "Gateway"))
        assert patch["applyTo"] == "HTTP_FILTER"
        assert patch["match"]["context"] == "GATEWAY"
        assert patch["patch"]["operation"] == "INSERT_BEFORE"
        listener = patch["match"]["listener"]["filterChain"]["filter"]
        assert listener["name"] == "envoy.filters.network.http_connection_manager"
        assert listener["subFilter"]["name"] == "envoy.filters.http.router"
        typed = patch["patch"]["value"]["typed_config"]
        assert typed["transport_api_version"] == "V3"
        assert typed["failure_mode_allow"] is False
        assert typed["status_on_error"] == {"code": "ServiceUnavailable"}
        grpc = typed["grpc_service"]
        assert grpc["envoy_grpc"]["cluster_name"] == f"outbound|9191||{fqdn}"
        assert grpc["envoy_grpc"].get("authority", fqdn) == fqdn
        assert seconds(grpc["timeout"]) >= MIN_CHECK_TIMEOUT_SECONDS
    else:
        policy = policies[0]
        assert policy["spec"]["selector"]["matchLabels"] == GATEWAY_LABELS
        assert policy["spec"].get("rules"), "a CUSTOM policy without rules checks nothing"
        name = policy["spec"]["provider"]["name"]
        for file, providers in mesh_config_providers().items():
            matching = [p for p in providers if p["name"] == name]
            assert len(matching) == 1, f"{file}: no extension provider {name!r}"
            grpc = matching[0]["envoyExtAuthzGrpc"]
            assert set(grpc) <= {
                "service", "port", "timeout", "failOpen", "statusOnError",
                "includeRequestBodyInCheck",
            }, f"{file}: unknown EnvoyExternalAuthorizationGrpcProvider fields"  # fmt: skip
            assert grpc["service"] in {fqdn, f"{ns}/{fqdn}"}, f"{file}: provider service"
            assert grpc["port"] == 9191
            assert grpc["failOpen"] is False
            assert grpc["statusOnError"] == "503"
            assert seconds(grpc["timeout"]) >= MIN_CHECK_TIMEOUT_SECONDS


def check_mesh_policies(objs: list[Obj]) -> None:
    """mTLS only, and only the ingress gateway's identity may call authz."""
    ns = namespace_of(one(objs, "Service", "authz"))
    peer_auth = [p for p in find(objs, "PeerAuthentication") if namespace_of(p) == ns]
    assert any(
        p["spec"]["mtls"]["mode"] == "STRICT" and not p["spec"].get("selector") for p in peer_auth
    ), "no namespace-wide STRICT PeerAuthentication in authz's namespace"
    for p in peer_auth:
        assert p["spec"]["mtls"]["mode"] == "STRICT"
        for port in p["spec"].get("portLevelMtls", {}).values():
            assert port["mode"] == "STRICT"

    hosts = {"authz", f"authz.{ns}", f"authz.{ns}.svc", f"authz.{ns}.svc.cluster.local"}
    rules = [d for d in find(objs, "DestinationRule") if d["spec"]["host"] in hosts]
    assert len(rules) == 1 and namespace_of(rules[0]) == ns
    assert rules[0]["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"

    labels = one(objs, "Deployment", "authz")["spec"]["template"]["metadata"]["labels"]
    gateway_ns = namespace_of(one(objs, "Gateway"))
    principal = f"{TRUST_DOMAIN}/ns/{gateway_ns}/sa/{GATEWAY_SERVICE_ACCOUNT}"
    on_authz = [
        p
        for p in find(objs, "AuthorizationPolicy")
        if namespace_of(p) == ns and selects(p["spec"].get("selector", {}).get("matchLabels", {}), labels)
    ]
    allow = [p for p in on_authz if p["spec"].get("action", "ALLOW") == "ALLOW"]
    assert len(allow) == 1, "exactly one ALLOW policy on authz"
    for rule in allow[0]["spec"]["rules"]:
        sources = [f["source"] for f in rule["from"]]
        assert sources == [{"principals": [principal]}], f"authz callable by {sources}"
        assert rule["to"] == [{"operation": {"ports": ["9191"]}}]
    # Nothing may open authz up wider: no namespace-wide ALLOW policy either.
    for p in find(objs, "AuthorizationPolicy"):
        if namespace_of(p) == ns and not p["spec"].get("selector"):
            assert p["spec"].get("action") in {"DENY", "AUDIT"}, f"{p['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ext_authz_wiring(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    check_ext_authz_wiring(overlays[overlay])


def test_each_overlay_uses_its_mechanism(overlays: dict[str, list[Obj]]) -> None:
    assert ext_authz_filters(overlays["envoyfilter"])
    assert custom_policies(overlays["extension-provider"])
    assert custom_policies(overlays["redis"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mesh_policies(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    check_mesh_policies(overlays[overlay])


def test_mesh_config_snippets_agree() -> None:
    providers = mesh_config_providers()
    assert providers["istio-operator.yaml"] == providers["istiod-values.yaml"]


def test_application_namespace_example_is_strict() -> None:
    example = one(load_yaml_docs(MANIFESTS / "examples" / "peerauthentication-kubeflow.yaml"), "PeerAuthentication")
    assert example["metadata"]["namespace"] == "kubeflow"
    assert example["spec"]["mtls"]["mode"] == "STRICT"
    assert not example["spec"].get("selector")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_connection_manager_is_hardened(
    overlay: str, overlays: dict[str, list[Obj]]
) -> None:
    merged: dict[str, Any] = {}
    for ef in find(overlays[overlay], "EnvoyFilter"):
        if ef["spec"].get("workloadSelector", {}).get("labels") != GATEWAY_LABELS:
            continue
        for p in ef["spec"]["configPatches"]:
            if p["applyTo"] == "NETWORK_FILTER" and p["patch"]["operation"] == "MERGE":
                assert p["match"]["context"] == "GATEWAY"
                merged.update(p["patch"]["value"]["typed_config"])
    assert merged.get("common_http_protocol_options", {}).get("headers_with_underscores_action") == (
        "REJECT_REQUEST"
    )
    assert merged.get("merge_slashes") is True
    assert merged.get("normalize_path") is True
    assert merged.get("path_with_escaped_slashes_action") in {
        "REJECT_REQUEST",
        "UNESCAPE_AND_REDIRECT",
        "UNESCAPE_AND_FORWARD",
    }, "escaped slashes must not pass through unchanged"


# ----------------------------------------------------------------------- edge TLS and login routes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_tls_and_login_routes(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    objs = overlays[overlay]
    config = authz_config(objs)
    redirect = urlparse(config["REDIRECT_URL"])
    assert redirect.scheme == "https", "REDIRECT_URL must be an absolute https URL"
    prefix = config.get("AUTHSERVICE_URL_PREFIX", "/authservice/")
    assert prefix.startswith("/") and prefix.endswith("/")
    assert redirect.path == prefix + "oidc/callback"
    host = redirect.hostname
    assert host

    gateway = one(objs, "Gateway")
    assert gateway["spec"]["selector"] == GATEWAY_LABELS
    servers = {s["port"]["number"]: s for s in gateway["spec"]["servers"]}
    https, http = servers[443], servers[80]
    assert https["port"]["protocol"] == "HTTPS"
    assert https["tls"]["mode"] == "SIMPLE"
    assert https["tls"]["credentialName"]
    assert https["tls"].get("minProtocolVersion") in {"TLSV1_2", "TLSV1_3"}
    assert http["port"]["protocol"] == "HTTP"
    assert http["tls"]["httpsRedirect"] is True
    for server in (https, http):
        assert host in server["hosts"], f"gateway server {server['port']['number']} lacks {host}"

    # Platform-managed certificate: cert-manager writes the Secret the gateway reads.
    certificates = find(objs, "Certificate")
    serving = [c for c in certificates if c["spec"]["secretName"] == https["tls"]["credentialName"]]
    assert len(serving) == 1
    cert = serving[0]
    assert namespace_of(cert) == namespace_of(gateway)
    assert set(https["hosts"]) <= set(cert["spec"]["dnsNames"])
    issuer = cert["spec"]["issuerRef"]
    if issuer.get("kind", "Issuer") == "Issuer":
        assert find(objs, "Issuer", issuer["name"]), f"Issuer {issuer['name']} is not rendered"
    for c in certificates:
        ca = c["spec"]["issuerRef"]
        if ca.get("kind", "Issuer") == "Issuer":
            ca_issuer = one(objs, "Issuer", ca["name"])
            if "ca" in ca_issuer["spec"]:
                secret = ca_issuer["spec"]["ca"]["secretName"]
                assert any(x["spec"]["secretName"] == secret and x["spec"].get("isCA") for x in certificates)

    for path in (prefix + "oidc/callback", prefix + "logout"):
        assert routed_on_gateway(objs, gateway, host, path), f"no gateway route for {path}"

    # The provider's own pages must not need a session.
    provider_path = urlparse(config["OIDC_PROVIDER"]).path.rstrip("/") + "/"
    skip = [p.strip() for p in config.get("SKIP_AUTH_URLS", "").split(",") if p.strip()]
    if urlparse(config["OIDC_PROVIDER"]).hostname == host:
        assert provider_path in skip, f"{provider_path} (the provider) missing from SKIP_AUTH_URLS"
    assert "/" not in skip, "skipping / would switch authentication off"


def test_dex_example_matches_the_configuration(overlays: dict[str, list[Obj]]) -> None:
    config = authz_config(overlays["envoyfilter"])
    dex = yaml.safe_load(DEX_CONFIG.read_text())
    assert dex["issuer"] == config["OIDC_PROVIDER"]
    clients = [c for c in dex["staticClients"] if c["id"] == config["CLIENT_ID"]]
    assert len(clients) == 1, "no Dex static client with CLIENT_ID"
    assert config["REDIRECT_URL"] in clients[0]["redirectURIs"]
    assert "secret" not in clients[0], "the client secret belongs in a Secret, not in the example"
    assert "groups" in config["OIDC_SCOPES"].split(",")
    assert config["GROUPS_CLAIM"] == "groups"


# ------------------------------------------------------------------------------------ sessions


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_session_store(overlay: str, overlays: dict[str, list[Obj]]) -> None:
    objs = overlays[overlay]
    config = authz_config(objs)
    if overlay != "redis":
        assert config["SESSION_STORE_TYPE"] == "memory"
        return
    assert config["SESSION_STORE_TYPE"] == "redis"
    host, _, port = config["SESSION_STORE_REDIS_ADDR"].rpartition(":")
    service = one(objs, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    redis = one(objs, "Deployment", host)
    assert selects(service["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"])

    authz_env = {e["name"]: e for e in authz_container(objs)["env"]}
    password = authz_env["SESSION_STORE_REDIS_PWD"]["valueFrom"]["secretKeyRef"]
    server = redis["spec"]["template"]["spec"]["containers"][0]
    server_env = {e["name"]: e for e in server["env"]}
    assert server_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == password
    assert "--requirepass" in server["args"]

    ns = namespace_of(service)
    policy = one(objs, "AuthorizationPolicy", "authz-redis-allow-authz")
    assert policy["spec"]["rules"][0]["from"] == [
        {"source": {"principals": [f"{TRUST_DOMAIN}/ns/{ns}/sa/authz"]}}
    ]
    assert one(objs, "Deployment", "authz")["spec"]["template"]["spec"]["serviceAccountName"] == "authz"


# ---------------------------------------------------------------------- namespace override (README)


def readme_override_example() -> str:
    text = (MANIFESTS / "README.md").read_text()
    m = re.search(r"<!-- namespace-override -->\s*```yaml\n(.*?)```", text, re.S)
    assert m, "manifests/README.md lost its namespace-override example"
    return m[1]


def test_readme_namespace_override_keeps_the_wiring(kubectl: str, tmp_path: Path) -> None:
    """The README's recipe for another namespace renders a consistent installation."""
    example = yaml.safe_load(readme_override_example())
    new_ns = example["namespace"]
    assert new_ns != "kaptain-ingress"

    def local(ref: str) -> str:
        # kustomize takes only relative paths to other kustomizations.
        assert ref.startswith("../manifests/"), ref
        return os.path.relpath(MANIFESTS / ref.removeprefix("../manifests/"), tmp_path)

    example["resources"] = [local(r) for r in example["resources"]]
    example["components"] = [local(r) for r in example.get("components", [])]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(example))
    proc = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    objs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {namespace_of(o) for o in objs} == {new_ns}
    check_ext_authz_wiring(objs)
    check_mesh_policies(objs)
    policy = one(objs, "AuthorizationPolicy", "authz-redis-allow-authz")
    assert policy["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        f"{TRUST_DOMAIN}/ns/{new_ns}/sa/authz"
    ]
