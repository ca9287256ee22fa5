"""Command line: ``authz serve``, ``authz check-config``, ``authz explain``, ``authz token inspect``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from authz import cli_explain, logs
from authz.config import load_settings, masked
from authz.errors import ConfigError
from authz.settings import Settings

log = logging.getLogger("authz.cli")
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authz", description="Envoy ext_authz gRPC server")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve Check, health and reflection over gRPC"),
        ("check-config", "validate the configuration and print it (secrets masked)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help="YAML config file (env AUTHZ_CONFIG); env overrides it")
        cmd.add_argument("--listen", help="gRPC HOST:PORT (env AUTHZ_LISTEN, default 0.0.0.0:9191)")
        cmd.add_argument(
            "--http-listen",
            help="metrics/health HOST:PORT (env AUTHZ_HTTP_LISTEN, default 0.0.0.0:9090)",
        )
        cmd.add_argument(
            "--admin-listen",
            help="admin gRPC HOST:PORT: Explain, Keys, Status (env AUTHZ_ADMIN_LISTEN, default 127.0.0.1:9192)",
        )
        cmd.add_argument("--workers", type=int, help="processes sharing the port (env AUTHZ_WORKERS)")
    cli_explain.add_commands(sub)
    return parser


def _settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    env = dict(os.environ)
    # Flags are the most specific source: they override the environment and the file.
    for flag, var in (
        ("listen", "AUTHZ_LISTEN"),
        ("http_listen", "AUTHZ_HTTP_LISTEN"),
        ("admin_listen", "AUTHZ_ADMIN_LISTEN"),
        ("workers", "AUTHZ_WORKERS"),
    ):
        value = getattr(args, flag)
        if value is not None:
            env[var] = str(value)
    return load_settings(env, args.config)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("explain", "token"):
        return _run_tool(args)
    try:
        settings, warnings = _settings(args)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    logs.setup(settings.log_level)
    for warning in warnings:
        log.warning(warning)
    if args.command == "check-config":
        print(json.dumps(masked(settings), indent=2))
        return 0
    if settings.workers > 1:
        return _run_workers(settings)
    return _run_one(settings)


def _print_problems(exc: ConfigError) -> None:
    print("authz: invalid configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


def _run_tool(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="authz: %(message)s")
    try:
        if args.command == "explain":
            return cli_explain.run_explain(args)
        return cli_explain.run_inspect(args)
    except ConfigError as exc:
        print("authz: " + "; ".join(exc.problems), file=sys.stderr)
        return EXIT_CONFIG


def _run_one(settings: Settings) -> int:
    from authz.server import serve

    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:  # found while building (e.g. tracing on without the otel extra)
        _print_problems(exc)
        return EXIT_CONFIG
    except OSError as exc:
        log.error("cannot serve", extra={"detail": str(exc)})
        return 1
    return 0


def _run_workers(settings: Settings) -> int:
    from authz.workers import run_workers

    return run_workers(settings)
