"""``qcgate demo``: the quickest way to see qcgate work.

Writes one synthetic head series twice (clean, and degraded with noise and blur), sends both to a
running qcgate over DICOM, waits for their assessments over REST and prints them side by side.
"""

from __future__ import annotations

import sys
import tempfile
import time
from math import nan
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from qcgate.synthetic.dicom_series import mr_series_datasets, write_series
from qcgate.synthetic.volumes import add_rician_noise, blur, phantom_volume

DEMO_SHAPE = (32, 192, 192)
CLEAN_NOISE_FRACTION = 0.01  # every real scan has thermal noise; the clean copy too
DEGRADED_NOISE_FRACTION = 0.15  # noise sigma as a fraction of the brightest tissue
DEGRADED_BLUR_FWHM_PX = 2.5
FINAL_STATUSES = ("done", "not_assessable", "failed")


def write_demo_series(directory: Path, seed: int = 7) -> dict[str, list[Path]]:
    """Clean and degraded copies of one phantom, as two series of one study."""
    anatomy = phantom_volume(DEMO_SHAPE, seed=seed)
    bright = float(np.percentile(anatomy, 99))
    clean = add_rician_noise(anatomy, bright * CLEAN_NOISE_FRACTION, seed=seed)
    degraded = add_rician_noise(
        blur(anatomy, DEGRADED_BLUR_FWHM_PX), bright * DEGRADED_NOISE_FRACTION, seed=seed
    )
    study_uid = generate_uid()
    series = {}
    for number, (name, volume) in enumerate((("clean", clean), ("degraded", degraded)), start=1):
        datasets = mr_series_datasets(
            volume,
            series_description=f"qcgate demo {name}",
            study_instance_uid=study_uid,
            series_number=number,
            spacing_mm=(4.0, 1.2, 1.2),
        )
        series[str(datasets[0].SeriesInstanceUID)] = write_series(datasets, directory / name)
    return series


def send_files(host: str, port: int, called_ae: str, files: list[Path]) -> None:
    ae = AE(ae_title="QCGATE_DEMO")
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        raise ConnectionError(f"no association with {called_ae}@{host}:{port}")
    try:
        for path in files:
            status = assoc.send_c_store(path)
            if int(status.get("Status", -1)) != 0:
                raise RuntimeError(f"{path.name} refused with status {status.get('Status')}")
    finally:
        assoc.release()


def wait_for(api: str, series_uids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    results: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=api, timeout=10) as client:
        while time.monotonic() < deadline and len(results) < len(series_uids):
            for uid in series_uids:
                response = client.get(f"/api/v1/series/{uid}")
                if response.status_code == 200 and response.json()["status"] in (
                    "done",
                    "not_assessable",
                    "failed",
                ):
                    results[uid] = response.json()
            print(f"\rwaiting for scores: {len(results)}/{len(series_uids)}", end="", file=sys.stderr)  # noqa: T201
            time.sleep(0.5)
    print(file=sys.stderr)  # noqa: T201
    if len(results) < len(series_uids):
        raise TimeoutError(f"no result within {timeout:.0f} s; is the worker running?")
    return results


def run_demo(to: str, api: str, called_ae: str, timeout: float) -> int:
    host, _, port = to.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="qcgate-demo-") as folder:
        series = write_demo_series(Path(folder))
        for files in series.values():
            send_files(host or "127.0.0.1", int(port), called_ae, files)
    print(f"sent {sum(map(len, series.values()))} instances in {len(series)} series to {to}")  # noqa: T201
    results = wait_for(api, list(series), timeout)
    names = sorted({name for result in results.values() for name in result["metrics"]})
    print(f"{'metric':<10}" + "".join(f"{r['series_description']:>26}" for r in results.values()))  # noqa: T201
    for name in names:
        values = "".join(f"{r['metrics'].get(name, {}).get('value', nan):>26.4g}" for r in results.values())
        print(f"{name:<10}{values}")  # noqa: T201
    print(f"{'flag':<10}" + "".join(f"{str(r['flag']).upper():>26}" for r in results.values()))  # noqa: T201
    for result in results.values():
        for reason in result["reasons"]:
            print(f"  {result['series_description']}: {reason}")  # noqa: T201
    return 0
