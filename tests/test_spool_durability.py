"""Nothing acknowledged is lost (issue 12 item 5), in process against a real SQLite file:

* the commit before the C-STORE response is durable (synchronous=FULL) and comes after the file's
  and its directory's fsyncs;
* at start the spool is reconciled with the database: files whose rows are gone are recorded again
  and their series scored, unfinished writes are removed;
* a SOP Instance UID sent again under another series is re-filed there, never left an orphan.
"""

from __future__ import annotations

import os
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid
from sqlalchemy import Engine, delete, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.outcomes import SeriesStatus
from qcgate.core.settings import Settings
from qcgate.receiver import reconcile
from qcgate.receiver.ingest import InstanceRecorder, ingest_instance
from qcgate.receiver.reconcile import reconcile_spool
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import ReceivedInstance, series_by_uid
from qcgate.store.tables import Instance, Series
from qcgate.synthetic.dicom_series import mr_series_datasets

MR = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", min_free_disk_mb=0)


@pytest.fixture
def engine(settings: Settings) -> Engine:
    settings.data_dir.mkdir(parents=True)
    upgrade_database(settings.effective_database_url)
    return create_database_engine(settings.effective_database_url)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def encoded_series(count: int, series_uid: str | None = None, study_uid: str | None = None) -> list[bytes]:
    volume = np.random.default_rng(0).integers(0, 1000, (count, 16, 16)).astype(np.float32)
    datasets = mr_series_datasets(
        volume, series_description="t1", series_instance_uid=series_uid, study_instance_uid=study_uid
    )
    return [part10(dataset) for dataset in datasets]


