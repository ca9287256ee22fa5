"""The committed generated code is what `make protos` produces from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "protos.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_admin_service_is_registered_with_envoy_types() -> None:
    from authz.admin.v1 import admin_pb2

    service = admin_pb2.DESCRIPTOR.services_by_name["Admin"]
    assert [m.name for m in service.methods] == ["Explain", "Keys", "RefreshKeys", "Status"]
    field = admin_pb2.ExplainRequest.DESCRIPTOR.fields_by_name["check_request"]
    assert field.message_type.full_name == "envoy.service.auth.v3.CheckRequest"
