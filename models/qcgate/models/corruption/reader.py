"""A simulated radiologist for pairwise ranking: which of two corrupted copies is better?

It mimics the reader study of the rank-based paper (Tang et al. 2025, JMRI 61:2572): shown two
corrupted copies of one clean image, a reader picks the one of higher diagnostic quality or calls
them similar. The simulated reader judges each copy by the composite of reference measures
(:func:`~qcgate.models.corruption.reference.composite_from_measures`), calls the pair "similar" when
the composites differ by no more than a just-noticeable difference, and otherwise names the better
copy, but answers the other one with a fixed probability, the way radiologists disagreed.
Why the defaults are what they are is in ``docs/corruptions.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from qcgate.models.corruption.reference import composite_from_measures, reference_measures

__all__ = [
    "DEFAULT_READER",
    "Preference",
    "ReaderConfig",
    "composite_quality",
    "reader_preference",
    "simulated_reader",
]

Preference = Literal["first", "second", "similar"]

# Calibrated so that, on pairs built like the paper's (1-5 random corruptions each, SSIMs to the
# reference within 0.09 of each other), about as many pairs fall under it as its readers called
# similar in direct ranking (11 of 104 answers, 10.6%; the quantile here is 0.018): docs/corruptions.md.
_JUST_NOTICEABLE_DIFFERENCE = 0.02
# Two readers who each flip a clear call with probability p agree with probability
# (1 - p)^2 + p^2; the paper's mean inter-observer agreement, 61.47%, gives p = 0.26.
_FLIP_PROBABILITY = 0.26


@dataclass(frozen=True)
class ReaderConfig:
    """How discerning and how consistent the simulated reader is.

    ``just_noticeable_difference``: on the composite scale (0..1); a difference no larger is
    answered "similar", a larger one gets a call. ``flip_probability``: the chance that a clear
    call names the worse image, at most 0.5 (a reader flipping more often would be inverted).
    ``ReaderConfig(flip_probability=0.0)`` is the noiseless consensus reader.
    """

    just_noticeable_difference: float = _JUST_NOTICEABLE_DIFFERENCE
    flip_probability: float = _FLIP_PROBABILITY

    def __post_init__(self) -> None:
        if not 0.0 <= self.just_noticeable_difference < 1.0:
            raise ValueError(
                'Argument "just_noticeable_difference" must be in [0, 1), '
                f"got {self.just_noticeable_difference!r}."
            )
        if not 0.0 <= self.flip_probability <= 0.5:
            raise ValueError(
                f'Argument "flip_probability" must be in [0, 0.5], got {self.flip_probability!r}.'
            )


DEFAULT_READER = ReaderConfig()


def composite_quality(reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The composite of all reference measures of ``image`` against ``reference``, 0..1, higher better."""
    return composite_from_measures(reference_measures(reference, image, mask))


def reader_preference(
    first_quality: float,
    second_quality: float,
    rng: np.random.Generator,
    config: ReaderConfig = DEFAULT_READER,
) -> Preference:
    """The reader's answer for two images of known composite quality.

    Separate from :func:`simulated_reader` so that a benchmark can score each image once and
    ask many readers. Always draws one number from ``rng``, so the stream does not depend on
    the answer.
    """
    flip = rng.random() < config.flip_probability
    difference = first_quality - second_quality
    if abs(difference) <= config.just_noticeable_difference:  # so identical images are always similar
        return "similar"
    return "first" if (difference > 0) != flip else "second"


def simulated_reader(
    reference: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    rng: np.random.Generator,
    config: ReaderConfig = DEFAULT_READER,
    mask: np.ndarray | None = None,
) -> Preference:
    """Which of two corrupted copies of ``reference`` a reader prefers, or "similar"."""
    return reader_preference(
        composite_quality(reference, first, mask), composite_quality(reference, second, mask), rng, config
    )