def part10(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ingest(encoded: bytes, settings: Settings, sessions: sessionmaker[Session]) -> str:
    header = dcmread(BytesIO(encoded), stop_before_pixels=True)
    received = ingest_instance(
        encoded,
        MR,
        str(header.SOPInstanceUID),
        "MR1",
        settings,
        InstanceRecorder(sessions, settings.spool_dir),
    )
    return received.series_instance_uid


def test_every_commit_is_full_sync(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_the_row_is_committed_after_the_file_and_its_directory_are_fsynced(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync = os.fsync

    def recorded_fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    event.listen(engine, "commit", lambda _connection: events.append("commit"))
    ingest(encoded_series(1)[0], settings, sessions)
    assert events.count("commit") == 1
    assert events.index("commit") >= 2, "file and directory fsynced first"
    assert events[-1] == "commit", "nothing is written after the row that allows the acknowledgement"


def test_rows_lost_after_acknowledgement_come_back_at_start(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    series_uid = [ingest(encoded, settings, sessions) for encoded in encoded_series(3)][0]
    with sessions.begin() as session:
        doomed = list(session.scalars(select(Instance.sop_instance_uid).limit(2)))
        session.execute(delete(Instance).where(Instance.sop_instance_uid.in_(doomed)))
    done = reconcile_spool(settings, sessions)
    assert (done.recorded, done.unreadable) == (2, 0)
    with sessions() as session:
        assert set(doomed) <= set(session.scalars(select(Instance.sop_instance_uid)))
        series = series_by_uid(session, series_uid)
        assert series is not None
        assert series.status == SeriesStatus.RECEIVING, "it will be queued and scored again"
    assert reconcile_spool(settings, sessions).recorded == 0, "a second start finds nothing to do"


def test_unfinished_writes_are_removed_once_old(settings: Settings, sessions: sessionmaker[Session]) -> None:
    ingest(encoded_series(1)[0], settings, sessions)
    (series_dir,) = settings.spool_dir.glob("*/*")
    old, fresh = series_dir / ".incoming-old.part", series_dir / ".incoming-fresh.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert reconcile_spool(settings, sessions).partials_removed == 1
    assert not old.exists()
    assert fresh.exists(), "another receiver may still be writing it"


def test_a_series_another_receiver_records_meanwhile_does_not_stop_the_start(
    settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted receiver re-records spooled files while another receiver, sharing the spool, records
    the same new series (a sender retrying a store the database had refused): the loser of that
    unique-key race reads again and updates, instead of exiting (a chaos run caught it exiting)."""
    series_uid = [ingest(encoded, settings, sessions) for encoded in encoded_series(2)][0]
    with sessions.begin() as session:
        session.execute(delete(Instance))
        session.execute(delete(Series))
    real_record = reconcile.record_instance
    raced: list[str] = []

    def racing(session: Session, received: ReceivedInstance, *args: object) -> str | None:
        if not raced:  # the other receiver commits the same instance first ...
            with sessions.begin() as other:
                real_record(other, received, *args)  # type: ignore[arg-type]
            raced.append(received.sop_instance_uid)
            # ... so this receiver's insert of the series meets the unique key, as PostgreSQL says it
            raise IntegrityError("INSERT INTO series", {}, Exception("duplicate key value"))
        return real_record(session, received, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile, "record_instance", racing)
    done = reconcile_spool(settings, sessions)
    assert raced
    assert (done.recorded, done.unreadable) == (2, 0)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Series)) == 1
        assert session.scalar(select(func.count()).select_from(Instance)) == 2
        series = series_by_uid(session, series_uid)
        assert series is not None
        assert series.instance_count == 2


def test_an_instance_sent_again_under_another_series_is_refiled_there(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Issue 12: the new file was orphaned and the new series had 0 instances."""
    study = generate_uid()
    first = encoded_series(2, series_uid=generate_uid(), study_uid=study)
    old_series = [ingest(encoded, settings, sessions) for encoded in first][0]
    again = dcmread(BytesIO(first[1]))
    moved_sop, new_series = str(again.SOPInstanceUID), generate_uid()
    again.SeriesInstanceUID = new_series
    ingest(part10(again), settings, sessions)
    with sessions() as session:
        left, joined = series_by_uid(session, old_series), series_by_uid(session, new_series)
        assert left is not None
        assert joined is not None
        assert (left.instance_count, joined.instance_count) == (1, 1)
        assert left.status == SeriesStatus.RECEIVING, "the series it left is scored again without it"
        instance = session.scalar(select(Instance).where(Instance.sop_instance_uid == moved_sop))
        assert instance is not None
        assert instance.series_id == joined.id
        assert (settings.spool_dir / instance.spool_path).is_file()
        assert session.scalar(select(Series.id).where(Series.instance_count < 0)) is None
    files = sorted(settings.spool_dir.rglob("*.dcm"))
    assert len(files) == 2, "the old copy is gone, no orphan"


def test_one_group_commit_mixes_new_series_known_series_and_resends(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """One transaction holding a new series (the ORM path), new instances of it (plain SQL) and a
    resend (the ORM path again) counts every instance once and a revision per change."""
    from qcgate.receiver.ingest import _Record
    from qcgate.receiver.validation import validate_instance

    first, second = encoded_series(3), encoded_series(2)
    received = [validate_instance(encoded, settings) for encoded in [*first, *second, first[0]]]
    recorder = InstanceRecorder(sessions, settings.spool_dir)
    group = [_Record(item, f"p/{n}", 10, "MR1", 1 << 40) for n, item in enumerate(received)]
    recorder._write(group)
    assert [pending.error for pending in group] == [None] * len(group)
    with sessions() as session:
        counts = {
            uid: (count, revision)
            for uid, count, revision in session.execute(
                select(Series.series_instance_uid, Series.instance_count, Series.revision)
            )
        }
        paths = dict(session.execute(select(Instance.sop_instance_uid, Instance.spool_path)).all())
    assert counts == {received[0].series_instance_uid: (3, 4), received[3].series_instance_uid: (2, 2)}
    assert paths[received[0].sop_instance_uid] == "p/5", "the resend's copy is the one recorded"
    assert len(paths) == 5
