"""ONNX export and parity checks (torch, the ``train`` extra).

* :mod:`qcgate.export.onnx_export`: export a registered model's scorer, check it, prove parity;
* ``python -m qcgate.export CHECKPOINT... --version V``: export trained checkpoints into the contract's
  ``onnx/`` folder and record them in its manifest (:mod:`qcgate.contract.manifest`).
"""
