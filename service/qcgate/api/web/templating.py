"""Jinja2 templates and the static files of the page, with the headers every page carries.

Templates autoescape (a series description is text a scanner sent, never markup). Static files are
a fixed list served by one route: no directory listing, no path from the request reaches the disk.
The Content-Security-Policy allows only this origin's scripts, styles and images (no inline script,
no CDN): the page works on an isolated hospital network, and injected markup could not run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from qcgate.api.deps import Caller
from qcgate.core import __version__
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role

HERE = Path(__file__).parent
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # pages may show patient IDs
}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
STATIC_FILES = frozenset(path.name for path in (HERE / "static").iterdir() if path.suffix in STATIC_TYPES)

router = APIRouter(include_in_schema=False)


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: Request, template: str, caller: Caller | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` rendered with the caller, its roles and the session's CSRF token."""
    session = getattr(request.state, "web_session", None)
    html = (
        environment()
        .get_template(template)
        .render(
            caller=caller,
            may_images=caller is not None and caller.may(Role.IMAGES),
            may_review=caller is not None and caller.may(Role.REVIEW),
            may_admin=caller is not None and caller.may(Role.ADMIN),
            csrf=session.csrf if session is not None else "",
            version=__version__,
            path=request.url.path,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


@router.get("/static/{name}")
def get_static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name}")
    path = HERE / "static" / name
    return Response(
        path.read_bytes(),
        media_type=STATIC_TYPES[path.suffix],
        headers={
            "Cache-Control": "public, max-age=3600",
            "ETag": f'"{__version__}-{path.stat().st_mtime_ns}"',
        },
    )
