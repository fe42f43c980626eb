"""Render a grid of example synthetic images, one row per anatomy source, for people to look at.

``python -m qcgate.models.synthesis.gallery [--out docs/images/synthesis_examples.png] [--columns 6]``

Numbers cannot say whether synthetic images look like MR; eyes can. Each panel is a clean magnitude
image at its native matrix, shown 0..1 (the foreground's 99th percentile is 1), titled with its
contrast, field strength and matrix. The last row shows the three central planes of one volume each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # without pyplot: no display backend, nothing global

from qcgate.models.synthesis.config import SOURCES, SynthesisConfig
from qcgate.models.synthesis.synthesize import SyntheticImage, synthesize_slice, synthesize_volume

_DEFAULT_OUT = Path("docs/images/synthesis_examples.png")


def render_gallery(out: Path, columns: int) -> None:
    """Write the gallery PNG to ``out``: one row per source, then a row of volume planes."""
    rows = len(SOURCES) + 1
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows))
    axes = figure.subplots(rows, columns)
    for row, source in enumerate(SOURCES):
        config = SynthesisConfig(source_weights=((source, 1.0),))
        for column in range(columns):
            example = synthesize_slice(1000 * row + column, config)
            _show(axes[row, column], example.magnitude, _title(example), 1.0)
        axes[row, 0].set_ylabel(source, fontsize=12)
    volumes = [synthesize_volume(9000 + i, shape=(64, 128, 128)) for i in range(columns // 3)]
    for column, axis in enumerate(axes[-1]):
        if column // 3 >= len(volumes):
            axis.axis("off")
            continue
        volume = volumes[column // 3]
        cut = column % 3
        plane = np.take(volume.magnitude, volume.magnitude.shape[cut] // 2, axis=cut)
        rows_mm, columns_mm = (s for a, s in enumerate(volume.spacing_mm) if a != cut)
        _show(axis, plane, f"{_title(volume)}\nvolume, cut across axis {cut}", rows_mm / columns_mm)
    axes[-1, 0].set_ylabel("3D (64x128x128)", fontsize=12)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)


def _show(axis: Axes, image: np.ndarray, title: str, aspect: float) -> None:
    """Magnitude 0..1 in grey; ``aspect`` is the row spacing over the column spacing."""
    axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    axis.set_title(title, fontsize=7)
    axis.set_xticks([])
    axis.set_yticks([])


def _title(example: SyntheticImage) -> str:
    p = example.provenance
    matrix = "x".join(map(str, example.image.shape))
    return (
        f"{p['source']} {p['contrast']} {p['sequence']} {p['field_T']}T\n"
        f"{matrix} {p['orientation']} {example.spacing_mm[-1]:.2f}mm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT)
    parser.add_argument("--columns", type=int, default=6)
    arguments = parser.parse_args()
    render_gallery(arguments.out, arguments.columns)
    sys.stdout.write(f"wrote {arguments.out}\n")


if __name__ == "__main__":
    main()
