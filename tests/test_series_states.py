"""The state machines of the store on SQLite, one transition at a time, at fixed times (no sleeps).

A series: receiving --(quiet period)--> queued --(claim)--> processing --> done | failed | not_assessable,
back to receiving on any new instance, re-queued when its task was lost, re-queued by a rescore.
A delivery job: pending --(claim: attempt, lease)--> sending --> delivered, or pending again with a
backoff, or dead after the last attempt; a lapsed lease makes it due again; a person revives the dead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.delivery_states import (
    DICOM_ACTIONS,
    REPORT_OF_ACTION,
    DeliveryAction,
    DeliveryState,
    ReportKind,
)
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.delivery_repository import (
    bury,
    claim_job,
    latest_report,
    list_jobs,
    mark_due_enqueued,
    record_delivered,
    record_failed,
    report_by_uid,
    reports_of_assessment,
    reports_of_series,
    retry_dead,
)
from qcgate.store.repository import (
    ReceivedInstance,
    claim_series,
    current_assessment,
    instance_paths,
    list_series,
    queue_depth,
    queue_quiet_series,
    record_instance,
    renew_lease,
    request_rescore,
    requeue_stuck_series,
    series_by_uid,
    store_assessment,
    study_by_uid,
)
from qcgate.store.tables import Assessment, DeliveryJob, Report, Series

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
QUIET = timedelta(seconds=10)
STUCK = timedelta(seconds=120)
LEASE = timedelta(seconds=900)
STUDY = "1.2.826.0.1.3680043.10.1100.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def uid(series: int, instance: int | None = None) -> str:
    base = f"1.2.826.0.1.3680043.10.1100.2.{series}"
    return base if instance is None else f"{base}.{instance}"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the newest revision, migrated once; each test works on a copy."""
    path = tmp_path_factory.mktemp("migrated") / "qcgate.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def engine(migrated: Path, tmp_path: Path) -> Iterator[Engine]:
    path = shutil.copy(migrated, tmp_path / "qcgate.db")
    engine = create_database_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def receive(
    sessions: sessionmaker[Session],
    series: int,
    instance: int,
    when: datetime,
    modality: str = "MR",
    station_name: str = "MRC40123",
) -> None:
    received = ReceivedInstance(
        study_instance_uid=STUDY,
        series_instance_uid=uid(series),
        sop_instance_uid=uid(series, instance),
        sop_class_uid=MR_IMAGE_STORAGE,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        modality=modality,
        station_name=station_name,
        series_description="t1_mprage_sag",
        scored=True,
    )
    with sessions.begin() as session:
        record_instance(session, received, f"{STUDY}/{uid(series)}/{instance}.dcm", 1000, "MR1", when)


def series(sessions: sessionmaker[Session], number: int) -> Series:
    with sessions() as session:
        found = series_by_uid(session, uid(number))
        assert found is not None
        return found


def queue(sessions: sessionmaker[Session], quiet_since: datetime, now: datetime) -> list[int]:
    with sessions.begin() as session:
        return queue_quiet_series(session, quiet_since, now)


def claim(sessions: sessionmaker[Session], number: int, now: datetime) -> Series | None:
    with sessions.begin() as session:
        return claim_series(session, series(sessions, number).id, now)


def requeue(sessions: sessionmaker[Session], now: datetime, max_attempts: int = 3) -> list[int]:
    with sessions.begin() as session:
        return requeue_stuck_series(session, now - STUCK, now, max_attempts)


def assess(
    sessions: sessionmaker[Session],
    number: int,
    revision: int,
    when: datetime,
    flag: Flag | None = Flag.PASS,
    outcome: SeriesStatus = SeriesStatus.DONE,
) -> int:
    document = {"flag": flag.value if flag else None, "reasons": [f"revision {revision}"], "instances": 2}
    held = series(sessions, number)
    assert held.lease_token is not None, "only the lease's holder stores a result"
    with sessions.begin() as session:
        stored = store_assessment(session, held.id, revision, outcome, document, when, when, held.lease_token)
        assert stored is not None
        session.flush()
        return stored.id


def ids(sessions: sessionmaker[Session], *numbers: int) -> list[int]:
    return [series(sessions, number).id for number in numbers]


# series: receiving


