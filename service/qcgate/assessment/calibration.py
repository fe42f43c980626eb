"""Site limits learned from people's reviews: a monotone fit, then the limit that best separates.

A review says whether a person found a series acceptable or non-diagnostic. For one protocol, the
chance that a series is non-diagnostic can only fall as its ``quality`` rises and only rise with the
severity of its worst finding; the pool-adjacent-violators algorithm (isotonic regression) fits that
monotone step function to the reviews. Its steps are the only places where the evidence says the risk
changes, so they are the candidate limits: a limit between two readings the fit pooled would be fitted
to reader noise. Among the candidates (the limits in force included), the pair of warn limits on
quality and severity whose flag (``quality < quality_warn`` or ``severity >= severity_warn``) has the
highest Youden's J (sensitivity + specificity - 1, non-diagnostic being the positive class) is proposed,
if it beats the limits in force by :data:`MIN_GAIN_SE` standard errors of the difference in J on
those reviews (the best of many candidates beats them by luck alone; below that the limits in force
stay).

A protocol with fewer than ``min_count`` reviews, or without both answers among them, is not fitted:
the fit over every protocol's reviews stands in for it (and the limits in force where that too is
short). Fail limits stay unless a new warn limit passes them; then they move with it.

Pure: numbers in, numbers out; :mod:`qcgate.store.reviews` reads the reviews and keeps the proposals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qcgate.core.settings import VerdictLimits

__all__ = [
    "GLOBAL",
    "Performance",
    "ProtocolProposal",
    "ReviewedCase",
    "flagged",
    "isotonic_blocks",
    "performance",
    "propose_limits",
]

GLOBAL = ""  # the protocol key of the fit over every protocol's reviews
# How many standard errors of the difference in J a fit must gain over the limits in force to be
# proposed: chosen on the synthetic site of bench/qcgate/bench/calibration.py (docs/reviews.md), where
# without it the fit lost to the defaults on protocols whose readers agreed with them.
MIN_GAIN_SE = 2.0


@dataclass(frozen=True)
class ReviewedCase:
    """One review with what the verdict said: quality 0-100 (higher is better), worst finding severity
    0-100 (0 without findings), and the person's answer."""

    protocol: str
    quality: float
    severity: float
    non_diagnostic: bool


@dataclass(frozen=True)
class Performance:
    """How well a flag agreed with the reviews; None where there was no case of that class."""

    sensitivity: float | None  # flagged among the non-diagnostic
    specificity: float | None  # passed among the acceptable
    positives: int
    negatives: int

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "non_diagnostic": self.positives,
            "acceptable": self.negatives,
        }


@dataclass(frozen=True)
class ProtocolProposal:
    """The proposed limits of one protocol and how they, and the limits in force, did on its reviews."""

    protocol: str
    limits: VerdictLimits
    fitted: bool  # False: too few reviews, another fit (or the limits in force) stands in
    reviews: int
    non_diagnostic: int
    current: Performance
    proposed: Performance


def flagged(case: ReviewedCase, limits: VerdictLimits) -> bool:
    """Whether ``limits`` flag the case (warn or fail), as the verdict's flag does."""
    return limits.warns(case.quality, case.severity)


def performance(cases: Sequence[ReviewedCase], limits: VerdictLimits) -> Performance:
    positives = [c for c in cases if c.non_diagnostic]
    negatives = [c for c in cases if not c.non_diagnostic]
    caught = sum(flagged(c, limits) for c in positives)
    passed = sum(not flagged(c, limits) for c in negatives)
    return Performance(
        caught / len(positives) if positives else None,
        passed / len(negatives) if negatives else None,
        len(positives),
        len(negatives),
    )


def isotonic_blocks(
    x: Sequence[float], y: Sequence[bool], *, increasing: bool
) -> list[tuple[float, float, float]]:
    """Pool-adjacent-violators: the monotone step fit of P(y | x), as blocks ``(x_low, x_high, p)``
    in increasing ``x``; ``p`` rises with ``x`` when ``increasing``, else falls."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    xs = np.asarray(x, dtype=float)[order]
    ys = np.asarray(y, dtype=float)[order]
    sign = 1.0 if increasing else -1.0
    blocks: list[list[float]] = []  # [x_low, x_high, sum_y, count]
    for value, label in zip(xs, ys, strict=True):
        if blocks and blocks[-1][1] == value:  # ties share one block
            blocks[-1][2] += label
            blocks[-1][3] += 1
        else:
            blocks.append([value, value, label, 1.0])
        # >=: equal neighbours pool too, so that every boundary left is a real step of the fit
        while len(blocks) > 1 and sign * (blocks[-2][2] / blocks[-2][3]) >= sign * (
            blocks[-1][2] / blocks[-1][3]
        ):
            low, high = blocks[-2], blocks.pop()
            low[1], low[2], low[3] = high[1], low[2] + high[2], low[3] + high[3]
    return [(float(low), float(high), float(total / count)) for low, high, total, count in blocks]


def _cuts(blocks: Sequence[tuple[float, float, float]]) -> list[float]:
    """Limits between adjacent blocks of the fit: the midpoint of the gap, rounded up to 0.1 but never
    past the next block's first value, so that ``x < limit`` holds for the lower block, not the upper."""
    return [
        min(math.ceil(round((a[1] + b[0]) * 5, 6)) / 10, b[0])
        for a, b in zip(blocks, blocks[1:], strict=False)
    ]


