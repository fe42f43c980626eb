"""The benchmark's pictures: each metric against SSIM per corruption type, example corruptions, and
the series quality's calibration against the reference (every image in one picture).

Figures are built with Matplotlib's object API (``Figure``, no pyplot), so no GUI backend or global
figure state is involved. Metrics whose values span more than two decades (FBER, SNRd on
images with silent air) are drawn on a log axis, or nothing but the largest values would show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from qcgate.bench.quality.analysis import OVERALL, group_rows
from qcgate.bench.quality.copies import CLEAN, RANDOM, RESTORE, CopySpec, corrupted_volume
from qcgate.bench.quality.real_images import EvaluationImage
from qcgate.bench.quality.scoring import ScoreRow
from qcgate.models.corruption import ssim

__all__ = ["calibration_plot", "example_grid", "scatter_grid"]

_COLUMNS = 4
# One shape per copy kind, in order of appearance (clean and restore first); no hexagons, which read
# as circles at this size.
_MARKERS = "osD^v<>pPX*d12x+"


def scatter_grid(rows: Sequence[ScoreRow], metric: str, higher_is_better: bool, path: Path) -> None:
    """One panel per corruption type (and random combinations): the metric against SSIM, by image."""
    groups = {g: members for g, members in group_rows(rows).items() if g != OVERALL}
    images = sorted({row.image for row in rows})
    colours = {image: colormaps["tab10"](i % 10) for i, image in enumerate(images)}
    values = np.array([row.metrics.get(metric, np.nan) for row in rows], dtype=float)
    finite = values[np.isfinite(values)]
    logarithmic = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100
    count = len(groups)
    grid_rows = math.ceil(count / _COLUMNS)
    figure = Figure(figsize=(4.2 * _COLUMNS, 3.4 * grid_rows))
    axes = figure.subplots(grid_rows, _COLUMNS, squeeze=False)
    for axis, (group, members) in zip(axes.flat, groups.items(), strict=False):
        for image in images:
            mine = [i for i in members if rows[i].image == image]
            axis.scatter(
                [rows[i].reference["ssim"] for i in mine],
                values[mine],
                s=16,
                color=colours[image],
                label=image,
            )
        axis.set_title(group.replace("_", " "), fontsize=11)
        axis.set_xlabel("SSIM to the clean image")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        if logarithmic:
            axis.set_yscale("log")
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    direction = "higher is better" if higher_is_better else "lower is better"
    figure.suptitle(f"{metric} ({direction}) against SSIM, per corruption type", fontsize=14)
    figure.legend(handles, labels, loc="lower center", ncol=min(len(images), 4), fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    figure.savefig(path, dpi=80)


def example_grid(
    image: EvaluationImage, kinds: Sequence[str], severities: Sequence[float], seed: int, path: Path
) -> None:
    """Rows of corruption types, columns of severities: the middle slice of each copy, with its SSIM.

    The copies are the ones the benchmark scores (same seed, same streams). All panels share the
    clean slice's grey scale, so a corruption that darkens or brightens shows as such.
    """
    middle = image.volume.shape[0] // 2
    levels = [0.0, *sorted(s for s in severities if s > 0)]
    clean = image.volume[middle]
    top = float(np.percentile(clean, 99.5)) or 1.0
    figure = Figure(figsize=(1.6 * len(levels), 1.7 * len(kinds)))
    axes = figure.subplots(len(kinds), len(levels), squeeze=False)
    for row, kind in enumerate(kinds):
        for column, severity in enumerate(levels):
            spec = (
                CopySpec(f"{kind}@{severity:g}", kind, severity) if severity else CopySpec(CLEAN, CLEAN, 0.0)
            )
            volume, _ = corrupted_volume(image, spec, seed)
            axis = axes[row, column]
            axis.imshow(volume[middle], cmap="gray", vmin=0.0, vmax=top, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"SSIM {ssim(clean, volume[middle]):.2f}", fontsize=8)
            if column == 0:
                axis.set_ylabel(kind.replace("_", " "), fontsize=9)
            if row == len(kinds) - 1:
                axis.set_xlabel(f"severity {severity:g}", fontsize=9)
    figure.suptitle(f"Example corruptions of {image.name} ({image.anatomy}), slice {middle}", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    figure.savefig(path, dpi=72)


def calibration_plot(rows: Sequence[ScoreRow], path: Path) -> None:
    """The series ``quality`` against SSIM and against the simulated reader's composite, every copy of
    every image in one picture: colour by image, marker by kind (clean, each corruption type, random
    combinations, re-storings). Copies without a quality are left out and counted in the title."""
    images = sorted({row.image for row in rows})
    colours = {image: colormaps["tab10"](i % 10) for i, image in enumerate(images)}
    kinds = sorted({row.kind for row in rows}, key=lambda k: (k not in (CLEAN, RESTORE), k == RANDOM, k))
    markers = {kind: _MARKERS[i % len(_MARKERS)] for i, kind in enumerate(kinds)}
    scored = [row for row in rows if row.quality is not None and math.isfinite(row.quality)]
    figure = Figure(figsize=(13.0, 7.5))
    axes = figure.subplots(1, 2, sharey=True)
    for axis, (label, reference) in zip(
        axes,
        (
            ("SSIM to the clean image", lambda row: row.reference["ssim"]),
            ("simulated reader's composite", lambda row: row.composite),
        ),
        strict=True,
    ):
        for row in scored:
            clean = row.kind == CLEAN  # drawn larger and on top: the re-storings share its place
            axis.scatter(
                reference(row),
                row.quality,
                s=60 if clean else 30,
                marker=markers[row.kind],
                color=colours[row.image],
                alpha=0.8,
                edgecolors="black" if clean else None,  # None: no outline (and none asked of line markers)
                zorder=3 if clean else 2,
            )
        axis.set_xlabel(label)
        axis.set_ylim(-2.0, 102.0)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("series quality (0-100, higher is better)")
    if not scored:
        for axis in axes:
            axis.text(0.5, 0.5, "no copy has a series quality", ha="center", transform=axis.transAxes)
    image_handles = [
        axes[0].scatter([], [], marker="o", color=colours[image], label=image) for image in images
    ]
    kind_handles = [
        axes[1].scatter([], [], marker=markers[kind], color="grey", label=kind.replace("_", " "))
        for kind in kinds
    ]
    legends = ((image_handles, "lower left", "image"), (kind_handles, "lower right", "kind"))
    for handles, where, title in legends:
        # four columns each, so the two legends sit side by side without covering one another
        figure.legend(handles=handles, loc=where, ncol=min(len(handles), 4), fontsize=8, title=title)
    missing = len(rows) - len(scored)
    figure.suptitle(
        f"Series quality against the reference, {len(images)} images, {len(scored)} copies"
        + (f" ({missing} without a quality)" if missing else ""),
        fontsize=13,
    )
    figure.tight_layout(rect=(0, 0.22, 1, 0.95))
    figure.savefig(path, dpi=80)
