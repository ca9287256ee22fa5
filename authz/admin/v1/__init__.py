"""Generated from protos/authz/admin/v1/admin.proto by `make protos`; do not edit."""
