"""Synthetic MR data without patient data: head phantoms, their degradations and the one DICOM writer
used by ``qcgate demo``, the tests and the benchmarks."""
