"""The motion-echo study: the feature finds the replica a rigid jump leaves and ignores blur and how
the air was stored, and the study reports every kind against the shipped features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from qcgate.bench.motion_echo import FIRST_SEED, KINDS, echo_of, measure, report
from qcgate.models.corruption import corrupt
from qcgate.models.verdict.generate import SPLITS
from tests.test_artifact_features import _phantom


def test_its_seeds_are_in_no_training_validation_or_test_split() -> None:
    assert all(FIRST_SEED >= split.stop or FIRST_SEED + 1000 < split.start for split in SPLITS.values())


@pytest.mark.parametrize("seed", [5, 6])  # a jump along both axes, then along the read-out only
def test_a_rigid_jump_raises_echo_even_without_air_and_blur_does_not(seed: int) -> None:
    """The lines acquired after the jump hold the shifted object: a replica of every edge lies one
    jump away, inside the anatomy too, so zero-filled air keeps it; blur only widens the detail's
    own correlation, which the feature does not count. (On the textured demo phantom a jump along
    the read-out alone barely echoes and blur raises the feature a little: the study's AUC over
    many bases, not one image, is the measure.)"""
    image = _phantom(0.01, size=192)
    mask = ndimage.binary_dilation(image > 0.3, iterations=3)
    moved, _ = corrupt(image, "motion_translation", 0.9, np.random.default_rng(seed))
    blurred, _ = corrupt(image, "blur", 1.0, np.random.default_rng(seed))
    echo = {
        name: echo_of(pixels)
        for name, pixels in {
            "clean": image,
            "moved": moved,
            "moved, transposed": moved.T,
            "moved, flipped": moved[::-1],
            "moved, zero-filled air": np.where(mask, moved, 0.0),
            "blurred": blurred,
        }.items()
    }
    assert all(value is not None for value in echo.values()), echo
    assert echo["clean"] < 0.1, echo
    assert echo["moved"] > echo["clean"] + 0.1, echo
    assert echo["moved, transposed"] == pytest.approx(echo["moved"], abs=1e-9), echo
    assert echo["moved, flipped"] == pytest.approx(echo["moved"], abs=1e-9), echo
    assert echo["moved, zero-filled air"] > echo["clean"] + 0.1, echo
    assert echo["blurred"] < echo["clean"] + 0.02, echo


def test_the_study_reports_every_kind_against_the_shipped_features() -> None:
    result = measure(images=2, jobs=1)
    assert set(result["kinds"]) == set(KINDS)
    for kind in result["kinds"].values():
        assert kind["copies"] == 2
        assert 0.0 <= kind["echo_auc"] <= 1.0
        assert 0.0 <= kind["best_shipped_auc"] <= 1.0
    table = report(result)
    assert all(f"| {kind} |" in table for kind in KINDS)
