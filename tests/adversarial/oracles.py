"""Independent judges of what an attack achieved: where a path really goes, where a redirect
really sends a browser. Shared by the gateway tests and the fuzzers."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

ORIGIN = "https://app.example.com"
_OVERLONG = ((b"\xc0\xae", b"."), (b"\xe0\x80\xae", b"."), (b"\xc0\xaf", b"/"), (b"\xc1\x9c", b"\\"))


def resolved(path: str) -> str:
    """The path an upstream that decodes everything it can would route: %-escapes (repeatedly),
    IIS %uXXXX, overlong UTF-8, Unicode compatibility forms (NFKC), backslashes, ``;``
    parameters and dot segments. A trailing slash is kept."""
    p = path.split("?", 1)[0].split("#", 1)[0]
    for _ in range(3):
        p = re.sub(r"%u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), p)
        raw = unquote_to_bytes(p)
        for overlong, plain in _OVERLONG:
            raw = raw.replace(overlong, plain)
        p = unicodedata.normalize("NFKC", raw.decode("utf-8", "replace"))
    p = p.replace("\\", "/")
    p = "/".join(segment.split(";", 1)[0] for segment in p.split("/"))
    normal = posixpath.normpath("/" + p.lstrip("/"))
    if p.endswith("/") and normal != "/" and not p.endswith(("/./", "/../", "/.", "/..")):
        normal += "/"
    return "/" + normal.lstrip("/")


def under(path: str, rules: tuple[str, ...]) -> bool:
    """``path`` falls under a skip rule (``/x/``: the subtree; ``/x``: itself and below ``/x/``)."""
    return any(path.startswith(r) if r.endswith("/") else path == r or path.startswith(r + "/") for r in rules)


def browser_target(location: str, origin: str = ORIGIN) -> str:
    """Where a browser on a page of ``origin`` goes for this ``location`` (WHATWG URL parsing of
    http(s): outer C0 controls and spaces trimmed, tabs and newlines removed, ``\\`` read as ``/``)."""
    loc = re.sub(r"[\t\n\r]", "", location.strip("".join(map(chr, range(33)))))
    return urljoin(origin + "/page", loc.replace("\\", "/"))


def off_site(location: str | None, origin: str = ORIGIN) -> bool:
    if location is None:
        return False
    parts = urlsplit(browser_target(location, origin))
    return f"{parts.scheme}://{parts.netloc}" != origin
