"""``/login`` and ``/logout``, and who is looking at a page.

A person logs in with their named token (the one REST takes as a bearer token); the answer sets the
session cookie (api/session.py) and returns them to the page they asked for. A refused login is
logged with the address it came from, never with what was typed. Without any client configured
(loopback only: the settings refuse anything else) every page is open and login is not needed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from qcgate.api.deps import ANONYMOUS, Caller, auth_required, cookie_caller, token_caller
from qcgate.api.session import COOKIE_NAME, SESSION_LIFETIME, csrf_matches, sign_session
from qcgate.api.web.templating import render
from qcgate.api.web.throttle import LoginThrottle

log = logging.getLogger("qcgate.access")
router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 4096


class LoginRequired(Exception):  # noqa: N818 - a redirect, not an error
    """Raised by :func:`page_caller`; the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def _throttle(request: Request) -> LoginThrottle:
    """The app's login throttle, made on first use (one per API process)."""
    state = request.app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = LoginThrottle()
    throttle: LoginThrottle = state.login_throttle
    return throttle


def login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)


def page_caller(request: Request) -> Caller:
    """The caller of a page: anonymous without configured clients, else the client of a bearer token
    or of the session cookie; a redirect to /login without either."""
    settings = request.app.state.settings
    if not auth_required(settings):
        request.state.caller = ANONYMOUS
        return ANONYMOUS
    bearer = request.headers.get("Authorization", "")
    if bearer.startswith("Bearer "):  # a script or a probe may read a page with its bearer token
        by_token = token_caller(settings, bearer.removeprefix("Bearer ").encode())
        if by_token is not None:
            request.state.caller = by_token[0]
            return by_token[0]
    found = cookie_caller(settings, request.cookies.get(COOKIE_NAME))
    if found is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.caller, request.state.web_session = found
    return found[0]


PageCaller = Annotated[Caller, Depends(page_caller)]


def _local(next_path: str | None) -> str:
    """Only a path of this site (not ``//other.host``) may be where a login returns to."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        return "/"
    return next_path


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "the form is too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "the form cannot be read") from exc
    return {name: values[0] for name, values in fields.items()}


@router.get("/login", response_class=HTMLResponse)
def get_login(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query's name
    if not auth_required(request.app.state.settings):
        return RedirectResponse(_local(next), status_code=303)
    return render(request, "login.html", None, next=_local(next), error="")


@router.post("/login", response_class=HTMLResponse)
async def post_login(request: Request) -> Response:
    settings = request.app.state.settings
    form = await _form(request)
    next_path = _local(form.get("next"))
    if not auth_required(settings):
        return RedirectResponse(next_path, status_code=303)
    address = request.client.host if request.client else "-"
    throttle = _throttle(request)
    wait_s = throttle.wait_s(address)
    if wait_s > 0:
        log.warning("login from %s refused unread: too many refused logins, retry in %.0f s", address, wait_s)
        waiting = render(
            request, "login.html", None, 429, next=next_path, error="Too many refused logins: wait and retry."
        )
        waiting.headers["Retry-After"] = str(int(wait_s) + 1)
        return waiting
    found = token_caller(settings, form.get("token", "").strip().encode())
    if found is None:
        throttle.refused(address)
        log.warning("login refused from %s: no client has the token offered", address)
        return render(request, "login.html", None, 401, next=next_path, error="That token is not valid.")
    caller, token = found
    cookie, session = sign_session(caller.name, token, datetime.now(UTC))
    log.info("login client=%s role=%s from %s", caller.name, caller.role.value, address)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or settings.http_tls is not None,
        path="/",
    )
    return response


@router.post("/logout")
async def post_logout(request: Request) -> Response:
    """Ends the session in this browser (the form carries the CSRF token: another site cannot log
    a person out)."""
    settings = request.app.state.settings
    found = cookie_caller(settings, request.cookies.get(COOKIE_NAME))
    if found is not None:
        form = await _form(request)
        if not csrf_matches(found[1], form.get("csrf")):
            raise HTTPException(403, "logging out needs the session's CSRF token")
        log.info("logout client=%s", found[0].name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
