"""The delivery benchmark in its tiny form, against each PACS: small series, two rounds of each kind.

Only the shape of the result is under test, and that its durations and rates are positive finite
numbers; timings are never asserted (the machines are shared and noisy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from qcgate.bench.delivery import SENDERS, main
from qcgate.bench.delivery_peers import PACS_KINDS

pytestmark = [pytest.mark.peers, pytest.mark.slow]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LATENCY_PHASES = ("latency_s", "pickup_s", "send_s", "finished_to_delivered_s")


def positive_finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.fixture(params=PACS_KINDS)
def out(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    arguments = ["--tiny", "--series", "2", "--rounds", "2", "--pacs", request.param, "--out", str(tmp_path)]
    assert main(arguments) == 0
    return tmp_path


def test_tiny_run_writes_every_measurement_and_its_summary(out: Path) -> None:
    result: dict[str, Any] = json.loads((out / "delivery.json").read_text())
    assert {"measured_at", "qcgate_version", "cpus", "dcmtk", "pacs"} <= set(result["environment"])
    assert result["settings"]["series"] == 2
    assert result["settings"]["rounds"] == 2

    latency = result["latency"]
    assert len(latency["series"]) == 2
    for series in [latency["cold"], *latency["series"]]:
        assert series["attempts"] == 1
        assert series["sr_sop_instance_uid"]
        assert all(positive_finite(series[phase]) for phase in LATENCY_PHASES)
        assert series["pickup_s"] + series["send_s"] <= series["latency_s"]
    for phase in LATENCY_PHASES:
        assert latency["summary"][phase]["n"] == 2
        assert latency["summary"][phase]["median"] <= latency["summary"][phase]["p95"]
    assert isinstance(latency["summary"]["meets_goal"], bool)

    forward = result["forward"]
    assert [r["order"] for r in forward["rounds"]] == [list(SENDERS[::-1]), list(SENDERS)]  # interleaved
    for round_ in forward["rounds"]:
        assert round_["instances"] == 10
        assert all(positive_finite(round_[f"{sender}_instances_per_s"]) for sender in SENDERS)
        assert round_["qcgate_send_s"] <= round_["qcgate_s"]
    for sender in SENDERS:
        assert positive_finite(forward["summary"][sender]["megabytes_per_s"]["median"])
    assert positive_finite(forward["summary"]["ratio"])

    report = (out / "delivery.md").read_text()
    assert "SR latency" in report
    assert "qcgate / storescu" in report
    assert (out / "delivery.png").read_bytes().startswith(PNG_MAGIC)
