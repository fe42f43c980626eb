"""Trends, baselines and drift (docs/drift.md).

The detector first, on synthetic quality sequences with known answers: a stable scanner does not
alarm (measured as a false-alarm rate over many seeded runs), a step drop of 1.5 MAD is found within
a bounded number of series, a single bad series never alarms alone. Then ``/api/v1/trends`` and
``/api/v1/drift`` in-process (``create_app`` on a migrated SQLite store seeded with two stations,
one of which drops), the Prometheus gauge the sweeper leader reports with its bounded labels, and
the protocol a received instance is filed under.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api.app import create_app
from qcgate.assessment.drift import (
    MAD_TO_SIGMA,
    Z_CLIP,
    analyse,
    baseline_of,
    current_groups,
    lower_cusum,
    series_percentile,
)
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, VerdictLimits, get_settings
from qcgate.receiver.validation import inspect_instance
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.tables import Assessment, Series, Study
from qcgate.store.trends import QualityPoint, quality_history
from qcgate.synthetic.dicom_series import mr_series_datasets
from qcgate.worker.celery_app import create_celery
from qcgate.worker.gauges import LeaderGauges, quality_drift
from qcgate.worker.leadership import SweeperLeadership

T0 = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
ROOT = "1.2.826.0.1.3680043.10.1099.14"
TOKEN = "trend-token"
SIGMA = 3.0  # quality points: the spread of a healthy scanner's series
RAW_MAD = SIGMA / MAD_TO_SIGMA


# --- the detector on synthetic sequences -------------------------------------------------------------


def first_alarm(qualities: list[float], settings: Settings) -> int | None:
    """The index (after the baseline) of the first series at which the group drifts, else None:
    the group's analysis of the whole sequence gives the baseline, its CUSUM path the first alarm."""
    points = [
        QualityPoint(n, f"{ROOT}.{n}", T0 + timedelta(hours=n), "MR1", "t1", q, Flag.PASS, "m")
        for n, q in enumerate(qualities)
    ]
    (group,) = analyse(points, settings)
    assert group.baseline is not None
    after = qualities[settings.drift_baseline_series :]
    path = lower_cusum((group.baseline.z(q) for q in after), settings.drift_allowance)
    assert group.drifting == (path[-1] > settings.drift_threshold)
    return next((n for n, statistic in enumerate(path) if statistic > settings.drift_threshold), None)


def healthy(rng: random.Random, count: int) -> list[float]:
    return [rng.gauss(80.0, SIGMA) for _ in range(count)]


def test_the_baseline_is_median_and_mad_and_the_percentile_a_mid_rank() -> None:
    baseline = baseline_of([70.0, 90.0, 80.0, 82.0, 78.0])
    assert baseline.median == 80.0
    assert baseline.mad == 2.0
    assert baseline.scale == pytest.approx(2 * MAD_TO_SIGMA)
    assert baseline.percentile(80.0) == 50.0  # 2 below, 1 equal of 5
    assert baseline.percentile(0.0) == 0.0
    assert baseline.percentile(100.0) == 100.0
    assert baseline.z(0.0) == -Z_CLIP, "one series adds at most Z_CLIP"
    assert baseline_of([75.0] * 10).scale == 1.0, "identical values still have a floor on the spread"
    with pytest.raises(ValueError, match='"values"'):
        baseline_of([])


