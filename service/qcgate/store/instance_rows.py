"""The receiver's hot path: recording a new instance of a series already known, in plain SQL.

Nearly every C-STORE is a new instance of a series whose first instance created the rows; the ORM
path (:func:`qcgate.store.repository.record_instance`) loaded the series and instance objects, flushed
and tracked them, which cost about 5 ms of CPU per instance, more than parsing and validating it
(bench.ingest). Here it is three statements and no object tracking. Anything else (a new series, a
resend, a re-filed instance) returns :attr:`FastRecord.NOT_NEW` and takes the ORM path, which keeps
every rule of re-filing and revisions in one place.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from qcgate.core.outcomes import SeriesStatus
from qcgate.store.repository import ReceivedInstance
from qcgate.store.tables import Instance, Series

_instances = cast(Table, Instance.__table__)
_series = cast(Table, Series.__table__)


# Built once: constructing a statement (coercing every clause) cost more CPU than running it.
_SERIES_ID = select(_series.c.id).where(_series.c.series_instance_uid == bindparam("series_uid"))
_KNOWN = select(_instances.c.id).where(_instances.c.sop_instance_uid == bindparam("sop_uid"))
_DECODED = select(func.coalesce(func.sum(_instances.c.decoded_bytes), 0)).where(
    _instances.c.series_id == bindparam("series_id")
)
_INSERT = insert(_instances)
_CHANGED = (
    update(_series)
    .where(_series.c.id == bindparam("series_id"))
    .values(
        instance_count=_series.c.instance_count + 1,
        revision=_series.c.revision + 1,
        scoring_attempts=0,
        last_received_at=bindparam("now"),
        status=SeriesStatus.RECEIVING,
        status_reason="",
    )
)


class FastRecord(enum.Enum):
    RECORDED = "recorded"
    OVER_BUDGET = "over_budget"  # nothing recorded: the series would pass its decoded budget
    NOT_NEW = "not_new"  # a new series or a known instance: the caller records it the ORM way


def record_new_instance(
    session: Session,
    received: ReceivedInstance,
    spool_path: str,
    size_bytes: int,
    now: datetime,
    budget_bytes: int,
) -> tuple[FastRecord, int]:
    """Record ``received`` if it is a new instance of a known series; returns what happened and, for
    :attr:`FastRecord.OVER_BUDGET`, the decoded total it would have reached.

    The series changes as :func:`qcgate.store.repository.record_instance` changes it: one instance
    more, a new revision, received again.
    """
    series_id = session.execute(_SERIES_ID, {"series_uid": received.series_instance_uid}).scalar()
    if series_id is None:
        return FastRecord.NOT_NEW, 0
    if session.execute(_KNOWN, {"sop_uid": received.sop_instance_uid}).scalar() is not None:
        return FastRecord.NOT_NEW, 0
    if received.decoded_bytes:
        held = session.execute(_DECODED, {"series_id": series_id}).scalar_one()
        total = int(held) + received.decoded_bytes
        if total > budget_bytes:
            return FastRecord.OVER_BUDGET, total
    session.execute(
        _INSERT,
        {
            "sop_instance_uid": received.sop_instance_uid,
            "series_id": series_id,
            "sop_class_uid": received.sop_class_uid,
            "transfer_syntax_uid": received.transfer_syntax_uid,
            "spool_path": spool_path,
            "size_bytes": size_bytes,
            "decoded_bytes": received.decoded_bytes,
            "received_at": now,
        },
    )
    session.execute(_CHANGED, {"series_id": series_id, "now": now})
    return FastRecord.RECORDED, 0
