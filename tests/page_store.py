"""A small real store for the QC page's tests: a migrated SQLite database with synthetic MR series
spooled as real DICOM files (so the image endpoints decode real pixels), and the app on it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydicom.dataset import FileDataset
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qcgate.api.app import create_app
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, get_settings
from qcgate.harness.spooled import spool_and_record
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import (
    claim_series,
    queue_quiet_series,
    series_by_uid,
    store_assessment,
)
from qcgate.synthetic.dicom_series import mr_series_datasets
from qcgate.synthetic.volumes import phantom_volume
from qcgate.worker.celery_app import create_celery

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ROOT = "1.2.826.0.1.3680043.10.1099.14"
STUDY_UID = f"{ROOT}.1"
HEADER_UID = f"{ROOT}.2.1"  # 12 axial slices, WindowCenter/WindowWidth in the header, scored
AUTO_UID = f"{ROOT}.2.2"  # 12 axial slices without a window; 3 sagittal slices numbered 101-103
PRUNED_UID = f"{ROOT}.2.3"  # pixels pruned by retention
NO_IMAGES_UID = f"{ROOT}.2.4"  # recorded, but only a non-MR instance
UNKNOWN_UID = f"{ROOT}.999"
HEADER_WINDOW = (1000.0, 400.0)  # level, window
PATIENT_ID = "PAGE^TEST^0001"
ACCESSION = "ACC-14-0001"
SLICES = 12


def finding_document() -> dict[str, Any]:
    """A scored document with a warning finding whose worst slices are 7 and 3 (InstanceNumbers)."""
    return {
        "status": "done",
        "instances": SLICES,
        "flag": "warn",
        "quality": 42.0,
        "findings": [{"kind": "motion", "severity": 61.0, "slices": [7, 3], "stack": "axial"}],
        "reasons": ["motion: severity 61 over the warn limit 50"],
        "metrics": {"snr": {"value": 9.5, "higher_is_better": True}},
        "stacks": [
            {
                "label": "axial",
                "shape": [SLICES, 64, 64],
                "scored": True,
                "skipped_reason": "",
                "metrics": {
                    "snr": {
                        "value": 9.5,
                        "higher_is_better": True,
                        "per_slice": [float(v) for v in range(SLICES)],
                    }
                },
            }
        ],
        # judged with verdict_acquired_grid on: the stack was read on the grid its header gives
        "provenance": {"software_version": "0.1.0", "verdict": {"acquired_grid": {"axial": [48, 64]}}},
    }


def _spool(settings: Settings, session: Session, datasets: list[FileDataset], at: datetime) -> None:
    spool_and_record(settings, session, datasets, at, "MR1", step=timedelta(seconds=1))


def _series(uid: str, description: str, slices: int = SLICES, **options: Any) -> list[FileDataset]:
    volume = phantom_volume((max(slices, 8), 64, 64), seed=len(uid))[:slices]
    return mr_series_datasets(
        volume,
        series_description=description,
        patient_id=PATIENT_ID,
        study_instance_uid=STUDY_UID,
        series_instance_uid=uid,
        uid_seed=uid,
        study_datetime=T0,
        **options,
    )


def seed_page_store(settings: Settings) -> None:
    """Migrate and fill ``settings``' store: the four series above, one of them assessed."""
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        header = _series(HEADER_UID, "t1_mprage_tra")
        for ds in header:
            ds.WindowCenter, ds.WindowWidth = str(HEADER_WINDOW[0]), str(HEADER_WINDOW[1])
            ds.AccessionNumber = ACCESSION
        _spool(settings, session, header, T0)
        axial = _series(AUTO_UID, "t2_tse")
        sagittal = _series(AUTO_UID, "t2_tse", slices=3, orientation="sagittal")
        for number, ds in enumerate(sagittal, 101):
            ds.InstanceNumber = number
            ds.SOPInstanceUID = f"{AUTO_UID}.9.{number}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _spool(settings, session, axial + sagittal, T0 + timedelta(minutes=1))
        _spool(settings, session, _series(PRUNED_UID, "pruned"), T0 + timedelta(minutes=2))
        ct = _series(NO_IMAGES_UID, "ct scout", slices=1, modality="CT")
        ct[0].SOPClassUID = ct[0].file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        _spool(settings, session, ct, T0 + timedelta(minutes=3))
        queue_quiet_series(session, T0 + timedelta(minutes=9), T0 + timedelta(minutes=10))
        series = series_by_uid(session, HEADER_UID)
        assert series is not None
        claimed = claim_series(session, series.id, T0 + timedelta(minutes=11))
        assert claimed is not None
        assert claimed.lease_token is not None
        stored = store_assessment(
            session,
            series.id,
            claimed.revision,
            SeriesStatus.DONE,
            finding_document(),
            T0 + timedelta(minutes=11),
            T0 + timedelta(minutes=12),
            claimed.lease_token,
        )
        assert stored is not None
        assert series.flag == Flag.WARN
        pruned = series_by_uid(session, PRUNED_UID)
        assert pruned is not None
        pruned.pixels_pruned_at = T0 + timedelta(days=31)
        shutil.rmtree(settings.spool_dir / STUDY_UID / PRUNED_UID)
    engine.dispose()


@dataclass
class PageApp:
    app: FastAPI
    client: TestClient
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.client.close()
        self.app.state.celery.close()
        self.engine.dispose()


def page_app(template: Path, data_dir: Path, monkeypatch: Any, **overrides: Any) -> PageApp:
    """The app on a copy of the seeded data directory ``template``, with these settings."""
    shutil.copytree(template, data_dir)
    settings = get_settings(data_dir=data_dir, **overrides)
    settings.metrics_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    app = create_app(settings, sessions, create_celery(settings))
    return PageApp(app, TestClient(app), settings, engine, sessions)


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit greyscale PNG (as png_grey writes it) back to its pixels, to check them."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    idat = b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        if kind == b"IDAT":
            idat += body
        chunks[kind] = body
        offset += 12 + length
    columns, rows, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 0)
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(rows, columns + 1)
    assert (raw[:, 0] == 0).all(), "filter type None on every row"
    return raw[:, 1:]
