"""At start, make the database agree with the spool: nothing acknowledged stays unrecorded.

An instance is acknowledged after its file is fsynced and its row committed (FULL sync). A database
restored from a backup, rows lost to a disk fault, or a crash of an older version between the two
steps can still leave files in the spool that no row names; nothing would ever score them. The
receiver therefore walks the spool before it listens, re-records every such file through the same
validation as a C-STORE, and deletes the temporary files of writes that never finished (older than
an hour, so that another receiver sharing the spool may still be writing its own). Another receiver
may be recording the same series at that moment (a sender retrying a store the database refused):
the loser of that unique-key race reads again instead of stopping (a chaos run caught a restarted
receiver exiting on it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.errors import InstanceRejected
from qcgate.core.settings import Settings
from qcgate.receiver.validation import validate_instance
from qcgate.store.repository import record_instance
from qcgate.store.tables import Instance

log = logging.getLogger(__name__)

PARTIAL_GLOB = ".incoming-*.part"  # what store.spool.write_durably writes before its rename
PARTIAL_MAX_AGE_S = 3600.0
RECONCILED_AE = ""  # the calling AE of a re-recorded instance is not known
RECORD_ATTEMPTS = 3  # a unique-key race with another receiver resolves on the next read


@dataclass(frozen=True)
class Reconciled:
    """What a reconciliation did: files re-recorded, files left alone (invalid), partials deleted."""

    recorded: int
    unreadable: int
    partials_removed: int


def reconcile_spool(settings: Settings, sessions: sessionmaker[Session]) -> Reconciled:
    """Record every spooled instance the database lacks; remove stale partial writes."""
    spool = settings.spool_dir
    if not spool.is_dir():
        return Reconciled(0, 0, 0)
    with sessions() as session:
        known = set(session.scalars(select(Instance.spool_path)))
    recorded = unreadable = 0
    for path in sorted(spool.glob("*/*/*.dcm")):
        relative = str(path.relative_to(spool))
        if relative in known:
            continue
        if _record(path, relative, settings, sessions):
            recorded += 1
        else:
            unreadable += 1
    removed = _remove_stale_partials(spool)
    if recorded or unreadable or removed:
        log.warning(
            "spool reconciled: %d instance(s) on disk were not recorded and are now, %d could not be"
            " read (left in place), %d unfinished write(s) removed",
            recorded,
            unreadable,
            removed,
        )
    return Reconciled(recorded, unreadable, removed)


def _record(path: Path, relative: str, settings: Settings, sessions: sessionmaker[Session]) -> bool:
    try:
        encoded = path.read_bytes()
        received = validate_instance(encoded, settings)
    except (InstanceRejected, OSError) as exc:
        log.error("spooled file %s cannot be re-recorded: %s", relative, exc)
        return False
    for attempt in range(RECORD_ATTEMPTS):
        try:
            with sessions.begin() as session:
                record_instance(session, received, relative, len(encoded), RECONCILED_AE, datetime.now(UTC))
            return True
        except IntegrityError as exc:
            # Another receiver sharing the spool recorded this series or instance between our read
            # and our insert (a restart during a sender's retry does it); read again and update.
            log.info("spooled file %s was being recorded by another receiver (%s); again", relative, exc.orig)
            if attempt == RECORD_ATTEMPTS - 1:
                log.error("spooled file %s could not be re-recorded: %s (left in place)", relative, exc.orig)
    return False


def _remove_stale_partials(spool: Path) -> int:
    removed, cutoff = 0, time.time() - PARTIAL_MAX_AGE_S
    for partial in spool.glob(f"*/*/{PARTIAL_GLOB}"):
        try:
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
