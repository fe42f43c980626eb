"""Retention: pixels and results age separately, so the spool never fills and trends keep their history.

* **Pixels** of a finished series (done, failed, not assessable) with no delivery still to do are
  pruned ``retention_pixels_days`` after its last instance, sooner when the spool's disk has less
  free than ``spool_free_target_mb`` (oldest first), and ``retention_dead_delivery_days`` after a
  delivery went dead (its dead letter then says the pixels are gone). The series keeps its rows,
  assessments and SRs, and ``pixels_pruned_at`` says when the pixels went.
* **Results** (every row of the series and its SR files) are deleted ``retention_results_days``
  after its last instance.
* A series still receiving, queued, being scored or with a pending or sending delivery is never
  touched; unfinished writes are the reconciler's (:mod:`qcgate.receiver.reconcile`).

:func:`apply_retention` with ``dry_run`` only reports what it would do (``qcgate prune --dry-run``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.delivery_states import DeliveryState
from qcgate.core.outcomes import SeriesStatus
from qcgate.core.settings import Settings
from qcgate.store.tables import (
    Assessment,
    DeliveryJob,
    Instance,
    PairJudgement,
    Report,
    Review,
    Series,
    Study,
)

log = logging.getLogger(__name__)

FINISHED = (SeriesStatus.DONE, SeriesStatus.FAILED, SeriesStatus.NOT_ASSESSABLE)
OPEN_DELIVERY = (DeliveryState.PENDING, DeliveryState.SENDING)
MB = 1024 * 1024


@dataclass
class Retention:
    """What one pass pruned (or, in a dry run, would prune): series ids with the reason, bytes."""

    dry_run: bool
    pixels: dict[int, str] = field(default_factory=dict)
    pixel_bytes: int = 0
    results: list[int] = field(default_factory=list)


def apply_retention(
    settings: Settings, sessions: sessionmaker[Session], now: datetime, *, dry_run: bool = False
) -> Retention:
    """One retention pass; safe to run from several processes (each deletion re-checks its row)."""
    done = Retention(dry_run)
    with sessions.begin() as session:
        _plan_pixels(session, settings, now, done)
        done.results = _expired_results(session, settings, now)
        if not dry_run:
            for series_id, reason in done.pixels.items():
                _prune_pixels(session, settings, series_id, reason, now)
            for series_id in done.results:
                _delete_results(session, settings, series_id)
    if done.pixels or done.results:
        log.info(
            "retention%s: pixels of %d series (%.1f MB), results of %d series",
            " (dry run)" if dry_run else "",
            len(done.pixels),
            done.pixel_bytes / MB,
            len(done.results),
        )
    return done


def spool_free_bytes(settings: Settings) -> int:
    """Free bytes on the spool's file system (its parent before the spool exists)."""
    path = settings.spool_dir if settings.spool_dir.exists() else settings.data_dir
    return shutil.disk_usage(path).free


def _open_work() -> ColumnElement[bool]:
    """The series still has a delivery to do (it may need the pixels or the SR)."""
    return exists().where(DeliveryJob.series_id == Series.id, DeliveryJob.state.in_(OPEN_DELIVERY))


def _plan_pixels(session: Session, settings: Settings, now: datetime, done: Retention) -> None:
    sizes = (
        select(Series.id, Series.last_received_at, func.coalesce(func.sum(Instance.size_bytes), 0))
        .join(Instance, Instance.series_id == Series.id, isouter=True)
        .where(Series.status.in_(FINISHED), Series.pixels_pruned_at.is_(None), ~_open_work())
        .group_by(Series.id, Series.last_received_at)
        .order_by(Series.last_received_at, Series.id)
    )
    candidates = list(session.execute(sizes))
    aged = now - timedelta(days=settings.retention_pixels_days)
    dead_since = now - timedelta(days=settings.retention_dead_delivery_days)
    dead = set(
        session.scalars(
            select(DeliveryJob.series_id).where(
                DeliveryJob.state == DeliveryState.DEAD,
                func.coalesce(DeliveryJob.last_attempt_at, DeliveryJob.created_at) <= dead_since,
            )
        )
    )
    short = settings.spool_free_target_mb * MB - spool_free_bytes(settings)
    for series_id, last_received_at, size in candidates:
        if last_received_at <= aged:
            reason = f"older than {settings.retention_pixels_days:g} days"
        elif series_id in dead:
            reason = f"a delivery dead for {settings.retention_dead_delivery_days:g} days"
        elif short > 0:
            reason = f"less than {settings.spool_free_target_mb} MB free in the spool"
        else:
            continue
        done.pixels[series_id] = reason
        done.pixel_bytes += int(size)
        short -= int(size)


