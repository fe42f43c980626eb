"""MR corruption simulator, full-reference measures and simulated readers (numpy and scipy only).

The simulator degrades clean (synthetic or real) MR images the way scanners do, mostly in
k-space, at a severity from 0 to 1 per kind; the reference measures and the simulated reader turn
a clean/corrupted pair into quality labels and pairwise preferences. See ``docs/corruptions.md``.
"""

from qcgate.models.corruption.reader import (
    DEFAULT_READER,
    Preference,
    ReaderConfig,
    composite_quality,
    reader_preference,
    simulated_reader,
)
from qcgate.models.corruption.record import AppliedCorruption
from qcgate.models.corruption.reference import (
    PERCEPTUAL_NAME,
    composite_from_measures,
    nrmse,
    perceptual,
    psnr,
    quality_label,
    reference_measures,
    ssim,
    true_snr,
)
from qcgate.models.corruption.simulator import CORRUPTION_TYPES, corrupt, corrupt_random

__all__ = [
    "CORRUPTION_TYPES",
    "DEFAULT_READER",
    "PERCEPTUAL_NAME",
    "AppliedCorruption",
    "Preference",
    "ReaderConfig",
    "composite_from_measures",
    "composite_quality",
    "corrupt",
    "corrupt_random",
    "nrmse",
    "perceptual",
    "psnr",
    "quality_label",
    "reader_preference",
    "reference_measures",
    "simulated_reader",
    "ssim",
    "true_snr",
]
