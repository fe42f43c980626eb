"""``/series/{uid}``, ``/trends``, ``/pairs`` and ``/admin/limits``.

The series view is rendered from the same documents REST serves (the series, its reports and
deliveries); its images, reviews, trends, pairs and limits are fetched by the page's scripts from
the REST API, so a route this installation lacks shows a message on the page instead of breaking it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from qcgate.api.deliveries import delivery_public
from qcgate.api.deps import SessionDep
from qcgate.api.reports import report_public
from qcgate.api.series import series_view
from qcgate.api.web.auth import PageCaller
from qcgate.api.web.templating import render
from qcgate.api.web.worklist import protocol_of
from qcgate.contract.verdict_model import FINDING_KINDS
from qcgate.core.settings import Role
from qcgate.store.delivery_repository import list_jobs, reports_of_series
from qcgate.store.repository import series_by_uid

router = APIRouter(include_in_schema=False)
UidPath = Annotated[str, Path(max_length=64, pattern=r"^[0-9.]+$")]


@router.get("/series/{series_uid}", response_class=HTMLResponse)
def get_series_page(
    request: Request, caller: PageCaller, session: SessionDep, series_uid: UidPath
) -> HTMLResponse:
    series = series_by_uid(session, series_uid)
    if series is None:
        return render(request, "missing.html", caller, 404, what=f"No series {series_uid} is known here.")
    public = series_view(session, series)
    settings = request.app.state.settings
    reports = [report_public(r) for r in reports_of_series(session, series.id)]
    deliveries = [
        delivery_public(job, settings) for job in list_jobs(session, series_id=series.id, limit=100)
    ]
    charts = sorted(
        {name for stack in public.stacks if stack.scored for name, m in stack.metrics.items() if m.per_slice}
    )
    return render(
        request,
        "series.html",
        caller,
        series=public,
        protocol=protocol_of(series),
        pruned=series.pixels_pruned_at,
        reports=reports,
        deliveries=deliveries,
        charts=charts,
        finding_kinds=sorted(FINDING_KINDS),
    )


@router.get("/trends", response_class=HTMLResponse)
def get_trends_page(request: Request, caller: PageCaller) -> HTMLResponse:
    return render(request, "trends.html", caller)


@router.get("/pairs", response_class=HTMLResponse)
def get_pairs_page(request: Request, caller: PageCaller) -> HTMLResponse:
    return render(request, "pairs.html", caller)


@router.get("/admin/limits", response_class=HTMLResponse)
def get_limits_page(request: Request, caller: PageCaller) -> HTMLResponse:
    return render(request, "limits.html", caller, may_apply=caller.may(Role.ADMIN))
