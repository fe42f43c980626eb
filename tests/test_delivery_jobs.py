"""Delivery attempts without Celery: claims, backoff, dead letters, leases, @sender, real storescp peers.

The job runner is called directly against a real SQLite database and real DCMTK storescp processes,
so each state transition is checked one attempt at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.errors import AssociationRejected, PeerUnreachable
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, get_settings
from qcgate.delivery.dicom_send import echo
from qcgate.delivery.jobs import retry_delay_s, run_delivery_job
from qcgate.harness.peers import free_port
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.delivery_repository import mark_due_enqueued
from qcgate.store.tables import Assessment, DeliveryJob, Instance, Report, Series, Study
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.peers


@dataclass
class Store:
    settings: Settings
    sessions: sessionmaker[Session]
    series_id: int
    assessment_id: int
    report: Report

    def job(
        self, action: DeliveryAction = DeliveryAction.SEND_SR, target: str = "PACS", **fields: Any
    ) -> int:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            job = DeliveryJob(
                series_id=self.series_id,
                assessment_id=self.assessment_id,
                report_id=self.report.id if action == DeliveryAction.SEND_SR else None,
                action=action,
                target=target,
                rule="test",
                state=DeliveryState.PENDING,
                attempts=0,
                manual_retries=0,
                next_attempt_at=now,
                enqueued_at=now,
                last_error="",
                created_at=now,
            )
            for name, value in fields.items():
                setattr(job, name, value)
            session.add(job)
            session.flush()
            return job.id

    def get(self, job_id: int) -> DeliveryJob:
        with self.sessions() as session:
            job = session.get(DeliveryJob, job_id)
            assert job is not None
            return job

    def run(self, job_id: int) -> str:
        return run_delivery_job(self.settings, self.sessions, job_id)

    def make_due(self, job_id: int) -> None:
        with self.sessions.begin() as session:
            session.get_one(DeliveryJob, job_id).next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., Store]:
    """A migrated SQLite store holding one assessed series, its spooled files and one report file."""

    made: list[Store] = []

    def make(**settings: Any) -> Store:
        options = {"delivery_max_attempts": 3, "delivery_retry_base_s": 30, **settings}
        config = get_settings(data_dir=tmp_path / f"data-{len(made)}", **options)
        upgrade_database(config.effective_database_url)
        sessions = session_factory(create_database_engine(config.effective_database_url))
        series_uid, files = write_phantom_series(config.spool_dir / "study" / "series", shape=(8, 32, 32))
        report_path = config.sr_dir / "report.dcm"
        report_path.parent.mkdir(parents=True)
        report_path.write_bytes(files[0].read_bytes())  # any Part 10 file stands in for the SR here
        now = datetime.now(UTC)
        with sessions.begin() as session:
            study = Study(study_instance_uid="1.2.3", created_at=now)
            session.add(study)
            session.flush()
            series = Series(
                series_instance_uid=series_uid,
                study_id=study.id,
                modality="MR",
                station_name="",
                series_description="",
                calling_ae="MRSCANNER",
                status=SeriesStatus.DONE,
                flag=Flag.PASS,
                revision=1,
                instance_count=len(files),
                first_received_at=now,
                last_received_at=now,
                enqueue_count=1,
                status_reason="",
            )
            session.add(series)
            session.flush()
            for path in files:
                session.add(
                    Instance(
                        sop_instance_uid=sop_uid(path),
                        series_id=series.id,
                        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                        transfer_syntax_uid="1.2.840.10008.1.2.1",
                        spool_path=str(path.relative_to(config.spool_dir)),
                        size_bytes=path.stat().st_size,
                        received_at=now,
                    )
                )
            assessment = Assessment(
                series_id=series.id,
                revision=1,
                outcome=SeriesStatus.DONE,
                flag=Flag.PASS,
                reasons=[],
                metrics={},
                stacks=[],
                provenance={},
                instance_count=len(files),
                started_at=now,
                finished_at=now,
            )
            session.add(assessment)
            session.flush()
            report = Report(
                series_id=series.id,
                assessment_id=assessment.id,
                kind=ReportKind.SR,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                sop_instance_uid=sop_uid(files[0]),
                series_instance_uid="1.2.3.4",
                instance_number=1,
                path="report.dcm",
                size_bytes=report_path.stat().st_size,
                created_at=now,
            )
            session.add(report)
            session.flush()
            made.append(Store(config, sessions, series.id, assessment.id, report))
            return made[-1]

    return make


def sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def destination(port: int, ae_title: str = "PACS") -> dict[str, Any]:
    return {"ae_title": ae_title, "host": "127.0.0.1", "port": port}


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    settings = get_settings(delivery_retry_base_s=2, delivery_retry_max_s=20)
    for attempt, nominal in ((1, 2), (2, 4), (3, 8), (4, 16), (5, 20), (60, 20)):
        assert 0.9 * nominal <= retry_delay_s(settings, attempt) <= min(20, 1.1 * nominal)


def test_closed_port_retries_with_backoff_then_dies_with_the_last_error(
    make_store: Callable[..., Store],
) -> None:
    store = make_store(destinations={"PACS": destination(free_port())})
    job_id = store.job()
    before = datetime.now(UTC)
    assert store.run(job_id) == "retry"
    job = store.get(job_id)
    assert (job.state, job.attempts) == (DeliveryState.PENDING, 1)
    assert job.next_attempt_at >= before + timedelta(seconds=27)  # 30 s base, -10 % jitter at most
    assert "PeerUnreachable: could not connect" in job.last_error
    assert store.run(job_id) == "skipped", "a task that comes early must not attempt"
    store.make_due(job_id)
    assert store.run(job_id) == "retry"
    store.make_due(job_id)
    assert store.run(job_id) == "dead"
    job = store.get(job_id)
    assert (job.state, job.attempts) == (DeliveryState.DEAD, 3)
    assert job.last_error.startswith("attempt 3: PeerUnreachable")
    store.make_due(job_id)
    assert store.run(job_id) == "skipped", "a dead job is not attempted again without a person"


def test_delivered_once_and_a_duplicate_task_does_nothing(
    make_store: Callable[..., Store], storescp_pacs: Callable[..., StorescpPacs]
) -> None:
    pacs = storescp_pacs()
    store = make_store(destinations={"PACS": destination(pacs.port)})
    job_id = store.job()
    assert store.run(job_id) == "delivered"
    assert store.run(job_id) == "skipped"
    job = store.get(job_id)
    assert job.state == DeliveryState.DELIVERED
    assert job.delivered_at is not None
    assert job.last_duration_s is not None
    assert pacs.reception_counts() == {store.report.sop_instance_uid: 1}


def test_forward_sends_every_spooled_instance_on_one_association(
    make_store: Callable[..., Store], storescp_pacs: Callable[..., StorescpPacs]
) -> None:
    pacs = storescp_pacs()
    store = make_store(destinations={"PACS": destination(pacs.port)})
    associations = pacs.log_text().count("Association Received")  # the readiness C-ECHO's
    assert store.run(store.job(DeliveryAction.FORWARD)) == "delivered"
    spooled = {sop_uid(path) for path in store.settings.spool_dir.rglob("*.dcm")}
    assert pacs.received_uids() == spooled
    assert set(pacs.reception_counts().values()) == {1}
    assert pacs.log_text().count("Association Received") == associations + 1


def test_a_lost_attempt_counts_and_its_job_is_taken_again_after_the_lease(
    make_store: Callable[..., Store], storescp_pacs: Callable[..., StorescpPacs]
) -> None:
    pacs = storescp_pacs()
    store = make_store(destinations={"PACS": destination(pacs.port)})
    past = datetime.now(UTC) - timedelta(seconds=1)
    in_lease = store.job(state=DeliveryState.SENDING, attempts=1, next_attempt_at=past + timedelta(hours=1))
    assert store.run(in_lease) == "skipped", "another worker holds the lease"
    lost = store.job(DeliveryAction.FORWARD, state=DeliveryState.SENDING, attempts=1, next_attempt_at=past)
    assert store.run(lost) == "delivered"
    assert store.get(lost).attempts == 2
    last = store.job(target="OTHER", state=DeliveryState.SENDING, attempts=3, next_attempt_at=past)
    assert store.run(last) == "dead"
    assert "previous attempt lost" in store.get(last).last_error


def test_sender_is_the_destination_with_the_calling_ae_title(
    make_store: Callable[..., Store], storescp_pacs: Callable[..., StorescpPacs]
) -> None:
    scanner = storescp_pacs(ae_title="MRSCANNER")
    store = make_store(
        destinations={"PACS": destination(free_port()), "MR1": destination(scanner.port, "MRSCANNER")}
    )
    assert store.run(store.job(target="@sender")) == "delivered"
    assert scanner.received_uids() == {store.report.sop_instance_uid}

    unknown = make_store(destinations={"PACS": destination(free_port())})
    job_id = unknown.job(target="@sender")
    assert unknown.run(job_id) == "dead", "no destination can ever match: no use retrying"
    assert "sending AE title 'MRSCANNER'" in unknown.get(job_id).last_error


def test_missing_report_file_or_removed_destination_is_dead_at_once(make_store: Callable[..., Store]) -> None:
    store = make_store(destinations={"PACS": destination(free_port())})
    (store.settings.sr_dir / "report.dcm").unlink()
    missing = store.job()
    assert store.run(missing) == "dead"
    assert "ReportMissing" in store.get(missing).last_error
    removed = store.job(target="GONE")
    assert store.run(removed) == "dead"
    assert "'GONE' is no longer configured" in store.get(removed).last_error


def test_relay_takes_each_due_job_once_per_attempt(make_store: Callable[..., Store]) -> None:
    store = make_store()
    now = datetime.now(UTC)
    fresh = store.job(target="A")  # enqueued when created: not the relay's
    lost = store.job(
        target="B", enqueued_at=now - timedelta(minutes=5), next_attempt_at=now - timedelta(minutes=5)
    )
    retry = store.job(
        target="C", enqueued_at=now - timedelta(seconds=5), next_attempt_at=now - timedelta(seconds=1)
    )
    later = store.job(
        target="D", enqueued_at=now - timedelta(seconds=5), next_attempt_at=now + timedelta(minutes=1)
    )
    with store.sessions.begin() as session:
        due = mark_due_enqueued(session, now, now - timedelta(minutes=2))
    assert fresh not in due
    assert later not in due
    assert sorted(due) == sorted([lost, retry])
    with store.sessions.begin() as session:
        assert mark_due_enqueued(session, now, now - timedelta(minutes=2)) == []


def test_echo_names_what_went_wrong(storescp_pacs: Callable[..., StorescpPacs]) -> None:
    settings = get_settings(
        destinations={
            "OK": destination(storescp_pacs().port),
            "REFUSING": destination(storescp_pacs(refuse=True).port),
            "CLOSED": destination(free_port()),
        }
    )
    assert echo(settings.destinations["OK"], calling_ae="QCGATE", timeout_s=5) < 5
    with pytest.raises(AssociationRejected, match=r"rejected the association \(Rejected \(Permanent\)"):
        echo(settings.destinations["REFUSING"], calling_ae="QCGATE", timeout_s=5)
    with pytest.raises(PeerUnreachable, match="127.0.0.1"):
        echo(settings.destinations["CLOSED"], calling_ae="QCGATE", timeout_s=5)


def test_claims_and_dead_letters_on_postgresql(
    make_store: Callable[..., Store], storescp_pacs: Callable[..., StorescpPacs], postgres_url: str
) -> None:
    """Migration 0002 and the compare-and-set claims on the scale path's database."""
    pacs = storescp_pacs()
    store = make_store(
        database_url=postgres_url,
        destinations={"PACS": destination(pacs.port), "GONE": destination(free_port())},
    )
    delivered = store.job()
    assert store.run(delivered) == "delivered"
    assert store.run(delivered) == "skipped"
    failing = store.job(target="GONE")
    for outcome in ("retry", "retry", "dead"):
        store.make_due(failing)
        assert store.run(failing) == outcome
    assert store.get(failing).last_error.startswith("attempt 3: PeerUnreachable")
