"""ONNX export, parity checks and the model manifest the service loads.

* :mod:`export.preprocess`: the input contract (normalisation, foreground, windows), numpy only,
  shared by training, parity checks and the service;
* :mod:`export.manifest`: ``onnx/manifest.json`` as validated dataclasses, pure json, no torch;
* :mod:`export.onnx_export`: export a registered model's scorer, check it, prove parity (torch);
* ``python -m export CHECKPOINT... --version V``: export trained checkpoints into ``onnx/``.

Importing this package imports nothing: the service imports the first two modules without torch.
"""
