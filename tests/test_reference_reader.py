"""The simulated reader: similar below the just-noticeable difference, the better copy otherwise,
flipped as often as configured."""

from __future__ import annotations

import numpy as np
import pytest

from qcgate.models.corruption import (
    DEFAULT_READER,
    ReaderConfig,
    composite_quality,
    corrupt,
    reader_preference,
    simulated_reader,
)
from qcgate.synthetic.volumes import phantom_volume


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    return phantom_volume((9, 96, 80))[4].astype(np.float64)


def test_defaults_come_from_the_papers_reader_study() -> None:
    # (1 - p)^2 + p^2 = 61.47% inter-observer agreement; JND calibrated in docs/corruptions.md.
    p = DEFAULT_READER.flip_probability
    assert (1 - p) ** 2 + p**2 == pytest.approx(0.6147, abs=0.002)
    assert DEFAULT_READER == ReaderConfig()
    assert DEFAULT_READER.just_noticeable_difference == 0.02


def test_identical_images_are_similar(head: np.ndarray) -> None:
    noisy, _ = corrupt(head, "noise", 0.4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    assert {simulated_reader(head, noisy, noisy, rng) for _ in range(3)} == {"similar"}
    assert {reader_preference(0.7, 0.7, rng, ReaderConfig(0.0, 0.5)) for _ in range(50)} == {"similar"}


def test_a_clearly_worse_second_copy_loses_most_of_the_time(head: np.ndarray) -> None:
    mild, _ = corrupt(head, "blur", 0.2, np.random.default_rng(0))
    severe, _ = corrupt(head, "motion_translation", 1.0, np.random.default_rng(0))
    severe, _ = corrupt(severe, "noise", 0.6, np.random.default_rng(0))
    assert composite_quality(head, mild) - composite_quality(head, severe) > 0.2
    rng = np.random.default_rng(2)
    answers = [simulated_reader(head, mild, severe, rng) for _ in range(12)]
    assert answers.count("first") >= 6
    assert "similar" not in answers
    consensus = ReaderConfig(flip_probability=0.0)
    assert simulated_reader(head, severe, mild, rng, consensus) == "second"


def test_flip_rate_matches_the_configured_probability() -> None:
    rng = np.random.default_rng(3)
    for probability in (0.0, 0.1, 0.26, 0.5):
        config = ReaderConfig(just_noticeable_difference=0.02, flip_probability=probability)
        trials = 4000
        flips = sum(reader_preference(0.8, 0.5, rng, config) == "second" for _ in range(trials))
        tolerance = 4 * np.sqrt(probability * (1 - probability) / trials) + 1e-9
        assert flips / trials == pytest.approx(probability, abs=tolerance)


def test_just_noticeable_difference_separates_similar_from_a_call() -> None:
    config = ReaderConfig(just_noticeable_difference=0.05, flip_probability=0.0)
    rng = np.random.default_rng(0)
    assert reader_preference(0.60, 0.56, rng, config) == "similar"
    assert reader_preference(0.56, 0.60, rng, config) == "similar"
    assert reader_preference(0.62, 0.56, rng, config) == "first"
    assert reader_preference(0.56, 0.62, rng, config) == "second"


def test_the_reader_always_draws_one_number() -> None:
    rng = np.random.default_rng(4)
    reader_preference(0.5, 0.5, rng)
    reader_preference(0.9, 0.1, rng)
    expected = np.random.default_rng(4)
    expected.random(2)
    assert rng.random() == expected.random()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"just_noticeable_difference": -0.01}, "just_noticeable_difference"),
        ({"just_noticeable_difference": 1.0}, "just_noticeable_difference"),
        ({"flip_probability": -0.1}, "flip_probability"),
        ({"flip_probability": 0.6}, "flip_probability"),
    ],
)
def test_bad_configurations_are_named(arguments: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=f'Argument "{named}"'):
        ReaderConfig(**arguments)
