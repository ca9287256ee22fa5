"""The local stack behind `make demo`: Envoy + authz + an OIDC provider + an upstream page."""