def _prune_pixels(session: Session, settings: Settings, series_id: int, reason: str, now: datetime) -> None:
    series = session.get_one(Series, series_id, with_for_update=True)
    if series.status not in FINISHED or series.pixels_pruned_at is not None:
        return  # it changed since the plan (a late instance, a rescore): next pass decides
    _delete_spooled(session, settings, series_id)
    series.pixels_pruned_at = now
    for job in session.scalars(
        select(DeliveryJob).where(DeliveryJob.series_id == series_id, DeliveryJob.state == DeliveryState.DEAD)
    ):
        job.last_error = f"{job.last_error}; pixels pruned {now:%Y-%m-%d} ({reason})".lstrip("; ")


def _delete_spooled(session: Session, settings: Settings, series_id: int) -> None:
    """Delete the series' spooled files, and its directories once empty, and the page's rendered
    images of it (PNGs of its pixels: they must not outlive the pixels)."""
    for (path,) in session.execute(select(Instance.spool_path).where(Instance.series_id == series_id)):
        (settings.spool_dir / path).unlink(missing_ok=True)
        _remove_empty_parents(settings.spool_dir / path, settings.spool_dir)
    series_uid = session.scalar(select(Series.series_instance_uid).where(Series.id == series_id))
    if series_uid is not None:
        shutil.rmtree(settings.image_cache_dir / series_uid, ignore_errors=True)


def _remove_empty_parents(path: Path, spool: Path) -> None:
    """Remove the series and study directories once empty (never the spool itself)."""
    for directory in (path.parent, path.parent.parent):
        if directory == spool or spool not in directory.parents:
            return
        try:
            directory.rmdir()
        except OSError:  # not empty (another instance or series), or gone
            return


def _expired_results(session: Session, settings: Settings, now: datetime) -> list[int]:
    expired = now - timedelta(days=settings.retention_results_days)
    return list(
        session.scalars(
            select(Series.id)
            .where(Series.status.in_(FINISHED), Series.last_received_at <= expired, ~_open_work())
            .order_by(Series.id)
        )
    )


def _delete_results(session: Session, settings: Settings, series_id: int) -> None:
    """Every row of the series, its SR/KOS files and spooled pixels; its study once empty."""
    series = session.get(Series, series_id)
    if series is None or series.status not in FINISHED:
        return
    for (path,) in session.execute(select(Report.path).where(Report.series_id == series_id)):
        (settings.sr_dir / path).unlink(missing_ok=True)
    if series.pixels_pruned_at is None:
        _delete_spooled(session, settings, series_id)
    study_id = series.study_id
    session.execute(delete(DeliveryJob).where(DeliveryJob.series_id == series_id))
    session.execute(delete(Report).where(Report.series_id == series_id))
    session.execute(delete(Review).where(Review.series_id == series_id))  # before the assessments it names
    session.execute(delete(Assessment).where(Assessment.series_id == series_id))
    judged = or_(PairJudgement.left_series_id == series_id, PairJudgement.right_series_id == series_id)
    session.execute(delete(PairJudgement).where(judged))
    session.execute(delete(Instance).where(Instance.series_id == series_id))
    session.execute(delete(Series).where(Series.id == series_id))
    if session.scalar(select(func.count()).select_from(Series).where(Series.study_id == study_id)) == 0:
        session.execute(delete(Study).where(Study.id == study_id))
