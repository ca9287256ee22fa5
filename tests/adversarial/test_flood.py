"""Unauthenticated requests that make authz keep state: they must not push real sessions out.

Every browser navigation without a session starts a login, and a login state is kept until
its callback or for ten minutes. Such requests cost an attacker nothing, so however many
arrive, the sessions of users who are logged in must stay.
"""

from __future__ import annotations

import dataclasses

from tests.adversarial.browser import Browser, location, target
from tests.adversarial.inproc import running, settings_from_env
from tests.adversarial.stub_op import run_stub_op
from tests.adversarial.table import outcome, record

MAX_SESSIONS = 50


def test_login_state_flood_keeps_existing_sessions() -> None:
    with run_stub_op("authz-flood", "flood-secret") as op:
        settings = settings_from_env({
            "OIDC_PROVIDER": op.issuer, "CLIENT_ID": "authz-flood", "CLIENT_SECRET": "flood-secret",
            "REDIRECT_URL": "https://app.example.com/authservice/oidc/callback",
        })  # fmt: skip
        settings = dataclasses.replace(settings, session=dataclasses.replace(settings.session, max_sessions=MAX_SESSIONS))
        with running(settings) as app:
            users = []
            for _ in range(5):
                b = Browser(app.check)
                b.request(target(op.authorize(location(b.request("/app")) or "")))
                users.append(b)
            assert {outcome(u.request("/app")) for u in users} == {"OK"}
            flood = Browser(app.check)
            answers = {outcome(flood.request(f"/page{i}")) for i in range(MAX_SESSIONS * 4)}
            assert answers == {"302 login_redirect"}
            kept = sorted({outcome(u.request("/app")) for u in users})
            record("login", f"{MAX_SESSIONS * 4} login starts by a stranger, then the users' sessions", "['OK']",
                   str(kept))  # fmt: skip
            # The newest login states still work: a flood only ever costs the oldest pending logins.
            late = Browser(app.check)
            done = late.request(target(op.authorize(location(late.request("/app")) or "")))
            record("login", "login started during the flood completes", "302 login_complete", outcome(done))
