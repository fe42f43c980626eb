"""ONNX export, parity checks and the model manifest the service loads."""
