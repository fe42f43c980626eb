"""Image-quality metrics: the interface, the classic MRIQC-style measures and the flag logic."""
