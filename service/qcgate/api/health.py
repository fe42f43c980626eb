"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api.problems import problem
from qcgate.core.settings import Settings
from qcgate.store.repository import queue_depth
from qcgate.store.retention import spool_free_bytes

router = APIRouter(tags=["health"])


class QueueDepthCollector(Collector):
    """Queue depth and spool free space are read at scrape time, so they are right in every process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._settings, self._sessions = settings, sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._sessions() as session:
            depth = queue_depth(session)
        yield GaugeMetricFamily("qcgate_queue_depth", "Series queued or being assessed.", value=depth)
        yield GaugeMetricFamily(
            "qcgate_spool_free_bytes",
            "Free bytes on the spool's file system.",
            value=spool_free_bytes(self._settings),
        )


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


@router.get("/metrics", summary="Prometheus metrics of every qcgate process", response_class=Response)
def metrics(request: Request) -> Response:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(QueueDepthCollector(request.app.state.settings, request.app.state.sessions))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
