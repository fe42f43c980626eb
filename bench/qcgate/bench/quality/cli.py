"""``python -m qcgate.bench.quality --out DIR``: degrade, score, analyse, report (docs/quality-benchmark.md).

Progress goes to stderr; stdout carries only the markdown report, so ``> quality.md`` works too.
DIR receives ``quality.md``, ``quality.json``, ``scatter_<metric>.png`` per metric,
``calibration.png`` (the series quality against the reference) and ``examples_<image>.png``. The
degraded DICOM series are scored from a temporary folder and deleted, unless ``--keep-series``
keeps them in DIR/series (they are evaluation data: never train on them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcgate.bench.quality.analysis import analyse, metric_directions
from qcgate.bench.quality.copies import copy_specs
from qcgate.bench.quality.gate import gate_analysis
from qcgate.bench.quality.manifest_record import record_in_manifest
from qcgate.bench.quality.plots import calibration_plot, example_grid, scatter_grid
from qcgate.bench.quality.real_images import DEFAULT_CACHE_DIR, SOURCES, EvaluationImage, evaluation_images
from qcgate.bench.quality.report import markdown, write_json
from qcgate.bench.quality.restorings import RESTORINGS
from qcgate.bench.quality.scoring import score_copies
from qcgate.contract.manifest import default_manifest_path
from qcgate.models.corruption import CORRUPTION_TYPES

__all__ = ["DEFAULT_SEVERITIES", "BenchmarkResult", "main", "run"]

DEFAULT_SEVERITIES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_EXAMPLE_PREFERENCE = ("siemens-abdomen", "dipy-t1-coronal")  # detailed, and quick to corrupt


@dataclass(frozen=True)
class BenchmarkResult:
    """Where the outputs went, and the report itself."""

    markdown_path: Path
    json_path: Path
    pictures: list[Path]
    report: str
    results: dict[str, dict[str, dict[str, Any]]]
    gate: dict[str, Any]


def _example_image(images: Sequence[EvaluationImage]) -> EvaluationImage:
    by_name = {image.name: image for image in images}
    return next((by_name[name] for name in _EXAMPLE_PREFERENCE if name in by_name), images[0])


def run(
    out: Path,
    *,
    images: Sequence[str] | None = None,
    severities: Sequence[float] = DEFAULT_SEVERITIES,
    kinds: Sequence[str] = CORRUPTION_TYPES,
    random_combinations: int = 10,
    restorings: Sequence[str] = RESTORINGS,
    max_slices: int | None = 16,
    seed: int = 1,
    jobs: int = 1,
    keep_series: bool = False,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> BenchmarkResult:
    """Run the whole benchmark into ``out`` and return where everything went."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    evaluation = evaluation_images(images, cache_dir=cache_dir, max_slices=max_slices)
    specs = copy_specs(kinds, severities, random_combinations, restorings)
    sys.stderr.write(f"quality: {len(evaluation)} images x {len(specs)} copies on {jobs} worker(s)\n")
    with tempfile.TemporaryDirectory(prefix="qcgate-quality-") as scratch:
        series_dir = out / "series" if keep_series else Path(scratch)
        rows = score_copies(
            evaluation, specs, seed=seed, series_dir=series_dir, keep_series=keep_series, jobs=jobs
        )
    results = analyse(rows, seed)
    gate = gate_analysis(rows)
    directions = metric_directions(rows)
    pictures = [out / "calibration.png"]
    calibration_plot(rows, pictures[-1])
    for metric, higher_is_better in directions.items():
        pictures.append(out / f"scatter_{metric}.png")
        scatter_grid(rows, metric, higher_is_better, pictures[-1])
    example = _example_image(evaluation)
    pictures.append(out / f"examples_{example.name}.png")
    example_grid(example, kinds, severities, seed, pictures[-1])
    runtime_s = time.monotonic() - started
    settings = {
        "images": [image.name for image in evaluation],
        "severities": sorted({0.0, *severities}),
        "kinds": list(kinds),
        "random_combinations": random_combinations,
        "restorings": list(restorings),
        "max_slices": max_slices,
        "seed": seed,
        "jobs": jobs,
        "copies": len(rows),
    }
    report = markdown(results, directions, evaluation, settings, runtime_s, gate)
    markdown_path, json_path = out / "quality.md", out / "quality.json"
    markdown_path.write_text(report + "\n")
    write_json(json_path, results, directions, rows, evaluation, settings, runtime_s, gate)
    sys.stderr.write(
        f"quality: done in {runtime_s:.0f} s; {markdown_path}, {json_path}, {len(pictures)} PNGs\n"
    )
    return BenchmarkResult(markdown_path, json_path, pictures, report, results, gate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.quality",
        description="Degrade the real evaluation images, score every copy with every metric, report.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for quality.md, quality.json and PNGs"
    )
    parser.add_argument(
        "--images", nargs="+", choices=sorted(SOURCES), help="evaluation images (default: all)"
    )
    parser.add_argument(
        "--severities",
        nargs="+",
        type=float,
        default=list(DEFAULT_SEVERITIES),
        help="graded severities, 0..1",
    )
    parser.add_argument("--kinds", nargs="+", choices=CORRUPTION_TYPES, default=list(CORRUPTION_TYPES))
    parser.add_argument("--random-combinations", type=int, default=10, help="random mixes per image")
    parser.add_argument(
        "--restorings",
        nargs="*",
        choices=RESTORINGS,
        default=list(RESTORINGS),
        help="benign re-storings of each clean image (default: all; none when given no names)",
    )
    parser.add_argument("--max-slices", type=int, default=16, help="keep a central slab of larger volumes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument(
        "--keep-series", action="store_true", help="keep the degraded DICOM series in OUT/series"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where evaluation series are cached"
    )
    parser.add_argument(
        "--record-manifest",
        type=Path,
        nargs="?",
        const=default_manifest_path(),
        help="write the learned models' figures into this manifest (default: the shipped one)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, print the markdown report on stdout."""
    args = _parser().parse_args(argv)
    if args.random_combinations < 0 or (args.max_slices is not None and args.max_slices < 1):
        _parser().error("--random-combinations must be >= 0 and --max-slices >= 1")
    result = run(
        args.out,
        images=args.images,
        severities=args.severities,
        kinds=args.kinds,
        random_combinations=args.random_combinations,
        restorings=args.restorings,
        max_slices=args.max_slices,
        seed=args.seed,
        jobs=args.jobs,
        keep_series=args.keep_series,
        cache_dir=args.cache_dir,
    )
    if args.record_manifest:
        record_in_manifest(result.results, args.record_manifest)
        sys.stderr.write(f"quality: figures recorded in {args.record_manifest}\n")
    print(result.report)  # noqa: T201
    return 0
