"""A Deny's CheckResponse bytes: the engine's prebuilt denies are found again by identity, and the
bytes are those the protobuf library builds for the deny, however it was looked up."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb

from authz.decision import Allow, Deny, json_deny
from authz.engine import Engine
from authz.envoy import ResponseEncoder, denied_response
from authz.settings import IssuerSettings, Settings
from tests.support.tokens import AUDIENCE, ISSUER

ENGINE = Engine(Settings(issuers=(IssuerSettings(ISSUER, (AUDIENCE,)),)))
DENIES = [
    (401, "missing_credentials"),
    (401, "authorization_scheme_unsupported"),
    (401, "token_malformed"),
    (401, "token_unknown_kid"),
    (403, "group_not_allowed"),
    (503, "keys_unavailable"),
    (400, "request_invalid"),
    (500, "internal_error"),
]


def _copy(deny: Deny) -> Deny:
    """An equal deny that is another object."""
    return dataclasses.replace(deny)


@pytest.mark.parametrize(("status", "reason"), DENIES)
def test_an_engine_deny_found_by_identity_is_the_bytes_built_by_value(status: int, reason: str) -> None:
    deny = ENGINE.deny(status, reason)
    assert ENGINE.deny(status, reason) is deny  # one object per (status, reason)
    built = denied_response(deny).SerializeToString()
    encoder = ResponseEncoder()
    first = encoder.wire(deny)  # by value, then kept
    again = [encoder.wire(deny) for _ in range(3)]  # by identity
    assert first == built and all(data is first for data in again)
    copy = _copy(deny)
    assert copy == deny and copy is not deny
    assert encoder.wire(copy) == built  # an equal deny built anew: by value
    assert ResponseEncoder().wire(copy) == built
    parsed = pb.CheckResponse.FromString(first)
    assert (parsed.denied_response.status.code, parsed.status.message) == (status, reason)


def test_equal_denies_built_anew_take_no_place_by_identity() -> None:
    encoder = ResponseEncoder()
    allow = Allow(reason="bearer", headers=(("kubeflow-userid", "alice"),))
    encoder.wire(allow)
    api = json_deny(401, "login_required", login_url="/authservice/login")  # the first: kept
    kept = encoder.wire(api)
    fresh = [
        json_deny(401, "login_required", login_url="/authservice/login") for _ in range(ResponseEncoder.MAX_ALLOWS)
    ]
    assert all(encoder.wire(deny) is kept for deny in fresh)
    # Neither the allow nor the kept deny was pushed out of the identity map by them.
    assert sorted(map(id, (allow, api))) == sorted(encoder._by_id)
    assert encoder.wire(api) is kept


def test_a_set_cookie_deny_is_never_kept_however_often_it_comes() -> None:
    encoder = ResponseEncoder()
    deny = json_deny(302, "login_redirect", (("set-cookie", "authservice_state=abc; Secure"),))
    built = denied_response(deny).SerializeToString()
    answers = [encoder.wire(deny) for _ in range(3)]
    assert all(data == built for data in answers)
    assert len({id(data) for data in answers}) == 3  # built for each request
    assert not encoder._by_id and not encoder._denies
