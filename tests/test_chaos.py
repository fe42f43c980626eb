"""The chaos run in its short form (issue 12): series stream into a receiver and 3 workers while a
worker, Redis, PostgreSQL and the receiver are each killed and restarted at least once; nothing
acknowledged is lost, nothing is scored or reported twice per revision (``qcgate.bench.chaos``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcgate.bench.chaos import run

pytestmark = [pytest.mark.peers, pytest.mark.slow]


def test_kills_and_restarts_lose_nothing_and_do_nothing_twice(tmp_path: Path) -> None:
    result = run(series_count=6, shape=(12, 64, 64), workers=3, every_s=2.0, root=tmp_path)
    assert result["checks"] == dict.fromkeys(result["checks"], True), result
    assert min(result["kills"].values()) >= 1, result["kills"]
    assert result["instances"] >= 6 * 12
