"""The corruption gallery draws a PNG a person can look at."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np

from qcgate.bench.corruption_gallery import save_grid
from qcgate.synthetic.volumes import phantom_volume


def test_gallery_writes_one_row_per_kind(tmp_path: Path) -> None:
    path = tmp_path / "grid.png"
    save_grid(phantom_volume((9, 64, 56))[4], path, seed=1, severities=(0.5, 1.0))
    picture = matplotlib.image.imread(path)  # (H, W, 4)
    assert picture.shape[0] > 4 * picture.shape[1]  # 11 rows of 3 panels: a tall grid
    assert np.ptp(picture[..., :3]) > 0.5  # not blank
