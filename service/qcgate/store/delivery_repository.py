"""The queries and state transitions of reports and delivery jobs.

pending --(claim: attempts+1, lease)--> sending --> delivered
                                           |------> pending (backoff) ... --> dead (last attempt)
A ``sending`` job whose lease ran out (worker killed, task lost) is due again; a dead job goes back
to pending only by a manual retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.store.tables import DeliveryJob, Report

IN_FLIGHT = (DeliveryState.PENDING, DeliveryState.SENDING)


def latest_report(session: Session, series_id: int, kind: ReportKind) -> Report | None:
    return session.scalar(
        select(Report)
        .where(Report.series_id == series_id, Report.kind == kind)
        .order_by(Report.id.desc())
        .limit(1)
    )


def reports_of_series(session: Session, series_id: int) -> Sequence[Report]:
    return session.scalars(select(Report).where(Report.series_id == series_id).order_by(Report.id)).all()


def reports_of_assessment(session: Session, assessment_id: int) -> Sequence[Report]:
    return session.scalars(
        select(Report).where(Report.assessment_id == assessment_id).order_by(Report.id)
    ).all()


def report_by_uid(session: Session, sop_instance_uid: str) -> Report | None:
    return session.scalar(select(Report).where(Report.sop_instance_uid == sop_instance_uid))


def claim_job(session: Session, job_id: int, now: datetime, lease_until: datetime) -> DeliveryJob | None:
    """Take a due job for one attempt (compare-and-set on state and attempts); None if not ours.

    A job found ``sending`` with its lease run out lost its previous attempt; that attempt counts.
    """
    job = session.get(DeliveryJob, job_id, populate_existing=True)
    if job is None or job.state not in IN_FLIGHT or job.next_attempt_at > now:
        return None
    lost = job.state == DeliveryState.SENDING
    claimed = session.execute(
        update(DeliveryJob)
        .where(
            DeliveryJob.id == job_id,
            DeliveryJob.state == job.state,
            DeliveryJob.attempts == job.attempts,
            DeliveryJob.next_attempt_at <= now,
        )
        .values(
            state=DeliveryState.SENDING,
            attempts=DeliveryJob.attempts + 1,
            next_attempt_at=lease_until,
            last_attempt_at=now,
            last_error="previous attempt lost (worker gone or task lost)" if lost else job.last_error,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(job)
    return job


def record_delivered(session: Session, job_id: int, now: datetime, duration_s: float) -> bool:
    """Mark delivered whatever happened meanwhile (a delivery that reached the peer is the truth)."""
    done = session.execute(
        update(DeliveryJob)
        .where(DeliveryJob.id == job_id, DeliveryJob.state != DeliveryState.DELIVERED)
        .values(state=DeliveryState.DELIVERED, delivered_at=now, last_duration_s=duration_s)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def record_failed(
    session: Session,
    job_id: int,
    attempt: int,
    error: str,
    duration_s: float,
    next_attempt_at: datetime | None,
) -> bool:
    """Record a failed attempt: pending until ``next_attempt_at``, or dead when it is None.

    Only the holder of the attempt may record it; False when the lease was lost to another worker.
    """
    recorded = session.execute(
        update(DeliveryJob)
        .where(
            DeliveryJob.id == job_id,
            DeliveryJob.state == DeliveryState.SENDING,
            DeliveryJob.attempts == attempt,
        )
        .values(
            state=DeliveryState.DEAD if next_attempt_at is None else DeliveryState.PENDING,
            next_attempt_at=next_attempt_at if next_attempt_at is not None else DeliveryJob.next_attempt_at,
            last_error=error,
            last_duration_s=duration_s,
        )
    )
    return recorded.rowcount == 1  # type: ignore[attr-defined]


def bury(session: Session, job: DeliveryJob, error: str) -> None:
    """Dead without an attempt: the last attempt was lost with its worker."""
    job.state = DeliveryState.DEAD
    job.last_error = error


def mark_due_enqueued(session: Session, now: datetime, lost_before: datetime, limit: int = 500) -> list[int]:
    """Outbox relay: due jobs whose task was not sent for this attempt, or was sent before
    ``lost_before`` and never ran; marks them enqueued now and returns their ids."""
    ids = list(
        session.scalars(
            select(DeliveryJob.id)
            .where(
                DeliveryJob.state.in_(IN_FLIGHT),
                DeliveryJob.next_attempt_at <= now,
                or_(
                    DeliveryJob.enqueued_at.is_(None),
                    DeliveryJob.enqueued_at < DeliveryJob.next_attempt_at,
                    DeliveryJob.enqueued_at <= lost_before,
                ),
            )
            .order_by(DeliveryJob.next_attempt_at)
            .limit(limit)
        )
    )
    if ids:
        session.execute(update(DeliveryJob).where(DeliveryJob.id.in_(ids)).values(enqueued_at=now))
    return ids


def retry_dead(session: Session, job: DeliveryJob, now: datetime) -> None:
    """A person's retry: a fresh round of attempts, due now; ``last_error`` stays until it is replaced."""
    job.state = DeliveryState.PENDING
    job.attempts = 0
    job.manual_retries += 1
    job.next_attempt_at = now
    job.enqueued_at = now


def list_jobs(
    session: Session,
    *,
    state: DeliveryState | None = None,
    action: DeliveryAction | None = None,
    target: str | None = None,
    series_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> Sequence[DeliveryJob]:
    """Filtered jobs, newest first, keyset-paged by id."""
    conditions = [
        DeliveryJob.state == state if state else None,
        DeliveryJob.action == action if action else None,
        DeliveryJob.target == target if target else None,
        DeliveryJob.series_id == series_id if series_id else None,
        DeliveryJob.id < after_id if after_id else None,
    ]
    query = (
        select(DeliveryJob)
        .where(*[c for c in conditions if c is not None])
        .options(selectinload(DeliveryJob.series), selectinload(DeliveryJob.report))
    )
    return session.scalars(query.order_by(DeliveryJob.id.desc()).limit(limit)).all()
