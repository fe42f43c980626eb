"""``/api/v1/deliveries``: delivery jobs with their state and last error; manual retry of dead ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from qcgate.api.deps import CeleryDep, SessionDep, SettingsDep, require_role
from qcgate.api.paging import decode_cursor, split_page
from qcgate.api.schemas import DeliveryPage, DeliveryPublic
from qcgate.api.series import UidPath
from qcgate.core.delivery_states import DeliveryAction, DeliveryState
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role, Settings
from qcgate.store.delivery_repository import list_jobs, retry_dead
from qcgate.store.repository import series_by_uid
from qcgate.store.tables import DeliveryJob
from qcgate.worker.celery_app import enqueue_delivery

router = APIRouter(prefix="/api/v1/deliveries", tags=["deliveries"])
JobIdPath = Annotated[int, Path(ge=1, le=2**62, description="A delivery job id.")]


def delivery_public(job: DeliveryJob, settings: Settings) -> DeliveryPublic:
    in_flight = job.state in (DeliveryState.PENDING, DeliveryState.SENDING)
    return DeliveryPublic(
        id=job.id,
        series_instance_uid=job.series.series_instance_uid,
        assessment_id=job.assessment_id,
        action=job.action,
        target=job.target,
        rule=job.rule,
        state=job.state,
        attempts=job.attempts,
        max_attempts=settings.delivery_max_attempts,
        manual_retries=job.manual_retries,
        report_sop_instance_uid=job.report.sop_instance_uid if job.report else None,
        created_at=job.created_at,
        next_attempt_at=job.next_attempt_at if in_flight else None,
        last_attempt_at=job.last_attempt_at,
        last_error=job.last_error,
        last_duration_s=job.last_duration_s,
        delivered_at=job.delivered_at,
    )


def _job(session: SessionDep, job_id: int) -> DeliveryJob:
    job = session.get(DeliveryJob, job_id)
    if job is None:
        raise NotFound(f"no delivery {job_id}")
    return job


@router.get("", response_model=DeliveryPage, summary="List deliveries, newest first")
def get_deliveries(
    session: SessionDep,
    settings: SettingsDep,
    state: DeliveryState | None = None,
    action: DeliveryAction | None = None,
    target: Annotated[str | None, Query(max_length=64)] = None,
    series: UidPath | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    series_id = None
    if series is not None:
        found = series_by_uid(session, series)
        if found is None:
            raise NotFound(f"no series {series}")
        series_id = found.id
    rows = list_jobs(
        session,
        state=state,
        action=action,
        target=target,
        series_id=series_id,
        after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    page, next_cursor = split_page(rows, limit)
    return DeliveryPage(items=[delivery_public(job, settings) for job in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=DeliveryPublic, summary="One delivery")
def get_delivery(session: SessionDep, settings: SettingsDep, job_id: JobIdPath) -> DeliveryPublic:
    return delivery_public(_job(session, job_id), settings)


@router.post(
    "/{job_id}/retry",
    dependencies=[Depends(require_role(Role.OPERATE))],
    response_model=DeliveryPublic,
    status_code=202,
    summary="Try a dead delivery again, with a fresh round of attempts",
)
def post_retry(
    session: SessionDep, settings: SettingsDep, celery: CeleryDep, job_id: JobIdPath
) -> DeliveryPublic:
    job = _job(session, job_id)
    if job.state != DeliveryState.DEAD:
        raise HTTPException(409, f"delivery is {job.state.value}; only a dead delivery can be retried")
    retry_dead(session, job, datetime.now(UTC))
    session.commit()
    enqueue_delivery(celery, job.id)
    return delivery_public(job, settings)
