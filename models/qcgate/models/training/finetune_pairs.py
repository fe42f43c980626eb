"""``python -m qcgate.models.training.finetune_pairs --pairs FILE --out DIR [--init CHECKPOINT]``.

Fine-tunes ``rank_effnet`` on a site's pairwise judgements, exported by the runtime
(``GET /api/v1/pairs/export``: ``pairs-<time>.json`` beside ``pairs-<time>.npz``; docs/drift.md). The
training side never imports the runtime: it reads only those two files.

**Data.** Each slab (a few central slices of a series, rescaled, not normalised) is normalised with
the model's input contract (``stack_foreground_p99``, :mod:`qcgate.contract.preprocess`) and
centre-cropped to at most the scorer's tile. A series' score is the mean of its slices' scores, as
the service aggregates them. Pairs whose series have no slab (pixels pruned before the export) are
skipped.

**Objective.** A margin ranking loss [Burges2005]_ on the two series' scores:
``max(0, margin - y (s_left - s_right))`` with ``y = +1`` when the reader chose left, ``-1`` for
right; a "similar" pair adds ``max(0, |s_left - s_right| - margin)``, so ties pull the scores
together without ordering them. By default only the head (the last 1x1 convolution and the output
layer) is trained: tens or hundreds of pairs are too few to move the whole network without losing
what it learned (``--layers all`` trains everything). BatchNorm keeps the statistics it was trained
with (a few slices per step would otherwise overwrite them; an untrained start without ``--init``
first settles them on the slabs); dropout stays on.

**Output.** ``DIR/rank_effnet.pt`` (a checkpoint with ``training["finetuned_from"]``,
``training["pairs"]`` and the normalisation) and ``DIR/finetune.json`` (the loss per step and the
pair accuracy before and after). ``python -m qcgate.export DIR/rank_effnet.pt --version site-... --out
SITE_DIR`` then exports it: ONNX, parity, a manifest entry with a new Device UID.

.. [Burges2005] Burges C et al., *Learning to rank using gradient descent*, ICML 2005.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from qcgate.contract.preprocess import normalise
from qcgate.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from qcgate.models.nets.smoke import settle_batchnorm
from qcgate.models.registry import create_model

__all__ = ["JudgedPair", "finetune", "load_pairs", "main"]

MODEL = "rank_effnet"
NORMALISATION = "stack_foreground_p99"
TARGETS = {"left": 1.0, "right": -1.0, "similar": 0.0}
GRAD_CLIP = 1.0
Layers = Literal["head", "all"]


@dataclass(frozen=True)
class JudgedPair:
    left: np.ndarray  # (S, R, C) float32, normalised
    right: np.ndarray
    target: float  # +1 left better, -1 right better, 0 similar


def _prepared(slab: np.ndarray, tile: int) -> np.ndarray:
    volume = normalise(np.asarray(slab, dtype=np.float32), NORMALISATION)
    rows, cols = volume.shape[1:]
    top, left = max(0, (rows - tile) // 2), max(0, (cols - tile) // 2)
    return np.ascontiguousarray(volume[:, top : top + tile, left : left + tile])


def load_pairs(path: Path, tile: int = 256) -> list[JudgedPair]:
    """The usable pairs of an export: both slabs present, normalised and cropped to ``tile``."""
    dataset = json.loads(path.read_text())
    if dataset.get("format") != 1:
        raise ValueError(f"{path}: pairs export format {dataset.get('format')!r}, expected 1")
    with np.load(path.parent / dataset["slabs_file"], allow_pickle=False) as slabs:
        volumes = {uid: _prepared(slabs[uid], tile) for uid in slabs.files}
    return [
        JudgedPair(volumes[pair["left"]], volumes[pair["right"]], TARGETS[pair["choice"]])
        for pair in dataset["pairs"]
        if pair["left"] in volumes and pair["right"] in volumes
    ]


def _score(model: nn.Module, volume: np.ndarray) -> torch.Tensor:
    return model(torch.from_numpy(volume)[:, None]).mean()  # (S, 1, H, W) -> mean slice score


def _loss(model: nn.Module, pair: JudgedPair, margin: float) -> torch.Tensor:
    difference = _score(model, pair.left) - _score(model, pair.right)
    if pair.target == 0.0:
        return torch.relu(difference.abs() - margin)
    return torch.relu(margin - pair.target * difference)


def pair_accuracy(model: nn.Module, pairs: list[JudgedPair]) -> float | None:
    """Share of ordered (not "similar") pairs whose scores order them as the reader did."""
    ordered = [pair for pair in pairs if pair.target != 0.0]
    if not ordered:
        return None
    model.eval()
    with torch.no_grad():
        right = sum(
            float(torch.sign(_score(model, p.left) - _score(model, p.right))) == p.target for p in ordered
        )
    return right / len(ordered)


def _freeze_batchnorm(model: nn.Module) -> None:
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def trainable(model: nn.Module, layers: Layers) -> list[nn.Parameter]:
    """The parameters fine-tuning changes; the others are frozen. ``head``: the last 1x1 convolution
    and the output layer, enough to re-weigh what the network sees for a site's readers and stable
    on tens of pairs (the frozen BatchNorm statistics stay valid for the unchanged blocks)."""
    chosen = list(model.parameters())
    if layers == "head":
        chosen = [*model.get_submodule("head").parameters(), *model.get_submodule("fc").parameters()]
    keep = {id(parameter) for parameter in chosen}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    return chosen


def finetune(
    model: nn.Module,
    pairs: list[JudgedPair],
    *,
    steps: int,
    lr: float,
    margin: float,
    seed: int,
    layers: Layers = "head",
) -> list[float]:
    """Fine-tune ``model`` in place, one random pair per step; returns the loss of each step."""
    if not pairs:
        raise ValueError('Argument "pairs" must hold at least one pair with both slabs.')
    torch.manual_seed(seed)
    order = random.Random(seed)
    parameters = trainable(model, layers)
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=1e-4)
    losses = []
    for _ in range(steps):
        _freeze_batchnorm(model)
        loss = _loss(model, order.choice(pairs), margin)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)  # one pair per step: keep steps small
        optimiser.step()
        losses.append(float(loss.detach()))
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.models.training.finetune_pairs", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--pairs", type=Path, required=True, help="pairs-<time>.json of the export")
    parser.add_argument("--out", type=Path, required=True, help="folder for rank_effnet.pt and finetune.json")
    parser.add_argument("--init", type=Path, help="rank_effnet checkpoint to start from (default: untrained)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layers", choices=("head", "all"), default="head", help="what is trained (default head)"
    )
    args = parser.parse_args(argv)
    if args.init is not None:
        checkpoint = load_checkpoint(args.init)
        if checkpoint.model != MODEL:
            parser.error(f"--init is a {checkpoint.model} checkpoint, not {MODEL}")
        model, data_version = build_model(checkpoint), checkpoint.data_version
    else:
        model, data_version = create_model(MODEL), ""
    pairs = load_pairs(args.pairs, tile=int(getattr(model, "config").tile))  # noqa: B009
    if args.init is None:  # an untrained network's BatchNorm statistics are the identity: settle them
        settle_batchnorm(model, [torch.from_numpy(v)[:, None] for p in pairs for v in (p.left, p.right)])
    before = pair_accuracy(model, pairs)
    losses = finetune(
        model, pairs, steps=args.steps, lr=args.lr, margin=args.margin, seed=args.seed, layers=args.layers
    )
    after = pair_accuracy(model, pairs)
    training: dict[str, Any] = {
        "normalisation": NORMALISATION,
        "finetuned_from": str(args.init) if args.init else "untrained",
        "pairs_file": args.pairs.name,
        "pairs": len(pairs),
        "objective": f"margin ranking, margin {args.margin}",
        "layers": args.layers,
        "pair_accuracy_before": before,
        "pair_accuracy_after": after,
    }
    save_checkpoint(
        args.out / f"{MODEL}.pt",
        model.eval(),
        seed=args.seed,
        data_version=f"{data_version}+pairs:{args.pairs.stem}".lstrip("+"),
        steps=args.steps,
        training=training,
    )
    (args.out / "finetune.json").write_text(json.dumps({**training, "losses": losses}, indent=1))
    print(  # noqa: T201 (a command-line tool reports)
        f"{len(pairs)} pairs, pair accuracy {before} -> {after}; export with: python -m qcgate.export "
        f"{args.out / (MODEL + '.pt')} --version site-<date> --out <site models folder>",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
