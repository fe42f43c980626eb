"""Typed dependencies: settings, a database session, the Celery app and auth (a bearer token, or the
QC page's session cookie with its CSRF token: api/session.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from qcgate.api.session import (
    COOKIE_NAME,
    CSRF_HEADER,
    SAFE_METHODS,
    WebSession,
    csrf_matches,
    session_client,
    verify_session,
)
from qcgate.core.settings import ROLE_ORDER, Role, Settings

_bearer = HTTPBearer(auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


@dataclass(frozen=True)
class Caller:
    """Who made a request: the client's name (for the access log) and its role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return ROLE_ORDER.index(self.role) >= ROLE_ORDER.index(needed)


# No client configured: only possible on loopback (Settings refuses it otherwise).
ANONYMOUS = Caller("anonymous", Role.ADMIN)


def _callers(settings: Settings) -> list[tuple[bytes, Caller]]:
    """(token, caller) of every configured client; unnamed ``api_tokens`` are admins ``token-<n>``."""
    named = [
        (client.token.get_secret_value().encode(), Caller(name, client.role))
        for name, client in settings.api_clients.items()
    ]
    unnamed = [
        (token.get_secret_value().encode(), Caller(f"token-{n}", Role.ADMIN))
        for n, token in enumerate(settings.api_tokens, 1)
    ]
    return named + unnamed


def auth_required(settings: Settings) -> bool:
    """Whether any client is configured (without one, only on loopback, every request is anonymous)."""
    return bool(_callers(settings))


def token_caller(settings: Settings, offered: bytes) -> tuple[Caller, bytes] | None:
    """The client whose token is ``offered`` and that token (compared as bytes, in constant time,
    against every client); None when no client has it."""
    matched = [
        (caller, token) for token, caller in _callers(settings) if secrets.compare_digest(offered, token)
    ]
    return matched[0] if matched else None


def cookie_caller(settings: Settings, cookie: str | None) -> tuple[Caller, WebSession] | None:
    """The client of a valid session cookie, and its session; None for none, a forged or an expired one,
    or one whose client's token has changed since it logged in."""
    claimed = session_client(cookie) if cookie else None
    if cookie is None or claimed is None:
        return None
    for token, caller in _callers(settings):
        if caller.name == claimed:
            session = verify_session(cookie, token, datetime.now(UTC))
            return (caller, session) if session is not None else None
    return None


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller of a request, kept in ``request.state.caller`` for the access log; 401 without a
    valid bearer token or session cookie; 403 for a state-changing request made with the cookie
    without the session's CSRF token."""
    settings = request.app.state.settings
    callers = _callers(settings)
    if not callers:
        request.state.caller = ANONYMOUS
        return ANONYMOUS
    if credentials is None and (found := cookie_caller(settings, request.cookies.get(COOKIE_NAME))):
        caller, session = found
        request.state.caller = caller
        if request.method not in SAFE_METHODS and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, f"a request made with the session cookie needs its {CSRF_HEADER} header")
        return caller
    offered = (credentials.credentials if credentials else "").encode()  # bytes: any character is comparable
    matched = [caller for token, caller in callers if secrets.compare_digest(offered, token)]
    if not matched:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    request.state.caller = matched[0]
    return matched[0]


def require_role(needed: Role) -> Callable[..., Caller]:
    """A dependency that lets only callers with ``needed`` (or a role above it) through: 403 otherwise."""

    def check(caller: Annotated[Caller, Depends(require_token)]) -> Caller:
        if not caller.may(needed):
            raise HTTPException(
                403, f"client {caller.name!r} has role {caller.role.value}; this needs {needed.value}"
            )
        return caller

    return check


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
