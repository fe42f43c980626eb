"""Pairwise ranking (docs/drift.md): the next pair, recording judgements, the export, fine-tuning.

In-process, ``create_app`` on a migrated SQLite store seeded with scored series whose instances are
real synthetic DICOM files in the spool (the export reads their pixels). Two reviewers, a reader
and an admin. The last tests fine-tune a tiny ``rank_effnet`` on the exported file through the
training entry point (which reads only that file) and export the result like any other model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api.app import create_app
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, get_settings
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.tables import Assessment, Instance, PairJudgement, Series, Study
from qcgate.synthetic.dicom_series import mr_series_datasets
from qcgate.worker.celery_app import create_celery

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ROOT = "1.2.826.0.1.3680043.10.1099.15"
TOKENS = {
    "ana": ("review-token-ana-0001", "review"),
    "ben": ("review-token-ben-0001", "review"),
    "rita": ("read-token-rita-00001", "read"),
    "root": ("admin-token-root-0001", "admin"),
}
# protocol t1: four scored series (60 and 62 are the closest pair), one whose pixels were pruned;
# protocol flair: two series; one failed t1 series has no quality.
T1_QUALITIES = {1: 50.0, 2: 60.0, 3: 62.0, 4: 90.0, 5: 70.0}
PRUNED = 5
FLAIR_QUALITIES = {6: 40.0, 7: 45.0}


def uid(number: int) -> str:
    return f"{ROOT}.2.{number}"


@dataclass(frozen=True)
class Seeded:
    settings: Settings
    sessions: sessionmaker[Session]


def slab_volume(number: int, quality: float | None) -> np.ndarray:
    """Smooth anatomy (a bright disc, brighter towards the last slice) with noise that grows as the
    quality falls, so a scorer can learn to order them."""
    rows, cols = np.mgrid[:24, :20]
    disc = ((rows - 12) ** 2 + (cols - 10) ** 2 < 64).astype(float)
    noise = np.random.default_rng(number).normal(0.0, (100.0 - (quality or 0.0)) / 100.0, (8, 24, 20))
    return np.stack([disc * (2 + k) + 0.2 for k in range(8)]) + noise


def add_series(
    session: Session, settings: Settings, study: Study, number: int, protocol: str, quality: float | None
) -> None:
    at = T0 + timedelta(hours=number)
    outcome = SeriesStatus.DONE if quality is not None else SeriesStatus.FAILED
    series = Series(
        series_instance_uid=uid(number),
        study_id=study.id,
        modality="MR",
        station_name="MR1",
        series_description=f"{protocol} desc",
        protocol_name=protocol,
        calling_ae="MR1",
        status=outcome,
        flag=Flag.PASS if quality is not None else None,
        revision=1,
        instance_count=8,
        first_received_at=at,
        last_received_at=at,
        enqueue_count=1,
        status_reason="",
        pixels_pruned_at=at + timedelta(days=30) if number == PRUNED else None,
    )
    session.add(series)
    session.flush()
    volume = slab_volume(number, quality)
    for k, dataset in enumerate(
        mr_series_datasets(volume, series_description=protocol, series_instance_uid=uid(number))
    ):
        relative = f"{number}/{k}.dcm"
        (settings.spool_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(settings.spool_dir / relative, enforce_file_format=True)
        session.add(
            Instance(
                sop_instance_uid=dataset.SOPInstanceUID,
                series_id=series.id,
                sop_class_uid=dataset.SOPClassUID,
                transfer_syntax_uid=dataset.file_meta.TransferSyntaxUID,
                spool_path=relative,
                size_bytes=1,
                received_at=at,
            )
        )
    session.add(
        Assessment(
            series_id=series.id,
            revision=1,
            outcome=outcome,
            flag=series.flag,
            reasons=[],
            metrics={},
            stacks=[],
            provenance={"software_version": "0.1.0"},
            quality=quality,
            findings=[],
            instance_count=8,
            started_at=at,
            finished_at=at,
        )
    )


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    settings = get_settings(
        data_dir=tmp_path / "data",
        api_clients={name: {"token": token, "role": role} for name, (token, role) in TOKENS.items()},
    )
    settings.metrics_dir.mkdir(parents=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        study = Study(study_instance_uid=f"{ROOT}.1", created_at=T0)
        session.add(study)
        session.flush()
        for number, quality in T1_QUALITIES.items():
            add_series(session, settings, study, number, "t1", quality)
        for number, quality in FLAIR_QUALITIES.items():
            add_series(session, settings, study, number, "flair", quality)
        add_series(session, settings, study, 8, "t1", None)
    yield Seeded(settings, sessions)
    engine.dispose()


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    app = create_app(seeded.settings, seeded.sessions, create_celery(seeded.settings))
    with TestClient(app) as test_client:
        yield test_client
    app.state.celery.close()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}


def judge(client: TestClient, who: str, left: str, right: str, choice: str) -> Any:
    return client.post(
        "/api/v1/pairs", json={"left": left, "right": right, "choice": choice}, headers=auth(who)
    )


def test_the_next_pair_is_the_closest_in_quality_of_one_protocol(client: TestClient) -> None:
    response = client.get("/api/v1/pairs/next", params={"protocol": "t1"}, headers=auth("ana"))
    assert response.status_code == 200, response.text
    pair = response.json()
    assert {pair["left"], pair["right"]} == {uid(2), uid(3)}
    assert pair["protocol"] == "t1"
    assert {pair["left_quality"], pair["right_quality"]} == {60.0, 62.0}
    flair = client.get("/api/v1/pairs/next", params={"protocol": "flair"}, headers=auth("ana")).json()
    assert {flair["left"], flair["right"]} == {uid(6), uid(7)}
    anywhere = client.get("/api/v1/pairs/next", headers=auth("ana")).json()
    assert {anywhere["left"], anywhere["right"]} == {uid(2), uid(3)}, "the closest of all protocols"
    assert client.get("/api/v1/pairs/next", headers=auth("rita")).status_code == 403
    assert client.get("/api/v1/pairs/next").status_code == 401


def test_judgements_are_recorded_once_per_reviewer_until_every_pair_is_judged(
    client: TestClient, seeded: Seeded
) -> None:
    created = judge(client, "ana", uid(3), uid(2), "left")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["left"] == uid(3)
    assert body["right"] == uid(2)
    assert body["choice"] == "left"
    assert body["reviewer"] == "ana"
    assert body["protocol"] == "t1"
    assert judge(client, "ana", uid(2), uid(3), "similar").status_code == 409, "either order is one pair"
    assert judge(client, "ben", uid(2), uid(3), "right").status_code == 201, "another reviewer may"
    assert judge(client, "ana", uid(1), uid(6), "left").status_code == 422, "two protocols"
    assert judge(client, "ana", uid(1), uid(1), "left").status_code == 422
    assert judge(client, "ana", uid(1), uid(8), "left").status_code == 404, "a failed series has no quality"
    assert judge(client, "ana", uid(1), f"{ROOT}.999", "left").status_code == 404
    assert judge(client, "ana", uid(1), uid(2), "better").status_code == 422
    assert judge(client, "rita", uid(1), uid(2), "left").status_code == 403

    after = client.get("/api/v1/pairs/next", params={"protocol": "t1"}, headers=auth("ana")).json()
    assert {after["left"], after["right"]} != {uid(2), uid(3)}
    t1 = sorted(uid(n) for n in T1_QUALITIES)
    seen = {frozenset((uid(2), uid(3)))}
    for _ in range(len(t1) * (len(t1) - 1) // 2 - 1):
        pair = client.get("/api/v1/pairs/next", params={"protocol": "t1"}, headers=auth("ana")).json()
        seen.add(frozenset((pair["left"], pair["right"])))
        assert judge(client, "ana", pair["left"], pair["right"], "right").status_code == 201
    assert len(seen) == 10, "every pair of five series offered once"
    assert client.get("/api/v1/pairs/next", params={"protocol": "t1"}, headers=auth("ana")).status_code == 204
    assert client.get("/api/v1/pairs/next", params={"protocol": "t1"}, headers=auth("ben")).status_code == 200
    with seeded.sessions() as session:
        assert session.query(PairJudgement).count() == 11


def export(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/pairs/export", headers=auth("root"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_export_holds_every_judgement_and_a_slab_of_each_series(
    client: TestClient, seeded: Seeded
) -> None:
    settings = seeded.settings
    assert judge(client, "ana", uid(4), uid(1), "left").status_code == 201
    assert judge(client, "ben", uid(2), uid(4), "right").status_code == 201
    assert judge(client, "ben", uid(5), uid(1), "similar").status_code == 201
    assert judge(client, "ana", uid(6), uid(7), "right").status_code == 201
    assert client.get("/api/v1/pairs/export", headers=auth("ana")).status_code == 403
    dataset = export(client)
    path = Path(dataset["path"])
    assert json.loads(path.read_text())["pairs"] == dataset["pairs"]
    pairs = dataset["pairs"]
    assert [(p["left"], p["right"], p["choice"], p["reviewer"]) for p in pairs] == [
        (uid(4), uid(1), "left", "ana"),
        (uid(2), uid(4), "right", "ben"),
        (uid(5), uid(1), "similar", "ben"),
        (uid(6), uid(7), "right", "ana"),
    ]
    assert [p["slabs"] for p in pairs] == [True, True, False, True], "series 5's pixels were pruned"
    assert (pairs[0]["left_quality"], pairs[0]["right_quality"]) == (90.0, 50.0)
    with np.load(path.parent / dataset["slabs_file"]) as slabs:
        assert sorted(slabs.files) == sorted(uid(n) for n in (1, 2, 4, 6, 7))
        slab = slabs[uid(4)]
    assert slab.shape == (dataset["slab_slices"], 24, 20)
    assert slab.dtype == np.float32
    spooled = sorted(
        (pydicom.dcmread(path) for path in (settings.spool_dir / "4").glob("*.dcm")),
        key=lambda dataset: int(dataset.InstanceNumber),
    )
    middle = np.stack([dataset.pixel_array for dataset in spooled[2:7]]).astype(np.float32)
    np.testing.assert_array_equal(slab, middle, err_msg="the 5 central slices of the 8, as stored")


@pytest.fixture
def exported(client: TestClient) -> Path:
    """An export of judgements in which the series of higher quality (less noise) is chosen."""
    qualities = {**T1_QUALITIES, **FLAIR_QUALITIES}
    for left, right in ((4, 1), (2, 3), (1, 2), (3, 4), (7, 6)):
        choice = "left" if qualities[left] > qualities[right] else "right"
        assert judge(client, "ana", uid(left), uid(right), choice).status_code == 201
    return Path(export(client)["path"])


def pair_loss(model: Any, pairs: list[Any]) -> float:
    """The mean margin ranking loss over every pair, in eval mode."""
    import torch

    from qcgate.models.training.finetune_pairs import _loss

    model.eval()
    with torch.no_grad():
        return float(np.mean([float(_loss(model, pair, 0.1)) for pair in pairs]))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: two shared cores oversubscribed make a tiny network 40 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_finetuning_reads_only_the_export_and_writes_a_checkpoint(exported: Path, tmp_path: Path) -> None:
    import torch

    from qcgate.models.checkpoint import load_checkpoint, save_checkpoint
    from qcgate.models.nets.smoke import settle_batchnorm
    from qcgate.models.registry import create_model
    from qcgate.models.training.finetune_pairs import finetune, load_pairs, main, pair_accuracy

    pairs = load_pairs(exported, tile=16)
    assert len(pairs) == 5
    assert pairs[0].left.shape == (5, 16, 16), "centre-cropped to the tile"
    assert [p.target for p in pairs] == [1.0, -1.0, -1.0, -1.0, 1.0]

    tiny = {"width_mult": 0.1, "depth_mult": 0.1, "tile": 16, "dropout": 0.0}
    init = tmp_path / "init" / "rank_effnet.pt"
    save_checkpoint(init, create_model("rank_effnet", tiny), seed=0, data_version="test", steps=0)
    out = tmp_path / "site"
    assert main(["--pairs", str(exported), "--out", str(out), "--init", str(init), "--steps", "6"]) == 0
    checkpoint = load_checkpoint(out / "rank_effnet.pt")
    assert checkpoint.training["pairs"] == 5
    assert checkpoint.training["finetuned_from"] == str(init)
    assert checkpoint.training["normalisation"] == "stack_foreground_p99"
    report = json.loads((out / "finetune.json").read_text())
    assert len(report["losses"]) == 6

    model = create_model("rank_effnet", tiny)
    settle_batchnorm(model, [torch.from_numpy(v)[:, None] for p in pairs for v in (p.left, p.right)])
    before = pair_loss(model, pairs)
    frozen = model.get_submodule("stem")[0].weight.detach().clone()
    finetune(model, pairs, steps=40, lr=1e-3, margin=0.1, seed=2)
    assert pair_loss(model, pairs) < 0.5 * before, "the ranking loss over all pairs falls"
    accuracy = pair_accuracy(model, pairs)
    assert accuracy is not None
    assert accuracy >= 0.8, "the tiny model orders (nearly) all five pairs as the reader did"
    assert torch.equal(model.get_submodule("stem")[0].weight, frozen), "only the head is trained"


def test_the_training_side_does_not_import_the_runtime() -> None:
    source = Path(__file__).resolve().parent.parent / "models/qcgate/models/training/finetune_pairs.py"
    runtime = ("qcgate.api", "qcgate.store", "qcgate.assessment", "qcgate.core", "qcgate.worker")
    imports = [line for line in source.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert imports
    assert not [line for line in imports if any(f" {package}" in line for package in runtime)]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_finetuned_model_exports_with_its_own_manifest_entry_and_device_uid(
    exported: Path, tmp_path: Path
) -> None:
    from qcgate.contract.manifest import default_manifest_path
    from qcgate.export.onnx_export import export_checkpoint
    from qcgate.models.checkpoint import save_checkpoint
    from qcgate.models.registry import create_model
    from qcgate.models.training.finetune_pairs import main

    init = tmp_path / "init" / "rank_effnet.pt"
    tiny = {"width_mult": 0.1, "depth_mult": 0.1, "tile": 32}
    save_checkpoint(init, create_model("rank_effnet", tiny), seed=0, data_version="test", steps=0)
    out = tmp_path / "site"
    assert main(["--pairs", str(exported), "--out", str(out), "--init", str(init), "--steps", "3"]) == 0
    site = tmp_path / "site-models"
    entry = export_checkpoint(out / "rank_effnet.pt", site, version="site-test", name="site_rank")
    manifest = json.loads((site / "manifest.json").read_text())
    (recorded,) = [m for m in manifest["models"] if m["name"] == "site_rank"]
    assert (recorded["file"], recorded["version"]) == ("site_rank.onnx", "site-test")
    assert recorded["device_uid"] == entry.device_uid
    shipped = json.loads(default_manifest_path().read_text())
    assert entry.device_uid not in {m["device_uid"] for m in shipped["models"]}, "a new Device UID"
    assert recorded["provenance"]["data_version"].endswith(f"+pairs:{exported.stem}")

    # The service scores it beside the shipped models (site_models_dir), never in their place.
    from qcgate.contract.manifest import ManifestError
    from qcgate.imaging.volume import Stack
    from qcgate.metrics.learned import load_learned_suites

    suites = load_learned_suites(threads=1, site_models_dir=site)
    names = [suite.name for suite in suites]
    assert names[-1] == "site_rank"
    assert {m["name"] for m in shipped["models"]} <= set(names), "the shipped models stay"
    voxels = np.random.default_rng(0).random((3, 40, 40), dtype=np.float32)
    stack = Stack(voxels, (1.0, 1.0, 1.0), None, ("1", "2", "3"), "axial")
    [result] = suites[-1].evaluate(stack)
    assert result.name == "site_rank"
    assert np.isfinite(result.value)
    export_checkpoint(out / "rank_effnet.pt", tmp_path / "misnamed", version="site-test")
    with pytest.raises(ManifestError, match="site_"):
        load_learned_suites(threads=1, site_models_dir=tmp_path / "misnamed")
    with pytest.raises(ManifestError, match="manifest.json"):
        load_learned_suites(threads=1, site_models_dir=tmp_path / "nowhere")


def test_retention_deletes_a_series_judgements_with_it(client: TestClient, seeded: Seeded) -> None:
    from qcgate.store.retention import apply_retention

    assert judge(client, "ana", uid(1), uid(2), "left").status_code == 201
    assert judge(client, "ben", uid(6), uid(7), "right").status_code == 201
    later = T0 + timedelta(days=seeded.settings.retention_results_days + 30)
    done = apply_retention(seeded.settings, seeded.sessions, later)  # SQLite enforces foreign keys
    assert len(done.results) == 8
    with seeded.sessions() as session:
        assert session.query(PairJudgement).count() == 0
        assert session.query(Series).count() == 0


@pytest.mark.peers
def test_pairs_and_trends_on_postgresql_and_migration_0008_down_and_up(
    postgres_url: str, tmp_path: Path
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect

    from qcgate.store.database import MIGRATIONS_DIR

    settings = get_settings(data_dir=tmp_path / "data", database_url=postgres_url)
    upgrade_database(postgres_url)
    engine = create_database_engine(postgres_url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        study = Study(study_instance_uid=f"{ROOT}.1", created_at=T0)
        session.add(study)
        session.flush()
        for number in (1, 2, 3):
            add_series(session, settings, study, number, "t1", T1_QUALITIES[number])
    app = create_app(settings, sessions, create_celery(settings))
    with TestClient(app) as client:
        pair = client.get("/api/v1/pairs/next").json()
        assert {pair["left"], pair["right"]} == {uid(2), uid(3)}
        assert client.post("/api/v1/pairs", json={**pair, "choice": "left"}).status_code == 201
        assert [p["quality"] for p in client.get("/api/v1/trends").json()["points"]] == [50.0, 60.0, 62.0]
        assert client.get("/api/v1/drift").json()[0]["n"] == 3
    app.state.celery.close()
    engine.dispose()

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", postgres_url)
    command.downgrade(config, "0007")
    inspector = inspect(create_engine(postgres_url))
    assert "pair_judgements" not in inspector.get_table_names()
    assert "protocol_name" not in {column["name"] for column in inspector.get_columns("series")}
    upgrade_database(postgres_url)
    assert "pair_judgements" in inspect(create_engine(postgres_url)).get_table_names()
