"""Persistence of people's reviews and of the site limits learned from them.

A review names the assessment it judged (the series' current one when it was recorded), so what the
verdict said and what the person said stay side by side however often the series is re-scored.
Site limits are kept as proposals, one row per protocol, numbered by ``proposal``; applying one marks
its rows and clears every other proposal's mark, so exactly one version is in force at a time and the
history of versions stays.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from qcgate.store.tables import Assessment, Review, Series, SiteLimit

__all__ = [
    "ReviewVerdict",
    "apply_proposal",
    "applied_limit_rows",
    "new_proposal_number",
    "proposal_rows",
    "protocol_of",
    "record_review",
    "reviewed_assessments",
    "reviews_of_series",
]


class ReviewVerdict(enum.StrEnum):
    """A person's answer: could the series be read, or does it need a repeat?"""

    ACCEPTABLE = "acceptable"
    NON_DIAGNOSTIC = "non_diagnostic"


def protocol_of(series: Series) -> str:
    """The protocol a series belongs to for limits and agreement: ProtocolName, else SeriesDescription."""
    return getattr(series, "protocol_name", "") or series.series_description


def record_review(
    session: Session,
    series: Series,
    assessment: Assessment,
    *,
    reviewer: str,
    verdict: ReviewVerdict,
    kinds: Sequence[str],
    comment: str,
    at: datetime,
) -> Review:
    review = Review(
        series_id=series.id,
        assessment_id=assessment.id,
        revision=assessment.revision,
        reviewer=reviewer,
        verdict=verdict.value,
        kinds=list(kinds),
        comment=comment,
        created_at=at,
    )
    session.add(review)
    session.flush()
    return review


def reviews_of_series(session: Session, series_id: int) -> list[Review]:
    """The reviews of a series, oldest first."""
    return list(session.scalars(select(Review).where(Review.series_id == series_id).order_by(Review.id)))


def reviewed_assessments(session: Session) -> list[tuple[Review, Assessment, Series]]:
    """Every review with the assessment it judged and its series, oldest first."""
    rows = session.execute(
        select(Review, Assessment, Series)
        .join(Assessment, Assessment.id == Review.assessment_id)
        .join(Series, Series.id == Review.series_id)
        .order_by(Review.id)
    )
    return [(review, assessment, series) for review, assessment, series in rows]


def new_proposal_number(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(SiteLimit.proposal), 0))) or 0) + 1


def proposal_rows(session: Session, proposal: int | None = None) -> list[SiteLimit]:
    """The rows of one proposal, or of the newest when ``proposal`` is None; [] when there is none."""
    if proposal is None:
        proposal = session.scalar(select(func.max(SiteLimit.proposal)))
        if proposal is None:
            return []
    query = select(SiteLimit).where(SiteLimit.proposal == proposal).order_by(SiteLimit.protocol)
    return list(session.scalars(query))


def applied_limit_rows(session: Session, model_sha256: str | None = None) -> list[SiteLimit]:
    """The rows in force; with ``model_sha256`` only those fitted for that verdict model."""
    query = select(SiteLimit).where(SiteLimit.applied.is_(True))
    if model_sha256 is not None:
        query = query.where(SiteLimit.model_sha256 == model_sha256)
    return list(session.scalars(query.order_by(SiteLimit.protocol)))


def apply_proposal(session: Session, proposal: int, *, by: str, at: datetime) -> list[SiteLimit]:
    """Put ``proposal`` in force (and every other out); [] when no such proposal exists."""
    rows = proposal_rows(session, proposal)
    if not rows:
        return []
    session.execute(update(SiteLimit).where(SiteLimit.proposal != proposal).values(applied=False))
    for row in rows:
        row.applied, row.applied_at, row.applied_by = True, at, by
    session.flush()
    return rows


def limit_row(
    proposal: int,
    protocol: str,
    model: dict[str, str],
    limits: dict[str, float],
    *,
    fitted: bool,
    reviews: int,
    non_diagnostic: int,
    evaluation: dict[str, Any],
    at: datetime,
) -> SiteLimit:
    """A new (not applied) row of a proposal."""
    return SiteLimit(
        proposal=proposal,
        protocol=protocol,
        model_version=model.get("version", ""),
        model_sha256=model.get("sha256", ""),
        quality_warn=limits["quality_warn"],
        quality_fail=limits["quality_fail"],
        severity_warn=limits["severity_warn"],
        severity_fail=limits["severity_fail"],
        fitted=fitted,
        reviews=reviews,
        non_diagnostic=non_diagnostic,
        evaluation=evaluation,
        applied=False,
        applied_at=None,
        applied_by="",
        created_at=at,
    )
