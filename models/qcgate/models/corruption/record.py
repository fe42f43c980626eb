"""What a corruption did: the record every corruption returns beside its image.

Training targets, benchmark tables and bug reports all need the physical quantities that were
really applied (a noise sigma, a shift in pixels, the k-space line of a motion event), not only
the severity that asked for them, because the mapping from severity to physics is a modelling
choice documented in ``docs/corruptions.md`` and may change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AppliedCorruption", "Artifact", "Parameters"]

Parameters = dict[str, float | int | str]

# A corruption on the complex working layout (S, PE, RO): (image, severity in (0, 1], rng) ->
# (corrupted complex image of the same shape, parameters applied).
Artifact = Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, Parameters]]


@dataclass(frozen=True)
class AppliedCorruption:
    """One corruption as applied: its kind, the severity asked for (0..1) and the physics used."""

    kind: str
    severity: float
    parameters: Parameters = field(default_factory=dict)
