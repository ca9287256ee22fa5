"""A repeated session request reuses its answer only while the record and the Cookie header are the same."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from authz.decision import Allow
from authz.request import AuthRequest
from authz.server import build
from authz.sessions import Session
from authz.settings import IssuerSettings, OIDCClientSettings, Settings

ISSUER = "https://issuer.test"
SID = "s" * 43


@pytest.fixture
async def flow():
    settings = Settings(
        issuers=(IssuerSettings(issuer=ISSUER, audiences=("aud",)),),
        login_issuer=ISSUER,
        groups_allowlist=("team-a",),
        oidc=OIDCClientSettings(
            client_id="aud", redirect_url="https://gw.test/authservice/oidc/callback", auth_url=ISSUER + "/auth"
        ),
    )
    components = build(settings)
    now = time.time()
    session = Session("carol@example.com", ("team-a",), ISSUER, "id", "", now + 3600, now, now)
    await components.store.put(SID, session, 3600)
    yield components.handler.login, components.store, session
    for close in components.closers:
        await close()


def request(cookie: str, **headers: str) -> AuthRequest:
    return AuthRequest("GET", "/x", "gw.test", "https", {"cookie": cookie, "accept": "text/html", **headers})


async def test_the_same_record_and_cookie_reuse_the_answer(flow):
    login, _, _ = flow
    first = await login.check(request(f"authservice_session={SID}; theme=dark"))
    again = await login.check(request(f"authservice_session={SID}; theme=dark"))
    assert isinstance(first, Allow) and again is first
    assert dict(first.headers)["cookie"] == "theme=dark"
    other = await login.check(request(f"authservice_session={SID}; theme=light"))
    assert other is not first and dict(other.headers)["cookie"] == "theme=light"


async def test_a_changed_record_is_decided_again(flow):
    login, store, session = flow
    first = await login.check(request(f"authservice_session={SID}"))
    assert isinstance(first, Allow)
    await store.put(SID, replace(session, groups=("outsiders",)), 3600)  # e.g. a refresh changed the groups
    second = await login.check(request(f"authservice_session={SID}"))
    assert second.reason == "group_not_allowed"
    await store.delete(SID)  # logout
    gone = await login.check(request(f"authservice_session={SID}"))
    assert gone.status == 302 and gone.reason == "login_redirect"


async def test_spoofed_identity_headers_are_stripped_every_time(flow):
    login, _, _ = flow
    plain = await login.check(request(f"authservice_session={SID}"))
    spoofed = await login.check(request(f"authservice_session={SID}", kubeflow_userid="mallory"))
    # Every answer strips every spelling, so the reused answer is as safe for a spoofed request.
    assert spoofed is plain
    assert "kubeflow_userid" in spoofed.remove
    assert dict(spoofed.headers)["kubeflow-userid"] == "carol@example.com"


async def test_the_session_id_is_not_kept_in_the_answers(flow):
    login, _, _ = flow
    await login.check(request(f"authservice_session={SID}; theme=dark"))
    assert all(SID not in key for key in login._answers)
    assert all(SID not in sid_digest for sid_digest, _, _ in login._answers.values())


async def test_a_reused_answer_still_honours_idle_and_touch(flow):
    """The answer is found before the Cookie header is parsed, but only a session that needs
    nothing done (not idle, not expired, no last-seen write due) is answered from it."""
    login, store, _ = flow
    cookie = f"authservice_session={SID}"
    clock = [time.time()]
    login._clock = lambda: clock[0]
    first = await login.check(request(cookie))
    assert isinstance(first, Allow) and await login.check(request(cookie)) is first
    clock[0] += login.policy._touch_every + 1  # last-seen write due: the record is rewritten
    touched = await login.check(request(cookie))
    assert isinstance(touched, Allow) and touched is not first and touched.headers == first.headers
    stored = await store.get(SID)
    assert stored is not None and stored.last_seen == clock[0]
    assert await login.check(request(cookie)) is touched  # the new record's answer, reused
    clock[0] += login.policy.session.idle_timeout + 1  # idle: the session ends
    idle = await login.check(request(cookie))
    assert idle.status == 302 and idle.reason == "login_redirect"
    assert await store.get(SID) is None
