"""The series verdict model: calibrated 0-100 quality and per-kind findings from artifact features.

Trained on synthetic data only (:mod:`.data`), fitted as small monotone models (:mod:`.fit`) and
serialised to one JSON file that :mod:`qcgate.contract.verdict_model` applies with numpy alone.
``python -m qcgate.models.verdict.train --out export/qcgate/contract/verdict/verdict.json`` rebuilds
the shipped file (and its evidence, beside the data cache in ``models/runs/verdict/``).
"""
