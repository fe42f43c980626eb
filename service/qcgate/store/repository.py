"""The queries and state transitions of a series' life, in one place.

receiving --(quiet period)--> queued --(worker claims)--> processing --> done | failed | not_assessable
Any new instance sends a series back to receiving and bumps its revision, so a late instance after
scoring re-queues it; the newer assessment supersedes the older one, and both are kept. A rescore
bumps the revision too: each revision is one request for one result.

**One result per revision.** The claim gives the worker a lease (a token and an expiry) that it
renews while it scores. The sweeper re-queues a processing series only when its lease has lapsed
(the worker died or gave up), never because scoring is slow; a result is stored only by the lease's
holder, so a worker that lost its lease cannot add a second assessment, SR or delivery. A revision
whose lease lapsed ``max_scoring_attempts`` times ends ``failed`` with the reason, so a series that
kills its worker is not re-queued forever.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.store.tables import Assessment, Instance, Series, Study

IN_FLIGHT = (SeriesStatus.QUEUED, SeriesStatus.PROCESSING)


@dataclass(frozen=True)
class ReceivedInstance:
    """What the store needs to know about an accepted instance (identifiers and routing attributes)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    station_name: str
    series_description: str
    scored: bool
    decoded_bytes: int = 0  # what its pixels decode to (the per-series budget counts it)
    protocol_name: str = ""  # trends and drift group by it (else by series_description)


def _study(session: Session, study_uid: str, now: datetime) -> Study:
    study = session.scalar(select(Study).where(Study.study_instance_uid == study_uid))
    if study is None:
        study = Study(study_instance_uid=study_uid, created_at=now)
        session.add(study)
        session.flush()
    return study


def _series(session: Session, received: ReceivedInstance, calling_ae: str, now: datetime) -> Series:
    series = session.scalar(select(Series).where(Series.series_instance_uid == received.series_instance_uid))
    if series is None:
        series = Series(
            series_instance_uid=received.series_instance_uid,
            study_id=_study(session, received.study_instance_uid, now).id,
            modality=received.modality,
            station_name=received.station_name,
            series_description=received.series_description,
            protocol_name=received.protocol_name,
            calling_ae=calling_ae,
            status=SeriesStatus.RECEIVING,
            revision=0,
            instance_count=0,
            first_received_at=now,
            last_received_at=now,
            enqueue_count=0,
            status_reason="",
        )
        session.add(series)
        session.flush()
    return series


def record_instance(
    session: Session,
    received: ReceivedInstance,
    spool_path: str,
    size_bytes: int,
    calling_ae: str,
    now: datetime,
) -> str | None:
    """Record a durably spooled instance; a repeated SOP Instance UID updates it in place.

    A SOP Instance UID sent again under another series is re-filed there: the newest copy wins, as
    a scanner resending a corrected series expects, and the series it left gets a new revision (it is
    scored again without it). Returns the spool path the instance no longer uses (the caller deletes
    the file once this commits), else None.
    """
    series = _series(session, received, calling_ae, now)
    instance = session.scalar(select(Instance).where(Instance.sop_instance_uid == received.sop_instance_uid))
    replaced = None
    if instance is None:
        session.add(
            Instance(
                sop_instance_uid=received.sop_instance_uid,
                series_id=series.id,
                sop_class_uid=received.sop_class_uid,
                transfer_syntax_uid=received.transfer_syntax_uid,
                spool_path=spool_path,
                size_bytes=size_bytes,
                decoded_bytes=received.decoded_bytes,
                received_at=now,
            )
        )
        series.instance_count += 1
    else:
        if instance.series_id != series.id:
            _changed(session.get_one(Series, instance.series_id), now, instance_count_change=-1)
            instance.series_id = series.id
            series.instance_count += 1
        if instance.spool_path != spool_path:
            replaced, instance.spool_path = instance.spool_path, spool_path
        instance.sop_class_uid = received.sop_class_uid
        instance.transfer_syntax_uid = received.transfer_syntax_uid
        instance.size_bytes = size_bytes
        instance.decoded_bytes = received.decoded_bytes
        instance.received_at = now
    _changed(series, now)
    return replaced


def _changed(series: Series, now: datetime, instance_count_change: int = 0) -> None:
    """The series' instances changed: a new revision, received again."""
    series.instance_count += instance_count_change
    series.revision += 1
    series.scoring_attempts = 0
    series.last_received_at = now
    series.status = SeriesStatus.RECEIVING
    series.status_reason = ""


