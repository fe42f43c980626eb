"""Training of the learned quality metrics on synthetic MR: data, objectives, validation, the run.

==============================  ===========================================================
module                          job
==============================  ===========================================================
:mod:`~.config`                 the run's dataclass configs, YAML/JSON loading, seed ranges
:mod:`~.pool`                   cached clean synthetic images, re-corrupted on every draw
:mod:`~.samples`                one sample per model (numpy): degrade, normalise, cut, guard
:mod:`~.datasets`               torch Datasets and loaders, deterministic by sample index
:mod:`~.objectives`             each model's loss and learning rates
:mod:`~.validation`             held-out copies scored as the service does; Spearman per type
:mod:`~.loop`                   the run: progress, validation, calibration, checkpoint
==============================  ===========================================================

``python -m qcgate.models.train NAME`` is the command line (docs/training.md).
"""

from qcgate.models.training.config import TrainConfig, default_config, load_config
from qcgate.models.training.loop import RunResult, train

__all__ = ["RunResult", "TrainConfig", "default_config", "load_config", "train"]
