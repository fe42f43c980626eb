"""A picture of every corruption at graded severities: ``python -m qcgate.bench.corruption_gallery``.

Numbers say whether a corruption is monotone; only a picture says whether it looks like the
artifact a radiologist knows. Rows are the corruption kinds, columns the clean slice and the
severities; each panel is captioned with its SSIM and 0-100 quality label. Needs matplotlib (the
``dev`` extra); :func:`save_grid` serves the quality benchmark for real images as well.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qcgate.models.corruption.reference import quality_label, reference_measures  # noqa: E402
from qcgate.models.corruption.simulator import CORRUPTION_TYPES, corrupt  # noqa: E402
from qcgate.synthetic.volumes import phantom_volume  # noqa: E402

__all__ = ["save_grid"]

DEFAULT_OUT = Path("docs/images/corruption_grid.png")
_SEVERITIES = (0.25, 0.5, 1.0)
_SLICE_SHAPE = (256, 224)  # non-square, so a reader can tell phase encoding (rows) from read-out
_PANEL_INCHES = 2.2


def save_grid(
    image: np.ndarray, path: Path, seed: int = 0, severities: Sequence[float] = _SEVERITIES
) -> None:
    """Write a PNG grid of ``image`` (2D magnitude, PE along rows) under every corruption kind.

    Every panel shares the clean slice's grey-level window (0 to its 99.5th percentile), so
    brightening, darkening and saturation are real. Each kind uses the same seed at every
    severity, showing one artifact growing rather than different draws.
    """
    window = float(np.percentile(image, 99.5))
    columns, rows = len(severities) + 1, len(CORRUPTION_TYPES)
    aspect = image.shape[0] / image.shape[1]
    figure, axes = plt.subplots(
        rows, columns, figsize=(_PANEL_INCHES * columns, _PANEL_INCHES * rows * aspect), squeeze=False
    )
    for row, kind in enumerate(CORRUPTION_TYPES):
        _panel(axes[row, 0], image, window, "clean")
        axes[row, 0].set_ylabel(kind.replace("_", " "), fontsize=10)
        for column, severity in enumerate(severities, start=1):
            corrupted, _ = corrupt(image, kind, severity, np.random.default_rng(seed))
            measures = reference_measures(image, corrupted)
            caption = f"s={severity:g}  SSIM {measures['ssim']:.2f}  Q {quality_label(measures):.0f}"
            _panel(axes[row, column], corrupted, window, caption)
    figure.suptitle("qcgate corruptions (phase encoding vertical)", fontsize=12)
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 0.99))  # leave the title its own strip
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _panel(axis: plt.Axes, image: np.ndarray, window: float, caption: str) -> None:
    """Draw one grey-scale panel with a caption and no ticks."""
    axis.imshow(image, cmap="gray", vmin=0.0, vmax=window, interpolation="nearest")
    axis.set_title(caption, fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])


def main(argv: Sequence[str] | None = None) -> None:
    """Draw the grid for the synthetic head phantom's middle slice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every corruption (default 0)")
    arguments = parser.parse_args(argv)
    volume = phantom_volume((9, *_SLICE_SHAPE), seed=arguments.seed)  # (S, R, C)
    save_grid(volume[volume.shape[0] // 2], arguments.out, arguments.seed)


if __name__ == "__main__":
    main()
