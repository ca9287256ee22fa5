"""Bounded HTTP GETs of provider documents (discovery, JWKS) with httpx.

Connect/read timeouts, a response size cap, and redirects followed only on the same
host. Every failure becomes :class:`DependencyUnavailable` with a stable code; httpx's
exceptions are translated here and nowhere else.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from authz.errors import DependencyUnavailable
from authz.settings import (
    HTTP_CONNECT_TIMEOUT,
    HTTP_MAX_BODY,
    HTTP_MAX_REDIRECTS,
    HTTP_READ_TIMEOUT,
)

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fetched:
    document: Any
    max_age: float | None


def _max_age(headers: httpx.Headers) -> float | None:
    control = headers.get("cache-control", "")
    if "no-store" in control.lower() or "no-cache" in control.lower():
        return 0.0
    match = _MAX_AGE.search(control)
    return float(match.group(1)) if match else None


class Fetcher:
    """One httpx client per CA bundle, shared by every issuer that uses it."""

    def __init__(
        self,
        *,
        connect_timeout: float = HTTP_CONNECT_TIMEOUT,
        read_timeout: float = HTTP_READ_TIMEOUT,
        max_body: int = HTTP_MAX_BODY,
    ) -> None:
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._max_body = max_body
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def client(self, ca_bundle: str | None) -> httpx.AsyncClient:
        client = self._clients.get(ca_bundle)
        if client is None:
            verify: ssl.SSLContext | bool = True
            if ca_bundle:
                verify = ssl.create_default_context(cafile=ca_bundle)
            client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, verify=verify, trust_env=False)
            self._clients[ca_bundle] = client
        return client

    async def get_json(self, url: str, ca_bundle: str | None, code: str, token_file: str | None = None) -> Fetched:
        """GET ``url`` and parse JSON. Raises DependencyUnavailable(code).

        ``token_file``: re-read at every fetch (projected tokens rotate) and sent as a bearer
        token, only to the URL's own host.
        """
        client = self.client(ca_bundle)
        headers = {"accept": "application/json"}
        if token_file:
            try:
                with open(token_file, encoding="ascii") as fh:
                    headers["authorization"] = "Bearer " + fh.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise DependencyUnavailable(code, "cannot read key_fetch_token_file") from exc
        host = urlsplit(url).netloc
        for _ in range(HTTP_MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", url, headers=headers) as resp:
                    if resp.is_redirect:
                        target = urljoin(url, resp.headers.get("location", ""))
                        if urlsplit(target).netloc != host:
                            raise DependencyUnavailable(code, "redirect off the provider's host")
                        url = target
                        continue
                    if resp.status_code != 200:
                        raise DependencyUnavailable(code, f"HTTP {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_body:
                            raise DependencyUnavailable(code, "response over size limit")
                    try:
                        document = json.loads(body)
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise DependencyUnavailable(code, "response is not JSON") from exc
                    return Fetched(document, _max_age(resp.headers))
            except httpx.TimeoutException as exc:
                raise DependencyUnavailable(code, "timed out") from exc
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                raise DependencyUnavailable(code, type(exc).__name__) from exc
        raise DependencyUnavailable(code, "too many redirects")

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
