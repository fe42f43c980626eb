"""One training run: data, optimiser, progress, validation, calibration and the checkpoint.

Deterministic: ``torch.manual_seed(seed)`` before the network is built, every sample drawn from its
own generator (:func:`qcgate.models.training.samples.sample_rng`), ``torch.use_deterministic_algorithms``
on, batches in a fixed order whatever the number of data workers. The same seed, config and
``steps`` give the same loss sequence on one machine (a ``minutes`` budget stops after a number of
steps that depends on the machine's speed, so only its prefix repeats).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from qcgate.models.calibration import THRESHOLDS, calibration_to_dict, fit_calibration
from qcgate.models.checkpoint import save_checkpoint
from qcgate.models.registry import create_model
from qcgate.models.synthesis import DATA_VERSION
from qcgate.models.training.bank import SlabBank
from qcgate.models.training.config import MAX_RUN_SEED, SEEDS_PER_RUN, TRAIN_SEED_BASE, TrainConfig
from qcgate.models.training.datasets import TrainingSamples, make_loader
from qcgate.models.training.objectives import Objective
from qcgate.models.training.pool import DEFAULT_CACHE_DIR, CleanSource, SyntheticPool
from qcgate.models.training.validation import build_validation_set, score_copies, summarise

__all__ = ["RunResult", "train"]

_LOG_EVERY_S = 15.0
_UNBOUNDED = 10**9  # samples in a run limited by time only


@dataclass(frozen=True)
class RunResult:
    checkpoint: Path
    steps: int
    losses: list[float]
    samples_per_s: float
    train_s: float
    validation: dict[str, Any] | None


def train(
    config: TrainConfig,
    *,
    seed: int = 0,
    out: Path,
    device: str = "cpu",
    steps: int | None = None,
    minutes: float | None = None,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    validate: bool = True,
    source: CleanSource | None = None,
    log: TextIO = sys.stderr,
) -> RunResult:
    """Train ``config.name`` for ``steps`` steps or ``minutes`` of wall time (whichever ends first)."""
    if steps is None and minutes is None:
        raise ValueError('Give "steps" or "minutes": a run must end.')
    if not 0 <= seed < MAX_RUN_SEED:
        raise ValueError(
            f'Argument "seed" must lie in 0..{MAX_RUN_SEED - 1} (the seed ranges of runs are disjoint).'
        )
    data, optim = config.data, config.optim
    workers = data.workers
    threads = optim.threads or max(1, (os.cpu_count() or 1) - workers)
    with _deterministic(device, threads):
        torch.manual_seed(seed)
        model = create_model(config.name, config.model)
        spec = model.scorer_spec()  # type: ignore[operator]
        tile = _tile(config, spec.tile, spec.spatial_multiple)
        if config.variant == "clean_to_clean" and getattr(model.config, "residual_learning", False):
            raise ValueError(
                'The identity solves "clean_to_clean" exactly with residual learning (every score would '
                'be 0): set "model: {residual_learning: false}", the paper\'s plain U-Net.'
            )
        objective = Objective(config.name, model, optim).to(device)
        optimizer = torch.optim.Adam(objective.param_groups(), weight_decay=optim.weight_decay)
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        if source is None:
            shape = data.volume_shape if config.name == "hysnet" else None
            source = SyntheticPool(
                TRAIN_SEED_BASE + seed * SEEDS_PER_RUN, data.pool_size, shape=shape, cache_dir=cache_dir
            )
        length = steps * optim.batch_size if steps is not None else _UNBOUNDED
        bank = (
            SlabBank(source, data, seed, config.normalisation, cache_dir)
            if config.name == "hysnet" and data.bank_size
            else None
        )
        samples = TrainingSamples(config, source, seed, tile, length, bank)
        loader = make_loader(samples, optim.batch_size, workers)
        budget = " / ".join(
            ([f"{steps} steps"] if steps is not None else []) + ([f"{minutes:g} min"] if minutes else [])
        )
        log.write(
            f"{config.name}: tile {'x'.join(map(str, tile))}, batch {optim.batch_size}, "
            f"{workers} data worker(s), "
            f"{threads} torch thread(s), {budget} on {device}\n"
        )
        losses: list[float] = []
        extras: dict[str, list[float]] = {}
        inputs = items = 0
        started = last_log = time.monotonic()
        waited = 0.0
        refused = 0
        objective.train()
        batches = iter(loader)
        step = 0
        while steps is None or step < steps:
            if minutes is not None and time.monotonic() - started >= 60.0 * minutes:
                break
            before = time.monotonic()
            batch = {key: value.to(device) for key, value in next(batches).items()}
            refused += int(batch.pop("refused").sum())
            if refused > max(20, data.max_refused_fraction * (items + optim.batch_size + refused)):
                raise RuntimeError(
                    f"the evaluation-data guard refused {refused} of {items + optim.batch_size + refused} "
                    "training draws: synthetic data resembles the evaluation images systematically"
                )
            waited += time.monotonic() - before
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * _lr_factor(step, steps, optim.warmup_steps)
            loss, count, figures = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if optim.grad_clip:
                nn.utils.clip_grad_norm_(objective.parameters(), optim.grad_clip)
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            for key, value in figures.items():
                extras.setdefault(key, []).append(value)
            inputs += count
            items += optim.batch_size
            now = time.monotonic()
            if now - last_log >= _LOG_EVERY_S or step == steps:
                last_log = now
                _progress(
                    log,
                    config.name,
                    step,
                    steps,
                    minutes,
                    losses,
                    extras,
                    items,
                    inputs,
                    now - started,
                    waited,
                )
        train_s = time.monotonic() - started
        del batches
        direction = float(np.mean(extras.get("direction", [0.0])[-200:]))
        negated = objective.orient(direction)
        if negated:
            log.write(
                f"{config.name}: the score fell with quality (agreement {direction:+.2f}); negated it\n"
            )
        model = model.cpu().eval()
        rate = items / train_s if train_s > 0 else 0.0
        training: dict[str, Any] = {
            "normalisation": config.normalisation,
            "variant": config.variant if config.name == "msm" else None,
            "config": _plain(config.to_dict()),
            "tile": list(tile),
            "device": device,
            "train_seconds": round(train_s, 1),
            "samples_per_second": round(rate, 2),
            "network_inputs_per_second": round(inputs / train_s, 2) if train_s > 0 else 0.0,
            "data_wait_fraction": round(waited / train_s, 3) if train_s > 0 else 0.0,
            "guard_refused_draws": refused,
            "score_negated": negated,
            "losses": [round(v, 6) for v in losses],
            "final_loss": float(np.mean(losses[-50:])) if losses else float("nan"),
            **{f"final_{k}": float(np.mean(v[-50:])) for k, v in extras.items()},
            "seed_ranges": {
                "train_first_seed": TRAIN_SEED_BASE + seed * SEEDS_PER_RUN,
                "pool_size": data.pool_size,
            },
        }
        validation = None
        if validate:
            validation = _validate(config, model, cache_dir, log)
            training["validation"] = validation["summary"]
            training["calibration"] = validation["calibration"]
            training["thresholds"] = THRESHOLDS
        checkpoint = out / f"{config.name}.pt"
        save_checkpoint(
            checkpoint, model, seed=seed, data_version=DATA_VERSION, steps=step, training=training
        )
        log.write(
            f"{config.name}: {step} steps ({items} samples, {refused} draws refused by the evaluation guard) "
            f"in {train_s:.0f} s, checkpoint {checkpoint}\n"
        )
        return RunResult(checkpoint, step, losses, rate, train_s, validation)


def _validate(config: TrainConfig, model: nn.Module, cache_dir: Path | None, log: TextIO) -> dict[str, Any]:
    started = time.monotonic()
    volume = config.name == "hysnet"
    validation = build_validation_set(
        config.validation, volume=volume, normalisation=config.normalisation, cache_dir=cache_dir
    )
    built = time.monotonic()
    spec = model.scorer_spec()  # type: ignore[operator]
    scores = score_copies(model.scorer(), spec, validation.inputs, config.validation.batch_size)  # type: ignore[operator]
    summary = summarise(validation, scores, spec.higher_is_better)
    summary["build_seconds"] = round(built - started, 1)
    summary["score_seconds"] = round(time.monotonic() - built, 1)
    calibration = fit_calibration(
        scores,
        validation.label,
        higher_is_better=spec.higher_is_better,
        description=f"{len(scores)} copies of {config.validation.images} synthetic validation images",
    )
    overall = summary["groups"]["overall"]
    log.write(
        f"{config.name}: validation on {len(scores)} copies: SRCC vs SSIM within images "
        f"{overall['srcc_ssim_within']:.3f}, pooled {overall['srcc_ssim_pooled']:.3f}; clear pairs ordered "
        f"like the reader {summary['ranking_consensus']:.3f}\n"
    )
    for kind, entry in summary["groups"].items():
        log.write(
            f"  {kind:<20} SRCC ssim within {entry['srcc_ssim_within']:+.3f} "
            f"pooled {entry['srcc_ssim_pooled']:+.3f}  label within {entry['srcc_label_within']:+.3f} "
            f"pooled {entry['srcc_label_pooled']:+.3f}\n"
        )
    return {
        "summary": summary,
        "calibration": calibration_to_dict(calibration),
        "copies": {
            "image": validation.image.tolist(),
            "kind": validation.kind.tolist(),
            "severity": [None if np.isnan(v) else float(v) for v in validation.severity],
            "ssim": validation.ssim.tolist(),
            "label": validation.label.tolist(),
            "score": [None if np.isnan(v) else float(v) for v in scores],
        },
    }


def _tile(config: TrainConfig, tile: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """HyS-net's 3D patch, or the 2D models' square training tile (``data.crop``, default the scorer's)."""
    if config.name == "hysnet":
        if config.data.crop is not None:
            raise ValueError(f'HyS-net trains on its own patch {tile}; "data.crop" must be unset.')
        return tile
    crop = config.data.crop or tile[0]
    if crop % multiple:
        raise ValueError(f'Argument "data.crop" must be a multiple of {multiple} for {config.name}.')
    return (crop, crop)


def _lr_factor(step: int, steps: int | None, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps; then 1 (time-limited runs) or cosine down to 0.1."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if steps is None or steps <= warmup:
        return 1.0
    progress = (step - warmup) / (steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _progress(
    log: TextIO,
    name: str,
    step: int,
    steps: int | None,
    minutes: float | None,
    losses: list[float],
    extras: dict[str, list[float]],
    items: int,
    inputs: int,
    elapsed: float,
    waited: float,
) -> None:
    recent = float(np.mean(losses[-50:]))
    remaining = []
    if steps is not None:
        remaining.append(elapsed / step * (steps - step))
    if minutes is not None:
        remaining.append(60.0 * minutes - elapsed)
    eta = max(0.0, min(remaining)) if remaining else float("nan")
    figures = "".join(f" {k} {np.mean(v[-50:]):.4f}" for k, v in extras.items())
    log.write(
        f"{name} step {step}{f'/{steps}' if steps else ''} loss {recent:.5f}{figures} "
        f"{items / elapsed:.1f} samples/s ({inputs / elapsed:.1f} inputs/s, "
        f"data wait {waited / elapsed:.0%}) "
        f"eta {eta / 60:.1f} min\n"
    )
    log.flush()


def _plain(value: Any) -> Any:
    """Tuples to lists, so the checkpoint's training record is plain data (loads with weights_only)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@contextmanager
def _deterministic(device: str, threads: int) -> Iterator[None]:
    """Deterministic kernels and ``threads`` intra-op threads for the run; the previous settings after."""
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])
