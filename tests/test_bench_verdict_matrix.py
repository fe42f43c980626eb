"""The verdict-by-matrix benchmark: its clean slices have the matrix of their band, cover the
object (the field of view is not cut through it) and are scored by the shipped verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qcgate.bench.verdict_matrix import BANDS, FIRST_SEED, clean_slice, measure, model_and_limits, report
from qcgate.contract.verdict_model import default_verdict_path
from qcgate.core.settings import VerdictLimits
from qcgate.models.verdict.generate import SPLITS


def test_its_seeds_are_in_no_training_validation_or_test_split() -> None:
    assert all(FIRST_SEED >= split.stop or FIRST_SEED + 1000 < split.start for split in SPLITS.values())


@pytest.mark.parametrize("band", list(BANDS))
def test_each_band_synthesises_clean_slices_of_its_matrix(band: str) -> None:
    low, high = BANDS[band]
    image = clean_slice(FIRST_SEED + 3, band)
    assert low <= max(image.shape) <= high
    assert image.dtype == np.float32
    assert np.isfinite(image).all()
    assert image.min() >= 0
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    assert np.median(edges) < 0.2 * np.percentile(image, 99)  # air at the edges: the object fits


def test_the_result_counts_every_slice_and_the_report_shows_every_band() -> None:
    result = measure(images=2, jobs=1)
    assert set(result["bands"]) == set(BANDS)
    for band in result["bands"].values():
        assert band["slices"] == 2 == len(band["per_slice"])
        assert all(0 <= s["quality"] <= 100 for s in band["per_slice"])
        flagged = [s["flagged"] for s in band["per_slice"]]
        assert band["flagged"] == pytest.approx(np.mean(flagged), abs=1e-3)
        low, high = band["flagged_interval_90"]
        assert 0.0 <= low <= band["flagged"] <= high <= 1.0
        assert high - low > 0.3  # two slices say little: the interval must say so
    table = report(result)
    assert all(f"| {band} | 2 |" in table for band in BANDS)


def test_a_candidate_model_is_judged_with_the_limits_its_training_suggests(tmp_path: Path) -> None:
    """``--model``: a candidate's quality has a scale of its own, so the shipped defaults would judge it
    wrongly; its own suggested limits apply."""
    document = json.loads(default_verdict_path().read_text())
    document["suggested_limits"].update(quality_warn=99.0, quality_fail=98.0)
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps(document))
    model, limits = model_and_limits(candidate)
    assert (limits.quality_warn, limits.quality_fail) == (99.0, 98.0)
    assert model.document["version"] == document["version"]
    assert model_and_limits(None)[1] == VerdictLimits()
    result = measure(images=1, jobs=1, model_path=candidate)
    assert result["quality_warn"] == 99.0
    assert all(band["flagged"] == 1.0 for band in result["bands"].values())  # nothing clean scores 99
