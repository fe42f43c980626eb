"""The QC page's server time: the worklist over 10,000 series and the mosaic of a 176-slice series.

Everything runs in-process (``create_app`` on a migrated SQLite store, Starlette's TestClient), so
the figures are the server's own time: routing, queries, header reads, template rendering, decoding
and PNG encoding; no network and no browser.

(a) **Worklist.** 10,000 series are written straight into the store (one study; each series with
one instance and a current assessment with a quality and findings; the instances' headers are 200
small DICOM files in the spool, so the patient columns read real headers). Timed: ``GET /`` with
the default 100 rows and with 1,000 (the most one page shows), both for a client with the images
role (patient columns: one header read per series, cached) and the first request with a cold
header cache; ``GET /worklist/rows`` (the live update); and, to bound it, the rows of all 10,000
series rendered by the same functions. Goal: under 1 s.

(b) **Mosaic.** A 176x256x256 MR series (the synthetic head phantom, one file per slice) is spooled
and recorded. Cold: a fresh app and an empty image cache each round, so the request reads and
decodes 176 files, stacks them, draws the mosaic and encodes the PNG (the first request after
scoring). Cached: the same request again (a file read). Also a slice PNG, decoded series in memory.
Goals: mosaic under 1 s cold and 50 ms cached.

Writes ``page.json`` and ``page.md`` into ``--out`` (default bench/out); the markdown also goes to
stdout, progress to stderr. Medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import insert

from qcgate.api.app import create_app
from qcgate.api.web.templating import environment as templates
from qcgate.api.web.worklist import WorklistFilters, worklist_rows
from qcgate.bench.common import OUT_DIR, progress
from qcgate.bench.environment import environment
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, get_settings
from qcgate.harness.spooled import spool_and_record
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.tables import Assessment, Instance, Series, Study
from qcgate.synthetic.dicom_series import mr_series_datasets
from qcgate.synthetic.volumes import phantom_volume
from qcgate.worker.celery_app import create_celery

WORKLIST_SERIES = 10_000
HEADER_FILES = 200
MOSAIC_SHAPE = (176, 256, 256)
TOKEN = "bench-page-token-0123456789abcdef"
GOALS = {"worklist_s": 1.0, "mosaic_cold_s": 1.0, "mosaic_cached_s": 0.05}
ROOT = "1.2.826.0.1.3680043.10.1099.77"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _app(settings: Settings) -> tuple[TestClient, Callable[[], None]]:
    engine = create_database_engine(settings.effective_database_url)
    app = create_app(settings, session_factory(engine), create_celery(settings))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {TOKEN}"

    def close() -> None:
        client.close()
        app.state.celery.close()
        engine.dispose()

    return client, close


def _timed(call: Callable[[], Any], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _get(client: TestClient, path: str) -> Callable[[], None]:
    def call() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} -> {response.status_code}: {response.text[:300]}")

    return call


def seed_worklist(settings: Settings, count: int) -> None:
    """``count`` series with an instance and an assessment each, inserted in bulk."""
    header_paths = []
    pixels = np.zeros((8, 8, 8), dtype=np.float32)
    for number in range(HEADER_FILES):
        ds = mr_series_datasets(pixels, series_description="bench", patient_id=f"PAT{number:05d}")[0]
        ds.AccessionNumber = f"ACC{number:05d}"
        path = settings.spool_dir / "headers" / f"{number}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        header_paths.append(str(path.relative_to(settings.spool_dir)))
    protocols = ["t1_mprage_sag", "t2_tse_tra", "flair_tra", "dwi_b1000", "swi_tra"]
    stations = [f"MRC{n:05d}" for n in range(6)]
    engine = create_database_engine(settings.effective_database_url)
    with session_factory(engine).begin() as session:
        session.execute(insert(Study), [{"id": 1, "study_instance_uid": f"{ROOT}.1", "created_at": T0}])
        series_rows, instance_rows, assessment_rows = [], [], []
        for n in range(1, count + 1):
            at = T0 + timedelta(minutes=3 * n)
            flag = (Flag.PASS, Flag.PASS, Flag.PASS, Flag.WARN, Flag.FAIL)[n % 5]
            protocol = protocols[n % len(protocols)]
            series_rows.append(
                {
                    "id": n,
                    "series_instance_uid": f"{ROOT}.2.{n}",
                    "study_id": 1,
                    "modality": "MR",
                    "station_name": stations[n % len(stations)],
                    "series_description": protocol,
                    "status": SeriesStatus.DONE,
                    "flag": flag,
                    "revision": 1,
                    "instance_count": 1,
                    "first_received_at": at,
                    "last_received_at": at,
                }
            )
            instance_rows.append(
                {
                    "sop_instance_uid": f"{ROOT}.3.{n}",
                    "series_id": n,
                    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.4",
                    "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                    "spool_path": header_paths[n % HEADER_FILES],
                    "size_bytes": 1000,
                    "received_at": at,
                }
            )
            findings = [{"kind": "motion", "severity": 55.0, "slices": [7, 3], "stack": "sagittal"}]
            assessment_rows.append(
                {
                    "series_id": n,
                    "revision": 1,
                    "outcome": SeriesStatus.DONE,
                    "flag": flag,
                    "reasons": [],
                    "metrics": {},
                    "stacks": [],
                    "provenance": {},
                    "quality": float(40 + n % 60),
                    "findings": findings if flag != Flag.PASS else [],
                    "instance_count": 1,
                    "started_at": at,
                    "finished_at": at + timedelta(seconds=4),
                }
            )
        session.execute(insert(Series), series_rows)
        session.execute(insert(Instance), instance_rows)
        session.execute(insert(Assessment), assessment_rows)
    engine.dispose()


def bench_worklist(work: Path, rounds: int) -> dict[str, Any]:
    settings = get_settings(
        data_dir=work / "worklist", api_clients={"physicist": {"token": TOKEN, "role": "images"}}
    )
    upgrade_database(settings.effective_database_url)
    progress(f"seeding {WORKLIST_SERIES} series")
    seed_worklist(settings, WORKLIST_SERIES)
    client, close = _app(settings)
    try:
        cold = _timed(_get(client, "/"), 1)[0]  # patient header cache empty: 100 header reads
        result = {
            "series": WORKLIST_SERIES,
            "first_request_cold_headers_s": cold,
            "worklist_100_s": _timed(_get(client, "/"), rounds),
            "worklist_1000_s": _timed(_get(client, "/?limit=1000"), max(3, rounds // 2)),
            "rows_100_s": _timed(_get(client, "/worklist/rows"), rounds),
            "filtered_warn_100_s": _timed(_get(client, "/?flag=warn"), rounds),
        }
        engine = create_database_engine(settings.effective_database_url)
        sessions = session_factory(engine)

        def everything() -> None:
            with sessions() as session:
                rows = worklist_rows(session, WorklistFilters(limit=WORKLIST_SERIES), None)
            html = templates().get_template("_rows.html").render(rows=rows, may_images=False)
            assert html.count("<tr data-uid=") == WORKLIST_SERIES

        result["all_10000_rows_s"] = _timed(everything, 3)
        engine.dispose()
    finally:
        close()
    return result


def bench_mosaic(work: Path, rounds: int) -> dict[str, Any]:
    settings = get_settings(
        data_dir=work / "mosaic", api_clients={"physicist": {"token": TOKEN, "role": "images"}}
    )
    upgrade_database(settings.effective_database_url)
    progress(f"writing a {MOSAIC_SHAPE} series")
    datasets = mr_series_datasets(phantom_volume(MOSAIC_SHAPE), series_description="bench mosaic")
    engine = create_database_engine(settings.effective_database_url)
    with session_factory(engine).begin() as session:
        for ds in datasets:
            ds.StationName = "BENCH"
        spool_and_record(settings, session, datasets, T0, "BENCH")
    engine.dispose()
    uid = str(datasets[0].SeriesInstanceUID)
    mosaic, middle = f"/api/v1/series/{uid}/mosaic.png", f"/api/v1/series/{uid}/slices/88.png"
    cache = settings.data_dir / "cache"
    cold, size = [], 0
    for number in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        client, close = _app(settings)  # a fresh process's memory: nothing decoded
        try:
            start = time.perf_counter()
            response = client.get(mosaic)
            cold.append(time.perf_counter() - start)
            size = len(response.content)
            if response.status_code != 200:
                raise RuntimeError(response.text)
            if number == rounds - 1:
                cached = _timed(_get(client, mosaic), rounds * 10)
                slice_first = _timed(_get(client, middle), 1)[0]
                slice_cached = _timed(_get(client, middle), rounds * 10)
                windows = iter(range(300, 300 + 10 * rounds))  # a new window each time: never cached
                window = [
                    _timed(_get(client, f"{middle}?window={next(windows)}&level=500"), 1)[0]
                    for _ in range(rounds * 2)
                ]
        finally:
            close()
    return {
        "shape": list(MOSAIC_SHAPE),
        "mosaic_png_bytes": size,
        "mosaic_cold_s": cold,
        "mosaic_cached_s": cached,
        "slice_first_s": slice_first,
        "slice_cached_s": slice_cached,
        "slice_new_window_s": window,
    }


def _median_ms(values: list[float] | float) -> str:
    value = statistics.median(values) if isinstance(values, list) else values
    return f"{value * 1000:.1f}"


def markdown(result: dict[str, Any]) -> str:
    w, m = result["worklist"], result["mosaic"]
    rows = [
        (
            "worklist `GET /`, 100 rows, images role",
            _median_ms(w["worklist_100_s"]),
            f"{GOALS['worklist_s'] * 1000:.0f}",
        ),
        (
            "worklist `GET /`, first request (100 header reads)",
            _median_ms(w["first_request_cold_headers_s"]),
            "",
        ),
        (
            "worklist `GET /?limit=1000`",
            _median_ms(w["worklist_1000_s"]),
            f"{GOALS['worklist_s'] * 1000:.0f}",
        ),
        ("worklist `GET /?flag=warn`", _median_ms(w["filtered_warn_100_s"]), ""),
        ("live update `GET /worklist/rows`", _median_ms(w["rows_100_s"]), ""),
        ("all 10,000 rows rendered (functions, no HTTP)", _median_ms(w["all_10000_rows_s"]), ""),
        ("mosaic 176x256x256, cold", _median_ms(m["mosaic_cold_s"]), f"{GOALS['mosaic_cold_s'] * 1000:.0f}"),
        ("mosaic, cached", _median_ms(m["mosaic_cached_s"]), f"{GOALS['mosaic_cached_s'] * 1000:.0f}"),
        ("slice PNG, series in memory", _median_ms(m["slice_first_s"]), ""),
        ("slice PNG, cached", _median_ms(m["slice_cached_s"]), ""),
        ("slice PNG, a new window/level", _median_ms(m["slice_new_window_s"]), ""),
    ]
    env = result["environment"]
    load = env.get("load_average_at_start", (0.0,))[0]
    lines = [
        f"QC page server time ({env['measured_at']}, {env['cpus']} CPUs, load average {load:.1f} at the "
        f"start, {WORKLIST_SERIES:,} series in the store; medians)\n",
        "| request | ms | goal ms |",
        "|---|---|---|",
        *[f"| {name} | {value} | {goal} |" for name, value, goal in rows],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qcgate-bench-page", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-page-") as temporary:
        work = Path(temporary)
        result = {
            "environment": {**environment(), "load_average_at_start": os.getloadavg()},
            "worklist": bench_worklist(work, args.rounds * 2),
            "mosaic": bench_mosaic(work, args.rounds),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "page.json").write_text(json.dumps(result, indent=2) + "\n")
    report = markdown(result)
    (args.out / "page.md").write_text(report)
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
