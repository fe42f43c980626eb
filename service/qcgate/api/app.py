"""``create_app(settings)``: the FastAPI application, built explicitly, never at import time."""

from __future__ import annotations

from celery import Celery
from fastapi import Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api import deliveries, destinations, health, reports, series, studies
from qcgate.api.deps import require_token
from qcgate.api.problems import install_problem_handlers
from qcgate.core import __version__
from qcgate.core.settings import Settings


def create_app(settings: Settings, sessions: sessionmaker[Session], celery: Celery) -> FastAPI:
    app = FastAPI(
        title="qcgate",
        version=__version__,
        description="MRI quality-control gateway: series, quality metrics, flags, reports, deliveries.",
    )
    app.state.settings, app.state.sessions, app.state.celery = settings, sessions, celery
    install_problem_handlers(app)
    app.include_router(health.router)
    for router in (series.router, studies.router, reports.router, deliveries.router, destinations.router):
        app.include_router(router, dependencies=[Depends(require_token)])
    return app
