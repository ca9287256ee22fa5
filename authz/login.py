"""Browser login rules (pure): who gets a redirect, the authorization request, the callback
checks, and the cookies and redirects that finish a login or a logout.

Random bytes and ``now`` are passed in; the I/O around these steps is in :mod:`authz.login_flow`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from authz import cookies
from authz.decision import Deny, json_deny
from authz.errors import FlowError
from authz.redirects import choose
from authz.request import AuthRequest
from authz.sessions import LoginState, Session, digest
from authz.settings import Settings

LOGIN_STATE_TTL = 600.0
_RANDOM_BYTES = 32  # 256 bits for state, nonce, verifier, binding and session ids
MAX_QUERY = 8192

RandomBytes = Callable[[int], bytes]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_id(rand: RandomBytes) -> str:
    return _b64(rand(_RANDOM_BYTES))


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


class LoginPolicy:
    """Everything about the browser flow that needs no I/O."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.oidc = settings.oidc
        self.session = settings.session
        self.cookie_name = settings.session.cookie_name
        self.callback_path = urlsplit(settings.oidc.redirect_url).path
        self.logout_path = settings.url_prefix + "logout"
        self.login_path = settings.url_prefix + "login"
        self.paths = frozenset({self.callback_path, self.logout_path, self.login_path})
        self.after_login = settings.oidc.after_login_url or "/"
        redirect = urlsplit(settings.oidc.redirect_url)
        self.origin = f"{redirect.scheme}://{redirect.netloc}"
        self._touch_every = min(60.0, settings.session.idle_timeout / 10)

    # -- classification ---------------------------------------------------------

    @staticmethod
    def is_browser(req: AuthRequest) -> bool:
        """A top-level browser navigation (gets a redirect); everything else is an API call (401)."""
        if req.method not in ("GET", "HEAD"):
            return False
        h = req.headers
        mode = h.get("sec-fetch-mode")
        if mode is not None:
            return mode == "navigate"
        if h.get("x-requested-with", "").lower() == "xmlhttprequest":
            return False
        return "text/html" in h.get("accept", "")

    # -- starting a login -------------------------------------------------------

    def binding_cookie(self, state: str) -> str:
        return f"{self.cookie_name}_login_{digest(state)[:12]}"

    def start(
        self, authorization_endpoint: str, return_to: str, now: float, rand: RandomBytes
    ) -> tuple[str, LoginState, Deny]:
        """A new login: the state id, its record, and the 302 to the provider."""
        state, nonce, verifier, binding = (new_id(rand) for _ in range(4))
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.oidc.client_id,
                "redirect_uri": self.oidc.redirect_url,
                "scope": " ".join(self.oidc.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        sep = "&" if "?" in authorization_endpoint else "?"
        record = LoginState(
            nonce=nonce, verifier=verifier, binding_hash=digest(binding), return_to=return_to, created_at=now
        )
        # The binding cookie must come back on the provider's cross-site redirect: Lax.
        set_binding = cookies.set_cookie(
            self.binding_cookie(state),
            binding,
            self.session,
            max_age=int(LOGIN_STATE_TTL),
            path=self.callback_path,
            same_site="Lax",
        )
        deny = Deny(
            status=302,
            reason="login_redirect",
            headers=(
                ("location", f"{authorization_endpoint}{sep}{query}"),
                ("cache-control", "no-store"),
                ("set-cookie", set_binding),
            ),
        )
        return state, record, deny

    def return_to(self, req: AuthRequest) -> str:
        """Where to go after login: the login path's ``rd=``, else the page asked for."""
        if req.path.split("?", 1)[0] == self.login_path:
            return choose(self.query(req).get("rd"), self.after_login)
        return choose(req.path, self.after_login)

    def api_unauthorized(self, reason: str) -> Deny:
        """401 for XHR/API clients, with the URL a single-page app can send the user to."""
        return json_deny(
            401, reason, (("www-authenticate", f'Bearer realm="{self.settings.realm}"'),), login_url=self.login_path
        )

    # -- sessions ---------------------------------------------------------------

    def session_verdict(self, session: Session, now: float) -> str:
        """What a stored session is worth now: ``expired`` (past max age), ``idle`` (unused too
        long), ``refresh`` (ID token expired, a refresh token to renew it), ``touch`` (valid, its
        last-seen time is due to be written) or ``valid``."""
        if now - session.created_at > self.session.max_age:
            return "expired"
        if now - session.last_seen > self.session.idle_timeout:
            return "idle"
        if session.id_token_expires_at <= now and session.refresh_token:
            return "refresh"
        if now - session.last_seen > self._touch_every:
            return "touch"
        return "valid"

    # -- the callback -----------------------------------------------------------

    @staticmethod
    def query(req: AuthRequest) -> dict[str, str]:
        """Query parameters from the CheckRequest path (Envoy leaves ``query`` empty)."""
        _, _, query = req.path.partition("?")
        if len(query) > MAX_QUERY:
            raise FlowError("callback_invalid", "query too long")
        params: dict[str, str] = {}
        for key, value in parse_qsl(query.split("#", 1)[0], keep_blank_values=True):
            if key in params:
                raise FlowError("callback_invalid", f"repeated parameter {key}")
            params[key] = value
        return params

    def check_state(self, state: str, record: LoginState | None, req: AuthRequest, now: float) -> LoginState:
        """The stored state is known, fresh, and belongs to this browser. Raises FlowError."""
        if record is None:
            raise FlowError("state_unknown", "unknown, expired or already used state")
        if now - record.created_at > LOGIN_STATE_TTL:
            raise FlowError("state_expired", "login took too long")
        binding = cookies.parse(req.headers.get("cookie")).get(self.binding_cookie(state))
        if binding is None or not hmac.compare_digest(digest(binding), record.binding_hash):
            raise FlowError("state_browser_mismatch", "login was started by another browser")
        return record

    def login_complete(self, sid: str, state: str, return_to: str) -> Deny:
        """302 back to the remembered page with the new session cookie.

        With SameSite=Strict a browser would not send the new cookie along a redirect chain
        that started at the provider, so the hop back is a same-site navigation from a tiny
        page instead (200 with a meta refresh and a link).
        """
        target = choose(return_to, self.after_login)
        set_cookies = (
            ("cache-control", "no-store"),
            ("set-cookie", self.session_cookie(sid)),
            ("set-cookie", cookies.clear_cookie(self.binding_cookie(state), self.session, path=self.callback_path)),
        )
        if self.session.same_site == "Strict":
            url = html.escape(target, quote=True)
            body = (
                f'<!doctype html><html><head><meta charset=utf-8><meta http-equiv="refresh" content="0;url={url}">'
                f'<title>Signed in</title></head><body><a href="{url}">Continue</a></body></html>'
            )
            return Deny(
                status=200,
                reason="login_complete",
                headers=(("content-type", "text/html; charset=utf-8"), *set_cookies),
                body=body,
            )
        return Deny(status=302, reason="login_complete", headers=(("location", target), *set_cookies))

    def session_cookie(self, sid: str) -> str:
        return cookies.set_cookie(self.cookie_name, sid, self.session, max_age=int(self.session.max_age))

    def error_page(self, reason: str, error: str = "", description: str = "", status: int = 400) -> Deny:
        """A small HTML page; every value from the request or provider is escaped."""
        retry = html.escape(self.login_path + "?" + urlencode({"rd": self.after_login}), quote=True)
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Sign-in failed</title></head><body>"
            "<h1>Sign-in failed</h1>"
            f"<p>Reason: <code>{html.escape(reason)}</code></p>"
            + (f"<p>Provider error: <code>{html.escape(error)}</code></p>" if error else "")
            + (f"<p>{html.escape(description)}</p>" if description else "")
            + f'<p><a href="{retry}">Try again</a></p></body></html>'
        )
        return Deny(
            status=status,
            reason=reason,
            headers=(
                ("content-type", "text/html; charset=utf-8"),
                ("cache-control", "no-store"),
                ("content-security-policy", "default-src 'none'"),
            ),
            body=body,
        )

    # -- logout -----------------------------------------------------------------

    @staticmethod
    def csrf_token(sid: str) -> str:
        """A value only a page that can read the session could know; for GET logout."""
        return digest("logout:" + sid)[:32]

    def logout_allowed(self, req: AuthRequest, sid: str) -> bool:
        """POST from this site (Sec-Fetch-Site or Origin); GET from a same-origin link or with the CSRF token."""
        h = req.headers
        if req.method == "POST":
            site = h.get("sec-fetch-site")
            if site is not None:
                return site in ("same-origin", "none")
            origin = h.get("origin")
            return origin is None or origin == self.origin or origin == f"{req.scheme}://{req.host}"
        if req.method == "GET":
            # A link on this site (Fetch Metadata says same-origin), or the CSRF token.
            if h.get("sec-fetch-site") == "same-origin":
                return True
            token = self.query(req).get("csrf", "")
            return hmac.compare_digest(token, self.csrf_token(sid))
        return False

    def logout_target(self, end_session_endpoint: str | None, id_token: str) -> str:
        after = self.oidc.after_logout_url
        if end_session_endpoint:
            post_logout = after if after.startswith(("https://", "http://")) else self.origin + (after or "/")
            params = {"post_logout_redirect_uri": post_logout, "client_id": self.oidc.client_id}
            if id_token:
                params["id_token_hint"] = id_token
            sep = "&" if "?" in end_session_endpoint else "?"
            return f"{end_session_endpoint}{sep}{urlencode(params)}"
        return after or "/"

    def logged_out(self, req: AuthRequest, target: str) -> Deny:
        clear = ("set-cookie", cookies.clear_cookie(self.cookie_name, self.session))
        if not self.is_browser(req) and req.method == "POST" and "html" not in req.headers.get("accept", ""):
            # Kubeflow's dashboard POSTs by XHR and follows afterLogoutURL itself.
            return Deny(
                status=201,
                reason="logout_complete",
                headers=(("content-type", "application/json"), ("cache-control", "no-store"), clear),
                body=json.dumps({"afterLogoutURL": target}),
            )
        return Deny(
            status=302,
            reason="logout_complete",
            headers=(("location", target), ("cache-control", "no-store"), clear),
        )
