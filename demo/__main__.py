"""``python -m demo`` (``make demo``): the whole login gateway on 127.0.0.1, in one command.

Starts the OIDC provider, authz, an upstream page and real Envoy, prints where to go and how
to log in, then follows authz's log until Ctrl-C or SIGTERM, which stop everything.
``--check`` starts everything, proves a login and a bearer request work, prints OK and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from demo.stack import DEMO_PASSWORD, DEMO_USER, OTHER_USER, PORT_OPTIONS, DemoError, Ports, Stack, follow


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run Envoy + authz + a local OIDC provider + an upstream page on 127.0.0.1.",
        epilog="Each port can also be set by its environment variable; 0 picks a free port.",
    )
    parser.add_argument(
        "--check", action="store_true", help="start, prove login and a bearer request work, print OK, exit"
    )
    defaults = Ports()
    for name, (env, flag) in PORT_OPTIONS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            flag, dest=name, type=_port, metavar="PORT",
            help=f"{name.replace('_', ' ')} port (env {env}, default {default or 'any free port'})",
        )  # fmt: skip
    return parser


def _ports(args: argparse.Namespace) -> Ports:
    values: dict[str, int] = {}
    for name, (env, _flag) in PORT_OPTIONS.items():
        value = getattr(args, name)
        if value is None and os.environ.get(env):
            try:
                value = _port(os.environ[env])
            except ValueError:
                raise DemoError(f"{env}={os.environ[env]!r} is not a port number") from None
        if value is not None:
            values[name] = value
    return Ports(**values)


def _banner(stack: Stack, token: str) -> str:
    url = stack.url
    return f"""
authz demo is running.

  Open {url} in a browser (127.0.0.1, not localhost: the callback URL is registered for it).
  Log in as {DEMO_USER} / {DEMO_PASSWORD}   (or {OTHER_USER} / {DEMO_PASSWORD})

  API clients send a bearer token. An ID token for {DEMO_USER} (valid for an hour):
    curl -H "Authorization: Bearer {token}" {url}
  Without one, authz answers 401 with a login_url:
    curl -i {url}

  Why was a request allowed or denied? Ask authz's admin service:
    .venv/bin/authz explain --admin 127.0.0.1:{stack.ports.authz_admin} --path / --browser
    .venv/bin/grpcurl -plaintext 127.0.0.1:{stack.ports.authz_admin} list

  authz metrics  {stack.metrics_url}
  Envoy admin    {stack.envoy_admin_url}
  Logs           {stack.run_dir}/  (authz's decision log and the gateway's access log follow)

Press Ctrl-C to stop.
"""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stack: Stack | None = None
    done = threading.Event()
    try:
        stack = Stack(_ports(args), log_level=os.environ.get("LOG_LEVEL", "DEBUG"))
        print("starting the OIDC provider, the upstream page, Envoy and authz ...", flush=True)
        stack.start()
        if args.check:
            stack.check(lambda line: print(f"  ok: {line}", flush=True))
            print("OK", flush=True)
            return 0
        token = stack.id_token()
        print(_banner(stack, token), flush=True)
        authz_log = next(p.log for p in stack.processes if p.name == "authz")
        threading.Thread(
            target=follow, args=(authz_log, lambda line: print("authz | " + line, end="", flush=True), done.is_set),
            daemon=True,
        ).start()  # fmt: skip
        threading.Thread(
            target=follow,
            args=(stack.run_dir / "access.log", lambda line: print("access | " + line, end="", flush=True),
                  done.is_set),
            daemon=True,
        ).start()  # fmt: skip
        while (failed := stack.failed()) is None:
            done.wait(0.5)
        print(f"\n{failed.name} exited unexpectedly ({failed.exited()}):\n{failed.tail()}", file=sys.stderr)
        return 1
    except _Stop as stop:
        print(f"\n{stop}: stopping ...", flush=True)
        return 0
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        if stack is not None and stack.processes:
            stack.keep_logs = True
            print(stack.logs(), file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up and leave processes behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        done.set()
        if stack is not None:
            stack.stop()
            if not args.check:
                print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
