"""The verdict model's clean training bases include coarse matrices (48-64 pixels): trained on
64-512 alone, the model warned on a quarter of clean synthetic slices at 48-64."""

from __future__ import annotations

import numpy as np

from qcgate.models.synthesis import synthesize_slice
from qcgate.models.verdict.data import CONFIG, SMALL_MATRIX, synthesis_config
from qcgate.models.verdict.generate import SPLITS


def test_a_sixth_of_the_bases_are_coarse_and_the_rest_keep_the_usual_range() -> None:
    configs = [synthesis_config(seed) for seed in SPLITS["train"]]
    coarse = np.mean([config is SMALL_MATRIX for config in configs])
    assert 0.13 < coarse < 0.21
    assert all(config is SMALL_MATRIX or config is CONFIG for config in configs)
    assert [synthesis_config(seed) for seed in range(40)] == configs[:40]  # the same every time


def test_coarse_bases_have_coarse_pixels_not_a_crop_of_a_fine_grid() -> None:
    """Under the usual 2 mm cap a 48-pixel matrix would image a 10 cm crop of a head or a body."""
    seeds = [s for s in SPLITS["train"] if synthesis_config(s) is SMALL_MATRIX][:20]
    slices = [synthesize_slice(seed, SMALL_MATRIX) for seed in seeds]
    assert all(SMALL_MATRIX.matrix[0] <= max(s.image.shape) <= SMALL_MATRIX.matrix[1] for s in slices)
    assert np.mean([s.spacing_mm[0] > CONFIG.pixel_mm[1] for s in slices]) > 0.9