def test_instances_make_a_receiving_series_and_a_repeat_updates_in_place(
    sessions: sessionmaker[Session],
) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 1, 2, at(1))
    receive(sessions, 1, 2, at(3))  # the same SOP Instance UID again
    received = series(sessions, 1)
    assert received.status == SeriesStatus.RECEIVING
    assert received.instance_count == 2
    assert received.revision == 3, "every instance, a repeat too, bumps the revision"
    assert (received.first_received_at, received.last_received_at) == (at(0), at(3))
    assert (received.calling_ae, received.modality, received.station_name) == ("MR1", "MR", "MRC40123")
    with sessions() as session:
        assert [path for path, _ in instance_paths(session, received.id)] == [
            f"{STUDY}/{uid(1)}/1.dcm",
            f"{STUDY}/{uid(1)}/2.dcm",
        ]
        study = study_by_uid(session, STUDY)
        assert study is not None
        assert [s.series_instance_uid for s in study.series] == [uid(1)]


def test_only_quiet_series_are_queued_once(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 2, 1, at(0))
    receive(sessions, 2, 2, at(8))  # still arriving
    now = at(12)
    assert queue(sessions, now - QUIET, now) == ids(sessions, 1)
    queued, receiving = series(sessions, 1), series(sessions, 2)
    assert (queued.status, queued.queued_at, queued.enqueue_count) == (SeriesStatus.QUEUED, now, 1)
    assert (receiving.status, receiving.queued_at) == (SeriesStatus.RECEIVING, None)
    assert queue(sessions, now - QUIET, now) == [], "a queued series is not queued again"
    later = at(18)
    assert queue(sessions, later - QUIET, later) == ids(sessions, 2)
    assert series(sessions, 1).enqueue_count == 1


