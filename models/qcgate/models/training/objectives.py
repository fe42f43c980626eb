"""The loss each network trains on, and which parameters get which learning rate.

=============  ==============================================================  ===================
model          loss                                                            score direction
=============  ==============================================================  ===================
``msm``        L1 between the U-Net's output and its target: the clean tile     lower is better
               (restoration; ``clean_to_clean``: the clean tile in and out,    (masked residual)
               the paper's) or input - |input - clean| (``error_map``); the
               head starts at zero, i.e. the network at the identity
``hysnet``     Huber (beta 0.05) on the quality label / 100, plus              higher is better
               ``snr_weight`` x Huber on the true-SNR target (auxiliary head)
``rank_effnet`` cross-entropy of :class:`~qcgate.models.nets.rank_effnet.PairwiseClassifier`  higher is better
               over [first better, similar, second better] of the score
               difference, for every pair of copies of a tile; the
               classifier trains at ``head_lr``, the scorer at ``lr``
=============  ==============================================================  ===================
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

from qcgate.models.corruption import DEFAULT_READER
from qcgate.models.nets.rank_effnet import PairwiseClassifier
from qcgate.models.training.config import OptimConfig
from qcgate.models.training.samples import copy_pairs

__all__ = ["HUBER_BETA", "Objective"]

HUBER_BETA = 0.05  # on the 0..1 label scale: quadratic within 5 label points, linear beyond


class Objective(nn.Module):
    """Computes one batch's loss for ``name``; holds the training-only heads (rank_effnet's classifier)."""

    def __init__(self, name: str, model: nn.Module, optim: OptimConfig) -> None:
        super().__init__()
        self.name, self.model, self.optim = name, model, optim
        self.classifier = PairwiseClassifier() if name == "rank_effnet" else None
        if name == "msm" and getattr(model.config, "residual_learning", False):
            # Start at the identity: a random head adds a random correction whose removal dominated the
            # first steps and left the U-Net's features near dead (the network stayed the identity).
            head = model.get_submodule("head")
            assert isinstance(head, nn.Conv2d)
            assert head.bias is not None
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def param_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": list(self.model.parameters()), "lr": self.optim.lr}]
        if self.classifier is not None:
            groups.append({"params": list(self.classifier.parameters()), "lr": self.optim.head_lr})
        return groups

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, dict[str, float]]:
        """(loss, samples in the batch, extra figures to log)."""
        if self.name == "msm":
            prediction = self.model(batch["input"])  # (B, 1, H, W)
            return (prediction - batch["target"]).abs().mean(), len(prediction), {}
        if self.name == "hysnet":
            patches = batch["patches"].flatten(0, 1)  # (B * k, 1, D, H, W)
            quality, snr = getattr(self.model, "forward_with_snr")(patches)  # noqa: B009 (B * k,), (B * k,)
            quality_loss = F.smooth_l1_loss(quality, batch["quality"].flatten(), beta=HUBER_BETA)
            snr_loss = F.smooth_l1_loss(snr, batch["snr"].flatten(), beta=HUBER_BETA)
            loss = quality_loss + self.optim.snr_weight * snr_loss
            return (
                loss,
                len(patches),
                {"quality_loss": float(quality_loss.detach()), "snr_loss": float(snr_loss.detach())},
            )
        assert self.classifier is not None
        copies = batch["copies"]  # (B, k, 1, H, W)
        count = copies.shape[1]
        scores = self.model(copies.flatten(0, 1)).reshape(-1, count)  # (B, k): one BatchNorm batch
        first, second = (torch.tensor(side) for side in zip(*copy_pairs(count), strict=True))
        logits = self.classifier(scores[:, first].reshape(-1), scores[:, second].reshape(-1))  # (B * P, 3)
        target = batch["preference"].reshape(-1)  # (B * P,)
        loss = F.cross_entropy(logits, target)
        accuracy = float((logits.argmax(dim=1) == target).float().mean())
        composite = batch["composite"]  # (B, k)
        clear = (composite[:, first] - composite[:, second]).abs() > DEFAULT_READER.just_noticeable_difference
        judged = scores.detach()
        agreement = torch.sign(judged[:, first] - judged[:, second]) * torch.sign(
            composite[:, first] - composite[:, second]
        )
        direction = float(agreement[clear].mean()) if bool(clear.any()) else 0.0
        return loss, copies.shape[0] * count, {"accuracy": accuracy, "direction": direction}

    def orient(self, direction: float) -> bool:
        """Make rank_effnet's score higher-is-better, as its spec promises; True if it had to be negated.

        The pairwise classifier is symmetric in the score's sign (f may rise or fall with the score
        difference), so training fixes the ranking but not which end is good. ``direction`` is the
        mean agreement, over the last training batches, between the sign of score differences and
        of the reader's composite differences (+1: higher is better); when it is negative, the
        scorer's last linear layer is negated, which negates the score exactly.
        """
        if self.name != "rank_effnet" or direction >= 0:
            return False
        fc = self.model.get_submodule("fc")
        assert isinstance(fc, nn.Linear)
        with torch.no_grad():
            fc.weight.neg_()
            fc.bias.neg_()
        return True
