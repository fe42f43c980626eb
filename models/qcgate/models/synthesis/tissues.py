"""Relaxation times and proton density of the tissues that synthetic anatomies are built from.

Contrast comes from physics, not from random grey levels: every anatomy source labels its voxels with
tissue names from :data:`TISSUES`, and :mod:`qcgate.models.synthesis.sequences` turns T1, T2 and PD into
signal. So fat is bright on T1w and CSF bright on T2w because the numbers say so, at 1.5 T and 3 T.

Values are literature-typical (docs/synthesis.md lists the sources): T1 and T2 in milliseconds at
each field strength, PD relative to pure water. Each image jitters them (log-normal), because real
tissue varies between subjects and sequences measure it imperfectly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FIELD_STRENGTHS_T", "TISSUES", "Relaxation", "sample_relaxation"]

FIELD_STRENGTHS_T = (1.5, 3.0)


@dataclass(frozen=True)
class Relaxation:
    """One tissue's NMR properties at one field strength."""

    t1_ms: float
    t2_ms: float
    pd: float  # proton density relative to pure water


def _pair(t1_15: float, t2_15: float, t1_3: float, t2_3: float, pd: float) -> dict[float, Relaxation]:
    return {1.5: Relaxation(t1_15, t2_15, pd), 3.0: Relaxation(t1_3, t2_3, pd)}


# tissue: {field_T: Relaxation}; sources per row in docs/synthesis.md.
TISSUES: dict[str, dict[float, Relaxation]] = {
    "air": _pair(1000.0, 1.0, 1000.0, 1.0, 0.0),
    "csf": _pair(4000.0, 2000.0, 4300.0, 1800.0, 1.0),
    "gm": _pair(1124.0, 95.0, 1820.0, 99.0, 0.80),
    "wm": _pair(780.0, 72.0, 1084.0, 69.0, 0.69),  # 1.5 T T1: see docs (method-dependent)
    "fat": _pair(343.0, 165.0, 382.0, 133.0, 0.90),  # T2: apparent T2 on fast spin echo
    "muscle": _pair(1008.0, 44.0, 1412.0, 50.0, 0.75),
    "cortical_bone": _pair(200.0, 0.5, 250.0, 0.4, 0.15),
    "marrow": _pair(549.0, 49.0, 586.0, 49.0, 0.90),
    "blood": _pair(1441.0, 290.0, 1932.0, 275.0, 0.85),
    "liver": _pair(576.0, 46.0, 812.0, 42.0, 0.75),
    "spleen": _pair(1057.0, 79.0, 1328.0, 61.0, 0.80),
    "kidney": _pair(966.0, 87.0, 1142.0, 76.0, 0.80),
    "lesion": _pair(1011.0, 100.0, 1175.0, 100.0, 0.90),
}


def sample_relaxation(tissue: str, field_T: float, spread: float, rng: np.random.Generator) -> Relaxation:
    """The tissue's table values at ``field_T``, each scaled by ``exp(N(0, spread))``.

    PD gets half the spread: water content varies less between subjects than relaxation times do.
    """
    if tissue not in TISSUES:
        raise ValueError(f'Argument "tissue" must be one of {sorted(TISSUES)}, got {tissue!r}.')
    if field_T not in FIELD_STRENGTHS_T:
        raise ValueError(f'Argument "field_T" must be one of {FIELD_STRENGTHS_T}, got {field_T}.')
    nominal = TISSUES[tissue][field_T]
    t1, t2, pd = np.exp(rng.normal(0.0, spread, 3) * (1.0, 1.0, 0.5))
    return Relaxation(nominal.t1_ms * t1, nominal.t2_ms * t2, nominal.pd * pd)
