"""What a network promises the exporter and the service: its scorer's inputs, outputs and direction.

Each registered network exposes ``scorer() -> nn.Module`` (the module that is exported to ONNX and
returns one score per input as its first output) and ``scorer_spec() -> ScorerSpec``. The exporter
copies the spec into the manifest, so the service never needs to know which network it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from qcgate.contract.preprocess import InputKind


@dataclass(frozen=True)
class ScorerSpec:
    """The exported scorer's contract.

    ``tile`` is the default window the service cuts from a stack: for ``slice2d`` the largest
    (rows, cols) scored in one piece (smaller slices are padded only to ``spatial_multiple``), for
    ``patch3d`` the fixed (slices, rows, cols) patch size the network was trained on. ``stride`` is
    the step between windows (3D: half the patch, as HyS-net does at test time).
    """

    kind: InputKind
    input_name: str  # "image" (B, 1, H, W) or "patch" (B, 1, D, H, W)
    output_names: tuple[str, ...]  # the first is always "score", shape (B,)
    spatial_multiple: int  # every spatial size must be a multiple of this
    tile: tuple[int, ...]
    stride: tuple[int, ...]
    higher_is_better: bool
    output_meaning: str
