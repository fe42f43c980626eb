"""Speed and memory of the learned metrics: are they fast and small enough to score every series?

``python -m qcgate.bench.learned [--models-dir DIR] [--out DIR] [--repeats N] [--threads N] [--tiny]
[--sweep-provider] [--fp16]``

1. **ONNX Runtime against PyTorch eager**, per model (``msm``, ``hysnet``, ``rank_effnet``), on the
   same batches of the shape the service feeds each (its window for 256x256 slices, its batch size),
   with the same thread count, in interleaved rounds (:mod:`qcgate.bench.learned_timing`). Shipped weights
   where their checkpoints exist, else the default architecture with random weights exported by the
   project's own exporter (:mod:`qcgate.bench.learned_models`); the output says which. Goal: ONNX Runtime
   at least 2x PyTorch's speed.
2. **Scoring a 176x256x256 series** (the end-to-end benchmark's head phantom) with every metric
   suite through :func:`qcgate.assessment.pipeline.assess_series` in a worker-like process
   (:mod:`qcgate.bench.learned_worker`): median of N after one cold round, split per suite. Goal: < 10 s.
3. **Peak worker memory**: that process's ``ru_maxrss`` after loading the suites and after scoring.
   Goal: < 2 GiB.
4. **Providers**: for the CPU and CUDA providers, windows (slices or patches) per second and the
   median time of one batch over batch sizes 1..64, through the session and I/O binding the service
   uses, and the batch that saturates; a provider ONNX Runtime does not offer is "not measured"
   (CUDA needs ``onnxruntime-gpu`` and a GPU). ``--fp16`` measures the fp16 files on CUDA where
   their parity holds, as ``onnx_fp16`` does in the service.

``--sweep-provider`` runs only step 4 (no PyTorch race, no worker): with the shipped models where
``--models-dir`` has them, else random-weight exports; it writes ``learned_sweep.json`` and
``learned_sweep.md``. Progress goes to stderr; stdout carries the markdown. ``--out`` (default
``bench/out``) receives ``learned.json`` (every measurement), ``learned.md`` and ``learned.png``.
``--tiny`` is the smoke form: the tiny configs of :mod:`qcgate.models.nets.smoke`, a 20x64x64 series.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from qcgate.bench.common import OUT_DIR, progress, summary, write_series_files
from qcgate.bench.end_to_end import NOISE_FRACTION, SHAPE
from qcgate.bench.environment import environment
from qcgate.bench.learned_models import export_random, prepare_models, torch_threads
from qcgate.bench.learned_report import markdown, plot, sweep_markdown
from qcgate.bench.learned_timing import provider_sweep, race
from qcgate.bench.learned_worker import measure_worker
from qcgate.contract.manifest import MANIFEST_NAME, default_manifest_path
from qcgate.metrics.learned import default_threads
from qcgate.models.nets.smoke import TINY_CONFIGS
from qcgate.models.registry import list_models
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume

__all__ = ["main", "run", "run_sweep"]

TINY_SHAPE = (20, 64, 64)
DEFAULT_CHECKPOINTS = Path(__file__).resolve().parents[3] / "models" / "runs" / "release"
SPEEDUP_GOAL = 2.0
SERIES_GOAL_S = 10.0
MEMORY_GOAL_MIB = 2048.0


def run(
    *,
    models_dir: Path,
    checkpoints_dir: Path,
    repeats: int,
    threads: int,
    tiny: bool = False,
    fp16: bool = False,
) -> dict[str, Any]:
    """Every measurement of the benchmark, as the JSON result (temporary files are removed)."""
    shape = TINY_SHAPE if tiny else SHAPE
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-learned-") as temp:
        root = Path(temp)
        progress("preparing the models (exporting random-weight ones takes a while)")
        configs = TINY_CONFIGS if tiny else None
        prepared = prepare_models(
            models_dir, checkpoints_dir, root / "onnx", threads=threads, configs=configs
        )
        for pair in prepared.pairs:
            progress(f"{pair.name}: {pair.weights}")
        progress(f"writing a {'x'.join(map(str, shape))} series")
        series_dir = _write_series(shape, root / "series")
        with torch_threads(threads):
            models = race(prepared.pairs, shape[1:], repeats, progress)
        progress("scoring the series in a worker-like process")
        shipped = prepared.manifest_path.resolve() == default_manifest_path().resolve()
        worker = measure_worker(series_dir, repeats, None if shipped else prepared.manifest_path)
        sweep = provider_sweep(
            prepared.manifest_path, shape[1:], repeats, progress, threads=threads, fp16=fp16
        )
    for comparison in models.values():
        comparison["meets_goal"] = comparison["speedup"] >= SPEEDUP_GOAL
    return {
        "environment": {**environment(), **_runtimes(threads)},
        "settings": {
            "shape": list(shape),
            "repeats": repeats,
            "threads": threads,
            "tiny": tiny,
            "noise_fraction": NOISE_FRACTION,
            "worker_weights": prepared.manifest_weights,
            "goals": {"speedup": SPEEDUP_GOAL, "series_s": SERIES_GOAL_S, "peak_rss_mib": MEMORY_GOAL_MIB},
        },
        "models": models,
        "series": _series_summary(worker),
        "memory": _memory_summary(worker),
        "sweep": sweep,
        "worker": worker,
    }


def run_sweep(
    *, models_dir: Path, repeats: int, threads: int, tiny: bool = False, fp16: bool = False
) -> dict[str, Any]:
    """Only the provider sweep: the shipped models where ``models_dir`` has them (and not ``tiny``),
    else every registered architecture with random weights (the speed does not depend on them)."""
    shape = TINY_SHAPE if tiny else SHAPE
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-sweep-") as temp:
        manifest = models_dir / MANIFEST_NAME
        weights = "shipped weights"
        if tiny or not manifest.is_file():
            progress("exporting random-weight models")
            export_random(list_models(), Path(temp), TINY_CONFIGS if tiny else {})
            manifest = Path(temp) / MANIFEST_NAME
            weights = f"random weights, {'tiny' if tiny else 'default'} config"
        sweep = provider_sweep(manifest, shape[1:], repeats, progress, threads=threads, fp16=fp16)
    return {
        "environment": {**environment(), **_runtimes(threads)},
        "settings": {
            "slice_shape": list(shape[1:]),
            "repeats": repeats,
            "threads": threads,
            "tiny": tiny,
            "fp16": fp16,
            "weights": weights,
        },
        "sweep": sweep,
    }


def _write_series(shape: tuple[int, int, int], directory: Path) -> Path:
    """The end-to-end benchmark's phantom at ``shape``, with its noise level, as Part 10 files."""
    anatomy = phantom_volume(shape, seed=0)
    sigma = float(np.percentile(anatomy, 99)) * NOISE_FRACTION
    write_series_files(add_rician_noise(anatomy, sigma, seed=1), directory, "bench learned")
    return directory


