"""The torch-free model contract between training, export and the runtime.

* :mod:`qcgate.contract.preprocess`: the input contract (normalisation, foreground, windows), numpy only,
  shared by training, parity checks and the service;
* :mod:`qcgate.contract.manifest`: ``onnx/manifest.json`` as validated dataclasses, pure json;
* :mod:`qcgate.contract.jsontypes`: the JSON types both sides read and write;
* ``onnx/``: the shipped models and their manifest.

It imports nothing else of qcgate, so the runtime and the exporter can both stand on it.
"""
