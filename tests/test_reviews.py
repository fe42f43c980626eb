"""Human reviews in-process: ``create_app`` on a migrated SQLite store with a really spooled, really
scored series (the worker's own function, SR included), named API clients of every role.

A review is stored with the client's name, listed, counted in Prometheus, and issues an SR revision
that cites the previous SR, names the reviewer as a person observer and carries their finding; that
SR reads back strictly and passes dciodvfy. Agreement between people and qcgate is checked against
counts and a Cohen's kappa worked out by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydicom.config import strict_reading
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api.app import create_app
from qcgate.assessment.site_limits import cohen_kappa
from qcgate.assessment.verdict import model_identity, shipped_verdict_model
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.observability import instruments
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import ROLE_ORDER, Role, Settings, get_settings
from qcgate.delivery.jobs import run_delivery_job
from qcgate.harness.peers import require_peer
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.metrics.classic import ClassicMetrics
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import (
    ReceivedInstance,
    claim_series,
    queue_quiet_series,
    record_instance,
    series_by_uid,
    store_assessment,
)
from qcgate.store.tables import DeliveryJob
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets
from qcgate.worker.assess import WorkerContext, assess_queued_series
from qcgate.worker.celery_app import create_celery

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ROOT = "1.2.826.0.1.3680043.10.1499"
SPOOLED_UID = f"{ROOT}.7"
NO_ASSESSMENT_UID = f"{ROOT}.8"
CLIENTS = {role.value: f"{role.value}-token-0123456789abcdef" for role in Role}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {CLIENTS[role]}"}


def received(series_uid: str, number: int, *, station: str, protocol: str) -> ReceivedInstance:
    return ReceivedInstance(
        study_instance_uid=f"{ROOT}.1",
        series_instance_uid=series_uid,
        sop_instance_uid=f"{series_uid}.{number}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        modality="MR",
        station_name=station,
        series_description=protocol,
        scored=True,
    )


def verdict_document(flag: Flag, quality: float, severity: float = 0.0) -> dict[str, Any]:
    """An assessment document as the worker stores it, made by the shipped verdict model."""
    findings = [{"kind": "motion", "severity": severity, "slices": [3], "stack": "axial"}] if severity else []
    return {
        "status": "done",
        "instances": 1,
        "flag": flag.value,
        "quality": quality,
        "findings": findings,
        "reasons": [],
        "metrics": {},
        "stacks": [],
        "provenance": {
            "software_version": "0.1.0",
            "verdict": {"model": model_identity(shipped_verdict_model()), "limits": {}},
        },
    }


def add_scored(
    session: Session, uid: str, at: datetime, document: dict[str, Any], *, station: str, protocol: str
) -> int:
    """A one-instance series (no file: REST and calibration read only rows) with ``document`` stored."""
    record_instance(
        session, received(uid, 1, station=station, protocol=protocol), f"none/{uid}", 1, "MR1", at
    )
    queue_quiet_series(session, at + timedelta(seconds=1), at + timedelta(seconds=1))
    series = series_by_uid(session, uid)
    assert series is not None
    claimed = claim_series(session, series.id, at + timedelta(seconds=2))
    assert claimed is not None
    assert claimed.lease_token is not None
    stored = store_assessment(
        session,
        series.id,
        claimed.revision,
        SeriesStatus.DONE,
        document,
        at + timedelta(seconds=2),
        at + timedelta(seconds=3),
        claimed.lease_token,
    )
    assert stored is not None
    return series.id


def spool_and_score(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """A 12-slice synthetic T1 written to the spool, recorded, queued and assessed by the worker's own
    function (classic metrics, the verdict, the first SR)."""
    done = assess_queued_series(
        WorkerContext(settings, sessions, [ClassicMetrics()]), spool_series(settings, sessions)
    )
    assert done.outcome == "done"


def spool_series(settings: Settings, sessions: sessionmaker[Session]) -> int:
    """A 12-slice synthetic T1 (protocol t1_mprage) written to the spool, recorded and queued; its id."""
    datasets = mr_series_datasets(
        noisy_phantom((12, 64, 64)),
        series_description="t1_mprage",
        series_instance_uid=SPOOLED_UID,
        study_instance_uid=f"{ROOT}.1",
        patient_id="QC-7",
    )
    for ds in datasets:
        ds.PatientName = "Doe^Jane"
    with sessions.begin() as session:
        for ds in datasets:
            relative = f"{SPOOLED_UID}/{int(ds.InstanceNumber):04d}.dcm"
            (settings.spool_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(settings.spool_dir / relative, enforce_file_format=True)
            instance = ReceivedInstance(
                study_instance_uid=str(ds.StudyInstanceUID),
                series_instance_uid=SPOOLED_UID,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                modality="MR",
                station_name="MR-EAST",
                series_description="t1_mprage",
                scored=True,
            )
            record_instance(session, instance, relative, 1000, "MR1", T0)
        queue_quiet_series(session, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))
        series = series_by_uid(session, SPOOLED_UID)
        assert series is not None
        return series.id


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store with one spooled, scored series and one still receiving; copied per test."""
    settings = get_settings(data_dir=tmp_path_factory.mktemp("reviews"))
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    spool_and_score(settings, sessions)
    with sessions.begin() as session:
        record_instance(
            session, received(NO_ASSESSMENT_UID, 1, station="MR-EAST", protocol="t2"), "none/x", 1, "MR1", T0
        )
    engine.dispose()
    return settings.data_dir


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture
def make_api(seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    yield from api_factory(seeded, tmp_path, monkeypatch)


def api_factory(
    seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Api]]:
    """Makes the app, with clients of every role, on a fresh copy of ``seeded``; closes them after."""
    made: list[Api] = []

    def make(**overrides: Any) -> Api:
        data_dir = shutil.copytree(seeded, tmp_path / f"data-{len(made)}")
        clients = {f"{role}-desk": {"token": token, "role": role} for role, token in CLIENTS.items()}
        settings = get_settings(data_dir=data_dir, api_clients=clients, **overrides)
        settings.metrics_dir.mkdir(exist_ok=True)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
        engine = create_database_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        app = create_app(settings, sessions, create_celery(settings))
        made.append(Api(app, TestClient(app), settings, engine, sessions))
        return made[-1]

    yield make
    for api in made:
        api.client.close()
        api.app.state.celery.close()
        api.engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def reviews_counted() -> dict[str, float]:
    """``qcgate_reviews_total`` by verdict as this process counts it (multiprocess files or memory)."""
    counter = instruments().reviews
    return {
        verdict: counter.labels(verdict=verdict)._value.get() for verdict in ("acceptable", "non_diagnostic")
    }