def _runtimes(threads: int) -> dict[str, Any]:
    return {
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "torch": torch.__version__,
        "threads": threads,
    }


def _series_summary(worker: dict[str, Any]) -> dict[str, Any]:
    rounds = worker["rounds"]
    total = summary([r["total_s"] for r in rounds])
    return {
        "total_s": total,
        "suites_s": {name: summary([r["suites_s"][name] for r in rounds]) for name in worker["suites"]},
        "other_s": summary([r["other_s"] for r in rounds]),
        "cold_total_s": worker["cold"]["total_s"],
        "load_s": worker["load_s"],
        "meets_goal": total["median"] < SERIES_GOAL_S,
    }


def _memory_summary(worker: dict[str, Any]) -> dict[str, Any]:
    peak = worker["peak_rss_mib"]
    return {"peak_rss_mib": peak, "meets_goal": max(peak.values()) < MEMORY_GOAL_MIB}


def publish(result: dict[str, Any], out: Path) -> str:
    """Write ``learned.json``, ``learned.md`` and ``learned.png`` into ``out``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(result)
    (out / "learned.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "learned.md").write_text(report)
    plot(result, out / "learned.png")
    progress(f"wrote {out / 'learned.json'}, learned.md and learned.png")
    return report


def publish_sweep(result: dict[str, Any], out: Path) -> str:
    """Write ``learned_sweep.json`` and ``learned_sweep.md`` into ``out``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    report = sweep_markdown(result)
    (out / "learned_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "learned_sweep.md").write_text(report)
    progress(f"wrote {out / 'learned_sweep.json'} and learned_sweep.md")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.learned", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--models-dir", type=Path, default=default_manifest_path().parent, help="shipped ONNX and manifest"
    )
    parser.add_argument(
        "--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="<model>.pt training checkpoints"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for learned.{json,md,png}")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per measurement (5)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="threads for both runtimes")
    parser.add_argument("--tiny", action="store_true", help="smoke form: tiny configs, a 20x64x64 series")
    parser.add_argument(
        "--sweep-provider",
        action="store_true",
        help="only the provider sweep: rate and latency per batch size 1..64 on the CPU and CUDA providers",
    )
    parser.add_argument("--fp16", action="store_true", help="on CUDA: fp16 files where their parity holds")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if args.sweep_provider:
        options = {"repeats": args.repeats, "threads": args.threads, "tiny": args.tiny, "fp16": args.fp16}
        swept = run_sweep(models_dir=args.models_dir, **options)
        sys.stdout.write(publish_sweep(swept, args.out))
        return 0
    result = run(
        models_dir=args.models_dir,
        checkpoints_dir=args.checkpoints,
        repeats=args.repeats,
        threads=args.threads,
        tiny=args.tiny,
        fp16=args.fp16,
    )
    sys.stdout.write(publish(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
