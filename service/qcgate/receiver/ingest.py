"""One received instance from bytes to acknowledged: validate, spool durably, record.

Kept apart from pynetdicom so the same path serves the SCP, tests and any future STOW-RS endpoint.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.errors import DecodedSizeExceeded, RecordFailed
from qcgate.core.settings import Settings
from qcgate.receiver.validation import validate_instance
from qcgate.store.repository import ReceivedInstance, record_instance, series_decoded_bytes
from qcgate.store.spool import check_free_space, instance_path, write_durably

log = logging.getLogger(__name__)


class InstanceRecorder:
    """Records spooled instances, one transaction at a time per process.

    Association threads queue on a Python lock instead of on SQLite's busy handler, whose growing
    sleeps made four associations no faster than one.
    """

    def __init__(self, sessions: sessionmaker[Session], spool_dir: Path) -> None:
        self._sessions = sessions
        self.spool_dir = spool_dir
        self._lock = threading.Lock()

    def check_series_budget(self, received: ReceivedInstance, budget_bytes: int) -> None:
        """Refuse an instance that would take its series past ``budget_bytes`` of decoded pixels.

        Checked before the write; concurrent associations of one series may overshoot by what they
        have in flight (at most max_associations instances).
        """
        if not received.decoded_bytes:
            return
        try:
            with self._sessions() as session:
                held = series_decoded_bytes(session, received.series_instance_uid, received.sop_instance_uid)
        except SQLAlchemyError as exc:
            raise RecordFailed("the database could not be read; retry later") from exc
        total = held + received.decoded_bytes
        if total > budget_bytes:
            raise DecodedSizeExceeded(f"the series would decode to {total} bytes, past max_series_decoded_mb")

    def record(self, received: ReceivedInstance, spool_path: str, size: int, calling_ae: str) -> None:
        """Record the instance (durably: the commit fsyncs); a copy it replaced is deleted after."""
        try:
            with self._lock, self._sessions.begin() as session:
                replaced = record_instance(session, received, spool_path, size, calling_ae, datetime.now(UTC))
        except SQLAlchemyError as exc:
            log.error("instance spooled but not recorded: %s", type(exc).__name__)
            raise RecordFailed("the database could not record the instance; retry later") from exc
        if replaced is not None:
            self.spool_dir.joinpath(replaced).unlink(missing_ok=True)
            log.info(
                "instance %s re-filed under series %s",
                received.sop_instance_uid,
                received.series_instance_uid,
            )


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
    recorder.check_series_budget(received, settings.max_series_decoded_mb * 1024 * 1024)
    target = instance_path(
        settings.spool_dir,
        received.study_instance_uid,
        received.series_instance_uid,
        received.sop_instance_uid,
    )
    size = write_durably(target, [encoded])
    recorder.record(received, str(target.relative_to(settings.spool_dir)), size, calling_ae)
    return received
