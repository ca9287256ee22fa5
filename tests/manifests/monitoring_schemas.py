"""Strict JSON schemas for the Prometheus Operator kinds that manifests/monitoring emits.

No CRD schema for monitoring.coreos.com ships in ../shared/schemas, so these are written by hand
from the Prometheus Operator's v1 API (PrometheusRule, PodMonitor): the fields authz's manifests
use and their neighbours, with the API's names, types and patterns, and unknown fields refused
the way ``kubectl apply`` with strict field validation refuses them. A field the API has but this
subset lacks fails the test: add it here from the API reference before using it.

Imported by name from the test modules (keep this module name unique in the repository).
"""

from __future__ import annotations

from typing import Any

# The operator's Duration and NonEmptyDuration patterns.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
NON_EMPTY_DURATION = r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


_METADATA = _object(
    ["name"],
    name={"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
    namespace={"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    labels=_STRING_MAP,
    annotations=_STRING_MAP,
)

_RULE = _object(
    ["expr"],
    alert={"type": "string"},
    record={"type": "string"},
    expr={"anyOf": [{"type": "string"}, {"type": "integer"}]},  # int-or-string
    labels=_STRING_MAP,
    annotations=_STRING_MAP,
    keep_firing_for={"type": "string", "minLength": 1, "pattern": NON_EMPTY_DURATION},
    **{"for": {"type": "string", "pattern": DURATION}},
)
_RULE_GROUP = _object(
    ["name"],
    name={"type": "string", "minLength": 1},
    interval={"type": "string", "pattern": DURATION},
    query_offset={"type": "string", "pattern": DURATION},
    limit={"type": "integer"},
    partial_response_strategy={"type": "string", "pattern": "(?i)^(abort|warn)?$"},
    labels=_STRING_MAP,
    rules={"type": "array", "items": _RULE},
)

# Both spellings are accepted by the operator.
_RELABEL_ACTIONS = [
    *("replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase"),
    *("keepequal", "dropequal"),
    *("Replace", "Keep", "Drop", "HashMod", "LabelMap", "LabelDrop", "LabelKeep", "Lowercase", "Uppercase"),
    *("KeepEqual", "DropEqual"),
]
_RELABEL = _object(
    [],
    sourceLabels={"type": "array", "items": {"type": "string", "pattern": LABEL_NAME}},
    separator={"type": "string"},
    targetLabel={"type": "string"},
    regex={"type": "string"},
    modulus={"type": "integer"},
    replacement={"type": "string"},
    action={"type": "string", "enum": _RELABEL_ACTIONS},
)
_LABEL_SELECTOR = _object(
    [],
    matchLabels=_STRING_MAP,
    matchExpressions={
        "type": "array",
        "items": _object(
            ["key", "operator"],
            key={"type": "string"},
            operator={"type": "string"},
            values={"type": "array", "items": {"type": "string"}},
        ),
    },
)
_POD_METRICS_ENDPOINT = _object(
    [],
    port={"type": "string"},
    portNumber={"type": "integer", "minimum": 1, "maximum": 65535},
    path={"type": "string"},
    scheme={"type": "string", "enum": ["http", "https"]},
    interval={"type": "string", "pattern": DURATION},
    scrapeTimeout={"type": "string", "pattern": DURATION},
    honorLabels={"type": "boolean"},
    honorTimestamps={"type": "boolean"},
    params={"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    relabelings={"type": "array", "items": _RELABEL},
    metricRelabelings={"type": "array", "items": _RELABEL},
)
_POD_MONITOR_SPEC = _object(
    ["selector"],
    selector=_LABEL_SELECTOR,
    namespaceSelector=_object([], any={"type": "boolean"}, matchNames={"type": "array", "items": {"type": "string"}}),
    podMetricsEndpoints={"type": "array", "items": _POD_METRICS_ENDPOINT},
    jobLabel={"type": "string"},
    podTargetLabels={"type": "array", "items": {"type": "string"}},
    sampleLimit={"type": "integer", "minimum": 0},
    targetLimit={"type": "integer", "minimum": 0},
)


def _kind(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _object(
        ["apiVersion", "kind", "metadata", "spec"],
        apiVersion={"const": "monitoring.coreos.com/v1"},
        kind={"const": kind},
        metadata=_METADATA,
        spec=spec,
    )


# (group, version, kind) -> schema of the whole object, as test_manifests_schemas.crd_schemas keys them.
SCHEMAS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("monitoring.coreos.com", "v1", "PrometheusRule"): _kind(
        "PrometheusRule", _object(["groups"], groups={"type": "array", "items": _RULE_GROUP})
    ),
    ("monitoring.coreos.com", "v1", "PodMonitor"): _kind("PodMonitor", _POD_MONITOR_SPEC),
}