def instance_recorded(session: Session, sop_instance_uid: str) -> bool:
    return (
        session.scalar(select(Instance.id).where(Instance.sop_instance_uid == sop_instance_uid)) is not None
    )


def series_decoded_bytes(session: Session, series_uid: str, excluding_sop: str) -> int:
    """What the series' recorded instances decode to, but for ``excluding_sop`` (a resend replaces it)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Instance.decoded_bytes), 0))
        .join(Series, Series.id == Instance.series_id)
        .where(Series.series_instance_uid == series_uid, Instance.sop_instance_uid != excluding_sop)
    )
    return int(total or 0)


def queue_quiet_series(session: Session, quiet_since: datetime, now: datetime) -> list[int]:
    """Outbox step: mark series that have been quiet long enough as queued; returns their ids."""
    quiet = and_(Series.status == SeriesStatus.RECEIVING, Series.last_received_at <= quiet_since)
    return _transition(
        session, quiet, status=SeriesStatus.QUEUED, queued_at=now, enqueue_count=Series.enqueue_count + 1
    )


def requeue_stuck_series(
    session: Session, stuck_since: datetime, now: datetime, max_attempts: int = 3
) -> list[int]:
    """Series whose task was lost (queued since ``stuck_since``) or whose worker's lease lapsed.

    A lapsed lease is a crash or a timeout of that attempt: the series is queued again, or ends
    ``failed`` once its revision has had ``max_attempts`` attempts (returned ids exclude those). A
    processing row without a lease (claimed before leases existed) counts from its claim.
    """
    queued_too_long = and_(Series.status == SeriesStatus.QUEUED, Series.queued_at <= stuck_since)
    lapsed = and_(
        Series.status == SeriesStatus.PROCESSING,
        or_(
            Series.lease_expires_at <= now,
            and_(
                Series.lease_expires_at.is_(None),
                func.coalesce(Series.claimed_at, Series.queued_at) <= stuck_since,
            ),
        ),
    )
    exhausted = and_(lapsed, Series.scoring_attempts >= max_attempts)
    _transition(
        session,
        exhausted,
        status=SeriesStatus.FAILED,
        flag=None,
        lease_token=None,
        lease_expires_at=None,
        status_reason=f"scoring did not finish in {max_attempts} attempts"
        " (the worker crashed or timed out each time)",
    )
    stuck = or_(queued_too_long, and_(lapsed, Series.scoring_attempts < max_attempts))
    return _transition(
        session,
        stuck,
        status=SeriesStatus.QUEUED,
        queued_at=now,
        lease_token=None,
        lease_expires_at=None,
        enqueue_count=Series.enqueue_count + 1,
    )


def _transition(session: Session, condition: ColumnElement[bool], **values: Any) -> list[int]:
    """Set ``values`` on every series meeting ``condition``; returns their ids. The condition is
    checked again in the UPDATE, so a row that changed in between is left alone."""
    ids = list(session.scalars(select(Series.id).where(condition)))
    if ids:
        session.execute(update(Series).where(Series.id.in_(ids), condition).values(**values))
    return ids


def request_rescore(session: Session, series: Series, now: datetime) -> None:
    """Queue ``series`` again as a new revision (its result will supersede the current one)."""
    series.status = SeriesStatus.QUEUED
    series.queued_at = now
    series.revision += 1
    series.scoring_attempts = 0
    series.lease_token = None
    series.lease_expires_at = None
    series.enqueue_count += 1


def claim_series(
    session: Session, series_id: int, now: datetime, lease: timedelta = timedelta(seconds=30)
) -> Series | None:
    """Move a queued series to processing under a new lease (``Series.lease_token``); None if
    another delivery of the task got there first."""
    claimed = session.execute(
        update(Series)
        .where(Series.id == series_id, Series.status == SeriesStatus.QUEUED)
        .values(
            status=SeriesStatus.PROCESSING,
            claimed_at=now,
            lease_token=uuid.uuid4().hex,
            lease_expires_at=now + lease,
            scoring_attempts=Series.scoring_attempts + 1,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    series = session.get_one(Series, series_id)
    session.refresh(series)
    return series


def renew_lease(session: Session, series_id: int, token: str, until: datetime) -> bool:
    """Extend the lease ``token`` on the series to ``until``; False when it is no longer held."""
    renewed = session.execute(
        update(Series)
        .where(Series.id == series_id, Series.lease_token == token)
        .values(lease_expires_at=until)
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def instance_paths(session: Session, series_id: int) -> list[tuple[str, str]]:
    """(spool path, SOP class) of every instance of the series."""
    rows = session.execute(
        select(Instance.spool_path, Instance.sop_class_uid)
        .where(Instance.series_id == series_id)
        .order_by(Instance.id)
    )
    return [(path, sop_class) for path, sop_class in rows]


def store_assessment(
    session: Session,
    series_id: int,
    revision: int,
    outcome: SeriesStatus,
    document: Mapping[str, Any],
    started_at: datetime,
    finished_at: datetime,
    lease_token: str,
) -> Assessment | None:
    """Keep the assessment under the lease ``lease_token`` and release the lease; make it current
    unless the series changed while it was scored. None, storing nothing, when the lease was lost
    (it lapsed and another attempt took the series, or a rescore replaced it).

    ``document`` is the assessment document's JSON (``AssessmentDocument.to_json()``); its parts go to
    their own columns, and :func:`assessment_json` puts them back together.
    """
    series = session.get_one(Series, series_id, with_for_update=True)
    if series.lease_token != lease_token:
        return None
    series.lease_token, series.lease_expires_at = None, None
    flag = Flag(document["flag"]) if document.get("flag") else None
    assessment = Assessment(
        series_id=series_id,
        revision=revision,
        outcome=outcome,
        flag=flag,
        reasons=document.get("reasons", []),
        metrics=document.get("metrics", {}),
        stacks=document.get("stacks", []),
        provenance=document.get("provenance", {}),
        quality=document.get("quality"),
        findings=document.get("findings"),
        instance_count=document.get("instances", 0),
        started_at=started_at,
        finished_at=finished_at,
    )
    session.add(assessment)
    if series.revision == revision and series.status == SeriesStatus.PROCESSING:
        series.status = outcome
        series.flag = flag
        series.status_reason = "; ".join(document.get("reasons", []))
    return assessment


def assessment_json(assessment: Assessment) -> dict[str, Any]:
    """A stored assessment's document as JSON, as :func:`store_assessment` was given it (rows of every
    version hold these columns; ``AssessmentDocument.from_stored`` reads the result)."""
    return {
        "status": assessment.outcome.value,
        "instances": assessment.instance_count,
        "flag": assessment.flag.value if assessment.flag else None,
        "reasons": assessment.reasons,
        "metrics": assessment.metrics,
        "stacks": assessment.stacks,
        "provenance": assessment.provenance,
        # Rows stored before the verdict (migration 0003) have neither: they stay absent, not null.
        **({"quality": assessment.quality} if assessment.findings is not None else {}),
        **({"findings": assessment.findings} if assessment.findings is not None else {}),
    }


def current_assessment(session: Session, series_id: int) -> Assessment | None:
    return session.scalar(
        select(Assessment).where(Assessment.series_id == series_id).order_by(Assessment.id.desc()).limit(1)
    )


def series_by_uid(session: Session, series_uid: str) -> Series | None:
    return session.scalar(select(Series).where(Series.series_instance_uid == series_uid))


def study_by_uid(session: Session, study_uid: str) -> Study | None:
    return session.scalar(select(Study).where(Study.study_instance_uid == study_uid))


def list_series(
    session: Session,
    *,
    status: SeriesStatus | None = None,
    flag: Flag | None = None,
    modality: str | None = None,
    station: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> Sequence[Series]:
    """Filtered series, newest first, keyset-paged by id (stable under concurrent inserts)."""
    query = select(Series).order_by(Series.id.desc()).limit(limit)
    conditions = [
        Series.status == status if status else None,
        Series.flag == flag if flag else None,
        Series.modality == modality if modality else None,
        Series.station_name == station if station else None,
        Series.last_received_at >= since if since else None,
        Series.last_received_at < until if until else None,
        Series.id < after_id if after_id else None,
    ]
    query = query.where(*[condition for condition in conditions if condition is not None])
    return session.scalars(query).all()


def queue_depth(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Series).where(Series.status.in_(IN_FLIGHT))) or 0
