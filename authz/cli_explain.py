"""``authz explain`` and ``authz token inspect``: the operator's answers on the command line.

``explain`` asks a running server's admin service (``--admin``, the default) or evaluates
offline against the configuration and the issuers' live keys (``--offline``). ``token
inspect`` decodes a token without trusting it and lists every configured check it fails.
Output is plain words, or JSON with ``--json``. A token is read from a file or stdin, never
from the command line (where other users of the machine could read it), and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, TextIO

from authz.errors import AuthzError, ConfigError
from authz.token_report import FAILED, INFO, NOT_EVALUATED, PASSED, SKIPPED, Step, TokenReport, iso_time
from authz.tokens import MAX_TIMESTAMP

EXIT_EXPLAINED = 0
EXIT_FAILED_CHECKS = 1  # token inspect: at least one check fails
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
_MARKS = {PASSED: "ok  ", FAILED: "FAIL", SKIPPED: "skip", INFO: "    ", NOT_EVALUATED: "n/e "}
_OUTCOME_NAMES = {1: PASSED, 2: FAILED, 3: SKIPPED, 4: INFO, 5: NOT_EVALUATED}


def add_commands(sub: Any) -> None:
    explain = sub.add_parser("explain", help="why a request is allowed or denied (asks the admin service)")
    explain.add_argument("--path", required=True, help="request path with query, e.g. /notebooks/")
    explain.add_argument("--method", default="GET")
    explain.add_argument("--host", default="", help="the request's Host (:authority)")
    explain.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="repeatable")
    explain.add_argument("--token", metavar="FILE|-", help="a bearer token from FILE or stdin (-)")
    explain.add_argument("--cookie", metavar="FILE|-", help="a Cookie header value from FILE or stdin (-)")
    explain.add_argument("--browser", action="store_true", help="send as a browser navigation (Accept: text/html)")
    where = explain.add_mutually_exclusive_group()
    where.add_argument("--admin", help="admin service HOST:PORT (default: AUTHZ_ADMIN_LISTEN or 127.0.0.1:9192)")
    where.add_argument("--offline", action="store_true", help="evaluate here, against the config and live keys")
    explain.add_argument("--config", help="YAML config (for --offline; env AUTHZ_CONFIG)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")

    token = sub.add_parser("token", help="token tools")
    tsub = token.add_subparsers(dest="token_command", required=True)
    inspect = tsub.add_parser("inspect", help="decode a JWT (untrusted) and list the configured checks it fails")
    inspect.add_argument("--token", default="-", metavar="FILE|-", help="the token, from FILE or stdin (default)")
    inspect.add_argument("--config", help="YAML config (env AUTHZ_CONFIG); without any, the token is only decoded")
    inspect.add_argument("--no-keys", action="store_true", help="do not fetch the issuers' keys (no kid/signature)")
    inspect.add_argument("--json", action="store_true")


def _read_secret(source: str, what: str) -> str:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise ConfigError([f"--{what} {source}: cannot read ({exc.strerror})"]) from exc
    text = text.strip()
    if not text:
        raise ConfigError([f"--{what} {source}: empty"])
    return text


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError([f"--header {item!r}: use NAME:VALUE"])
        headers[name.strip().lower()] = value.strip()
    if args.browser:
        headers.setdefault("accept", "text/html,application/xhtml+xml")
        headers.setdefault("sec-fetch-mode", "navigate")
    if args.token:
        token = _read_secret(args.token, "token")
        headers["authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    if args.cookie:
        headers["cookie"] = _read_secret(args.cookie, "cookie")
    return headers


# -- explain ------------------------------------------------------------------


def run_explain(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from authz.admin.v1 import admin_pb2 as apb

    request = apb.ExplainRequest(method=args.method, host=args.host, path=args.path, headers=_headers(args))
    if args.offline:
        response = asyncio.run(_explain_offline(args, request))
    else:
        import grpc

        address = args.admin or _admin_address()
        try:
            with grpc.insecure_channel(address) as channel:
                stub = _admin_stub(channel)
                response = stub.Explain(request, timeout=10)
        except grpc.RpcError as exc:
            print(f"authz: admin service at {address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_UNREACHABLE
    if args.json:
        from google.protobuf import json_format

        print(json_format.MessageToJson(response, preserving_proto_field_name=True), file=out)
    else:
        print_explanation(response, out)
    return EXIT_EXPLAINED


def _admin_address() -> str:
    from authz.settings import DEFAULT_ADMIN_LISTEN

    host, _, port = os.environ.get("AUTHZ_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN).rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _admin_stub(channel: Any) -> Any:
    from authz.admin.v1 import admin_pb2_grpc

    return admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]


async def _explain_offline(args: argparse.Namespace, request: Any) -> Any:
    from authz.admin_service import explanation_message, simple_request
    from authz.server import build

    settings = _load(args.config)
    components = build(settings)
    try:
        await _fetch_keys(components.keys)
        return explanation_message(await components.explainer.explain(simple_request(request)))
    finally:
        await components.keys.close()
        for close in components.closers:
            await close()


async def _fetch_keys(keys: Any) -> None:
    for issuer in keys.issuers():
        result = await keys.refetch_unknown_kid(issuer)
        if result != "refetched":
            print(f"authz: keys of {issuer}: {result}", file=sys.stderr)


def _load(config: str | None) -> Any:
    from authz.config import load_settings

    settings, _ = load_settings(dict(os.environ), config)
    return settings


def print_explanation(response: Any, out: TextIO) -> None:
    head = f"{response.decision.upper()}"
    if response.http_status:
        head += f" {response.http_status}"
    head += f"  reason={response.reason}  method={response.auth_method}"
    print(head, file=out)
    if response.user:
        groups = ",".join(response.groups) or "-"
        print(f"  user {response.user}  groups {groups}", file=out)
    for step in response.steps:
        _print_step(Step(step.name, _OUTCOME_NAMES.get(step.outcome, INFO), step.detail, step.reason), out)
    for header in response.upstream_headers:
        print(f"  upstream header  {header.name}: {header.value}", file=out)
    for name in response.removed_headers:
        print(f"  removed header   {name}", file=out)
    if response.redirect_to:
        print(f"  redirect to      {response.redirect_to}", file=out)
    print(response.summary, file=out)


def _print_step(step: Step, out: TextIO) -> None:
    reason = f"  [{step.reason}]" if step.reason else ""
    print(f"  {_MARKS.get(step.outcome, '    ')} {step.name:<20} {step.detail}{reason}", file=out)


# -- token inspect ------------------------------------------------------------


def run_inspect(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    token = _read_secret(args.token, "token")
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    report, configured = asyncio.run(_inspect(token, args))
    if args.json:
        print(json.dumps(_report_json(report, configured), indent=2, sort_keys=True, default=str), file=out)
    else:
        _print_report(report, configured, out)
    return EXIT_FAILED_CHECKS if report.first_failure is not None else EXIT_EXPLAINED


async def _inspect(token: str, args: argparse.Namespace) -> tuple[TokenReport, bool]:
    from authz.config import load_settings
    from authz.fetch import Fetcher
    from authz.jwks import KeyManager
    from authz.token_report import report_token
    from authz.tokens import TokenValidator

    try:
        settings, _ = load_settings(dict(os.environ), args.config)
    except ConfigError:
        if args.config or os.environ.get("AUTHZ_CONFIG") or os.environ.get("OIDC_PROVIDER"):
            raise
        return _decode_only(token), False
    validator = TokenValidator(settings.issuers, clock_skew=settings.clock_skew, max_bytes=settings.max_token_bytes)
    if args.no_keys:
        return report_token(validator, token, time.time(), None), True
    keys = KeyManager(settings.issuers, Fetcher(), stale_window=settings.jwks_stale_window)
    try:
        await _fetch_keys(keys)
        return report_token(validator, token, time.time(), keys.lookup), True
    finally:
        await keys.close()


def _decode_only(token: str) -> TokenReport:
    from authz.jws import parse_compact, strict_json_object

    try:
        jws = parse_compact(token, 1 << 16)
        claims = strict_json_object(jws.payload)
    except AuthzError as exc:
        return TokenReport((Step("token.format", FAILED, exc.detail, exc.code),), {}, {}, None)
    step = Step("config", NOT_EVALUATED, "no configuration (set OIDC_PROVIDER or --config): only decoded")
    return TokenReport((step,), dict(jws.header), claims, None)


def _times(claims: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in ("exp", "nbf", "iat", "auth_time"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP:
            out[name] = iso_time(value)
    return out


def _report_json(report: TokenReport, configured: bool) -> dict[str, Any]:
    failure = report.first_failure
    return {
        "header": report.header,
        "claims": report.claims,
        "times": _times(report.claims),
        "checks": [
            {"name": s.name, "outcome": s.outcome, "detail": s.detail, "reason": s.reason} for s in report.steps
        ],
        "failed": [s.reason or s.name for s in report.steps if s.outcome == FAILED],
        "valid": report.identity is not None,
        "reason": failure.reason if failure else "",
        "configured": configured,
        "note": "decoded without trusting the token: nothing here is verified unless 'valid' is true",
    }


def _print_report(report: TokenReport, configured: bool, out: TextIO) -> None:
    print("header (untrusted):", json.dumps(report.header, sort_keys=True), file=out)
    print("claims (untrusted):", file=out)
    for name, value in sorted(report.claims.items()):
        print(f"  {name}: {json.dumps(value, default=str)}", file=out)
    for name, when in _times(report.claims).items():
        print(f"  ({name} = {when})", file=out)
    print("checks:", file=out)
    for step in report.steps:
        _print_step(step, out)
    failed = [s.reason or s.name for s in report.steps if s.outcome == FAILED]
    if report.identity is not None:
        print(f"VALID: Check would accept it as {report.identity.user}", file=out)
    elif failed:
        print("WOULD FAIL: " + ", ".join(dict.fromkeys(failed)), file=out)
    elif not configured:
        print("NOT CHECKED: no configuration", file=out)
    else:
        print("NOT VERIFIED: the signature was not checked (--no-keys)", file=out)
