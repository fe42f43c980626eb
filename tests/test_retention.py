"""Retention on a real SQLite store and spool: pixels and results age separately (issue 12 item 6)."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qcgate.cli.main import main as cli_main
from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings
from qcgate.store import retention
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import (
    ReceivedInstance,
    claim_series,
    queue_quiet_series,
    record_instance,
    series_by_uid,
    store_assessment,
)
from qcgate.store.retention import apply_retention
from qcgate.store.tables import DeliveryJob, Instance, Report, Series, Study

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
STUDY = "1.2.826.0.1.3680043.10.1200.1"
INSTANCE_BYTES = 1000


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QCGATE_DATA_DIR", str(tmp_path / "data"))
    made = Settings(retention_pixels_days=30, retention_results_days=365, retention_dead_delivery_days=7)
    made.data_dir.mkdir(parents=True)
    upgrade_database(made.effective_database_url)
    return made


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    return session_factory(create_database_engine(settings.effective_database_url))


def series_uid(number: int) -> str:
    return f"1.2.826.0.1.3680043.10.1200.2.{number}"


def make_series(
    settings: Settings, sessions: sessionmaker[Session], number: int, age_days: float, *, finish: bool = True
) -> int:
    """A series of two spooled instances received ``age_days`` ago, scored (done) unless ``finish`` is off."""
    when = NOW - timedelta(days=age_days)
    with sessions.begin() as session:
        for instance in (1, 2):
            path = f"{STUDY}/{series_uid(number)}/{instance}.dcm"
            (settings.spool_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (settings.spool_dir / path).write_bytes(b"\0" * INSTANCE_BYTES)
            received = ReceivedInstance(
                STUDY, series_uid(number), f"{series_uid(number)}.{instance}", "1.2.840.10008.5.1.4.1.1.4",
                "1.2.840.10008.1.2.1", "MR", "MRC1", "t1", True,
            )  # fmt: skip
            record_instance(session, received, path, INSTANCE_BYTES, "MR1", when)
        found = series_by_uid(session, series_uid(number))
        assert found is not None
        if finish:
            queue_quiet_series(session, when, when)
            claimed = claim_series(session, found.id, when)
            assert claimed is not None
            assert claimed.lease_token is not None
            document = {"flag": Flag.PASS.value, "reasons": [], "instances": 2}
            stored = store_assessment(
                session,
                found.id,
                claimed.revision,
                SeriesStatus.DONE,
                document,
                when,
                when,
                claimed.lease_token,
            )
            assert stored is not None
            session.flush()
            report = Report(
                series_id=found.id, assessment_id=stored.id, kind=ReportKind.SR,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34", sop_instance_uid=f"{series_uid(number)}.99",
                series_instance_uid=f"{series_uid(number)}.98", instance_number=1, path=f"{number}.dcm",
                size_bytes=10, created_at=when,
            )  # fmt: skip
            settings.sr_dir.mkdir(parents=True, exist_ok=True)
            (settings.sr_dir / f"{number}.dcm").write_bytes(b"sr")
            session.add(report)
        return found.id


def add_job(sessions: sessionmaker[Session], series_id: int, state: DeliveryState, age_days: float) -> int:
    with sessions.begin() as session:
        series = session.get_one(Series, series_id)
        assessment = series.assessments[-1]
        when = NOW - timedelta(days=age_days)
        job = DeliveryJob(
            series_id=series_id, assessment_id=assessment.id, action=DeliveryAction.FORWARD, target="PACS",
            rule="r", state=state, attempts=8, manual_retries=0, next_attempt_at=when, last_attempt_at=when,
            last_error="association rejected" if state == DeliveryState.DEAD else "", created_at=when,
        )  # fmt: skip
        session.add(job)
        session.flush()
        return job.id


def spooled(settings: Settings, number: int) -> list[Path]:
    return sorted((settings.spool_dir / STUDY / series_uid(number)).glob("*.dcm"))


def test_old_finished_pixels_go_and_everything_else_stays(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    old = make_series(settings, sessions, 1, age_days=40)
    recent = make_series(settings, sessions, 2, age_days=3)
    receiving = make_series(settings, sessions, 3, age_days=50, finish=False)
    delivering = make_series(settings, sessions, 4, age_days=45)
    add_job(sessions, delivering, DeliveryState.PENDING, age_days=45)
    for number in (1, 2):  # the page rendered both: PNGs of their pixels
        rendered = settings.image_cache_dir / series_uid(number) / "r1" / "mosaic.png"
        rendered.parent.mkdir(parents=True)
        rendered.write_bytes(b"png")

    dry = apply_retention(settings, sessions, NOW, dry_run=True)
    assert dry.pixels == {old: "older than 30 days"}
    assert dry.pixel_bytes == 2 * INSTANCE_BYTES
    assert len(spooled(settings, 1)) == 2, "a dry run removes nothing"

    done = apply_retention(settings, sessions, NOW)
    assert done.pixels == dry.pixels
    assert spooled(settings, 1) == []
    assert not (settings.spool_dir / STUDY / series_uid(1)).exists(), "its directory went too"
    assert not (settings.image_cache_dir / series_uid(1)).exists(), "rendered pixels went with the pixels"
    assert (settings.image_cache_dir / series_uid(2)).exists()
    assert [len(spooled(settings, n)) for n in (2, 3, 4)] == [2, 2, 2]
    with sessions() as session:
        pruned = session.get_one(Series, old)
        assert pruned.pixels_pruned_at == NOW
        assert pruned.assessments, "results stay for trends"
        assert session.get_one(Series, receiving).pixels_pruned_at is None
    assert apply_retention(settings, sessions, NOW).pixels == {}, "nothing twice"
    assert recent


def test_a_dead_delivery_lets_its_pixels_go_and_says_so(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    series_id = make_series(settings, sessions, 1, age_days=10)
    job_id = add_job(sessions, series_id, DeliveryState.DEAD, age_days=8)
    done = apply_retention(settings, sessions, NOW)
    assert done.pixels == {series_id: "a delivery dead for 7 days"}
    with sessions() as session:
        error = session.get_one(DeliveryJob, job_id).last_error
    assert error == "association rejected; pixels pruned 2026-12-04 (a delivery dead for 7 days)"


def test_a_free_space_target_prunes_the_oldest_first_and_no_more(
    settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    oldest = make_series(settings, sessions, 1, age_days=5)
    make_series(settings, sessions, 2, age_days=4)
    target = settings.model_copy(update={"spool_free_target_mb": 100})
    # The disk is one series short of the target: statvfs of a real disk cannot be set in a test.
    monkeypatch.setattr(retention, "spool_free_bytes", lambda _: 100 * retention.MB - 2 * INSTANCE_BYTES)
    done = apply_retention(target, sessions, NOW)
    assert done.pixels == {oldest: "less than 100 MB free in the spool"}


def test_expired_results_are_deleted_with_their_files_and_empty_study(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    expired = make_series(settings, sessions, 1, age_days=400)
    kept = make_series(settings, sessions, 2, age_days=100)
    done = apply_retention(settings, sessions, NOW)
    assert done.results == [expired]
    assert not (settings.sr_dir / "1.dcm").exists()
    assert (settings.sr_dir / "2.dcm").exists()
    with sessions() as session:
        assert session.get(Series, expired) is None
        assert session.scalar(select(func.count()).select_from(Instance)) == 2
        assert session.scalar(select(func.count()).select_from(Study)) == 1, "the study still has a series"
    assert kept


def test_the_command_line_dry_run_says_what_it_would_remove(
    settings: Settings, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    make_series(settings, sessions, 1, age_days=40)
    assert cli_main(["prune", "--dry-run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] is True
    assert summary["pixels"] == {"series": 1, "bytes": 2 * INSTANCE_BYTES, "reasons": ["older than 30 days"]}
    assert len(spooled(settings, 1)) == 2


def test_a_backup_restored_into_an_empty_data_dir_serves_the_same_results(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from qcgate.api.app import create_app
    from qcgate.worker.celery_app import create_celery

    make_series(settings, sessions, 1, age_days=2)
    make_series(settings, sessions, 2, age_days=1)
    monkeypatch.setenv("QCGATE_API_TOKENS", "backup-secret-t0ken")
    archive = tmp_path / "backup.tar.gz"
    assert cli_main(["backup", str(archive)]) == 0

    def served(data_dir: Path) -> list[dict[str, object]]:
        monkeypatch.setenv("QCGATE_DATA_DIR", str(data_dir))
        restored = Settings()
        restored.metrics_dir.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(restored.metrics_dir))
        app_sessions = session_factory(create_database_engine(restored.effective_database_url))
        app = create_app(restored, app_sessions, create_celery(restored))
        with TestClient(app) as client:
            headers = {"Authorization": "Bearer backup-secret-t0ken"}
            listed = client.get("/api/v1/series", headers=headers).json()["items"]
            return [
                client.get(f"/api/v1/series/{item['series_instance_uid']}", headers=headers).json()
                for item in listed
            ]

    before = served(settings.data_dir)
    empty = tmp_path / "restored"
    monkeypatch.setenv("QCGATE_DATA_DIR", str(empty))
    assert cli_main(["restore", str(archive)]) == 0
    after = served(empty)
    assert len(before) == 2
    assert after == before
    assert sorted(p.name for p in (empty / "sr").iterdir()) == ["1.dcm", "2.dcm"]
    with tarfile.open(archive) as tar:
        written = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    assert b"backup-secret-t0ken" not in written, "secrets are masked in the archive"
    monkeypatch.setenv("QCGATE_DATA_DIR", str(empty))
    assert cli_main(["restore", str(archive)]) == 2, "never over an existing history"
