"""manifests/monitoring: the alerts, the scrape config and the dashboard, checked against authz itself.

Every metric name in an alert or a dashboard query is one authz exports (``authz.metrics``); the
rules and every dashboard query parse with ``promtool``, and ``promtool test rules`` feeds each
alert series that must fire it (and series that must not). The add-on stays out of base and the
overlays, follows a namespace override, and scrapes the pods and port the Deployment has.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifest_helpers import MANIFESTS, Obj, kustomize_targets, one
from prometheus_client.metrics import MetricWrapperBase

from authz import metrics

TARGET = "monitoring"
NAMESPACE = "kaptain-ingress"
SEVERITIES = {"critical", "warning"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH (Debian package prometheus; scripts/bootstrap.sh installs it)")
    return path


@pytest.fixture(scope="module")
def objs(rendered: dict[str, list[Obj]]) -> list[Obj]:
    assert TARGET in rendered, "manifests/monitoring is not a kustomization"
    return rendered[TARGET]


@pytest.fixture(scope="module")
def rules(objs: list[Obj]) -> list[dict[str, Any]]:
    return [r for g in one(objs, "PrometheusRule", "authz")["spec"]["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def dashboard(objs: list[Obj]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap", "authz-grafana-dashboard")
    (text,) = cm["data"].values()
    return json.loads(text)


# -- which metric names PromQL uses, and which authz exports ----------------------------------

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name authz's /metrics can carry."""
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            (family,) = metric.describe()
            names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")  # a name not called
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values query) selects."""
    if m := re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s*,\s*\w+\s*\)\s*", expr):
        return {m[1]}
    text = _STRINGS.sub('""', expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPING, _VARIABLES):
        text = pattern.sub(" ", text)
    return {n for n in _IDENTIFIER.findall(text) if n.lower() not in _KEYWORDS}


def test_metric_name_extraction_can_fail() -> None:
    """The check below is only as good as the extraction: it finds names, and only names."""
    expr = (
        'sum by (namespace, le) (rate(authz_check_duration_seconds_bucket{reason=~"a|b", x="y z"}[5m]))'
        ' / on (namespace) group_left sum(authz_chekcs_total offset 1d) > 0.25 and time() - up < 3'
    )
    assert metric_names(expr) == {"authz_check_duration_seconds_bucket", "authz_chekcs_total", "up"}
    assert metric_names('label_values(authz_checks_total{namespace="$namespace"}, pod)') == {"authz_checks_total"}
    assert metric_names('sum(rate(authz_logins_total{pod=~"$pod"}[$__rate_interval]))') == {"authz_logins_total"}
    assert "authz_chekcs_total" not in exported_names()
    assert {"authz_checks_total", "authz_checks_in_flight", "authz_check_duration_seconds_bucket"} <= exported_names()


def test_alerts_use_only_exported_metrics(rules: list[dict[str, Any]]) -> None:
    exported = exported_names()
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in its expression"
        assert names <= exported, f"{rule['alert']} uses metrics authz does not export: {names - exported}"


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query) of every panel target and every query variable."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable {var['name']}", query))
    return out


def test_dashboard_uses_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_names()
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 15
    for where, query in queries:
        names = metric_names(query)
        assert names, f"{where}: no metric found"
        assert names <= exported, f"{where} uses metrics authz does not export: {names - exported}"


# -- the objects ---------------------------------------------------------------------------------


def test_monitoring_renders_the_rule_the_monitor_and_the_dashboard(objs: list[Obj]) -> None:
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objs) == [
        ("ConfigMap", "authz-grafana-dashboard"),
        ("PodMonitor", "authz"),
        ("PrometheusRule", "authz"),
    ]
    assert {o["metadata"]["namespace"] for o in objs} == {NAMESPACE}
    cm = one(objs, "ConfigMap", "authz-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_monitoring_is_an_add_on_outside_base_and_the_overlays() -> None:
    assert TARGET in kustomize_targets()
    for path in MANIFESTS.rglob("kustomization.yaml"):
        if path.parent == MANIFESTS / TARGET:
            continue
        doc = yaml.safe_load(path.read_text())
        refs = [*doc.get("resources", []), *doc.get("components", [])]
        pulled = [r for r in refs if (path.parent / r).resolve() == (MANIFESTS / TARGET).resolve()]
        assert not pulled, f"{path.relative_to(MANIFESTS)} includes manifests/monitoring"


def test_namespace_override_moves_every_object(kubectl: str, tmp_path: Path) -> None:
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "platform-auth",
        "resources": [os.path.relpath(MANIFESTS / TARGET, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    proc = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    moved = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert len(moved) == 3
    assert {o["metadata"]["namespace"] for o in moved} == {"platform-auth"}
    # The PodMonitor looks in its own namespace (no namespaceSelector), so it follows authz there.
    assert "namespaceSelector" not in one(moved, "PodMonitor")["spec"]


def test_pod_monitor_scrapes_authz_pods_where_their_annotations_point(
    objs: list[Obj], rendered: dict[str, list[Obj]]
) -> None:
    monitor = one(objs, "PodMonitor", "authz")["spec"]
    (endpoint,) = monitor["podMetricsEndpoints"]
    for overlay in ("base", "overlays/envoyfilter", "overlays/extension-provider", "overlays/redis"):
        template = one(rendered[overlay], "Deployment", "authz")["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert monitor["selector"]["matchLabels"].items() <= labels.items(), overlay
        container = next(c for c in template["spec"]["containers"] if c["name"] == "authz")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert endpoint["port"] in ports, overlay
        annotations = template["metadata"]["annotations"]
        # Istio's injector rewrites these to its merged endpoint; without a sidecar they are authz's own.
        assert annotations["prometheus.io/port"] == str(ports[endpoint["port"]]), overlay
        assert annotations["prometheus.io/path"] == endpoint["path"] == "/metrics", overlay
    sources = [r["sourceLabels"] for r in endpoint["relabelings"]]
    assert ["__meta_kubernetes_pod_annotation_prometheus_io_path"] in sources
    assert all(r["targetLabel"] in ("__address__", "__metrics_path__") for r in endpoint["relabelings"])
    (keep,) = endpoint["metricRelabelings"]
    assert keep == {"sourceLabels": ["__name__"], "regex": "authz_.*", "action": "keep"}
    assert all(re.fullmatch(keep["regex"], n) for n in exported_names())


def test_every_alert_is_complete(rules: list[dict[str, Any]]) -> None:
    names = [r.get("alert") for r in rules]
    assert len(names) >= 8
    assert len(set(names)) == len(names), "alert names repeat"
    for rule in rules:
        name = rule.get("alert")
        assert name and re.fullmatch(r"Authz[A-Z][A-Za-z]+", name), f"not an alert rule: {rule}"
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
        assert DURATION.fullmatch(rule.get("for", "")), f"{name}: for must be a duration"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: labels.severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: annotations.summary"
        assert annotations.get("description"), f"{name}: annotations.description"


def test_alert_groups_are_well_formed(objs: list[Obj]) -> None:
    groups = one(objs, "PrometheusRule", "authz")["spec"]["groups"]
    assert groups
    assert len({g["name"] for g in groups}) == len(groups)
    for group in groups:
        assert group["name"].startswith("authz."), group["name"]
        assert group["rules"], group["name"]
        assert set(group) <= {"name", "rules", "interval"}


def test_dashboard_is_grafana_json_on_one_data_source(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "authz-overview"
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids), "panel ids repeat"
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        for target in panel.get("targets", []):
            assert panel["datasource"]["uid"] == target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'namespace="$namespace"' in target["expr"], f"{panel['title']}: not filtered by namespace"


def test_the_dashboard_in_the_configmap_is_the_file(dashboard: dict[str, Any]) -> None:
    assert dashboard == json.loads((MANIFESTS / TARGET / "dashboards" / "authz.json").read_text())


def test_readme_explains_every_alert(rules: list[dict[str, Any]]) -> None:
    text = (MANIFESTS / "README.md").read_text()
    m = re.search(r"^## Monitoring\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, "manifests/README.md has no Monitoring section"
    for rule in rules:
        assert f"`{rule['alert']}`" in m[1], f"manifests/README.md does not explain {rule['alert']}"


# -- promtool --------------------------------------------------------------------------------------


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_rules_parse(promtool: str, objs: list[Obj], tmp_path: Path) -> None:
    spec = one(objs, "PrometheusRule", "authz")["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    proc = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_queries_parse(promtool: str, dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each panel query, with Grafana's interval variables filled in, as a recording rule for promtool."""
    records = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
            records.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    proc = _promtool(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(records)} rules found" in proc.stdout


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    labels = {"namespace": "ns", "pod": "authz-0", **labels}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


