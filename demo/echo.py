"""The upstream: a page that shows the identity headers it received (JSON for API clients)."""

from __future__ import annotations

import html
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDENTITY = ("kubeflow-userid", "kubeflow-groups")


class EchoHandler(BaseHTTPRequestHandler):
    server_version = "echo"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "text/html" in headers.get("accept", "") and "json" not in self.path:
            user = headers.get("kubeflow-userid", "(none)")
            groups = headers.get("kubeflow-groups", "(none)")
            body = (
                "<!doctype html><html><head><meta charset=utf-8><title>Signed in</title></head><body>"
                f"<h1>Hello, <span id=user>{html.escape(user)}</span></h1>"
                f"<p>Groups: <span id=groups>{html.escape(groups)}</span></p>"
                f"<p>Path: <code>{html.escape(self.path)}</code></p>"
                '<form method=post action="/authservice/logout"><button id=logout type=submit>Log out</button></form>'
                "</body></html>"
            ).encode()
            ctype = "text/html; charset=utf-8"
        else:
            body = json.dumps({"path": self.path, "method": self.command, "headers": headers}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _answer


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), EchoHandler)
    server.daemon_threads = True
    return server


if __name__ == "__main__":
    serve(int(sys.argv[1])).serve_forever()
