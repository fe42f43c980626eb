"""The noise-reading benchmark: its yardstick (the air) reads the true sigma, the banded fit reads
white noise right, and the report holds every band, SNR and reading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qcgate.bench.noise_reading import (
    FIRST_SEED,
    NOISY_SNR,
    READINGS,
    SNRS,
    banded_fit_noise,
    measure,
    readings,
    report,
)
from qcgate.bench.verdict_matrix import BANDS
from qcgate.models.verdict.generate import SPLITS


def test_its_seeds_are_in_no_training_validation_or_test_split() -> None:
    assert all(FIRST_SEED >= split.stop or FIRST_SEED + 1000 < split.start for split in SPLITS.values())


@pytest.mark.parametrize("band", list(BANDS))
def test_the_air_reads_the_true_sigma_in_every_band(band: str) -> None:
    overshoot = readings(FIRST_SEED + 1, band, 30.0)
    assert overshoot is not None
    assert abs(overshoot["air"]) < 0.1
    assert (
        overshoot["banded_fit"] <= overshoot["shipped"] + 1e-9
    )  # the fit never reads above the whole tissue


def test_the_banded_fit_reads_white_noise_on_a_flat_object_within_10_percent() -> None:
    rng = np.random.default_rng(0)
    sigma = 0.05
    y = 1.0 + np.linspace(0.0, 1.0, 128)[None, :] + sigma * rng.standard_normal((128, 128))
    core = np.ones_like(y, dtype=bool)
    assert math.exp(banded_fit_noise(y, core)) == pytest.approx(sigma, rel=0.1)


def test_the_result_summarises_every_cell_and_the_report_shows_them() -> None:
    result = measure(images=2, jobs=1)
    assert set(result["bands"]) == set(BANDS)
    for band in result["bands"].values():
        assert set(band["overshoot"]) == {f"snr_{snr:g}" for snr in SNRS}
        for cell in band["overshoot"].values():
            assert set(cell) == set(READINGS)
            assert all(cell[name]["n"] == 2 for name in ("shipped", "banded_fit"))
        assert band["pairs"] == 2
        assert 0.0 <= band["auc_snr5_vs_snr30"]["shipped"] <= 1.0
    table = report(result)
    assert all(f"| {band} | {snr:g} |" in table for band in BANDS for snr in SNRS)
    assert NOISY_SNR < min(SNRS)
