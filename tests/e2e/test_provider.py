"""The local OpenID Provider (demo/provider) behaves as the gateway's tests expect from Dex."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from jose import jwt

from tests.support.provider import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    OTHER_USER,
    LoginError,
    Provider,
    login_with_httpx,
    logout_with_httpx,
    parse_forms,
    run_provider,
)

pytestmark = pytest.mark.e2e

CLIENT_ID = "authz-test"
CLIENT_SECRET = "authz-test-secret"
CALLBACK = "http://127.0.0.1:18080/oauth2/callback"
LOGGED_OUT = "http://127.0.0.1:18080/logged-out"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[LOGGED_OUT],
    ) as p:
        yield p


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def jwt_payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def authorization_request(provider: Provider, scope: str = "openid email profile groups", pkce: bool = True) -> dict:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
    }
    if pkce:
        params["code_challenge"] = challenge.rstrip(b"=").decode()
        params["code_challenge_method"] = "S256"
    url = f"{provider.discovery()['authorization_endpoint']}?{urlencode(params)}"
    return {"url": url, "verifier": verifier, **params}


def token_request(provider: Provider, data: dict[str, str], basic: bool = True) -> httpx.Response:
    endpoint = provider.discovery()["token_endpoint"]
    if basic:
        return httpx.post(endpoint, data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return httpx.post(endpoint, data={**data, **creds}, timeout=10)


def log_in(provider: Provider, client: httpx.Client, username: str = DEFAULT_USER) -> tuple[dict, dict]:
    """Runs the code flow; returns the authorization request and the token response."""
    request = authorization_request(provider)
    callback = login_with_httpx(client, request["url"], username, DEFAULT_PASSWORD, CALLBACK)
    assert callback.status_code in (302, 303)
    query = parse_qs(urlsplit(callback.headers["location"]).query)
    assert query["state"] == [request["state"]]
    assert query["iss"] == [provider.issuer]
    response = token_request(
        provider,
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": CALLBACK,
            "code_verifier": request["verifier"],
        },
    )
    assert response.status_code == 200, response.text
    return request, response.json()


def refresh(provider: Provider, refresh_token: str, basic: bool = True) -> httpx.Response:
    return token_request(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token}, basic=basic)


def test_discovery(provider: Provider) -> None:
    doc = httpx.get(provider.discovery_url).json()
    assert doc["issuer"] == provider.issuer
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
        "userinfo_endpoint",
    ):
        assert doc[key].startswith(provider.issuer + "/"), key
    assert "S256" in doc["code_challenge_methods_supported"]
    assert doc["response_types_supported"] == ["code"]
    assert {"client_secret_basic", "client_secret_post"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert {"openid", "email", "profile", "groups"} <= set(doc["scopes_supported"])
    jwks = httpx.get(doc["jwks_uri"]).json()
    assert {(k["kty"], k["alg"]) for k in jwks["keys"]} == {("RSA", "RS256"), ("EC", "ES256")}


def test_code_flow_claims_and_refresh_rotation(provider: Provider, client: httpx.Client) -> None:
    request, tokens = log_in(provider, client)
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    claims = jwt_payload(tokens["id_token"])
    assert claims == jwt.decode(  # the signature checks out against the published keys
        tokens["id_token"],
        httpx.get(provider.discovery()["jwks_uri"]).json(),
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=provider.issuer,
        access_token=tokens["access_token"],
    )
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["email"] == DEFAULT_USER
    assert claims["email_verified"] is True
    assert claims["name"] == "Demo User"
    assert claims["groups"] == ["team-a", "everyone"]
    assert claims["nonce"] == request["nonce"]
    # Dex's encoding of user id 08a8684b-… on connector "local".
    assert claims["sub"] == "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs"
    assert claims["exp"] - claims["iat"] == 3600

    first = tokens["refresh_token"]
    rotated = refresh(provider, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first
    assert jwt_payload(second["id_token"])["groups"] == ["team-a", "everyone"]
    # client_secret_post is accepted as well.
    third = refresh(provider, second["refresh_token"], basic=False)
    assert third.status_code == 200, third.text
    userinfo = httpx.get(
        provider.discovery()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {third.json()['access_token']}"},
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["email"] == DEFAULT_USER
    # A rotated-away token is dead, and presenting it revokes the whole grant (reuse detection).
    reused = refresh(provider, first)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(provider, third.json()["refresh_token"]).status_code == 400


def test_second_user_and_session_reuse(provider: Provider, client: httpx.Client) -> None:
    _, tokens = log_in(provider, client, OTHER_USER)
    assert jwt_payload(tokens["id_token"])["groups"] == ["team-b"]
    # The provider session is reused: no login form the second time.
    again = client.get(authorization_request(provider)["url"])
    while again.is_redirect and not again.headers["location"].startswith(CALLBACK):
        again = client.get(again.headers["location"])
    assert again.headers["location"].startswith(CALLBACK + "?code=")


def test_wrong_password_shows_form_again(provider: Provider, client: httpx.Client) -> None:
    url = authorization_request(provider)["url"]
    with pytest.raises(LoginError) as failed:
        login_with_httpx(client, url, DEFAULT_USER, "wrong", CALLBACK)
    page = failed.value.response
    assert page.status_code == 200
    assert "Invalid Email Address and password" in page.text
    forms, errors = parse_forms(page.text)
    assert forms[0].is_login and forms[0].fields["username"] == DEFAULT_USER
    assert errors == ["Invalid Email Address and password."]
    # The same form still works with the right password.
    ok = client.post(str(page.url), data={"username": DEFAULT_USER, "password": DEFAULT_PASSWORD})
    assert ok.status_code == 303


def test_pkce_is_required(provider: Provider, client: httpx.Client) -> None:
    response = client.get(authorization_request(provider, pkce=False)["url"])
    assert response.is_redirect
    assert "error=invalid_request" in response.headers["location"]


def test_logout_revokes_refresh_token(provider: Provider, client: httpx.Client) -> None:
    _, tokens = log_in(provider, client)
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": LOGGED_OUT,
        "state": "bye",
    }
    url = f"{provider.discovery()['end_session_endpoint']}?{urlencode(params)}"
    done = logout_with_httpx(client, url, LOGGED_OUT)
    assert done.headers["location"] == f"{LOGGED_OUT}?state=bye"
    assert refresh(provider, tokens["refresh_token"]).status_code == 400
    # The provider session is gone: the next authorization shows the login form.
    page = client.get(authorization_request(provider)["url"], follow_redirects=True)
    assert parse_forms(page.text)[0][0].is_login


def test_revocation(provider: Provider, client: httpx.Client) -> None:
    _, tokens = log_in(provider, client)
    revoked = httpx.post(
        provider.discovery()["revocation_endpoint"],
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    assert refresh(provider, tokens["refresh_token"]).status_code == 400


def test_restart_keeps_keys_and_tokens(provider: Provider, client: httpx.Client) -> None:
    _, tokens = log_in(provider, client)
    keys = httpx.get(provider.discovery()["jwks_uri"]).json()
    provider.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(provider.discovery_url)
    provider.start()
    assert httpx.get(provider.discovery()["jwks_uri"]).json() == keys
    assert refresh(provider, tokens["refresh_token"]).status_code == 200


def test_short_id_token_ttl() -> None:
    with (
        run_provider(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uris=[CALLBACK],
            id_token_ttl=5,
        ) as short,
        httpx.Client() as c,
    ):
        _, tokens = log_in(short, c)
        claims = jwt_payload(tokens["id_token"])
        assert claims["exp"] - claims["iat"] == 5