def test_review_sits_between_images_and_operate() -> None:
    assert [role.value for role in ROLE_ORDER] == ["read", "images", "review", "operate", "admin"]


def test_a_review_is_stored_listed_and_counted_with_the_clients_name(api: Api) -> None:
    path = f"/api/v1/series/{SPOOLED_UID}/reviews"
    before = reviews_counted()
    body = {"verdict": "non_diagnostic", "kinds": ["motion", "ghosting", "motion"], "comment": "repeat"}
    created = api.client.post(path, json=body, headers=bearer("review"))
    assert created.status_code == 201, created.text
    review = created.json()
    assert review["reviewer"] == "review-desk"
    assert review["verdict"] == "non_diagnostic"
    assert review["kinds"] == ["ghosting", "motion"]
    assert review["comment"] == "repeat"
    assert review["series_instance_uid"] == SPOOLED_UID
    current = api.client.get(f"/api/v1/series/{SPOOLED_UID}", headers=bearer("read")).json()["provenance"]
    assert (review["revision"], review["assessment_id"]) == (current["revision"], current["assessment_id"])
    assert datetime.fromisoformat(review["created_at"]) > T0
    second = api.client.post(path, json={"verdict": "acceptable"}, headers=bearer("operate"))
    assert second.status_code == 201, "operate is above review"
    listed = api.client.get(path, headers=bearer("read")).json()
    assert [item["id"] for item in listed] == [review["id"], second.json()["id"]]
    assert [item["reviewer"] for item in listed] == ["review-desk", "operate-desk"]
    assert reviews_counted() == {
        "acceptable": before["acceptable"] + 1,
        "non_diagnostic": before["non_diagnostic"] + 1,
    }


@pytest.mark.parametrize("role", ["read", "images"])
def test_roles_below_review_may_read_but_not_review(api: Api, role: str) -> None:
    path = f"/api/v1/series/{SPOOLED_UID}/reviews"
    denied = api.client.post(path, json={"verdict": "acceptable"}, headers=bearer(role))
    assert denied.status_code == 403
    assert "this needs review" in denied.json()["detail"]
    assert api.client.get(path, headers=bearer(role)).json() == []


