"""Who may call the API: bearer tokens with a role (API_TOKENS), and the page's session cookie.

- A request carries `Authorization: Bearer <token>`, or the session cookie the page's login form set.
  Roles: `read` (every GET, the WebSocket) and `write` (imports, acknowledgements, forecast launches),
  which includes read.
- The cookie is `<token id>.<expiry>.<signature>`: the token's id (a hash prefix, not the token), when
  the session ends, and an HMAC of both keyed by the token itself. The server keeps no session store
  (any number of API processes agree), and removing a token from API_TOKENS ends its sessions.
  It is HttpOnly and SameSite=Strict; a request it authenticates that changes something must also
  carry `X-Requested-With` (which a form on another site cannot send), so no other site can act with it.
- Without tokens the API is open, and `serve` listens on loopback only (see `check_listen_address`).

Tokens are compared in constant time and never logged, echoed or put in an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request, WebSocket
from starlette.requests import HTTPConnection

from sales_pipeline import settings

SESSION_COOKIE = "sales_pipeline_session"
SESSION_SECONDS = 12 * 3600
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ROLE_RANK = {"read": 1, "write": 2}


@dataclass(frozen=True)
class Caller:
    role: str  # read | write
    name: str  # for the record (who acknowledged an alert): "token <id>", or "loopback" when no tokens are set
    by_cookie: bool = False


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _signature(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


class Gate:
    """Checks callers against the configured tokens (token -> role)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = dict(tokens)
        self._by_id = {token_id(token): token for token in tokens}

    @property
    def open(self) -> bool:
        """No tokens configured: everyone on loopback may read and write."""
        return not self._tokens

    def caller(self, connection: HTTPConnection) -> Caller | None:
        """Who is calling, or None when the request carries no valid token or session."""
        if self.open:
            return Caller("write", "loopback")
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            role = self.role_of(credentials.strip())
            return Caller(role, f"token {token_id(credentials.strip())}") if role else None
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie:
            return self._session_caller(cookie)
        return None

    def role_of(self, token: str) -> str | None:
        found = None
        for known, role in self._tokens.items():  # every token compared, in constant time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = role
        return found

    def session_cookie(self, token: str, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        message = f"{token_id(token)}.{expiry}"
        return f"{message}.{_signature(token, message)}"

    def _session_caller(self, cookie: str) -> Caller | None:
        identity, _, rest = cookie.partition(".")
        expiry, _, signature = rest.partition(".")
        token = self._by_id.get(identity)
        if token is None or not expiry.isdigit() or int(expiry) < time.time():
            return None
        if not hmac.compare_digest(_signature(token, f"{identity}.{expiry}"), signature):
            return None
        return Caller(self._tokens[token], f"token {identity}", by_cookie=True)


def require(role: str):
    """A FastAPI dependency: the caller, who must hold `role` (401 without credentials, 403 without the role)."""

    async def dependency(request: Request) -> Caller:  # async: no I/O here, so no hop to a worker thread
        gate: Gate = request.app.state.gate
        caller = gate.caller(request)
        if caller is None:
            raise HTTPException(
                401, "a bearer token is needed (Authorization: Bearer ...)", {"WWW-Authenticate": "Bearer"}
            )
        if ROLE_RANK[caller.role] < ROLE_RANK[role]:
            raise HTTPException(403, f"this token may {caller.role}, and this needs a {role} token")
        if caller.by_cookie and request.method in UNSAFE_METHODS and not request.headers.get("x-requested-with"):
            raise HTTPException(403, "a change made with the session cookie needs the X-Requested-With header")
        return caller

    return dependency


def websocket_caller(websocket: WebSocket, allowed_origins: tuple[str, ...]) -> Caller | None:
    """The WebSocket's caller, or None. A browser sends the cookie from any page, so a socket opened with
    it must come from this server's own page or an allowed origin."""
    caller = websocket.app.state.gate.caller(websocket)
    origin = websocket.headers.get("origin")
    if caller is not None and caller.by_cookie and origin:
        own = f"{websocket.url.scheme.replace('ws', 'http')}://{websocket.headers.get('host', '')}"
        if origin != own and origin not in allowed_origins:
            return None
    return caller


def check_listen_address(host: str, tokens: dict[str, str]) -> None:
    """Without tokens, refuse any address but loopback: anyone who reaches the port could import and acknowledge."""
    if tokens:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"{settings.API_TOKENS} is not set, so the API answers anyone who reaches it: it listens on loopback"
            f" only (127.0.0.1, ::1), not on {host}. Set {settings.API_TOKENS}=<token>:read,<token>:write to serve"
            " other machines"
        )
