"""The agreement statistics of image-quality assessment: SRCC, PLCC after a logistic fit, ranking, AUC.

Every function takes a metric's values already *oriented* so that higher means better (a
lower-is-better metric is negated first, :func:`oriented`), and a target where higher is better too
(SSIM; minus the severity). A positive number therefore always means "the metric agrees" and a
negative one that it moves the wrong way, for example a noise metric that calls blur an improvement.

PLCC follows the VQEG practice [VQEG2003]_ used by the IQA literature (and by HyS-net's evaluation):
the metric is first mapped onto the target with the monotonic five-parameter logistic of Sheikh et
al. [Sheikh2006]_, because a metric may follow quality faithfully but not linearly. A fit with as
many parameters as points would be exact and meaningless, so the five-parameter fit needs at least
:data:`MIN_POINTS_5PL` points, the four-parameter one :data:`MIN_POINTS_4PL`; when there are fewer,
or ``curve_fit`` does not converge, the next simpler mapping is used (down to the identity, i.e.
plain Pearson), and :class:`Correlation` records which one was.

.. [VQEG2003] Video Quality Experts Group, *Final report on the validation of objective models of
   video quality assessment, phase II*, 2003.
.. [Sheikh2006] Sheikh HR, Sabir MF, Bovik AC, *A statistical evaluation of recent full reference
   image quality assessment algorithms*, IEEE TIP 15(11):3440-3451, 2006.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import pearsonr, spearmanr

__all__ = [
    "MIN_POINTS_4PL",
    "MIN_POINTS_5PL",
    "Correlation",
    "auc",
    "logistic_4",
    "logistic_5",
    "mean_finite",
    "oriented",
    "plcc",
    "ranking_accuracy",
    "srcc",
]

MIN_POINTS_5PL = 10
MIN_POINTS_4PL = 8
_NAN = float("nan")


@dataclass(frozen=True)
class Correlation:
    """A correlation, the number of points it rests on and, for PLCC, the mapping fitted first."""

    value: float
    n: int
    mapping: str = ""


def oriented(values: npt.ArrayLike, higher_is_better: bool) -> np.ndarray:
    """``values`` turned so that higher is better: negated for a lower-is-better metric."""
    array = np.asarray(values, dtype=np.float64)
    return array if higher_is_better else -array


def _finite_pairs(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.shape} and {ys.shape}.")
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _degenerate(x: np.ndarray, y: np.ndarray) -> bool:
    """Fewer than three points, or a constant side: no correlation is defined."""
    return x.size < 3 or bool(np.ptp(x) == 0) or bool(np.ptp(y) == 0)


def srcc(x: npt.ArrayLike, y: npt.ArrayLike) -> Correlation:
    """Spearman's rank-order correlation over the pairs where both values are finite."""
    xs, ys = _finite_pairs(x, y)
    if _degenerate(xs, ys):
        return Correlation(_NAN, int(xs.size))
    return Correlation(float(spearmanr(xs, ys).statistic), int(xs.size))


def logistic_5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    r"""Sheikh et al.'s mapping :math:`b_1 (\frac12 - \frac{1}{1 + e^{b_2 (x - b_3)}}) + b_4 x + b_5`."""
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(np.clip(b2 * (x - b3), -50.0, 50.0)))) + b4 * x + b5


def logistic_4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    r"""The four-parameter logistic :math:`b_2 + \frac{b_1 - b_2}{1 + e^{-(x - b_3)/|b_4|}}`."""
    return b2 + (b1 - b2) / (1.0 + np.exp(np.clip(-(x - b3) / (abs(b4) + 1e-12), -50.0, 50.0)))


