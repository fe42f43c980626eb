"""The QC page's session: a signed cookie naming the client who logged in, with its CSRF token.

A browser cannot add a bearer header to an ``<img>`` or an ``EventSource``, so a person logs in once
with their named token and the browser then carries a cookie. The cookie is stateless: its payload
(client name, CSRF token, expiry) is signed with HMAC-SHA256 keyed by that client's own token, so
nobody without the token can forge it, every API replica can check it without shared state, and
rotating or removing a client's token ends that client's sessions at once. It is HttpOnly (scripts
cannot read it), SameSite=Strict (other sites cannot make the browser send it) and Secure under HTTPS.
State-changing requests made with the cookie must also carry the session's CSRF token in the
``X-CSRF-Token`` header (a page of ours renders it; another origin cannot read it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

COOKIE_NAME = "qcgate_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)  # one working shift; then log in again
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class WebSession:
    """Who logged in (a client name of the settings), the CSRF token of this session, and its end."""

    client: str
    csrf: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(token: bytes, payload: str) -> str:
    return _b64(hmac.new(token, b"qcgate-session\x00" + payload.encode(), hashlib.sha256).digest())


def sign_session(client: str, token: bytes, now: datetime) -> tuple[str, WebSession]:
    """A new session of ``client`` (whose token is ``token``): the cookie value and what it holds."""
    expires_at = (now + SESSION_LIFETIME).replace(microsecond=0)  # the cookie holds whole seconds
    session = WebSession(client, secrets.token_urlsafe(24), expires_at)
    payload = _b64(
        json.dumps({"c": client, "x": session.csrf, "e": int(session.expires_at.timestamp())}).encode()
    )
    return f"{payload}.{_mac(token, payload)}", session


def session_client(cookie: str) -> str | None:
    """The client a cookie claims to be (unverified: only to find the token that checks it)."""
    try:
        payload = cookie.split(".", 1)[0]
        client = json.loads(_unb64(payload))["c"]
    except (ValueError, KeyError, TypeError):
        return None
    return client if isinstance(client, str) else None


def verify_session(cookie: str, token: bytes, now: datetime) -> WebSession | None:
    """The session in ``cookie`` if ``token`` signed it and it has not expired; else None."""
    payload, _, mac = cookie.partition(".")
    if not mac or not hmac.compare_digest(mac.encode(), _mac(token, payload).encode()):
        return None
    try:
        fields = json.loads(_unb64(payload))
        session = WebSession(
            str(fields["c"]), str(fields["x"]), datetime.fromtimestamp(int(fields["e"]), UTC)
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None
    return session if session.expires_at > now else None


def csrf_matches(session: WebSession, offered: str | None) -> bool:
    return offered is not None and hmac.compare_digest(offered.encode(), session.csrf.encode())
