"""Real head anatomy for tests: nilearn's MNI152 T1 template as a qcgate (S, R, C) volume.

The phantom in :mod:`qcgate.synthetic.volumes` has the right tissue classes but not the shapes of a brain;
tests that need realistic anatomy use this template instead. nilearn ships it inside the package,
so loading it never touches the network (the test that uses it blocks sockets to prove that).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nilearn.datasets import load_mni152_template

MNI_SPACING_MM = (1.0, 1.0, 1.0)


def mni_t1_volume() -> np.ndarray:
    """The 1 mm MNI152 T1 template, float32 (S, R, C) in axial slice order, 0..1.

    Arranged as :func:`qcgate.synthetic.dicom_series.mr_series_datasets` writes an axial series (LPS frame):
    slices run inferior to superior, rows anterior to posterior, columns right to left, so the
    written series shows the template in its true orientation.
    """
    image = nib.as_closest_canonical(load_mni152_template(resolution=1))  # RAS: (x, y, z)
    ras = np.asarray(image.get_fdata(dtype=np.float32))
    # (x, y, z) -> (z, y, x), then flip y and x: RAS's anterior and right become LPS's row and column starts.
    return np.ascontiguousarray(ras.transpose(2, 1, 0)[:, ::-1, ::-1])