def _fit(
    function: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray, start: list[float]
) -> np.ndarray | None:
    """``function`` fitted to (x, y), or None when the least-squares fit fails or is not finite."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            parameters, _ = curve_fit(function, x, y, p0=start, maxfev=20000)
    except (RuntimeError, OptimizeWarning, ValueError):
        return None
    fitted = function(x, *parameters)
    return fitted if np.all(np.isfinite(fitted)) and np.ptp(fitted) > 0 else None


def plcc(x: npt.ArrayLike, y: npt.ArrayLike) -> Correlation:
    """Pearson's correlation between the target and the metric mapped onto it by a logistic fit.

    The sign is that of the raw rank correlation, so a metric that moves against the target is
    negative after the fit too (a free logistic could otherwise turn any trend into a positive one).
    """
    xs, ys = _finite_pairs(x, y)
    if _degenerate(xs, ys):
        return Correlation(_NAN, int(xs.size))
    # The metric is standardised first so one starting point suits metrics of every scale.
    z = (xs - xs.mean()) / xs.std()
    span, middle = float(np.ptp(ys)), float(np.median(ys))
    sign = 1.0 if spearmanr(xs, ys).statistic >= 0 else -1.0
    ends = [float(ys.max()), float(ys.min())]  # logistic_4's b1 is its value at +inf, b2 at -inf
    candidates: list[tuple[str, int, Callable[..., np.ndarray], list[float]]] = [
        ("logistic-5", MIN_POINTS_5PL, logistic_5, [sign * span, 1.0, 0.0, 0.0, middle]),
        ("logistic-4", MIN_POINTS_4PL, logistic_4, [*ends[:: int(sign)], 0.0, 1.0]),
    ]
    for name, needed, function, start in candidates:
        if xs.size >= needed and (fitted := _fit(function, z, ys, start)) is not None:
            return Correlation(sign * abs(float(pearsonr(fitted, ys).statistic)), int(xs.size), name)
    return Correlation(float(pearsonr(xs, ys).statistic), int(xs.size), "linear")


def ranking_accuracy(first: npt.ArrayLike, second: npt.ArrayLike, preferred: Sequence[str]) -> Correlation:
    """Share of pairs where the metric prefers the copy the reader preferred.

    ``first`` and ``second`` are the oriented metric values of each pair's two copies and
    ``preferred`` the reader's verdict, "first" or "second" (pairs the reader called "similar"
    must be left out by the caller). A tie in the metric counts as half right, as a coin toss
    would be; a pair with a non-finite value is left out.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    verdicts = np.asarray(preferred)
    if not a.shape == b.shape == verdicts.shape:
        raise ValueError("first, second and preferred must have the same length.")
    if not set(verdicts.tolist()) <= {"first", "second"}:
        raise ValueError('Argument "preferred" may only hold "first" and "second".')
    keep = np.isfinite(a) & np.isfinite(b)
    if not keep.any():
        return Correlation(_NAN, 0)
    margin = np.where(verdicts[keep] == "first", a[keep] - b[keep], b[keep] - a[keep])
    score = np.where(margin > 0, 1.0, np.where(margin == 0, 0.5, 0.0))
    return Correlation(float(score.mean()), int(keep.sum()))


def mean_finite(values: Sequence[float]) -> float:
    """The mean of the finite values (per-image correlations), NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else _NAN


def auc(better: npt.ArrayLike, worse: npt.ArrayLike) -> Correlation:
    """The area under the ROC curve of oriented scores separating two groups of copies.

    The probability that a copy of the ``better`` group (clean or mildly degraded) scores higher than
    one of the ``worse`` group (severely degraded), a tie counting half: Mann-Whitney's U over the
    product of the group sizes. 1 separates perfectly, 0.5 is chance, below 0.5 is backwards.
    Non-finite scores are left out; NaN when a group is empty. ``n`` is the number of scores used.
    """
    good = np.asarray(better, dtype=np.float64)
    bad = np.asarray(worse, dtype=np.float64)
    good, bad = good[np.isfinite(good)], bad[np.isfinite(bad)]
    if not good.size or not bad.size:
        return Correlation(_NAN, int(good.size + bad.size))
    margin = good[:, None] - bad[None, :]
    wins = np.count_nonzero(margin > 0) + 0.5 * np.count_nonzero(margin == 0)
    return Correlation(float(wins / margin.size), int(good.size + bad.size))
