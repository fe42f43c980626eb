"""qcgate runtime service: DICOM receiver, durable spool, queue, workers, store, REST and metrics.

The runtime needs ONNX Runtime only; torch lives in ``models/`` and ``export/``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qcgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
