"""The demo stack (`make demo`) with a real headless Chromium: login, the signed-in page, logout.

The stack is the one ``python -m demo`` runs (demo/stack.py), on free ports: the provider
behind Envoy at /dex, authz as ext_authz, the echo upstream. ``python -m demo`` itself is run
as a subprocess too, so the command in the README cannot rot.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from demo.stack import DEMO_PASSWORD, DEMO_USER, Ports, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ANY_FREE = Ports(gateway=0)
FREE_PORT_FLAGS = ["--port", "0"]  # the other ports are free ones by default
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(ANY_FREE) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed (make install installs it)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def login_form_shown(page: Page, stack: Stack) -> None:
    expect(page.locator("#username")).to_be_visible()
    expect(page.locator("#password")).to_be_visible()
    assert page.url.startswith(stack.issuer + "/interaction/"), page.url


def session_cookie(context: BrowserContext) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "authservice_session"), None)


def test_login_signed_in_page_and_logout(stack: Stack, browser: BrowserContext, tmp_path: Path) -> None:
    page = browser.new_page()
    protected = stack.url + "notebooks/demo?tab=2"

    page.goto(protected)
    login_form_shown(page, stack)
    assert session_cookie(browser) is None

    page.fill("#username", DEMO_USER)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit-login")

    # Back on the page first asked for, as the provider's user, with groups from the ID token.
    expect(page.locator("#user")).to_have_text(DEMO_USER)
    expect(page.locator("#groups")).to_have_text("team-a,everyone")
    assert page.url == protected
    cookie = session_cookie(browser)
    assert cookie is not None
    assert cookie["httpOnly"] and cookie["path"] == "/" and cookie["sameSite"] == "Lax"
    screenshot = tmp_path / "signed-in.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 1000

    # The session is enough for the next page: no second trip to the provider.
    page.goto(stack.url + "other")
    expect(page.locator("#user")).to_have_text(DEMO_USER)

    # Logout: authz ends the session, then the provider ends its own and sends the browser to
    # the site's root, which needs a login again: the provider's login form, not a silent login.
    page.click("#logout")
    page.wait_for_url(re.compile(re.escape(stack.issuer) + "/interaction/"))
    login_form_shown(page, stack)
    assert session_cookie(browser) is None

    page.goto(stack.url)
    login_form_shown(page, stack)

    # The old session id is dead on the server too, not only forgotten by the browser.
    browser.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path")}])
    assert session_cookie(browser)["value"] == cookie["value"]
    page.goto(stack.url + "again")
    login_form_shown(page, stack)


def test_wrong_password_stays_on_the_login_form(stack: Stack, browser: BrowserContext) -> None:
    page = browser.new_page()
    page.goto(stack.url)
    page.fill("#username", DEMO_USER)
    page.fill("#password", "not-the-password")
    page.click("#submit-login")
    expect(page.locator("#error")).to_be_visible()
    login_form_shown(page, stack)
    assert session_cookie(browser) is None


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "demo", *FREE_PORT_FLAGS, *args]


def test_demo_check_command() -> None:
    result = subprocess.run(demo_command("--check"), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "OK"
    assert "browser login" in result.stdout


def test_demo_refuses_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = str(busy.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "demo", "--check", "--port", taken],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {taken} (gateway) is already in use" in result.stderr
    assert "--port or DEMO_PORT" in result.stderr


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_prints_working_curl_and_stops_everything_on_signal(signum: int) -> None:
    proc = subprocess.Popen(demo_command(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        seen = []
        deadline = time.monotonic() + 60
        while not seen or "Press Ctrl-C to stop." not in seen[-1]:
            assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        banner = "".join(seen)
        assert f"Log in as {DEMO_USER} / {DEMO_PASSWORD}" in banner
        curl = re.search(r'curl -H "Authorization: Bearer ([\w.-]+)" (http://127\.0\.0\.1:\d+/)', banner)
        assert curl, banner
        token, url = curl.groups()
        assert f"curl -i {url}" in banner
        # The printed command works, and the one without a token gets the 401 it promises.
        with_token = httpx.get(url, headers={"authorization": f"Bearer {token}"}, trust_env=False)
        assert with_token.status_code == 200
        assert with_token.json()["headers"]["kubeflow-userid"] == DEMO_USER
        without = httpx.get(url, trust_env=False)
        assert without.status_code == 401 and without.json()["login_url"] == "/authservice/login"

        spawned = children(proc.pid)
        assert len(spawned) == 4, spawned  # provider, upstream, Envoy, authz
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
        for pid in spawned:
            deadline = time.monotonic() + 5
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not alive(pid), f"process {pid} outlived the demo"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
