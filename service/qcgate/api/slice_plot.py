"""Per-slice scores as an SVG line chart: which slices are worst is easier seen than read.

Plain SVG text, no plotting library: the runtime stays small and the chart renders in any browser
or PACS viewer that shows images. One polyline per scored stack; undefined slices leave gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from qcgate.assessment.document import StackResult

WIDTH, HEIGHT, MARGIN = 640, 280, 48
LEGEND_STEP = 110  # px between stack labels, in a row above the plot
STACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive defined (index, value) points; a None splits the line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((index, value))
    return [run for run in runs if run]


def slice_chart(
    metric: str, higher_is_better: bool, stacks: Sequence[tuple[str, Sequence[float | None]]]
) -> str:
    """SVG of ``metric`` over slice index for each (label, per-slice values) stack."""
    defined = [v for _, values in stacks for v in values if v is not None]
    low, high = (min(defined), max(defined)) if defined else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    longest = max((len(values) for _, values in stacks), default=1)
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def x(index: int) -> float:
        return MARGIN + plot_w * (index / max(longest - 1, 1))

    def y(value: float) -> float:
        return MARGIN + plot_h * (1 - (value - low) / (high - low))

    direction = "higher is better" if higher_is_better else "lower is better"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(metric)} per slice ({direction})</title>",
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle">{escape(metric)} per slice ({direction})</text>',
        f'<text x="{MARGIN - 6}" y="{MARGIN + 4}" text-anchor="end">{high:.3g}</text>',
        f'<text x="{MARGIN - 6}" y="{HEIGHT - MARGIN}" text-anchor="end">{low:.3g}</text>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">slice (0 to {longest - 1})</text>',
    ]
    for number, (label, values) in enumerate(stacks):
        colour = STACK_COLOURS[number % len(STACK_COLOURS)]
        for run in _runs(values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            parts.append(
                f'<polyline class="stack" data-stack="{escape(label)}" fill="none" '
                f'stroke="{colour}" stroke-width="1.5" points="{points}"/>'
            )
        legend_x = MARGIN + LEGEND_STEP * number
        parts.append(f'<text x="{legend_x}" y="{MARGIN - 8}" fill="{colour}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def stacks_with_metric(stacks: Sequence[StackResult], metric: str) -> list[tuple[str, list[float | None]]]:
    """(label, per-slice values) of every scored stack that has per-slice values of ``metric``."""
    found = []
    for stack in stacks:
        entry = stack.metrics.get(metric)
        if stack.scored and entry is not None and entry.per_slice is not None:
            found.append((stack.label, list(entry.per_slice)))
    return found
