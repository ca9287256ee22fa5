"""The OIDC provider's token and revocation endpoints (httpx). No policy: only calls.

Errors: FlowError("token_exchange_rejected") when the provider refuses the grant (a
client-side fault: bad or reused code, revoked refresh token), DependencyUnavailable
("provider_unavailable") when it cannot be reached or answers garbage.
"""

from __future__ import annotations

import base64
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from authz.errors import DependencyUnavailable, FlowError
from authz.settings import HTTP_MAX_BODY, OIDCClientSettings

log = logging.getLogger("authz.oidc")


@dataclass(frozen=True, slots=True)
class Tokens:
    id_token: str  # "" only from a refresh whose provider sent none (allowed by OIDC Core 12.2)
    refresh_token: str
    access_token: str
    expires_in: float | None = None


class OIDCClient:
    def __init__(self, settings: OIDCClientSettings, ca_bundle: str | None) -> None:
        self._s = settings
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.exchange_timeout), follow_redirects=False, verify=verify, trust_env=False
        )

    def _auth(self, form: dict[str, str]) -> dict[str, str]:
        s = self._s
        if s.token_auth_method == "client_secret_post":
            form["client_id"] = s.client_id
            if s.client_secret:
                form["client_secret"] = s.client_secret
            return {}
        if not s.client_secret:
            form["client_id"] = s.client_id
            return {}
        # RFC 6749 2.3.1: both parts form-urlencoded before base64.
        pair = f"{quote(s.client_id, safe='')}:{quote(s.client_secret, safe='')}"
        return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    async def _token_call(self, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
        headers = {"accept": "application/json", **self._auth(form)}
        try:
            resp = await self._http.post(endpoint, data=form, headers=headers)
        except httpx.TimeoutException as exc:
            raise DependencyUnavailable("provider_unavailable", "token endpoint timed out") from exc
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("provider_unavailable", type(exc).__name__) from exc
        if len(resp.content) > HTTP_MAX_BODY:
            raise DependencyUnavailable("provider_unavailable", "token response too large")
        try:
            body = resp.json()
        except ValueError as exc:
            raise DependencyUnavailable("provider_unavailable", f"token endpoint HTTP {resp.status_code}") from exc
        if resp.status_code in (400, 401) and isinstance(body, dict):
            # Only the provider's error code is kept: descriptions may echo request data.
            error = str(body.get("error", "invalid_grant"))[:64]
            raise FlowError("token_exchange_rejected", error)
        if resp.status_code != 200 or not isinstance(body, dict):
            raise DependencyUnavailable("provider_unavailable", f"token endpoint HTTP {resp.status_code}")
        return body

    @staticmethod
    def _tokens(body: dict[str, Any], previous_refresh: str = "", *, id_token_required: bool = True) -> Tokens:
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            if id_token_required or id_token is not None:
                raise FlowError("id_token_missing", "token response without id_token")
            id_token = ""
        refresh = body.get("refresh_token")
        access = body.get("access_token")
        expires_in = body.get("expires_in")
        return Tokens(
            id_token=id_token,
            refresh_token=refresh if isinstance(refresh, str) else previous_refresh,
            access_token=access if isinstance(access, str) else "",
            expires_in=float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else None,
        )

    async def exchange(self, endpoint: str, code: str, verifier: str) -> Tokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._s.redirect_url,
            "code_verifier": verifier,
        }
        return self._tokens(await self._token_call(endpoint, form))

    async def refresh(self, endpoint: str, refresh_token: str) -> Tokens:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        # Providers that rotate (Dex) send a new refresh token; others keep the old one valid.
        body = await self._token_call(endpoint, form)
        return self._tokens(body, previous_refresh=refresh_token, id_token_required=False)

    async def revoke(self, endpoint: str, refresh_token: str) -> bool:
        """Best effort (RFC 7009); never raises."""
        form = {"token": refresh_token, "token_type_hint": "refresh_token"}
        headers = self._auth(form)
        try:
            resp = await self._http.post(endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("revocation failed", extra={"error": type(exc).__name__})
            return False
        return resp.status_code == 200

    async def aclose(self) -> None:
        await self._http.aclose()
