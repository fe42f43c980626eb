"""Coverage-guided fuzzing (atheris) of what the receiver does with a C-STORE's bytes.

The target is :func:`qcgate.receiver.validation.validate_instance`, what
:func:`qcgate.receiver.ingest.ingest_instance` runs before the spool and the database: size, bounded
inflate, Part 10 parse, identity, geometry, codestream and decode checks. Anything it raises other
than :class:`~qcgate.core.errors.InstanceRejected` (which carries a DICOM status) is a crash: the
association thread would answer "processing failure" with a traceback instead of a precise refusal.

    python tests/fuzz/receive.py CORPUS_DIR -runs=N         (make fuzz: -max_total_time=600)

The seed corpus is written into ``CORPUS_DIR`` when it is empty: valid MR instances in every
transfer syntax the receiver accepts (pydicom's test files, re-encoded).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pydicom", "qcgate"]):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

    from qcgate.core.errors import InstanceRejected
    from qcgate.core.settings import Settings
    from qcgate.receiver.validation import tolerate_invalid_values, validate_instance

SETTINGS = Settings(max_instance_mb=16, max_decoded_mb=16, max_rows=1024, max_frames=64)
SEEDS = ("MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm")


def test_one_input(data: bytes) -> None:
    try:
        validate_instance(data, SETTINGS)  # what a C-STORE's bytes go through before the spool
    except InstanceRejected:
        return


def write_seeds(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for name in SEEDS:
        dataset = pydicom.dcmread(get_testdata_file(name))
        (corpus / name).write_bytes(_part10(dataset))
    plain = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    for syntax in (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian):
        plain.file_meta.TransferSyntaxUID = syntax
        (corpus / f"MR_small-{syntax.name}.dcm").write_bytes(_part10(plain))


def _part10(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def main() -> None:
    corpus = next((Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if corpus is not None and not corpus.is_file():  # files given: replay them, nothing to seed
        write_seeds(corpus)
    tolerate_invalid_values()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
