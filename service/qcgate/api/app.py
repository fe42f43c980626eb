"""``create_app(settings)``: the FastAPI application, built explicitly, never at import time."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from celery import Celery
from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api import deliveries, destinations, health, reports, series, studies
from qcgate.api import images as images_api
from qcgate.api import limits as limits_api
from qcgate.api import pairs as pairs_api
from qcgate.api import reviews as reviews_api
from qcgate.api import trends as trends_api
from qcgate.api.deps import require_token
from qcgate.api.problems import install_problem_handlers
from qcgate.api.web.routes import install_page
from qcgate.core import __version__
from qcgate.core.settings import Settings
from qcgate.worker.leadership import SweeperLeadership

access_log = logging.getLogger("qcgate.access")


async def log_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One line per API request: which named client asked for what, and the answer (in the spirit of
    IHE ATNA). The path holds UIDs only; no patient data is logged."""
    response = await call_next(request)
    if request.url.path.startswith("/api/"):
        caller = getattr(request.state, "caller", None)
        name, role = (caller.name, caller.role.value) if caller is not None else ("unauthenticated", "-")
        access_log.info(
            "client=%s role=%s %s %s -> %d",
            name,
            role,
            request.method,
            request.url.path,
            response.status_code,
        )
    return response


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session],
    celery: Celery,
    leadership: SweeperLeadership | None = None,
) -> FastAPI:
    """The API; ``leadership`` is the completion sweeper of this process, if it runs one (``serve``):
    /metrics then carries the installation's gauges while that sweeper leads."""
    app = FastAPI(
        title="qcgate",
        version=__version__,
        description="MRI quality-control gateway: series, quality metrics, flags, reports, deliveries.",
    )
    app.state.settings, app.state.sessions, app.state.celery = settings, sessions, celery
    app.state.leadership = leadership
    install_problem_handlers(app)
    app.middleware("http")(log_access)
    app.include_router(health.router)
    for router in (series.router, studies.router, reports.router, deliveries.router, destinations.router):
        app.include_router(router, dependencies=[Depends(require_token)])
    app.include_router(trends_api.router, dependencies=[Depends(require_token)])  # issue 14: trends, drift
    app.include_router(pairs_api.router, dependencies=[Depends(require_token)])  # issue 14: pairwise ranking
    app.include_router(images_api.router, dependencies=[Depends(require_token)])  # issue 14: pixels
    install_page(app)  # issue 14: the QC page at /
    app.include_router(reviews_api.router, dependencies=[Depends(require_token)])  # issue 14: reviews
    app.include_router(limits_api.router, dependencies=[Depends(require_token)])  # issue 14: site limits
    return app