ISSUER = "https://idp.example.com"
BUCKETS = "authz_check_duration_seconds_bucket"
STORE_BUCKETS = "authz_session_store_duration_seconds_bucket"


def _slow(name: str) -> list[dict[str, str]]:
    """Every observation between 0.5 s and 1 s."""
    return [_series(name, "0x40", le="0.25"), _series(name, "0x40", le="0.5"), _series(name, "0+10x40", le="1.0"),
            _series(name, "0+10x40", le="+Inf")]  # fmt: skip


def _fast(name: str) -> list[dict[str, str]]:
    return [_series(name, "0+10x40", le=le) for le in ("0.25", "0.5", "1.0", "+Inf")]


def _login(stage: str, reason: str, values: str) -> dict[str, str]:
    return _series("authz_logins_total", values, stage=stage, reason=reason)


def _checks(decision: str, reason: str, values: str) -> dict[str, str]:
    return _series("authz_checks_total", values, decision=decision, reason=reason)


# (alert, what happens, input series, when, labels of the alert expected, or None for none)
CASES: list[tuple[str, str, list[dict[str, str]], str, dict[str, str] | None]] = [
    ("AuthzKeysUnavailable", "never loaded",
     [_series("authz_keys_usable_until_timestamp_seconds", "0x20", issuer=ISSUER)],
     "10m", {"pod": "authz-0", "issuer": ISSUER}),
    ("AuthzKeysUnavailable", "usable for a day",
     [_series("authz_keys_usable_until_timestamp_seconds", "86400x20", issuer=ISSUER)], "10m", None),
    ("AuthzKeysStale", "fresh until 1m, usable for a day",
     [_series("authz_keys_fresh_until_timestamp_seconds", "60x30", issuer=ISSUER),
      _series("authz_keys_usable_until_timestamp_seconds", "86400x30", issuer=ISSUER)],
     "20m", {"pod": "authz-0", "issuer": ISSUER}),
    ("AuthzKeysStale", "never loaded (AuthzKeysUnavailable instead)",
     [_series("authz_keys_fresh_until_timestamp_seconds", "0x30", issuer=ISSUER),
      _series("authz_keys_usable_until_timestamp_seconds", "0x30", issuer=ISSUER)], "20m", None),
    ("AuthzKeyFetchesFailing", "an error a minute, no success",
     [_series("authz_key_fetches_total", "0+1x40", issuer=ISSUER, result="error"),
      _series("authz_key_fetches_total", "3x40", issuer=ISSUER, result="ok")],
     "25m", {"issuer": ISSUER}),
    ("AuthzKeyFetchesFailing", "errors, and successes between them",
     [_series("authz_key_fetches_total", "0+1x40", issuer=ISSUER, result="error"),
      _series("authz_key_fetches_total", "0+1x40", issuer=ISSUER, result="ok")], "25m", None),
    ("AuthzProviderUnavailable", "503 provider_unavailable",
     [_checks("deny", "provider_unavailable", "0+10x20")], "15m", {}),
    ("AuthzLoginsRejectedByProvider", "half the logins come back with an error",
     [_login("start", "missing_credentials", "0+10x60"), _login("failed", "provider_error", "0+5x60")],
     "40m", {}),
    ("AuthzLoginsRejectedByProvider", "every code exchange refused, no start counted",
     [_login("failed", "token_exchange_rejected", "0+5x60")], "40m", {}),
    ("AuthzLoginsRejectedByProvider", "one in a hundred",
     [_login("start", "missing_credentials", "0+100x60"), _login("failed", "provider_error", "0+1x60")],
     "40m", None),
    ("AuthzDenyRateHigh", "5% denies for a day, then half",
     [_checks("allow", "bearer", "0+600x1500"), _checks("deny", "token_expired", "0+30x1440 43200+600x60")],
     "1470m", {}),
    ("AuthzDenyRateHigh", "half denied all day long",
     [_checks("allow", "bearer", "0+600x1500"), _checks("deny", "token_expired", "0+600x1500")], "1470m", None),
    ("AuthzInternalErrors", "500 internal_error", [_checks("deny", "internal_error", "0+1x20")], "15m", {}),
    ("AuthzCheckLatencyHigh", "checks take 0.5-1 s", _slow(BUCKETS), "30m", {}),
    ("AuthzCheckLatencyHigh", "checks are fast", _fast(BUCKETS), "30m", None),
    ("AuthzSessionStoreUnavailable", "half the Redis calls fail",
     [_series("authz_session_operations_total", "0+10x20", operation="get", result="error"),
      _series("authz_session_operations_total", "0+10x20", operation="get", result="ok")], "15m", {}),
    ("AuthzSessionStoreUnavailable", "503 session_store_unavailable",
     [_checks("deny", "session_store_unavailable", "0+60x20")], "15m", {}),
    ("AuthzSessionStoreUnavailable", "every Redis call succeeds",
     [_series("authz_session_operations_total", "0x20", operation="get", result="error"),
      _series("authz_session_operations_total", "0+10x20", operation="get", result="ok")], "15m", None),
    ("AuthzSessionStoreSlow", "Redis calls take 0.5-1 s", _slow(STORE_BUCKETS), "30m", {}),
]  # fmt: skip


