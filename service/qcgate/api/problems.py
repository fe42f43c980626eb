"""Errors as RFC 9457 ``application/problem+json``, translated once, here."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qcgate.core.errors import NotFound

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, **extra: object) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = problem(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    log.info("invalid request to %s: %d errors", request.url.path, len(exc.errors()))
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return problem(422, "the request is not valid", errors=errors)


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return problem(404, str(exc))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(NotFound, _not_found)  # type: ignore[arg-type]
