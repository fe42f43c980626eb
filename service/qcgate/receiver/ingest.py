"""One received instance from bytes to acknowledged: validate, spool durably, record.

Kept apart from pynetdicom so the same path serves the SCP, tests and any future STOW-RS endpoint.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.errors import DecodedSizeExceeded, InstanceRejected, RecordFailed
from qcgate.core.settings import Settings
from qcgate.receiver.validation import validate_instance
from qcgate.store.instance_rows import FastRecord, record_new_instance
from qcgate.store.repository import (
    ReceivedInstance,
    instance_recorded,
    record_instance,
    series_decoded_bytes,
)
from qcgate.store.spool import check_free_space, instance_path, write_durably

log = logging.getLogger(__name__)


@dataclass
class _Record:
    """One spooled instance waiting for its row; ``done`` is set once it is committed or refused."""

    received: ReceivedInstance
    spool_path: str
    size: int
    calling_ae: str
    budget_bytes: int
    done: threading.Event = field(default_factory=threading.Event)
    error: InstanceRejected | None = None


class InstanceRecorder:
    """Records spooled instances, with one writer thread per process that commits them in groups.

    Every association thread hands its instance to the writer and waits for the commit, so nothing
    is acknowledged before its row is durable. While one transaction commits (an fsync), the
    instances of the other associations queue up and go into the next transaction together: one
    commit, one fsync, for as many instances as arrived meanwhile (group commit). With a single
    association it is one instance per transaction, as before. Writing from one thread also keeps
    association threads off SQLite's busy handler, whose growing sleeps made four associations no
    faster than one. The per-series decoded budget is checked in the same transaction as the insert,
    so two associations of one series cannot both pass it on a stale sum. It bounds what a series
    grows to by new instances: a resend of a recorded instance has already replaced that instance's
    file when it is checked, so it is recorded whatever it decodes to (a budget it takes the series
    past refuses the next new instance).
    """

    def __init__(self, sessions: sessionmaker[Session], spool_dir: Path, max_group: int = 64) -> None:
        self._sessions = sessions
        self.spool_dir = spool_dir
        self._max_group = max_group
        self._pending: queue.SimpleQueue[_Record] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_forever, name="instance-recorder", daemon=True)
        self._writer.start()

    def record(
        self, received: ReceivedInstance, spool_path: str, size: int, calling_ae: str, budget_bytes: int
    ) -> None:
        """Record the instance durably (the commit fsyncs); returns once committed.

        Raises :class:`DecodedSizeExceeded` when the series would pass ``budget_bytes`` of decoded
        pixels (nothing recorded), :class:`RecordFailed` when the database cannot record it.
        """
        pending = _Record(received, spool_path, size, calling_ae, budget_bytes)
        self._pending.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _write_forever(self) -> None:
        while True:
            group = [self._pending.get()]
            while len(group) < self._max_group:
                try:
                    group.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(group)
            except Exception:  # noqa: BLE001 - the writer must outlive any one group; each waiter is answered
                log.exception("recording %d instance(s) failed unexpectedly", len(group))
                for pending in group:
                    pending.error = pending.error or RecordFailed("the instance could not be recorded")
            finally:
                for pending in group:
                    pending.done.set()

    def _record_one(self, session: Session, pending: _Record, now: datetime) -> str | None:
        """Record one instance in the group's transaction; returns a spool path it no longer uses."""
        received = pending.received
        outcome, total = record_new_instance(
            session, received, pending.spool_path, pending.size, now, pending.budget_bytes
        )
        if outcome is FastRecord.NOT_NEW:  # a new series or a resend: the general path
            if received.decoded_bytes and not instance_recorded(session, received.sop_instance_uid):
                held = series_decoded_bytes(session, received.series_instance_uid, received.sop_instance_uid)
                total = held + received.decoded_bytes
                if total > pending.budget_bytes:
                    outcome = FastRecord.OVER_BUDGET
            if outcome is FastRecord.NOT_NEW:
                old_path = record_instance(
                    session, received, pending.spool_path, pending.size, pending.calling_ae, now
                )
                session.flush()  # the next instance's plain SQL must see these rows
                if old_path is not None:
                    log.info(
                        "instance %s re-filed under series %s",
                        received.sop_instance_uid,
                        received.series_instance_uid,
                    )
                return old_path
        if outcome is FastRecord.RECORDED:
            session.expire_all()  # a series object loaded earlier in this group now holds old counts
        if outcome is FastRecord.OVER_BUDGET:
            pending.error = DecodedSizeExceeded(
                f"the series would decode to {total} bytes, past max_series_decoded_mb"
            )
        return None

    def _write(self, group: list[_Record]) -> None:
        replaced: list[str] = []
        try:
            with self._sessions.begin() as session:
                now = datetime.now(UTC)
                for pending in group:
                    old_path = self._record_one(session, pending, now)
                    if old_path is not None:
                        replaced.append(old_path)
        except SQLAlchemyError as exc:
            log.error("%d instance(s) spooled but not recorded: %s", len(group), type(exc).__name__)
            for pending in group:
                pending.error = RecordFailed("the database could not record the instance; retry later")
            return
        for path in replaced:  # only once the rows that no longer name them are committed
            self.spool_dir.joinpath(path).unlink(missing_ok=True)


def ingest_instance(
    encoded: bytes,
    command_sop_class: str,
    command_sop_instance: str,
    calling_ae: str,
    settings: Settings,
    recorder: InstanceRecorder,
) -> ReceivedInstance:
    """Store one Part 10 instance; returns only once it is fsynced and recorded.

    Raises a :class:`qcgate.core.errors.InstanceRejected` leaf that carries the DICOM status to send.
    """
    check_free_space(settings.spool_dir, settings.min_free_disk_mb)
    received = validate_instance(encoded, settings, command_sop_class, command_sop_instance)
    target = instance_path(
        settings.spool_dir,
        received.study_instance_uid,
        received.series_instance_uid,
        received.sop_instance_uid,
    )
    size = write_durably(target, [encoded])
    budget = settings.max_series_decoded_mb * 1024 * 1024
    try:
        recorder.record(received, str(target.relative_to(settings.spool_dir)), size, calling_ae, budget)
    except DecodedSizeExceeded:
        target.unlink(missing_ok=True)  # a new instance (a resend is never refused): no row names it
        raise
    return received
