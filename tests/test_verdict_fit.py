"""The verdict model's fitting (models/qcgate/models/verdict/fit.py): gradients, monotonicity and what
the clean-pair term does. Small synthetic problems, milliseconds each."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import check_grad

import qcgate.models.verdict.fit as fitting
from qcgate.contract.artifacts import AIR_FEATURES, FEATURE_NAMES
from qcgate.models.verdict.train import air_fill_from_anatomy, best_finding_setting, quality_limits

Loss = Callable[[np.ndarray], tuple[float, np.ndarray]]


@pytest.fixture
def losses(monkeypatch: pytest.MonkeyPatch) -> list[Loss]:
    """Every loss the fitting functions hand to the optimiser, in order."""
    seen: list[Loss] = []
    optimise = fitting.minimize

    def recording(fun: Loss, x0: np.ndarray, **options: object) -> object:
        seen.append(fun)
        return optimise(fun, x0, **options)

    monkeypatch.setattr(fitting, "minimize", recording)
    return seen


def test_the_losses_with_the_pair_term_have_the_gradients_they_report(losses: list[Loss]) -> None:
    rng = np.random.default_rng(0)
    basis, pairs = rng.random((60, 5)), np.array([[0, 1], [2, 3], [4, 5], [6, 0]])
    fitting.fit_quality(basis, 100 * rng.random(60), l2=1e-3, pairs=pairs, invariance=5.0)
    fitting.fit_worst_kind(basis, rng.random((60, 2)), l2=1e-3, pairs=pairs, invariance=5.0)
    assert len(losses) == 3, "one additive head, two kinds"
    for loss in losses:
        theta = rng.standard_normal(6)
        assert check_grad(lambda t, f=loss: f(t)[0], lambda t, f=loss: f(t)[1], theta) < 1e-5


def test_the_pair_term_moves_weight_off_a_feature_that_storage_changes() -> None:
    """Column 0 tracks the label but also jumps between the two storings of each clean image; column
    1 tracks the label alone. With the pair term the head leans on column 1 and the pairs agree."""
    rng = np.random.default_rng(1)
    damage = rng.random(200)
    storing = np.repeat(rng.random(100) * 0.6, 2) * np.tile([0.0, 1.0], 100)  # pair (2i, 2i+1)
    basis = np.stack([np.clip(damage + storing, 0, 1), damage], axis=1)
    label = 100 * (1 - damage)
    pairs = np.arange(200).reshape(100, 2)
    plain = fitting.fit_quality(basis, label, l2=1e-4)
    paired = fitting.fit_quality(basis, label, l2=1e-4, pairs=pairs, invariance=10.0)

    def pair_change(head: tuple[float, np.ndarray]) -> float:
        p = 1 / (1 + np.exp(-(head[0] - basis @ head[1])))
        return float(np.mean(np.abs(p[pairs[:, 0]] - p[pairs[:, 1]])))

    assert paired[1][0] < plain[1][0], "less weight on the storage-sensitive feature"
    assert pair_change(paired) < 0.5 * pair_change(plain)
    assert (paired[1] >= 0).all()


def test_worst_kind_heads_are_monotone_and_each_follows_its_own_kind() -> None:
    rng = np.random.default_rng(2)
    basis = rng.random((300, 2))
    severities = np.stack([basis[:, 0], basis[:, 1] ** 2], axis=1)  # kind k lives in column k
    intercepts, weights = fitting.fit_worst_kind(basis, severities, l2=1e-4)
    assert intercepts.shape == (2,)
    assert weights.shape == (2, 2)
    assert (weights >= 0).all(), "no feature may make an image better by getting worse"
    assert weights[0, 0] > 5 * weights[1, 0]
    assert weights[1, 1] > 5 * weights[0, 1]


def test_quality_limits_pass_the_clean_share_and_fail_nothing_moderate_on_quality() -> None:
    quality = np.array([95.0, 90.0, 85.0, 80.0, 30.0, 62.5, 50.0, 10.0])
    reported = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 75.0, 90.0])  # two copies with failing findings
    mild = np.array([True, True, True, True, False, False, False, False])
    moderate = mild | np.array([False, False, False, False, False, True, True, False])
    warn, fail = quality_limits(quality, reported, mild, moderate)
    assert warn == 80  # every clean/mild copy passes below 80 (0.97 of them must)
    # the moderate copy at 50 is failed by its finding, not by quality: it does not pull the limit
    # down to 50 (it did before, to 0, when the rule also counted findings); 62.5 does
    assert fail == 62
    assert quality_limits(quality, reported, mild, np.zeros(8, bool))[1] == warn


def test_the_air_fill_follows_the_anatomy_with_weights_that_cannot_reward_damage() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(400, len(FEATURE_NAMES)))
    blur, noise = FEATURE_NAMES.index("blur"), FEATURE_NAMES.index("noise")
    for name in AIR_FEATURES:  # the air reads the blur (+) and, falsely, the noise backwards (-)
        rows[:, FEATURE_NAMES.index(name)] = 0.3 + 0.8 * rows[:, blur] - 0.5 * rows[:, noise]
    fill, weights = air_fill_from_anatomy(rows)
    for name in AIR_FEATURES:
        assert weights[name]["blur"] == pytest.approx(0.8, abs=0.1)
        assert "noise" not in weights[name]  # a negative weight would let more noise improve the air
        assert fill[name] == pytest.approx(0.3, abs=0.1)
        assert all(w > 0 for w in weights[name].values())


def test_the_finding_setting_shipped_fails_no_clean_copy_where_one_can() -> None:
    records = [
        {"l2": 1e-4, "kind_accuracy": 0.74, "clean_failed": 1},
        {"l2": 1e-3, "kind_accuracy": 0.72, "clean_failed": 0},
        {"l2": 1e-2, "kind_accuracy": 0.72, "clean_failed": 0},
    ]
    assert best_finding_setting(records) == 1, (
        "the more accurate setting fails a clean copy; ties keep the first"
    )
    everyone_fails = [{**record, "clean_failed": 2} for record in records]
    assert best_finding_setting(everyone_fails) == 0, (
        "then accuracy alone decides, and the suite's check speaks"
    )
