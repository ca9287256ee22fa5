"""Native TLS for the gRPC port (deployments without a mesh), with optional client
certificates (mTLS). Certificate files are re-read when they change, without a restart:
gRPC asks for the configuration at each new handshake and we answer from the files'
modification times.
"""

from __future__ import annotations

import logging
import os
import threading

import grpc

from authz.settings import TLSSettings

log = logging.getLogger("authz.tls")


class _CertificateFiles:
    def __init__(self, tls: TLSSettings) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._stamp = self._mtimes()

    def _paths(self) -> list[str]:
        return [p for p in (self._tls.cert_file, self._tls.key_file, self._tls.client_ca_file) if p]

    def _mtimes(self) -> tuple[float, ...]:
        try:
            return tuple(os.stat(p).st_mtime_ns for p in self._paths())
        except OSError:
            return ()

    def load(self) -> grpc.ServerCertificateConfiguration:
        tls = self._tls
        with open(tls.key_file, "rb") as fh:
            key = fh.read()
        with open(tls.cert_file, "rb") as fh:
            chain = fh.read()
        root = None
        if tls.client_ca_file:
            with open(tls.client_ca_file, "rb") as fh:
                root = fh.read()
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=root)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None when unchanged; a new configuration when any file changed and loads."""
        stamp = self._mtimes()
        with self._lock:
            if not stamp or stamp == self._stamp:
                return None
            try:
                config = self.load()
            except (OSError, ValueError) as exc:
                log.warning("certificate reload failed; keeping the current one", extra={"error": type(exc).__name__})
                return None
            self._stamp = stamp
        log.info("certificate reloaded")
        return config


def server_credentials(tls: TLSSettings) -> grpc.ServerCredentials:
    """TLS credentials; client certificates required when a client CA is configured."""
    files = _CertificateFiles(tls)
    return grpc.dynamic_ssl_server_credentials(
        files.load(), files.fetch, require_client_authentication=bool(tls.client_ca_file)
    )
