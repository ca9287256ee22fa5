"""authz: a zero-trust authentication gate for Envoy and Istio (ext_authz over gRPC)."""

from __future__ import annotations

__version__ = "0.1.0"