def _with_warn(base: VerdictLimits, quality_warn: float, severity_warn: float) -> VerdictLimits:
    quality_warn = min(max(quality_warn, 0.0), 100.0)
    severity_warn = min(max(severity_warn, 0.0), 100.0)
    return VerdictLimits(
        quality_warn=quality_warn,
        quality_fail=min(base.quality_fail, quality_warn),
        severity_warn=severity_warn,
        severity_fail=max(base.severity_fail, severity_warn),
    )


def fit_limits(cases: Sequence[ReviewedCase], base: VerdictLimits) -> VerdictLimits:
    """The warn limits with the highest Youden's J among the isotonic fits' steps (and ``base``'s own);
    ties go to the pair nearest ``base``, so an uninformative set of reviews changes nothing."""
    quality_cuts = _cuts(
        isotonic_blocks([c.quality for c in cases], [c.non_diagnostic for c in cases], increasing=False)
    )
    severity_cuts = _cuts(
        isotonic_blocks([c.severity for c in cases], [c.non_diagnostic for c in cases], increasing=True)
    )
    qualities = np.array([c.quality for c in cases], dtype=float)
    severities = np.array([c.severity for c in cases], dtype=float)
    positive = np.array([c.non_diagnostic for c in cases], dtype=bool)
    q = np.array(sorted({base.quality_warn, *quality_cuts}))
    s = np.array(sorted({base.severity_warn, *severity_cuts}))
    youden = np.empty((len(q), len(s)))
    for i, quality_warn in enumerate(q):  # one row at a time: memory (severity candidates x cases)
        # flagged[j, n]: case n under quality_warn and severity_warn s[j], as the flag decides
        flagged = (qualities[None, :] < quality_warn) | (severities[None, :] >= s[:, None])
        sensitivity = flagged[:, positive].mean(axis=1) if positive.any() else 0.0
        specificity = (~flagged[:, ~positive]).mean(axis=1) if (~positive).any() else 0.0
        youden[i] = np.round(sensitivity + specificity - 1.0, 9)
    distance = np.abs(q - base.quality_warn)[:, None] + np.abs(s - base.severity_warn)[None, :]
    # highest J; among equals the pair nearest the limits in force (lexsort: the last key is primary)
    order = np.lexsort((distance.ravel(), -youden.ravel()))
    i, j = np.unravel_index(order[0], youden.shape)
    fitted = _with_warn(base, float(q[i]), float(s[j]))
    # The best of many candidates beats the limits in force on the reviews it was chosen on by luck
    # alone; it is proposed only when it beats them by MIN_GAIN_SE standard errors of the difference.
    gain = _youden(cases, fitted) - _youden(cases, base)
    return fitted if gain > MIN_GAIN_SE * _paired_se(cases, base, fitted) else base


def _youden(cases: Sequence[ReviewedCase], limits: VerdictLimits) -> float:
    measured = performance(cases, limits)
    return (measured.sensitivity or 0.0) + (measured.specificity or 0.0) - 1.0


def _paired_se(cases: Sequence[ReviewedCase], a: VerdictLimits, b: VerdictLimits) -> float:
    """Standard error of the difference in J of two flags on the same reviews: only the cases they
    flag differently count (as McNemar's test counts discordant pairs)."""
    positives = [c for c in cases if c.non_diagnostic]
    negatives = [c for c in cases if not c.non_diagnostic]
    differ_positive = sum(flagged(c, a) != flagged(c, b) for c in positives)
    differ_negative = sum(flagged(c, a) != flagged(c, b) for c in negatives)
    return math.sqrt(
        differ_positive / max(len(positives), 1) ** 2 + differ_negative / max(len(negatives), 1) ** 2
    )


def _enough(cases: Sequence[ReviewedCase], min_count: int) -> bool:
    answers = {c.non_diagnostic for c in cases}
    return len(cases) >= min_count and answers == {True, False}


def propose_limits(
    cases: Sequence[ReviewedCase],
    current: Callable[[str], VerdictLimits],
    *,
    min_count: int,
) -> list[ProtocolProposal]:
    """A proposal per protocol with reviews, and one for every protocol together (:data:`GLOBAL`,
    first); ``current(protocol)`` gives the limits in force there."""
    global_base = current(GLOBAL)
    global_fit = fit_limits(cases, global_base) if _enough(cases, min_count) else None
    proposals = [_proposal(GLOBAL, list(cases), global_base, global_fit, global_fit is not None)]
    for protocol in sorted({c.protocol for c in cases}):
        mine = [c for c in cases if c.protocol == protocol]
        base = current(protocol)
        if _enough(mine, min_count):
            proposals.append(_proposal(protocol, mine, base, fit_limits(mine, base), True))
        else:
            proposals.append(_proposal(protocol, mine, base, global_fit, False))
    return proposals


def _proposal(
    protocol: str,
    cases: list[ReviewedCase],
    base: VerdictLimits,
    fitted_limits: VerdictLimits | None,
    fitted: bool,
) -> ProtocolProposal:
    limits = fitted_limits if fitted_limits is not None else base
    return ProtocolProposal(
        protocol=protocol,
        limits=limits,
        fitted=fitted,
        reviews=len(cases),
        non_diagnostic=sum(c.non_diagnostic for c in cases),
        current=performance(cases, base),
        proposed=performance(cases, limits),
    )