def test_every_alert_has_a_case_that_fires_it(rules: list[dict[str, Any]]) -> None:
    assert {r["alert"] for r in rules} == {alert for alert, _, _, _, expected in CASES if expected is not None}


def test_alerts_fire_exactly_when_they_should(promtool: str, objs: list[Obj], tmp_path: Path) -> None:
    spec = copy.deepcopy(one(objs, "PrometheusRule", "authz")["spec"])
    severity = {}
    for group in spec["groups"]:
        for rule in group["rules"]:
            severity[rule["alert"]] = rule["labels"]["severity"]
            del rule["annotations"]  # promtool compares them verbatim; check rules validates their templates
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    tests = []
    for alert, what, series, when, expected in CASES:
        exp = [] if expected is None else [{"exp_labels": {"namespace": "ns", "severity": severity[alert], **expected}}]
        tests.append({
            "name": f"{alert}: {what}",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [{"eval_time": when, "alertname": alert, "exp_alerts": exp}],
        })  # fmt: skip
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    proc = _promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """A case whose expectation is wrong fails: the check above is not vacuous."""
    rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "authz_checks_in_flight > 10", "for": "1m"}]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    test = {"interval": "1m", "input_series": [_series("authz_checks_in_flight", "0x10")],
            "alert_rule_test": [{"eval_time": "5m", "alertname": "A", "exp_alerts": [{"exp_labels": {}}]}]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [test]}))
    assert _promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path).returncode != 0