def test_lower_cusum_accumulates_drops_and_forgets_typical_series() -> None:
    assert lower_cusum([0.0, 0.0, 0.0], 0.5) == [0.0, 0.0, 0.0]
    assert lower_cusum([-1.5, -1.5, -1.5], 0.5) == [1.0, 2.0, 3.0]
    assert lower_cusum([-3.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.5) == [2.5, 2.0, 1.5, 1.0, 0.5, 0.0]
    assert lower_cusum([2.0, 2.0], 0.5) == [0.0, 0.0], "better quality is not drift"


def test_a_stable_scanner_rarely_alarms() -> None:
    settings = get_settings()
    rng = random.Random(14)
    runs = 200
    alarms = sum(
        first_alarm(healthy(rng, settings.drift_baseline_series + 100), settings) is not None
        for _ in range(runs)
    )
    # Estimated baselines make false alarms likelier than with known parameters: about 7 % of runs
    # of 100 series (docs/drift.md). A detector that alarms on noise would be far above this.
    assert alarms / runs < 0.10, f"{alarms} of {runs} stable runs alarmed"


def test_a_step_drop_of_one_and_a_half_mad_alarms_within_a_bounded_number_of_series() -> None:
    settings = get_settings()
    rng = random.Random(15)
    delays = []
    for _ in range(200):
        qualities = healthy(rng, settings.drift_baseline_series + 40)
        base = settings.drift_baseline_series
        qualities[base:] = [q - 1.5 * RAW_MAD for q in qualities[base:]]
        alarm = first_alarm(qualities, settings)
        delays.append(40 if alarm is None else alarm)
    assert statistics.median(delays) <= 15, delays
    assert sorted(delays)[int(0.8 * len(delays))] <= 30, "four drops in five are found within 30 series"


def test_a_single_outlier_does_not_alarm() -> None:
    settings = get_settings()
    base = settings.drift_baseline_series
    steady = [80.0 + (-1.0) ** n for n in range(base + 60)]  # spread 1, no drift at all
    assert first_alarm(steady, settings) is None
    steady[base + 20] = 0.0  # a patient who moved: the worst quality there is
    assert first_alarm(steady, settings) is None
    rng = random.Random(16)
    caused = 0
    for _ in range(200):
        qualities = healthy(rng, base + 100)
        before = first_alarm(qualities, settings)
        qualities[base + 50] = 0.0
        caused += before is None and first_alarm(qualities, settings) is not None
    assert caused / 200 < 0.05, f"one bad series set off {caused} alarms"


# --- REST and the gauge on a seeded store ------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    settings: Settings
    sessions: sessionmaker[Session]


def add_series(
    session: Session,
    study: Study,
    number: int,
    station: str,
    quality: float,
    *,
    protocol_name: str = "t1_mprage",
    description: str = "T1 sag",
    verdict_sha: str = "a" * 64,
    outcome: SeriesStatus = SeriesStatus.DONE,
) -> Series:
    at = T0 + timedelta(hours=number)
    series = Series(
        series_instance_uid=f"{ROOT}.2.{number}",
        study_id=study.id,
        modality="MR",
        station_name=station,
        series_description=description,
        protocol_name=protocol_name,
        calling_ae="MR1",
        status=outcome,
        flag=Flag.PASS if outcome == SeriesStatus.DONE else None,
        revision=1,
        instance_count=3,
        first_received_at=at,
        last_received_at=at + timedelta(minutes=1),
        enqueue_count=1,
        status_reason="",
    )
    session.add(series)
    session.flush()
    session.add(
        Assessment(
            series_id=series.id,
            revision=1,
            outcome=outcome,
            flag=series.flag,
            reasons=[],
            metrics={},
            stacks=[],
            provenance={
                "software_version": "0.1.0",
                "metric_versions": {"classic": "1"},
                "verdict": {"model": {"version": "1", "sha256": verdict_sha}},
            },
            quality=quality if outcome == SeriesStatus.DONE else None,
            findings=[],
            instance_count=3,
            started_at=at + timedelta(minutes=2),
            finished_at=at + timedelta(minutes=3),
        )
    )
    return series


STABLE, FAILING, FEW = "MR-STABLE", "MR-FAILING", "MR-FEW"
SERIES_PER_STATION = 60


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """Two stations with 60 series of one protocol each (MR-FAILING drops by 3 standard deviations from
    its 50th series), a station with too few series for a baseline, a series scored by another model,
    and a failed one; MR-STABLE is a metric station."""
    settings = get_settings(
        data_dir=tmp_path / "data",
        api_tokens=[TOKEN],
        metric_stations=[STABLE],
        metric_protocols=["t1_mprage"],
    )
    settings.metrics_dir.mkdir(parents=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    rng = random.Random(2026)
    with sessions.begin() as session:
        study = Study(study_instance_uid=f"{ROOT}.1", created_at=T0)
        session.add(study)
        session.flush()
        number = 0
        for n in range(SERIES_PER_STATION):
            for station in (STABLE, FAILING):
                drop = 3 * SIGMA if station == FAILING and n >= 50 else 0.0
                add_series(session, study, number, station, rng.gauss(80.0, SIGMA) - drop)
                number += 1
        for n in range(5):
            add_series(session, study, number + n, FEW, 70.0 + n, protocol_name="", description="flair ax")
        add_series(session, study, 500, STABLE, 99.0, verdict_sha="b" * 64)  # a new model's first series
        add_series(session, study, 501, STABLE, 0.0, outcome=SeriesStatus.FAILED)
    yield Seeded(settings, sessions)
    engine.dispose()


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    app = create_app(seeded.settings, seeded.sessions, create_celery(seeded.settings))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client
    app.state.celery.close()


def by_station(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["station"]: row for row in rows}


def test_drift_finds_the_failing_station_and_not_the_stable_one(client: TestClient) -> None:
    response = client.get("/api/v1/drift")
    assert response.status_code == 200, response.text
    rows = response.json()
    stations = by_station([row for row in rows if row["protocol"] == "t1_mprage"])
    failing = stations[FAILING]
    assert failing["drifting"] is True
    assert failing["statistic"] > 8.0
    assert failing["n"] == SERIES_PER_STATION
    assert failing["baseline_series"] == 40
    assert 75.0 < failing["baseline_median"] < 85.0
    assert 0.5 * SIGMA / MAD_TO_SIGMA < failing["baseline_mad"] < 2 * SIGMA / MAD_TO_SIGMA
    # MR-STABLE's newest series came from a new model: its group restarts, still without a baseline.
    stable = stations[STABLE]
    assert stable["n"] == 1
    assert stable["baseline_median"] is None
    assert stable["drifting"] is False
    (few,) = [row for row in rows if row["station"] == FEW]
    assert few["protocol"] == "flair ax", "no ProtocolName: grouped by SeriesDescription"
    assert few["baseline_median"] is None
    assert few["statistic"] == 0.0
    assert client.get("/api/v1/drift", params={"station": FAILING}).json() == [failing]


def test_trends_carry_points_percentiles_limits_and_drift(client: TestClient) -> None:
    response = client.get("/api/v1/trends", params={"station": FAILING, "protocol": "t1_mprage"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["limits"] == VerdictLimits().model_dump(), "the settings' limits: nothing pinned or learned"
    points = body["points"]
    assert len(points) == SERIES_PER_STATION
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    assert {p["station"] for p in points} == {FAILING}
    assert all(p["percentile"] is not None for p in points)
    dropped = [p["percentile"] for p in points[50:]]
    assert max(dropped) < 10.0, "a series 3 standard deviations down is below nearly all of the baseline"
    assert statistics.median(p["percentile"] for p in points[:40]) == pytest.approx(50.0, abs=5.0)
    (drift,) = body["drift"]
    assert drift["drifting"] is True

    since = points[55]["time"]
    later = client.get("/api/v1/trends", params={"station": FAILING, "since": since}).json()
    assert [p["series_instance_uid"] for p in later["points"]] == [
        p["series_instance_uid"] for p in points[55:]
    ]
    assert later["points"][0]["percentile"] == points[55]["percentile"], "since hides points, not history"
    limited = client.get("/api/v1/trends", params={"station": FAILING, "limit": 3}).json()["points"]
    assert [p["series_instance_uid"] for p in limited] == [p["series_instance_uid"] for p in points[-3:]]

    few = client.get("/api/v1/trends", params={"protocol": "flair ax"}).json()
    assert [p["quality"] for p in few["points"]] == [70.0, 71.0, 72.0, 73.0, 74.0]
    assert all(p["percentile"] is None for p in few["points"]), "no baseline yet"
    everything = client.get("/api/v1/trends").json()["points"]
    assert len(everything) == 2 * SERIES_PER_STATION + 5 + 1, "the failed series has no quality"
    assert {p["models"] for p in everything if p["quality"] == 99.0} != {points[0]["models"]}


def test_one_series_percentile_is_its_trend_point_s(client: TestClient, seeded: Seeded) -> None:
    points = client.get("/api/v1/trends", params={"station": FAILING}).json()["points"]
    with seeded.sessions() as session:
        history = quality_history(session, station=FAILING, protocol="t1_mprage")
    for point in (points[0], points[55]):
        uid = point["series_instance_uid"]
        assert series_percentile(history, seeded.settings, uid) == point["percentile"]
    assert series_percentile(history, seeded.settings, f"{ROOT}.404") is None


def test_trends_refuse_a_naive_since_and_need_a_token(client: TestClient) -> None:
    response = client.get("/api/v1/trends", params={"since": "2026-11-02T10:00:00"})
    assert response.status_code == 400
    assert "timezone" in response.json()["detail"]
    assert client.get("/api/v1/drift", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/v1/trends", headers={"Authorization": ""}).status_code == 401


def test_the_leader_reports_drift_per_station_and_protocol_with_bounded_labels(seeded: Seeded) -> None:
    with seeded.sessions() as session:
        family, threshold = quality_drift(seeded.settings, session)
    assert family.name == "qcgate_quality_drift"
    assert threshold.name == "qcgate_quality_drift_threshold"
    assert [s.value for s in threshold.samples] == [seeded.settings.drift_threshold]
    samples = {(s.labels["station"], s.labels["protocol"]): s.value for s in family.samples}
    # MR-FAILING is not a metric station: "other"; MR-STABLE (a new model's group) and MR-FEW have no
    # baseline yet and report 0, MR-FEW under ("other", "other"): flair ax is not a metric protocol.
    assert set(samples) == {("other", "t1_mprage"), (STABLE, "t1_mprage"), ("other", "other")}
    assert samples["other", "t1_mprage"] > seeded.settings.drift_threshold
    assert samples[STABLE, "t1_mprage"] == 0.0
    assert samples["other", "other"] == 0.0

    leadership = SweeperLeadership(seeded.settings)
    try:
        assert leadership.held()
        names = {f.name for f in LeaderGauges(seeded.settings, seeded.sessions, leadership).collect()}
    finally:
        leadership.release()
    assert {"qcgate_quality_drift", "qcgate_quality_drift_threshold"} <= names


def test_every_label_is_configured_or_other(seeded: Seeded) -> None:
    with seeded.sessions() as session:
        groups = current_groups(analyse(quality_history(session), seeded.settings))
    assert {g.station for g in groups} == {STABLE, FAILING, FEW}
    settings = seeded.settings.model_copy(update={"metric_stations": [FAILING], "metric_protocols": []})
    with seeded.sessions() as session:
        family, _ = quality_drift(settings, session)
    by_labels = {(s.labels["station"], s.labels["protocol"]): s.value for s in family.samples}
    assert set(by_labels) == {(FAILING, "other"), ("other", "other")}
    assert by_labels[FAILING, "other"] > settings.drift_threshold


def test_a_received_instance_is_filed_under_its_protocol_name() -> None:
    settings = get_settings()
    volume = np.linspace(0.0, 1.0, 3 * 16 * 16).reshape(3, 16, 16)
    dataset = mr_series_datasets(volume, patient_id="P1", series_description="t2_tse_tra")[0]
    dataset.ProtocolName = "t2_tse_tra_site"
    received = inspect_instance(dataset, dataset.SOPClassUID, dataset.SOPInstanceUID, settings)
    assert received.protocol_name == "t2_tse_tra_site"
    assert received.series_description == "t2_tse_tra"
    del dataset.ProtocolName
    assert (
        inspect_instance(dataset, dataset.SOPClassUID, dataset.SOPInstanceUID, settings).protocol_name == ""
    )