def test_the_quiet_period_boundary_is_inclusive(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    assert queue(sessions, at(0) - timedelta(microseconds=1), at(10)) == []
    assert queue(sessions, at(0), at(10)) == ids(sessions, 1)


# series: claimed and assessed


def test_only_a_queued_series_is_claimed_and_only_once(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    assert claim(sessions, 1, at(5)) is None, "a receiving series is not claimed"
    queue(sessions, at(10), at(10))
    claimed = claim(sessions, 1, at(11))
    assert claimed is not None
    assert (claimed.status, claimed.claimed_at) == (SeriesStatus.PROCESSING, at(11))
    assert claim(sessions, 1, at(12)) is None, "a second delivery of the task finds it taken"
    assert series(sessions, 1).claimed_at == at(11)
    with sessions.begin() as session:
        assert claim_series(session, 999, at(12)) is None


def test_an_assessment_of_the_current_revision_finishes_the_series(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 1, 2, at(1))
    queue(sessions, at(11), at(11))
    claimed = claim(sessions, 1, at(12))
    assert claimed is not None
    first = assess(sessions, 1, claimed.revision, at(15), Flag.WARN)
    done = series(sessions, 1)
    assert (done.status, done.flag, done.status_reason) == (SeriesStatus.DONE, Flag.WARN, "revision 2")
    with sessions() as session:
        current = current_assessment(session, done.id)
        assert current is not None
        assert (current.id, current.revision, current.outcome, current.flag) == (
            first,
            2,
            SeriesStatus.DONE,
            Flag.WARN,
        )
        assert current.instance_count == 2


@pytest.mark.parametrize(
    ("outcome", "flag"), [(SeriesStatus.NOT_ASSESSABLE, None), (SeriesStatus.FAILED, None)]
)
def test_other_outcomes_end_the_series_without_a_flag(
    sessions: sessionmaker[Session], outcome: SeriesStatus, flag: Flag | None
) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    assess(sessions, 1, 1, at(12), flag, outcome)
    assert (series(sessions, 1).status, series(sessions, 1).flag) == (outcome, None)
    assert queue_depth_now(sessions) == 0


def test_a_late_instance_keeps_the_stale_assessment_from_finishing_the_series(
    sessions: sessionmaker[Session],
) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    claimed = claim(sessions, 1, at(11))
    assert claimed is not None
    receive(sessions, 1, 2, at(12))  # arrives while the worker scores revision 1
    stale = assess(sessions, 1, claimed.revision, at(13), Flag.FAIL)
    late = series(sessions, 1)
    assert (late.status, late.flag, late.revision) == (SeriesStatus.RECEIVING, None, 2)
    with sessions() as session:
        kept = session.get(Assessment, stale)
        assert kept is not None, "the stale assessment is kept"
        assert kept.revision == 1

    queue(sessions, at(22), at(22))
    again = claim(sessions, 1, at(23))
    assert again is not None
    newer = assess(sessions, 1, again.revision, at(24), Flag.PASS)
    with sessions() as session:
        current = current_assessment(session, late.id)
        assert current is not None
        assert (current.id, current.revision) == (newer, 2), "the newer assessment supersedes the old one"
        count = len(session.scalars(select(Assessment).where(Assessment.series_id == late.id)).all())
        assert count == 2, "both are kept"
    assert (series(sessions, 1).status, series(sessions, 1).flag) == (SeriesStatus.DONE, Flag.PASS)


def test_a_new_instance_sends_a_finished_series_back_to_receiving(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    assess(sessions, 1, 1, at(12))
    receive(sessions, 1, 2, at(100))
    back = series(sessions, 1)
    assert (back.status, back.revision, back.instance_count) == (SeriesStatus.RECEIVING, 2, 2)
    assert back.flag == Flag.PASS, "the flag of the current assessment stays until a newer one"


def test_a_rescore_queues_a_finished_series_and_its_new_assessment_supersedes(
    sessions: sessionmaker[Session],
) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    first = assess(sessions, 1, 1, at(12), Flag.PASS)
    with sessions.begin() as session:
        found = series_by_uid(session, uid(1))
        assert found is not None
        request_rescore(session, found, at(50))
    rescored = series(sessions, 1)
    assert (rescored.status, rescored.queued_at, rescored.enqueue_count) == (SeriesStatus.QUEUED, at(50), 2)
    assert rescored.revision == 2, "a rescore is a new revision: one more result is asked for"
    assert claim(sessions, 1, at(51)) is not None
    second = assess(sessions, 1, 2, at(52), Flag.WARN)
    with sessions() as session:
        current = current_assessment(session, rescored.id)
        assert current is not None
        assert current.id == second > first
    assert series(sessions, 1).flag == Flag.WARN


# series: lost tasks


def test_requeue_takes_series_queued_too_long(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    assert requeue(sessions, at(10) + STUCK - timedelta(seconds=1)) == []
    now = at(10) + STUCK
    assert requeue(sessions, now) == ids(sessions, 1)
    requeued = series(sessions, 1)
    assert (requeued.status, requeued.queued_at, requeued.enqueue_count) == (SeriesStatus.QUEUED, now, 2)
    assert requeue(sessions, now + timedelta(seconds=1)) == [], "the clock starts again"


def test_processing_is_requeued_only_when_its_lease_lapses(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 2, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None  # a lease of 30 s, never renewed: the worker died
    assert claim(sessions, 2, at(100)) is not None  # waited in the queue for a worker to start
    assert requeue(sessions, at(40)) == [], "the lease runs to 11 + 30 s"
    assert requeue(sessions, at(41)) == ids(sessions, 1)
    assert series(sessions, 2).status == SeriesStatus.PROCESSING
    requeued = series(sessions, 1)
    assert (requeued.status, requeued.enqueue_count, requeued.lease_token) == (SeriesStatus.QUEUED, 2, None)
    assert requeue(sessions, at(130)) == ids(sessions, 2)


def test_a_slow_worker_that_renews_its_lease_keeps_its_series_and_scores_it_once(
    sessions: sessionmaker[Session],
) -> None:
    """Issue 12: scoring that outlasted requeue_after_s was re-queued, scored again and again."""
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    held = claim(sessions, 1, at(11))
    assert held is not None
    assert held.lease_token is not None
    for second in range(20, 1000, 10):  # renewed every third of the lease, for far past requeue_after_s
        with sessions.begin() as session:
            assert renew_lease(session, held.id, held.lease_token, at(second) + timedelta(seconds=30))
        assert requeue(sessions, at(second)) == []
    assess(sessions, 1, held.revision, at(1000))
    done = series(sessions, 1)
    assert (done.status, done.lease_token, done.scoring_attempts) == (SeriesStatus.DONE, None, 1)
    assert requeue(sessions, at(10_000)) == []
    with sessions() as session:
        assert len(session.scalars(select(Assessment).where(Assessment.series_id == done.id)).all()) == 1


def test_a_worker_that_lost_its_lease_cannot_store_a_second_result(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    first = claim(sessions, 1, at(11))
    assert first is not None
    assert first.lease_token is not None
    assert requeue(sessions, at(60)) == ids(sessions, 1)  # first's lease lapsed (it hung)
    second = claim(sessions, 1, at(61))
    assert second is not None
    assert second.lease_token not in (None, first.lease_token)
    with sessions.begin() as session:
        assert not renew_lease(session, first.id, first.lease_token, at(70))
        late = store_assessment(
            session,
            first.id,
            first.revision,
            SeriesStatus.DONE,
            {"flag": "pass"},
            at(11),
            at(80),
            first.lease_token,
        )
        assert late is None, "the late result of the lapsed attempt is refused"
    assess(sessions, 1, second.revision, at(90), Flag.WARN)
    with sessions() as session:
        stored = session.scalars(select(Assessment).where(Assessment.series_id == first.id)).all()
        assert [(a.revision, a.flag) for a in stored] == [(1, Flag.WARN)]


def test_a_revision_that_kills_its_worker_k_times_ends_failed_and_others_keep_flowing(
    sessions: sessionmaker[Session],
) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 2, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    assert requeue(sessions, at(50), max_attempts=2) == ids(sessions, 1), "attempt 1 lapsed: again"
    assert claim(sessions, 1, at(51)) is not None
    assert series(sessions, 1).scoring_attempts == 2
    assert requeue(sessions, at(90), max_attempts=2) == [], "attempt 2 lapsed: no third"
    failed = series(sessions, 1)
    assert (failed.status, failed.flag, failed.lease_token) == (SeriesStatus.FAILED, None, None)
    assert (
        failed.status_reason
        == "scoring did not finish in 2 attempts (the worker crashed or timed out each time)"
    )
    now = 90
    assert claim(sessions, 2, at(now + 41)) is not None, "the other series still flows"
    receive(sessions, 1, 2, at(now + 50))  # a late instance is a new revision with attempts of its own
    assert (series(sessions, 1).status, series(sessions, 1).scoring_attempts) == (SeriesStatus.RECEIVING, 0)


def test_a_processing_series_without_a_claim_time_counts_from_its_queueing(
    sessions: sessionmaker[Session],
) -> None:
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    with sessions.begin() as session:  # as rows claimed before claimed_at existed
        found = series_by_uid(session, uid(1))
        assert found is not None
        found.status, found.claimed_at = SeriesStatus.PROCESSING, None
    assert requeue(sessions, at(10) + STUCK) == ids(sessions, 1)


def test_requeue_leaves_receiving_and_finished_series_alone(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 2, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 2, at(11)) is not None
    assess(sessions, 2, 1, at(12))
    receive(sessions, 3, 1, at(0))
    assert requeue(sessions, at(10_000)) == ids(sessions, 1)


# series: listing and queue depth


def queue_depth_now(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return queue_depth(session)


def test_queue_depth_counts_queued_and_processing(sessions: sessionmaker[Session]) -> None:
    assert queue_depth_now(sessions) == 0
    for number in (1, 2, 3, 4):
        receive(sessions, number, 1, at(0))
    receive(sessions, 5, 1, at(100))
    queue(sessions, at(10), at(10))
    assert queue_depth_now(sessions) == 4
    assert claim(sessions, 1, at(11)) is not None
    assert queue_depth_now(sessions) == 4, "processing is in flight too"
    assess(sessions, 1, 1, at(12))
    assert queue_depth_now(sessions) == 3


def list_uids(sessions: sessionmaker[Session], **filters: Any) -> list[str]:
    with sessions() as session:
        return [s.series_instance_uid for s in list_series(session, **filters)]


def test_list_series_is_newest_first_and_keyset_paged(sessions: sessionmaker[Session]) -> None:
    for number in range(1, 6):
        receive(sessions, number, 1, at(number))
    everything = list_uids(sessions)
    assert everything == [uid(n) for n in (5, 4, 3, 2, 1)]
    pages, after = [], None
    while True:
        with sessions() as session:
            page = list_series(session, after_id=after, limit=2)
        pages.append([s.series_instance_uid for s in page])
        if len(page) < 2:
            break
        after = page[-1].id
    assert pages == [[uid(5), uid(4)], [uid(3), uid(2)], [uid(1)]]
    receive(sessions, 6, 1, at(10))  # a new series does not shift a page already being read
    with sessions() as session:
        assert [
            s.series_instance_uid for s in list_series(session, after_id=ids(sessions, 4)[0], limit=2)
        ] == [
            uid(3),
            uid(2),
        ]


def test_list_series_filters(sessions: sessionmaker[Session]) -> None:
    receive(sessions, 1, 1, at(0))
    receive(sessions, 2, 1, at(5), modality="CT", station_name="CT1")
    receive(sessions, 3, 1, at(50))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    assess(sessions, 1, 1, at(12), Flag.FAIL)
    assert list_uids(sessions, status=SeriesStatus.DONE) == [uid(1)]
    assert list_uids(sessions, status=SeriesStatus.QUEUED) == [uid(2)]
    assert list_uids(sessions, flag=Flag.FAIL) == [uid(1)]
    assert list_uids(sessions, flag=Flag.PASS) == []
    assert list_uids(sessions, modality="CT") == [uid(2)]
    assert list_uids(sessions, station="MRC40123") == [uid(3), uid(1)]
    assert list_uids(sessions, since=at(5)) == [uid(3), uid(2)], "since is inclusive"
    assert list_uids(sessions, until=at(5)) == [uid(1)], "until is exclusive"
    assert list_uids(sessions, since=at(1), until=at(51), modality="MR") == [uid(3)]


# delivery jobs


@pytest.fixture
def assessed(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(series id, assessment id) of one finished series."""
    receive(sessions, 1, 1, at(0))
    queue(sessions, at(10), at(10))
    assert claim(sessions, 1, at(11)) is not None
    return series(sessions, 1).id, assess(sessions, 1, 1, at(12))


def add_job(
    sessions: sessionmaker[Session],
    assessed: tuple[int, int],
    target: str = "ARCHIVE",
    action: DeliveryAction = DeliveryAction.SEND_SR,
    **fields: Any,
) -> int:
    series_id, assessment_id = assessed
    job = DeliveryJob(
        series_id=series_id,
        assessment_id=assessment_id,
        action=action,
        target=target,
        rule="archive-all",
        state=DeliveryState.PENDING,
        attempts=0,
        manual_retries=0,
        next_attempt_at=at(20),
        last_error="",
        created_at=at(12),
    )
    for name, value in fields.items():
        setattr(job, name, value)
    with sessions.begin() as session:
        session.add(job)
        session.flush()
        return job.id


def job(sessions: sessionmaker[Session], job_id: int) -> DeliveryJob:
    with sessions() as session:
        return session.get_one(DeliveryJob, job_id)


def claim_at(sessions: sessionmaker[Session], job_id: int, now: datetime) -> DeliveryJob | None:
    with sessions.begin() as session:
        return claim_job(session, job_id, now, now + LEASE)


def fail(sessions: sessionmaker[Session], job_id: int, attempt: int, retry_at: datetime | None) -> bool:
    with sessions.begin() as session:
        return record_failed(session, job_id, attempt, f"attempt {attempt} refused", 0.5, retry_at)


def deliver(sessions: sessionmaker[Session], job_id: int, now: datetime) -> bool:
    with sessions.begin() as session:
        return record_delivered(session, job_id, now, 0.25)


def test_a_job_is_claimed_only_when_due_and_only_once(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed)
    assert claim_at(sessions, job_id, at(19)) is None, "not due yet"
    claimed = claim_at(sessions, job_id, at(20))
    assert claimed is not None
    assert (claimed.state, claimed.attempts) == (DeliveryState.SENDING, 1)
    assert (claimed.last_attempt_at, claimed.next_attempt_at) == (at(20), at(20) + LEASE), "the lease"
    assert claim_at(sessions, job_id, at(21)) is None, "another worker holds the lease"
    assert claim_at(sessions, 999, at(21)) is None


def test_a_failed_attempt_backs_off_and_the_last_one_is_dead(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed)
    assert claim_at(sessions, job_id, at(20)) is not None
    assert fail(sessions, job_id, 1, at(30))
    pending = job(sessions, job_id)
    assert (pending.state, pending.next_attempt_at, pending.attempts) == (DeliveryState.PENDING, at(30), 1)
    assert (pending.last_error, pending.last_duration_s) == ("attempt 1 refused", 0.5)
    assert claim_at(sessions, job_id, at(29)) is None, "backing off"
    assert claim_at(sessions, job_id, at(30)) is not None
    assert fail(sessions, job_id, 2, None)
    dead = job(sessions, job_id)
    assert (dead.state, dead.attempts, dead.last_error) == (DeliveryState.DEAD, 2, "attempt 2 refused")
    assert dead.next_attempt_at == at(30) + LEASE, "a dead job keeps its last time"
    assert claim_at(sessions, job_id, at(10_000)) is None, "only a person revives a dead job"


def test_only_the_holder_of_an_attempt_records_it(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed)
    assert claim_at(sessions, job_id, at(20)) is not None
    assert not fail(sessions, job_id, 2, at(30)), "attempt 2 is not running"
    assert job(sessions, job_id).state == DeliveryState.SENDING
    assert fail(sessions, job_id, 1, at(30))
    assert not fail(sessions, job_id, 1, at(40)), "recorded already: the job is no longer sending"
    assert job(sessions, job_id).next_attempt_at == at(30)


def test_a_lapsed_lease_makes_the_job_due_and_the_lost_attempt_counts(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed)
    assert claim_at(sessions, job_id, at(20)) is not None  # its worker is then killed
    assert claim_at(sessions, job_id, at(20) + LEASE - timedelta(seconds=1)) is None
    again = claim_at(sessions, job_id, at(20) + LEASE)
    assert again is not None
    assert (again.state, again.attempts) == (DeliveryState.SENDING, 2)
    assert again.last_error == "previous attempt lost (worker gone or task lost)"
    assert not fail(sessions, job_id, 1, at(2000)), "the first worker, back late, no longer holds it"
    assert deliver(sessions, job_id, at(1000))


def test_delivered_is_the_truth_whatever_happened_meanwhile(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed)
    assert claim_at(sessions, job_id, at(20)) is not None
    assert fail(sessions, job_id, 1, None)  # recorded dead, but the peer did get it
    assert deliver(sessions, job_id, at(25))
    delivered = job(sessions, job_id)
    assert (delivered.state, delivered.delivered_at, delivered.last_duration_s) == (
        DeliveryState.DELIVERED,
        at(25),
        0.25,
    )
    assert not deliver(sessions, job_id, at(26)), "delivered once"
    assert job(sessions, job_id).delivered_at == at(25)
    assert claim_at(sessions, job_id, at(10_000)) is None


def test_bury_and_a_manual_retry_starts_a_fresh_round(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    job_id = add_job(sessions, assessed, attempts=3)
    with sessions.begin() as session:
        bury(session, session.get_one(DeliveryJob, job_id), "the lease ran out on the last attempt")
    assert job(sessions, job_id).state == DeliveryState.DEAD
    with sessions.begin() as session:
        retry_dead(session, session.get_one(DeliveryJob, job_id), at(500))
    retried = job(sessions, job_id)
    assert (retried.state, retried.attempts, retried.manual_retries) == (DeliveryState.PENDING, 0, 1)
    assert (retried.next_attempt_at, retried.enqueued_at) == (at(500), at(500))
    assert retried.last_error == "the lease ran out on the last attempt", "kept until replaced"
    claimed = claim_at(sessions, job_id, at(500))
    assert claimed is not None
    assert claimed.attempts == 1


def test_the_relay_enqueues_due_jobs_whose_task_was_not_sent_or_was_lost(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    never_sent = add_job(sessions, assessed, "A")
    sent_for_an_earlier_attempt = add_job(sessions, assessed, "B", next_attempt_at=at(15), enqueued_at=at(10))
    sent_and_lost = add_job(sessions, assessed, "C", next_attempt_at=at(5), enqueued_at=at(6))
    sent_recently = add_job(sessions, assessed, "D", next_attempt_at=at(5), enqueued_at=at(50))
    add_job(sessions, assessed, "E", next_attempt_at=at(500))  # not due
    add_job(sessions, assessed, "F", state=DeliveryState.DEAD, next_attempt_at=at(5))
    add_job(sessions, assessed, "G", state=DeliveryState.DELIVERED, next_attempt_at=at(5))
    now, lost_before = at(60), at(30)
    with sessions.begin() as session:
        enqueued = mark_due_enqueued(session, now, lost_before)
    assert enqueued == [sent_and_lost, sent_for_an_earlier_attempt, never_sent], "soonest due first"
    assert all(job(sessions, job_id).enqueued_at == now for job_id in enqueued)
    assert job(sessions, sent_recently).enqueued_at == at(50)
    with sessions.begin() as session:
        assert mark_due_enqueued(session, at(61), lost_before) == [], "sent now: not again"
    with sessions.begin() as session:
        assert set(mark_due_enqueued(session, at(200), at(100), limit=2)) == {sent_and_lost, sent_recently}


def test_jobs_are_listed_newest_first_filtered_and_paged(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    archive = add_job(sessions, assessed, "ARCHIVE")
    hook = add_job(sessions, assessed, "ops", DeliveryAction.WEBHOOK, state=DeliveryState.DEAD)
    forward = add_job(sessions, assessed, "ARCHIVE", DeliveryAction.FORWARD)

    def listed(**filters: Any) -> list[int]:
        with sessions() as session:
            return [j.id for j in list_jobs(session, **filters)]

    assert listed() == [forward, hook, archive]
    assert listed(state=DeliveryState.DEAD) == [hook]
    assert listed(action=DeliveryAction.FORWARD) == [forward]
    assert listed(target="ARCHIVE") == [forward, archive]
    assert listed(series_id=assessed[0]) == [forward, hook, archive]
    assert listed(series_id=assessed[0] + 1) == []
    assert listed(limit=2) == [forward, hook]
    assert listed(after_id=hook, limit=2) == [archive]


def test_one_job_per_assessment_action_and_target(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    add_job(sessions, assessed)
    add_job(sessions, assessed, action=DeliveryAction.FORWARD)
    with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
        add_job(sessions, assessed)


def test_reports_of_a_series_and_of_an_assessment(
    sessions: sessionmaker[Session], assessed: tuple[int, int]
) -> None:
    series_id, first = assessed
    with sessions.begin() as session:
        request_rescore(session, session.get_one(Series, series_id), at(30))
    assert claim(sessions, 1, at(31)) is not None
    second = assess(sessions, 1, 2, at(32))
    with sessions.begin() as session:
        rows = [
            Report(
                series_id=series_id,
                assessment_id=assessment_id,
                kind=kind,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34",
                sop_instance_uid=f"1.2.826.0.1.3680043.10.1100.9.{number}",
                series_instance_uid="1.2.826.0.1.3680043.10.1100.8",
                instance_number=number,
                path=f"{number}.dcm",
                size_bytes=10,
                created_at=at(40 + number),
            )
            for number, (assessment_id, kind) in enumerate(
                [(first, ReportKind.SR), (second, ReportKind.SR), (second, ReportKind.KOS)], 1
            )
        ]
        session.add_all(rows)
    with sessions() as session:
        assert [r.instance_number for r in reports_of_series(session, series_id)] == [1, 2, 3]
        assert [r.instance_number for r in reports_of_assessment(session, second)] == [2, 3]
        sr, kos = (
            latest_report(session, series_id, ReportKind.SR),
            latest_report(session, series_id, ReportKind.KOS),
        )
        assert sr is not None
        assert kos is not None
        assert (sr.instance_number, kos.instance_number) == (2, 3)
        found = report_by_uid(session, "1.2.826.0.1.3680043.10.1100.9.1")
        assert found is not None
        assert found.assessment_id == first
        assert report_by_uid(session, "1.2.3") is None


def test_the_delivery_words() -> None:
    assert {s.value for s in DeliveryState} == {"pending", "sending", "delivered", "dead"}
    assert DeliveryAction.WEBHOOK not in DICOM_ACTIONS
    assert DICOM_ACTIONS == set(DeliveryAction) - {DeliveryAction.WEBHOOK}
    assert REPORT_OF_ACTION == {
        DeliveryAction.SEND_SR: ReportKind.SR,
        DeliveryAction.SEND_KOS: ReportKind.KOS,
    }
