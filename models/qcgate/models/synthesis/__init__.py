"""Clean synthetic MR images for training the learned quality metrics (numpy and scipy only).

Physics-based and deterministic from a seed: anatomy (MNI152 head, random label maps, body, Shepp-Logan)
rendered on a random scanner grid at native resolution, contrast from signal equations with tissue
relaxation at 1.5 T and 3 T, and a complex image with smooth phase. Corruptions are added elsewhere.
docs/synthesis.md explains what is generated and why.
"""

from qcgate.models.synthesis.config import SynthesisConfig
from qcgate.models.synthesis.synthesize import (
    ANATOMY_SOURCES,
    DATA_VERSION,
    SyntheticImage,
    synthesize_slice,
    synthesize_volume,
)

__all__ = [
    "ANATOMY_SOURCES",
    "DATA_VERSION",
    "SynthesisConfig",
    "SyntheticImage",
    "synthesize_slice",
    "synthesize_volume",
]
