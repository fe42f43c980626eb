"""The verdict through the real receiver and worker: a clean synthetic series passes; the same series
blurred, ghosted or moved is flagged with the matching finding, in REST and in the SR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qcgate.harness.peers import QCGate, storescu
from qcgate.models.corruption import corrupt
from qcgate.sr.codes import ARTIFACT_KINDS
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume

pytestmark = [pytest.mark.peers, pytest.mark.slow]

SHAPE = (16, 128, 128)
# Simulator kind -> the finding the verdict must report for it (severity 0.9: clearly non-diagnostic).
DEGRADED = {"blur": "blur", "nyquist_ghost": "ghosting"}
WORDS = {"blur": "blur", "ghosting": "ghosting", "motion": "motion artifact"}  # as the reasons say it


def _clean_volume() -> np.ndarray:
    anatomy = phantom_volume(SHAPE, seed=11)
    return add_rician_noise(anatomy, float(np.percentile(anatomy, 99)) * 0.01, seed=11)


def _send(gate: QCGate, volume: np.ndarray, directory: Path, description: str) -> tuple[str, list[Path]]:
    datasets = mr_series_datasets(volume.astype(np.float32), series_description=description)
    files = write_series(datasets, directory)
    assert storescu(gate.dicom_port, files).returncode == 0
    return str(datasets[0].SeriesInstanceUID), files


def _sr_artifact_kinds(gate: QCGate, series_uid: str) -> list[str]:
    """The finding kinds the series' current SR codes, read from the file REST serves."""
    reports = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
    newest = max(reports, key=lambda report: report["instance_number"])
    path = gate.data_dir / "report.dcm"
    path.write_bytes(gate.get(newest["href"]).content)
    kinds = {code.value: kind for kind, code in ARTIFACT_KINDS.items()}
    found = []
    for item in pydicom.dcmread(path).iterall():
        if getattr(item, "keyword", "") != "ContentSequence":
            continue
        for content in item.value:
            name = content.get("ConceptNameCodeSequence")
            if name and name[0].CodeValue == "111207":
                found.append(kinds[content.ConceptCodeSequence[0].CodeValue])
    return found


def _assert_flagged_with(gate: QCGate, series_uid: str, finding: str) -> None:
    body = gate.wait_for_series(series_uid)
    assert body["flag"] in ("warn", "fail"), (finding, body["quality"], body["findings"])
    assert finding in [found["kind"] for found in body["findings"]], (finding, body["findings"])
    assert any(WORDS[finding] in reason for reason in body["reasons"]), body["reasons"]
    assert finding in _sr_artifact_kinds(gate, series_uid)


def test_clean_passes_and_degraded_copies_are_flagged_with_the_matching_finding(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate()
    clean = _clean_volume()
    clean_uid, _ = _send(gate, clean, tmp_path / "clean", "verdict clean")
    sent = {}
    for kind, finding in DEGRADED.items():
        degraded, _ = corrupt(clean, kind, 0.9, np.random.default_rng(5))
        sent[finding] = _send(gate, degraded, tmp_path / kind, f"verdict {kind}")[0]

    body = gate.wait_for_series(clean_uid)
    assert body["flag"] == "pass", body["reasons"]
    assert body["findings"] == []
    assert _sr_artifact_kinds(gate, clean_uid) == []
    for finding, series_uid in sent.items():
        _assert_flagged_with(gate, series_uid, finding)


@pytest.mark.xfail(
    strict=True,
    reason="verdict 0.7.1 misses rigid motion on this phantom: translation at severity 0.9 scores quality "
    "~84 and a motion severity ~18, under the warning limits of 67 and 40 (docs/verdict.md, what is short)",
)
def test_a_moved_copy_is_flagged_with_a_motion_finding(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate()
    moved, _ = corrupt(_clean_volume(), "motion_translation", 0.9, np.random.default_rng(5))
    series_uid, _ = _send(gate, moved, tmp_path / "moved", "verdict motion")
    _assert_flagged_with(gate, series_uid, "motion")
