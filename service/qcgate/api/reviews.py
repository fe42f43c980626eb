"""``/api/v1/series/{uid}/reviews`` and ``/api/v1/reviews/agreement``: what people say of a series.

The machine's output is the verdict; a person's is a review: acceptable or non-diagnostic, the
artifact kinds they see, a comment. It is stored with the client's name and the assessment it judged,
counted in ``qcgate_reviews_total{verdict}``, and issued as a new revision of the series' SR that
cites the previous one and carries the observer's finding (where the series' pixels are still
spooled: the SR cites the evaluated instances, which it reads from there).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from qcgate.api.deps import Caller, CeleryDep, SessionDep, SettingsDep, require_role
from qcgate.api.series import UidPath
from qcgate.assessment.site_limits import agreement
from qcgate.contract.verdict_model import FINDING_KINDS
from qcgate.core.errors import NotFound
from qcgate.core.observability import instruments
from qcgate.core.settings import Role
from qcgate.delivery.review_report import issue_review_report
from qcgate.store.repository import current_assessment, series_by_uid
from qcgate.store.reviews import ReviewVerdict, record_review, reviews_of_series
from qcgate.store.tables import Review
from qcgate.worker.celery_app import enqueue_deliveries

router = APIRouter(prefix="/api/v1", tags=["reviews"])
log = logging.getLogger(__name__)


class ReviewIn(BaseModel):
    """A person's review of the series' current assessment."""

    verdict: ReviewVerdict
    kinds: list[str] = Field(
        default_factory=list, max_length=len(FINDING_KINDS), description="Artifact kinds seen."
    )
    comment: str = Field("", max_length=2000)


class ReviewPublic(BaseModel):
    id: int
    series_instance_uid: str
    reviewer: str = Field(description="The API client's name.")
    verdict: ReviewVerdict
    kinds: list[str]
    comment: str
    created_at: datetime
    revision: int = Field(description="The series revision of the assessment reviewed.")
    assessment_id: int
    report_sop_instance_uid: str | None = Field(
        None, description="The SR revision this review issued (on POST; null when none could be)."
    )


class AgreementRow(BaseModel):
    """People and qcgate on one station or protocol: non-diagnostic agrees with a warn or fail flag."""

    station: str | None = None
    protocol: str | None = None
    reviews: int
    agree: int
    agreement: float
    kappa: float | None = Field(None, description="Cohen's kappa; null where undefined.")
    non_diagnostic: int
    flagged: int


def review_public(review: Review, series_uid: str, report_uid: str | None = None) -> ReviewPublic:
    return ReviewPublic(
        id=review.id,
        series_instance_uid=series_uid,
        reviewer=review.reviewer,
        verdict=ReviewVerdict(review.verdict),
        kinds=list(review.kinds),
        comment=review.comment,
        created_at=review.created_at,
        revision=review.revision,
        assessment_id=review.assessment_id,
        report_sop_instance_uid=report_uid,
    )


@router.post(
    "/series/{series_uid}/reviews",
    response_model=ReviewPublic,
    status_code=201,
    summary="Record a person's review of a series",
)
def post_review(
    session: SessionDep,
    settings: SettingsDep,
    series_uid: UidPath,
    body: ReviewIn,
    caller: Annotated[Caller, Depends(require_role(Role.REVIEW))],
    celery: CeleryDep,
) -> ReviewPublic:
    unknown = sorted(set(body.kinds) - set(FINDING_KINDS))
    if unknown:
        raise HTTPException(422, f"unknown artifact kinds {unknown}; known: {sorted(FINDING_KINDS)}")
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    assessment = current_assessment(session, series.id)
    if assessment is None:
        raise HTTPException(409, f"series is {series.status.value} and has no assessment to review yet")
    review = record_review(
        session,
        series,
        assessment,
        reviewer=caller.name,
        verdict=body.verdict,
        kinds=sorted(set(body.kinds)),
        comment=body.comment,
        at=datetime.now(UTC),
    )
    revision = issue_review_report(session, settings, series, assessment, review)
    session.commit()
    if revision is not None:
        enqueue_deliveries(celery, revision.delivery_jobs)
    instruments().reviews.labels(verdict=review.verdict).inc()
    log.info("series %d reviewed by %s: %s", series.id, caller.name, review.verdict)
    return review_public(review, series_uid, revision.sop_instance_uid if revision else None)


@router.get(
    "/series/{series_uid}/reviews", response_model=list[ReviewPublic], summary="The reviews of a series"
)
def get_reviews(session: SessionDep, series_uid: UidPath) -> list[ReviewPublic]:
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    return [review_public(review, series_uid) for review in reviews_of_series(session, series.id)]


@router.get(
    "/reviews/agreement",
    response_model=list[AgreementRow],
    response_model_exclude_none=False,
    summary="Agreement between people and qcgate per station or protocol",
)
def get_agreement(
    session: SessionDep, by: Annotated[Literal["station", "protocol"], Query()] = "station"
) -> list[AgreementRow]:
    return [AgreementRow.model_validate(row) for row in agreement(session, by)]
