"""The runtime's foundations: the typed settings, the error hierarchy, logging and metrics, outcome words.

Every other runtime package imports these; they import nothing else of qcgate but the model contract.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qcgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
