"""Open-redirect attempts on the post-login and post-logout redirects: never off-site.

Inputs: oauth2-proxy's open-redirect corpus (../shared/testdata/oauth2-proxy/openredirects.txt,
559 lines, each tried as written and URL-unescaped as oauth2-proxy's own test does) plus our
own list. Every value goes through a whole login against authz's real gRPC server: the
``rd=`` of the login path, or the page first asked for, is remembered in the login state and
comes back as the ``location`` of the callback's answer; the stub provider
(tests/adversarial/stub_op.py) completes each login with a real token exchange. For logout,
the same values are offered in every parameter name an app might use. Each answer must be the
configured default ("/"), and a browser resolving it must stay on the site.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote_plus, urlsplit

import pytest

from tests.adversarial.browser import ORIGIN, Browser, location, target
from tests.adversarial.inproc import ThreadedApp, running, settings_from_env
from tests.adversarial.oracles import off_site
from tests.adversarial.stub_op import StubOP, run_stub_op
from tests.adversarial.table import control, outcome, record
from tests.support.servers import ROOT

CLIENT_ID = "authz-redirects"
CALLBACK = f"{ORIGIN}/authservice/oidc/callback"
CORPUS = ROOT.parent / "shared" / "testdata" / "oauth2-proxy" / "openredirects.txt"

OWN = [
    "//evil.com", "///evil.com", "////evil.com", "/\\evil.com", "/\\/evil.com", "\\\\evil.com", "\\/evil.com",
    "/%09/evil.com", "/%5cevil.com", "/%5Cevil.com", "/%2f%2fevil.com", "/%252f%252fevil.com", "/%2F/evil.com",
    "/\t/evil.com", "/\n/evil.com", " //evil.com", "\t//evil.com", "//evil.com/%2f..", "//evil.com\\@app.example.com",
    "https://app.example.com.evil.com", "https://app.example.com.evil.com/", "https://evil.com@app.example.com",
    "https://app.example.com@evil.com", "https://evil.com", "http://evil.com", "HTTPS://evil.com", "https:evil.com",
    "https:/evil.com", "https:\\\\evil.com", "//evil%E3%80%82com", "//evil。com", "//0x7f.1", "//2130706433",
    "//[::1]", "//evil.com:443", "/@evil.com", "/x@evil.com", "/:@evil.com",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "javascript://%0aalert(1)",
    " javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
    "/\r\nSet-Cookie: authservice_session=attacker", "/%0d%0aSet-Cookie:%20authservice_session=attacker",
    "/%0aLocation:%20https://evil.com", "/x%0d%0a%0d%0a<script>alert(1)</script>", "/\u2028//evil.com",
    "/%e2%80%a8//evil.com", "/\u202e//moc.live", "/x?next=//evil.com", "/x?next=https://evil.com",
    "/https://evil.com", "/x#//evil.com", "/'onmouseover=alert(1)", '/"><script>alert(1)</script>',
    "/" + "a" * 3000, "", "evil.com", ".evil.com", "@evil.com", "?//evil.com", "#//evil.com",
]  # fmt: skip


def corpus_values() -> list[str]:
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} not found (shared/testdata is laid beside the project)")
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line
    assert len(lines) == 559, len(lines)
    # oauth2-proxy's test URL-unescapes each line (Go's url.QueryUnescape, "+" is a space).
    return list(dict.fromkeys([*lines, *(unquote_plus(line) for line in lines)]))


@dataclass
class Site:
    app: ThreadedApp
    op: StubOP

    def login(self, first_request: str) -> str:
        """A whole login starting with ``first_request``: the callback's answer, '302 <location>'."""
        browser = Browser(self.app.check)
        start = browser.request(first_request)
        assert outcome(start) == "302 login_redirect", (first_request, outcome(start))
        done = browser.request(target(self.op.authorize(location(start) or "")))
        return f"{done.denied_response.status.code} {location(done)}"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with run_stub_op(CLIENT_ID, "redirect-secret") as op:
        settings = settings_from_env({
            "OIDC_PROVIDER": op.issuer, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": "redirect-secret",
            "REDIRECT_URL": CALLBACK,
        })  # fmt: skip
        with running(settings) as app:
            yield Site(app, op)


def _run(site: Site, family: str, cases: list[tuple[str, str]]) -> None:
    """(case name, first request target) pairs, logged in four at a time."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: site.login(c[1]), cases))
    for (name, _), got in zip(cases, answers, strict=True):
        record(family, name, "302 /", got, breach=off_site(got.split(" ", 1)[1]))


def _rd(value: str) -> str:
    return f"/authservice/login?rd={quote(value, safe='')}"


def test_post_login_rd_corpus(site: Site) -> None:
    _run(site, "redirects", [(f"login rd={v!r}", _rd(v)) for v in corpus_values()])


def test_post_login_rd_own(site: Site) -> None:
    _run(site, "redirects", [(f"login rd={v!r}", _rd(v)) for v in OWN])


def test_post_login_remembered_page(site: Site) -> None:
    """The page first asked for, as Envoy would pass it if it did not normalize it first."""
    # Only what can stand in a request line: printable ASCII, no space.
    values = [v for v in [*corpus_values(), *OWN] if v.startswith("/") and re.fullmatch(r"[\x21-\x7e]+", v)]
    _run(site, "redirects", [(f"login page={v!r}", v) for v in values])


def test_post_login_controls(site: Site) -> None:
    for asked, expected in (("/notebooks/lab?x=1", "302 /notebooks/lab?x=1"), (_rd("/pipelines/#/runs"),
                            "302 /pipelines/#/runs"), ("/caf%C3%A9", "302 /caf%C3%A9")):  # fmt: skip
        got = site.login(asked)
        control("redirects", f"on-site {asked}", got == expected, got)


LOGOUT_PARAMS = ("rd", "next", "redirect", "redirect_uri", "return_to", "post_logout_redirect_uri", "url")


def test_post_logout_redirect_ignores_the_request(site: Site) -> None:
    values = [*corpus_values(), *OWN]
    browser = Browser(site.app.check)
    for value in values:
        query = "&".join(f"{p}={quote(value, safe='')}" for p in LOGOUT_PARAMS)
        resp = browser.request(f"/authservice/logout?{query}")
        got = f"{resp.denied_response.status.code} {location(resp)}"
        record("redirects", f"logout {value!r}", "302 /", got, breach=off_site(location(resp)))


def test_post_logout_with_a_session_goes_to_the_provider_then_back_here(site: Site) -> None:
    expected = (f"302 {site.op.issuer}/logout?post_logout_redirect_uri={quote(ORIGIN + '/', safe='')}"
                f"&client_id={CLIENT_ID}&id_token_hint=<id token>")  # fmt: skip
    for value in ("//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)"):
        browser = Browser(site.app.check)
        start = browser.request("/app")
        browser.request(target(site.op.authorize(location(start) or "")))
        resp = browser.request(f"/authservice/logout?rd={quote(value, safe='')}&post_logout_redirect_uri="
                               f"{quote(value, safe='')}", method="POST", headers={"sec-fetch-site": "same-origin"})  # fmt: skip
        loc = location(resp) or ""
        hint = parse_qs(urlsplit(loc).query).get("id_token_hint", [""])[0]
        got = f"{resp.denied_response.status.code} {loc.replace(hint, '<id token>') if hint else loc}"
        back = parse_qs(urlsplit(loc).query).get("post_logout_redirect_uri", [""])[0]
        record("redirects", f"logout with session {value!r}", expected, got, breach=off_site(back))
