"""``qcgate score --json`` runs the worker's pipeline offline and prints the REST document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qcgate.harness.peers import QCGate, storescu
from qcgate.synthetic.demo_series import noisy_phantom, write_phantom_series
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series


@pytest.mark.peers
def test_score_json_matches_the_rest_document(start_qcgate: Callable[..., QCGate], tmp_path: Path) -> None:
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(10, 96, 96))
    gate = start_qcgate()
    assert storescu(gate.dicom_port, files).returncode == 0
    served = gate.wait_for_series(series_uid)

    scored = subprocess.run(
        [sys.executable, "-m", "qcgate.cli.main", "score", "--json", str(tmp_path / "series")],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = scored.stdout.splitlines()
    assert len(lines) == 1
    offline = json.loads(lines[0])
    assert set(offline) == set(served)
    assert offline["series_instance_uid"] == series_uid
    assert offline["flag"] == served["flag"]
    assert offline["metrics"] == served["metrics"]


@pytest.mark.slow  # a `qcgate score` process imports the whole stack: about 2 s
def test_score_separates_series_and_skips_non_dicom(tmp_path: Path) -> None:
    write_phantom_series(tmp_path / "a", shape=(8, 64, 64), seed=1)
    write_phantom_series(tmp_path / "b", shape=(8, 64, 64), seed=2)
    (tmp_path / "notes.txt").write_text("not an image")
    scored = subprocess.run(
        [sys.executable, "-m", "qcgate.cli.main", "score", "--json", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = [json.loads(line) for line in scored.stdout.splitlines()]
    assert len(results) == 2
    assert all(result["status"] == "done" for result in results)
    assert "notes.txt" in scored.stderr


@pytest.mark.slow  # a `qcgate score` process imports the whole stack: about 2 s
def test_score_without_mr_series_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("nothing")
    scored = subprocess.run(
        [sys.executable, "-m", "qcgate.cli.main", "score", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 2
    assert "no MR image series" in scored.stderr


@pytest.mark.slow  # a `qcgate score` process imports the whole stack: about 2 s
def test_the_acquired_grid_setting_reaches_qcgate_score(tmp_path: Path) -> None:
    volume = noisy_phantom((8, 128, 128))
    write_series(
        mr_series_datasets(volume, series_description="t1", acquired_share=(0.5, 0.5)), tmp_path / "s"
    )
    command = [sys.executable, "-m", "qcgate.cli.main", "score", "--json", str(tmp_path / "s")]
    environment = {**os.environ, "QCGATE_VERDICT_ACQUIRED_GRID": "true"}
    told = json.loads(
        subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    )
    plain = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert list(told["provenance"]["verdict"]["acquired_grid"].values()) == [[64, 64]]
    assert "acquired_grid" not in plain["provenance"]["verdict"]
