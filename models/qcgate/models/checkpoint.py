"""Checkpoints that can rebuild their model alone: weights beside the config, seed and data version.

A checkpoint is one ``torch.save`` file holding a plain dict (loaded back with
``weights_only=True``, so opening one never runs code)::

    {"format": 1, "model": "msm", "config": {...asdict...}, "state_dict": {...},
     "seed": 0, "data_version": "...", "steps": 12000, "git_commit": "abc123[-dirty]",
     "created": "2025-01-01T00:00:00+00:00", "training": {...free-form: losses, pretext...}}

:func:`build_model` turns it back into an eval-mode model through the registry; the exporter copies
seed, data version, steps and commit into the manifest's provenance, and reads
``training["normalisation"]`` (one of :data:`qcgate.contract.preprocess.NORMALISATIONS`) when present, so the
service normalises inputs the way training did.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qcgate.models.registry import create_model, model_name

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to rebuild and describe trained weights."""

    model: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    seed: int
    data_version: str
    steps: int
    git_commit: str
    created: str
    training: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: Path,
    model: nn.Module,
    *,
    seed: int,
    data_version: str,
    steps: int,
    git_commit: str | None = None,
    training: dict[str, Any] | None = None,
) -> Checkpoint:
    """Write ``model``'s weights and config atomically; ``git_commit`` defaults to the work tree's."""
    checkpoint = Checkpoint(
        model=model_name(model),
        config=dataclasses.asdict(model.config),  # type: ignore[call-overload]
        state_dict={key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
        seed=seed,
        data_version=data_version,
        steps=steps,
        git_commit=git_commit if git_commit is not None else current_git_commit(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        training=dict(training or {}),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as stream:
        torch.save({"format": CHECKPOINT_FORMAT, **dataclasses.asdict(checkpoint)}, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(stream.name, path)
    return checkpoint


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    version = data.pop("format", None)
    if version != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {version!r}, expected {CHECKPOINT_FORMAT}")
    return Checkpoint(**data)


def build_model(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's model with its weights, in eval mode; unexpected or missing keys fail."""
    model = create_model(checkpoint.model, checkpoint.config)
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval()


def current_git_commit(repo: Path | None = None) -> str:
    """HEAD of the repository (with ``-dirty`` for uncommitted changes), or "unknown" outside git."""
    where = repo or Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if status else head
