"""Pulse sequences: random clinical parameters per contrast and the signal equations they obey.

The learned metrics must see every contrast a scanner produces, with the tissue contrast the physics
gives (not random grey levels that no scanner would make). Signals are the steady-state equations,
relative to the fully relaxed magnetisation of pure water (PD = 1), with E1 = exp(-TR/T1):

- spin echo (SE, also standing in for fast spin echo at its effective TE):
  ``S = PD (1 - E1) exp(-TE/T2)``
- spoiled gradient echo (GRE, FLASH), T2* approximated by T2 at the short TE used:
  ``S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2)``
- inversion recovery (IR, FLAIR), signed: tissue that has not recovered through zero at TI comes out
  negative, i.e. with opposite phase, as in the complex data of a real scanner:
  ``S = PD (1 - 2 exp(-TI/T1) + E1) exp(-TE/T2)``

FLAIR's TI nulls CSF at its nominal T1: ``TI = T1_csf ln(2 / (1 + exp(-TR/T1_csf)))``, then moved by a
few percent, so nulling is as imperfect as on a scanner whose CSF does not match the textbook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qcgate.models.synthesis.tissues import TISSUES

__all__ = ["CONTRASTS", "Sequence", "csf_null_ti_ms", "sample_sequence", "signal"]

CONTRASTS = ("T1w", "T2w", "PD", "FLAIR")

Range = tuple[float, float]
Values = float | np.ndarray  # one tissue's value, or a map of them

# contrast: [(kind, TR ms, TE ms, flip angle in multiples of white matter's Ernst angle, or None)];
# one kind is drawn per image. A GRE near the Ernst angle is PD-weighted: T1w needs 2-3.5 times it.
_PROTOCOLS: dict[str, list[tuple[str, Range, Range, Range | None]]] = {
    "T1w": [("SE", (400.0, 750.0), (8.0, 20.0), None), ("GRE", (5.0, 30.0), (2.0, 5.0), (2.0, 3.5))],
    "T2w": [("SE", (3000.0, 6000.0), (80.0, 120.0), None)],
    "PD": [("SE", (3000.0, 5000.0), (10.0, 35.0), None)],  # shorter TR turns 3 T PD into T1w
    "FLAIR": [("IR", (8000.0, 11000.0), (80.0, 140.0), None)],
}
_KINDS = ("SE", "GRE", "IR")
_TI_DETUNING = 0.02  # FLAIR's TI is off the CSF null by up to this fraction


@dataclass(frozen=True)
class Sequence:
    """The parameters one synthetic acquisition was made with; recorded in the image's provenance."""

    contrast: str
    kind: str  # "SE" | "GRE" | "IR"
    tr_ms: float
    te_ms: float
    ti_ms: float | None = None
    flip_deg: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f'Argument "kind" must be one of {_KINDS}, got {self.kind!r}.')
        if (self.kind == "GRE") != (self.flip_deg is not None):
            raise ValueError('Argument "flip_deg" must be given for GRE and only for GRE.')
        if (self.kind == "IR") != (self.ti_ms is not None):
            raise ValueError('Argument "ti_ms" must be given for IR and only for IR.')


def csf_null_ti_ms(tr_ms: float, field_T: float) -> float:
    """The inversion time at which CSF's longitudinal magnetisation crosses zero (nominal T1)."""
    t1 = TISSUES["csf"][field_T].t1_ms
    return t1 * math.log(2.0 / (1.0 + math.exp(-tr_ms / t1)))


def sample_sequence(contrast: str, field_T: float, rng: np.random.Generator) -> Sequence:
    """Random clinical parameters for ``contrast`` at ``field_T``, uniform within each range."""
    if contrast not in _PROTOCOLS:
        raise ValueError(f'Argument "contrast" must be one of {CONTRASTS}, got {contrast!r}.')
    protocols = _PROTOCOLS[contrast]
    kind, tr_range, te_range, flip_range = protocols[rng.integers(len(protocols))]
    tr, te = float(rng.uniform(*tr_range)), float(rng.uniform(*te_range))
    flip = None
    if flip_range:
        ernst = math.degrees(math.acos(math.exp(-tr / TISSUES["wm"][field_T].t1_ms)))
        flip = min(90.0, ernst * float(rng.uniform(*flip_range)))
    ti = None
    if kind == "IR":
        ti = csf_null_ti_ms(tr, field_T) * float(rng.uniform(1.0 - _TI_DETUNING, 1.0 + _TI_DETUNING))
    return Sequence(contrast, kind, tr, te, ti, flip)


def signal(sequence: Sequence, t1_ms: Values, t2_ms: Values, pd: Values) -> Values:
    """Signal of tissues with these T1, T2 (ms) and PD under ``sequence`` (module docstring)."""
    e1 = np.exp(-sequence.tr_ms / t1_ms)
    decay = pd * np.exp(-sequence.te_ms / t2_ms)
    if sequence.kind == "SE":
        return decay * (1.0 - e1)
    if sequence.kind == "GRE" and sequence.flip_deg is not None:
        flip = math.radians(sequence.flip_deg)
        return decay * math.sin(flip) * (1.0 - e1) / (1.0 - math.cos(flip) * e1)
    if sequence.kind == "IR" and sequence.ti_ms is not None:
        return decay * (1.0 - 2.0 * np.exp(-sequence.ti_ms / t1_ms) + e1)
    raise AssertionError(f"unreachable: Sequence validated kind {sequence.kind!r} on construction")
