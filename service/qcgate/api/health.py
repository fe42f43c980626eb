"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from qcgate.api.problems import problem
from qcgate.worker.gauges import metrics_text

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers", response_model=None)
def readyz(request: Request) -> dict[str, str] | Response:
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return problem(503, f"database unavailable: {type(exc).__name__}")
    return {"status": "ready"}


@router.get(
    "/metrics", summary="Prometheus metrics of this machine's qcgate processes", response_class=Response
)
def metrics(request: Request) -> Response:
    state = request.app.state
    return Response(
        metrics_text(state.settings, state.sessions, state.leadership), media_type=CONTENT_TYPE_LATEST
    )