@pytest.mark.parametrize(
    ("uid", "body", "status"),
    [
        (SPOOLED_UID, {"verdict": "fine"}, 422),
        (SPOOLED_UID, {"verdict": "acceptable", "kinds": ["dust"]}, 422),
        (SPOOLED_UID, {"verdict": "acceptable", "comment": "x" * 2001}, 422),
        (f"{ROOT}.999", {"verdict": "acceptable"}, 404),
        (NO_ASSESSMENT_UID, {"verdict": "acceptable"}, 409),
    ],
)
def test_review_problems(api: Api, uid: str, body: dict[str, Any], status: int) -> None:
    response = api.client.post(f"/api/v1/series/{uid}/reviews", json=body, headers=bearer("review"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def read_strictly(path: Path) -> pydicom.Dataset:
    with strict_reading():
        dataset = pydicom.dcmread(path)
        assert list(dataset.iterall())
    return dataset


def content_codes(dataset: pydicom.Dataset) -> list[tuple[str, str]]:
    """(concept name, coded value) of every CODE item, depth first."""
    found = []

    def walk(items: Any) -> None:
        for item in items:
            if item.ValueType == "CODE":
                found.append(
                    (item.ConceptNameCodeSequence[0].CodeMeaning, item.ConceptCodeSequence[0].CodeValue)
                )
            walk(item.get("ContentSequence", []))

    walk(dataset.ContentSequence)
    return found


def test_a_review_issues_an_sr_revision_citing_the_previous_one_with_the_observers_finding(
    api: Api,
) -> None:
    reports = api.client.get(f"/api/v1/series/{SPOOLED_UID}/reports", headers=bearer("read")).json()["items"]
    assert len(reports) == 1, "the worker issued the first SR"
    first = reports[0]
    body = {"verdict": "non_diagnostic", "kinds": ["motion"], "comment": "patient moved"}
    review = api.client.post(
        f"/api/v1/series/{SPOOLED_UID}/reviews", json=body, headers=bearer("review")
    ).json()
    uid = review["report_sop_instance_uid"]
    assert uid is not None
    reports = api.client.get(f"/api/v1/series/{SPOOLED_UID}/reports", headers=bearer("read")).json()["items"]
    revision = next(item for item in reports if item["sop_instance_uid"] == uid)
    assert revision["predecessor_sop_instance_uid"] == first["sop_instance_uid"]
    assert revision["series_instance_uid"] == first["series_instance_uid"]
    assert revision["instance_number"] == first["instance_number"] + 1
    file = api.client.get(f"/api/v1/reports/{uid}/file", headers=bearer("images"))
    assert file.status_code == 200
    path = api.settings.data_dir / "review-sr.dcm"
    path.write_bytes(file.content)
    sr = read_strictly(path)
    assert (
        sr.PredecessorDocumentsSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID
        == first["sop_instance_uid"]
    )
    people = [
        item.PersonName
        for item in sr.ContentSequence
        if item.ValueType == "PNAME" and item.ConceptNameCodeSequence[0].CodeValue == "121008"
    ]
    assert people == ["review-desk^"], "the reviewer is a person observer"
    codes = content_codes(sr)
    assert ("Quality Finding", "non_diagnostic") in codes
    assert ("Image artifact(s)", "111210") in codes, "the reviewer's motion"
    assert "patient moved" not in str(sr), "the comment stays in the database"
    dciodvfy = shutil.which("dciodvfy")
    require_peer("dciodvfy", dciodvfy is not None, "`bash scripts/peers.sh` installs dicom3tools")
    assert dciodvfy is not None
    run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    assert output.startswith("Comprehensive3DSR"), output
    assert [line for line in output.splitlines() if line.startswith("Error")] == []


def test_a_reviews_sr_revision_is_delivered_where_the_assessments_sr_goes(
    make_api: Callable[..., Api], storescp_pacs: Callable[..., StorescpPacs]
) -> None:
    """One send_sr job per review and target (the delivery key includes the review), run against a real
    DCMTK storescp: the PACS that gets the machine's SR gets each person's revision too."""
    pacs = storescp_pacs()
    api = make_api(
        destinations={"PACS": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs.port}},
        routing_rules=[{"name": "every-sr", "send_sr": ["PACS"], "forward": ["PACS"]}],
    )
    delivered = []
    for verdict in ("non_diagnostic", "acceptable"):
        review = api.client.post(
            f"/api/v1/series/{SPOOLED_UID}/reviews", json={"verdict": verdict}, headers=bearer("review")
        ).json()
        with api.sessions() as session:
            jobs = session.scalars(select(DeliveryJob).where(DeliveryJob.review_id == review["id"])).all()
            assert [(job.action, job.target) for job in jobs] == [(DeliveryAction.SEND_SR, "PACS")], (
                "only the SR goes again: the series was forwarded with the assessment"
            )
            assert jobs[0].report is not None
            assert jobs[0].report.sop_instance_uid == review["report_sop_instance_uid"]
            job_id = jobs[0].id
        assert run_delivery_job(api.settings, api.sessions, job_id) == "delivered"
        delivered.append(review["report_sop_instance_uid"])
    assert pacs.reception_counts() == dict.fromkeys(delivered, 1)


def test_no_sr_revision_when_reports_are_off(make_api: Callable[..., Api]) -> None:
    api = make_api(sr_enabled=False)
    review = api.client.post(
        f"/api/v1/series/{SPOOLED_UID}/reviews", json={"verdict": "acceptable"}, headers=bearer("review")
    )
    assert review.status_code == 201
    assert review.json()["report_sop_instance_uid"] is None


def test_agreement_per_station_and_protocol_with_cohens_kappa(api: Api) -> None:
    # MR-WEST / flair: people and qcgate as a 2x2 table (person non-diagnostic?, qcgate flagged?):
    # (T,T)=3, (T,F)=1, (F,T)=1, (F,F)=5 -> agreement 0.8, kappa (0.8-0.52)/(1-0.52) = 0.5833.
    table = [(True, True)] * 3 + [(True, False)] + [(False, True)] + [(False, False)] * 5
    with api.sessions.begin() as session:
        for n, (_, machine) in enumerate(table):
            uid = f"{ROOT}.20.{n}"
            flag = Flag.WARN if machine else Flag.PASS
            add_scored(
                session,
                uid,
                T0 + timedelta(minutes=n),
                verdict_document(flag, 50.0),
                station="MR-WEST",
                protocol="flair",
            )
    for n, (person, _) in enumerate(table):
        verdict = "non_diagnostic" if person else "acceptable"
        response = api.client.post(
            f"/api/v1/series/{ROOT}.20.{n}/reviews", json={"verdict": verdict}, headers=bearer("review")
        )
        assert response.status_code == 201, response.text
        assert response.json()["report_sop_instance_uid"] is None, "no spooled file, no SR"
    api.client.post(
        f"/api/v1/series/{SPOOLED_UID}/reviews", json={"verdict": "acceptable"}, headers=bearer("review")
    )
    by_station = {
        row["station"]: row
        for row in api.client.get("/api/v1/reviews/agreement?by=station", headers=bearer("read")).json()
    }
    west = by_station["MR-WEST"]
    assert (west["reviews"], west["agree"], west["non_diagnostic"], west["flagged"]) == (10, 8, 4, 4)
    assert west["agreement"] == pytest.approx(0.8)
    assert west["kappa"] == pytest.approx((0.8 - 0.52) / 0.48)
    assert by_station["MR-EAST"]["reviews"] == 1
    assert by_station["MR-EAST"]["kappa"] is None, "one answer from each side: kappa is undefined"
    by_protocol = {
        row["protocol"]: row
        for row in api.client.get("/api/v1/reviews/agreement?by=protocol", headers=bearer("read")).json()
    }
    assert set(by_protocol) == {"flair", "t1_mprage"}
    assert by_protocol["flair"]["agree"] == 8
    assert api.client.get("/api/v1/reviews/agreement?by=scanner", headers=bearer("read")).status_code == 422


def test_cohens_kappa_by_hand() -> None:
    assert cohen_kappa(
        {(True, True): 20, (True, False): 5, (False, True): 10, (False, False): 15}
    ) == pytest.approx(0.4)
    assert cohen_kappa({(True, True): 5, (False, False): 5}) == pytest.approx(1.0)
    assert cohen_kappa({(True, False): 5, (False, True): 5}) == pytest.approx(-1.0)
    assert cohen_kappa({}) is None


@pytest.mark.peers
def test_migration_0009_keys_deliveries_by_review_on_postgresql_down_and_up(postgres_url: str) -> None:
    """The delivery key becomes (assessment, action, target, review) on PostgreSQL, and 0009 goes down
    (back to one job per action and target) and up again."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect

    from qcgate.store.database import MIGRATIONS_DIR

    def delivery_key() -> list[str]:
        engine = create_engine(postgres_url)
        try:
            constraints = inspect(engine).get_unique_constraints("delivery_jobs")
        finally:
            engine.dispose()
        [key] = [c["column_names"] for c in constraints if c["name"] == "uq_delivery_jobs_action"]
        return key

    upgrade_database(postgres_url)
    assert delivery_key() == ["assessment_id", "action", "target", "review_id"]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", postgres_url)
    command.downgrade(config, "0008")
    assert delivery_key() == ["assessment_id", "action", "target"]
    upgrade_database(postgres_url)
    assert delivery_key() == ["assessment_id", "action", "target", "review_id"]
