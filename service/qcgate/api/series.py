"""``/api/v1/series``: list with filters and cursor paging, one series, and re-scoring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qcgate.api.deps import CeleryDep, SessionDep, require_role
from qcgate.api.paging import decode_cursor, split_page
from qcgate.api.schemas import Accepted, SeriesPage, SeriesPublic, TimingsPublic, series_public
from qcgate.api.slice_plot import slice_chart, stacks_with_metric
from qcgate.assessment.stored import stored_document, stored_header
from qcgate.core.errors import NotFound
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Role
from qcgate.store.repository import current_assessment, list_series, request_rescore, series_by_uid
from qcgate.store.tables import Assessment, Series
from qcgate.worker.celery_app import enqueue_assessment

router = APIRouter(prefix="/api/v1/series", tags=["series"])
UidPath = Annotated[str, Path(max_length=64, pattern=r"^[0-9.]+$", description="A DICOM UID.")]


def series_view(session: Session, series: Series) -> SeriesPublic:
    """A stored series and its current assessment as the public document."""
    assessment = current_assessment(session, series.id)
    count = session.scalar(
        select(func.count()).select_from(Assessment).where(Assessment.series_id == series.id)
    )
    timings = TimingsPublic(
        first_received_at=series.first_received_at,
        last_received_at=series.last_received_at,
        queued_at=series.queued_at,
    )
    if assessment is None:
        return series_public(stored_header(series), None, timings, count or 0)
    timings.started_at, timings.finished_at = assessment.started_at, assessment.finished_at
    timings.receive_to_result_s = (assessment.finished_at - series.last_received_at).total_seconds()
    return series_public(
        stored_header(series),
        stored_document(assessment),
        timings,
        count or 0,
        assessment_id=assessment.id,
        revision=assessment.revision,
    )


@router.get("", response_model=SeriesPage, summary="List series, newest first")
def get_series_list(
    session: SessionDep,
    status: SeriesStatus | None = None,
    flag: Flag | None = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    station: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SeriesPage:
    for name, moment in (("since", since), ("until", until)):
        if moment is None:
            continue
        if moment.tzinfo is None:
            raise HTTPException(400, f"{name} needs a timezone, e.g. 2026-11-21T10:00:00Z")
        try:
            moment.astimezone(UTC)  # the store compares in UTC: year 1 or 9999 may not convert
        except OverflowError as exc:
            raise HTTPException(400, f"{name} is out of range once converted to UTC") from exc
    rows = list_series(
        session,
        status=status,
        flag=flag,
        modality=modality,
        station=station,
        since=since,
        until=until,
        after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    page, next_cursor = split_page(rows, limit)
    return SeriesPage(items=[series_view(session, s) for s in page], next_cursor=next_cursor)


@router.get("/{series_uid}", response_model=SeriesPublic, summary="One series and its current assessment")
def get_series(session: SessionDep, series_uid: UidPath) -> SeriesPublic:
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    return series_view(session, series)


@router.post(
    "/{series_uid}/rescore",
    dependencies=[Depends(require_role(Role.OPERATE))],
    response_model=Accepted,
    status_code=202,
    summary="Assess a series again",
)
def post_rescore(session: SessionDep, celery: CeleryDep, series_uid: UidPath) -> Accepted:
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    if series.status in (SeriesStatus.RECEIVING, SeriesStatus.QUEUED, SeriesStatus.PROCESSING):
        raise HTTPException(409, f"series is {series.status.value}; it will be assessed when complete")
    if series.pixels_pruned_at is not None:
        pruned = f"{series.pixels_pruned_at:%Y-%m-%d}"
        raise HTTPException(409, f"the series' pixels were pruned on {pruned} (retention)")
    request_rescore(session, series, datetime.now(UTC))
    session.commit()
    enqueue_assessment(celery, series.id)
    return Accepted(series_instance_uid=series_uid, status=SeriesStatus.QUEUED)


@router.get(
    "/{series_uid}/slices.svg",
    summary="Per-slice values of one metric as an SVG chart",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def get_slice_chart(
    session: SessionDep, series_uid: UidPath, metric: Annotated[str, Query(max_length=32)] = "snr"
) -> Response:
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    assessment = current_assessment(session, series.id)
    if assessment is None:
        raise HTTPException(409, f"series is {series.status.value} and has no assessment yet")
    document = stored_document(assessment)
    stacks = stacks_with_metric(document.stacks, metric)
    if not stacks:
        raise HTTPException(404, f"no per-slice values of {metric!r} for this series")
    series_metric = document.metrics.get(metric)
    higher_is_better = series_metric.higher_is_better if series_metric is not None else True
    return Response(slice_chart(metric, higher_is_better, stacks), media_type="image/svg+xml")
