"""The QC page's session in-process: a login with a named token sets an HttpOnly, SameSite=Strict
cookie that REST and the pages accept; state-changing requests with the cookie need the session's
CSRF token; logout ends it; bearer tokens still work; a forged, expired or outdated cookie is refused;
without configured clients (loopback) the page needs no login."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qcgate.api.session import COOKIE_NAME, SESSION_LIFETIME, sign_session, verify_session
from qcgate.core.settings import get_settings
from tests.page_store import HEADER_UID, PageApp

TOKENS = {role: f"{role}-session-token-0123456789" for role in ("read", "images", "operate")}
CLIENTS = {f"{role}-desk": {"token": token, "role": role} for role, token in TOKENS.items()}
RESCORE = f"/api/v1/series/{HEADER_UID}/rescore"


@pytest.fixture
def page(make_app: Callable[..., PageApp]) -> PageApp:
    return make_app(api_clients=CLIENTS)


def login(page: PageApp, role: str, next_path: str = "/") -> Any:
    return page.client.post("/login", data={"token": TOKENS[role], "next": next_path}, follow_redirects=False)


def csrf_of(page: PageApp) -> str:
    html = page.client.get("/").text
    (token,) = re.findall(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert token
    return token


def test_a_login_with_a_named_token_sets_a_strict_http_only_cookie(
    page: PageApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        response = login(page, "read", f"/series/{HEADER_UID}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/series/{HEADER_UID}"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie, "plain HTTP here; Secure under https"
    assert f"Max-Age={int(SESSION_LIFETIME.total_seconds())}" in cookie
    assert TOKENS["read"] not in cookie, "the cookie names the client, it does not carry the token"
    assert "login client=read-desk role=read" in caplog.text
    assert TOKENS["read"] not in caplog.text


def test_a_wrong_token_is_a_401_and_logged_without_what_was_typed(
    page: PageApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        response = page.client.post("/login", data={"token": "guessed-wrong-token"}, follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "That token is not valid" in response.text
    assert "login refused from" in caplog.text
    assert "guessed-wrong-token" not in caplog.text


def test_without_a_session_pages_redirect_to_login_and_rest_is_a_401(page: PageApp) -> None:
    response = page.client.get(f"/series/{HEADER_UID}?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/series/{HEADER_UID}%3Fx%3D1"
    assert page.client.get("/api/v1/series").status_code == 401
    assert page.client.get("/login").status_code == 200


def test_the_cookie_works_for_pages_and_rest_gets(page: PageApp) -> None:
    assert login(page, "images").status_code == 303
    assert page.client.get("/", follow_redirects=False).status_code == 200
    assert page.client.get(f"/api/v1/series/{HEADER_UID}").json()["flag"] == "warn"
    assert page.client.get(f"/api/v1/series/{HEADER_UID}/mosaic.png").status_code == 200


def test_the_cookie_carries_the_clients_role(page: PageApp) -> None:
    assert login(page, "read").status_code == 303
    response = page.client.get(f"/api/v1/series/{HEADER_UID}/mosaic.png")
    assert response.status_code == 403
    assert "read-desk" in response.json()["detail"]


def test_a_post_with_the_cookie_needs_the_sessions_csrf_token(page: PageApp) -> None:
    assert login(page, "operate").status_code == 303
    token = csrf_of(page)
    missing = page.client.post(RESCORE)
    assert missing.status_code == 403
    assert "X-CSRF-Token" in missing.json()["detail"]
    wrong = page.client.post(RESCORE, headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert wrong.status_code == 403
    # another session's token does not do either
    other = sign_session("operate-desk", TOKENS["operate"].encode(), datetime.now(UTC))[1].csrf
    assert page.client.post(RESCORE, headers={"X-CSRF-Token": other}).status_code == 403
    assert page.client.post(RESCORE, headers={"X-CSRF-Token": token}).status_code == 202


def test_logout_needs_the_csrf_token_and_clears_the_cookie(page: PageApp) -> None:
    assert login(page, "read").status_code == 303
    token = csrf_of(page)
    assert page.client.post("/logout", data={}, follow_redirects=False).status_code == 403
    response = page.client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert re.search(rf'{COOKIE_NAME}=(""|);', response.headers["set-cookie"])
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert COOKIE_NAME not in page.client.cookies
    assert page.client.get("/", follow_redirects=False).status_code == 303


def test_a_bearer_token_still_works_and_wins_over_a_cookie(page: PageApp) -> None:
    bearer = {"Authorization": f"Bearer {TOKENS['operate']}"}
    assert page.client.post(RESCORE, headers=bearer).status_code == 202, (
        "a bearer request needs no CSRF token"
    )
    assert login(page, "operate").status_code == 303
    wrong = page.client.get("/api/v1/series", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401


def test_a_forged_expired_or_outdated_cookie_is_refused(make_app: Callable[..., PageApp]) -> None:
    page = make_app(api_clients=CLIENTS)
    now = datetime.now(UTC)
    cookie, session = sign_session("read-desk", TOKENS["read"].encode(), now)
    assert verify_session(cookie, TOKENS["read"].encode(), now) == session
    assert (
        verify_session(cookie, TOKENS["read"].encode(), now + SESSION_LIFETIME + timedelta(seconds=1)) is None
    )
    assert verify_session(cookie, b"another-token-entirely-000", now) is None
    payload, mac = cookie.split(".")
    forged_as_operate = sign_session("operate-desk", b"not-the-operate-token-00000", now)[0]
    for bad in (forged_as_operate, payload + "." + mac[::-1], "garbage", "a.b.c", ""):
        page.client.cookies.set(COOKIE_NAME, bad)
        assert page.client.get("/api/v1/series").status_code == 401, bad
    # a client whose token changes loses its sessions at once
    page.client.cookies.set(COOKIE_NAME, cookie)
    assert page.client.get("/api/v1/series").status_code == 200
    rotated = {**CLIENTS, "read-desk": {"token": "a-new-read-token-0123456789", "role": "read"}}
    page.app.state.settings = get_settings(data_dir=page.settings.data_dir, api_clients=rotated)
    assert page.client.get("/api/v1/series").status_code == 401


def test_a_login_returns_only_to_a_path_of_this_site(page: PageApp) -> None:
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert login(page, "read", hostile).headers["location"] == "/"


def test_with_auth_off_the_page_works_without_login(make_app: Callable[..., PageApp]) -> None:
    page = make_app()
    worklist = page.client.get("/", follow_redirects=False)
    assert worklist.status_code == 200
    assert "anonymous" in worklist.text
    assert page.client.get("/login", follow_redirects=False).headers["location"] == "/"
    assert page.client.post(RESCORE).status_code == 202, "no clients: REST is open on loopback, as before"


def test_pages_carry_a_strict_content_security_policy(page: PageApp) -> None:
    response = page.client.get("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"


def test_a_page_may_be_read_with_a_bearer_token(page: PageApp) -> None:
    """A script or a probe: no cookie, no login, the client's role as REST would give it."""
    response = page.client.get(
        "/", headers={"Authorization": f"Bearer {TOKENS['read']}"}, follow_redirects=False
    )
    assert response.status_code == 200
    assert "read-desk" in response.text
    wrong = page.client.get("/", headers={"Authorization": "Bearer nope"}, follow_redirects=False)
    assert wrong.status_code == 303


def test_an_address_that_keeps_guessing_must_wait(page: PageApp, caplog: pytest.LogCaptureFixture) -> None:
    """After ten refused logins from one address even the right token waits (429, Retry-After)."""
    for _ in range(10):
        wrong = page.client.post("/login", data={"token": "guessed-wrong-token"}, follow_redirects=False)
        assert wrong.status_code == 401
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        throttled = login(page, "read", "/")
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 601
    assert "set-cookie" not in throttled.headers
    assert "too many refused logins" in caplog.text


def test_the_throttle_forgets_old_refusals_and_bounds_its_memory() -> None:
    from qcgate.api.web import throttle as module

    throttle = module.LoginThrottle(max_refusals=2, window_s=10)
    throttle.refused("a", now=0)
    throttle.refused("a", now=1)
    assert throttle.wait_s("a", now=2) == pytest.approx(8)
    assert throttle.wait_s("a", now=11) == 0, "refusals older than the window no longer count"
    assert throttle.wait_s("b", now=2) == 0, "other addresses are not held up"
    for n in range(module.MAX_ADDRESSES + 5):
        throttle.refused(f"10.0.{n // 256}.{n % 256}", now=20)
    assert len(throttle._refusals) == module.MAX_ADDRESSES
