"""PyTorch model definitions, data synthesis and training (the ``train`` extra).

Never imported by ``service/``, which runs the exported ONNX files only.
"""
