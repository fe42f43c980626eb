"""The scanner reconstruction drawn into the verdict model's clean training bases: k-space filters
and interpolation to a finer displayed matrix (zero-filled in k-space, or in the image)."""

from __future__ import annotations

import numpy as np

from qcgate.models.corruption.kspace import to_kspace
from qcgate.models.verdict.data import Reconstruction

_SHAPE = (96, 80)


def _draws(count: int = 400) -> list[Reconstruction]:
    rng = np.random.default_rng(3)
    return [Reconstruction.draw(_SHAPE, rng) for _ in range(count)]


def _acquired_extent(recon: Reconstruction) -> tuple[int, int]:
    return int(recon.window.any(axis=1).sum()), int(recon.window.any(axis=0).sum())


def _object() -> np.ndarray:
    r, c = np.mgrid[: _SHAPE[0], : _SHAPE[1]] / 80.0 - 0.5
    return np.where((r / 0.35) ** 2 + (c / 0.3) ** 2 < 1, 1.0, 0.0).astype(np.complex128)


def test_about_half_the_bases_are_interpolated_never_below_40_percent_of_the_matrix() -> None:
    draws = _draws()
    extents = np.array([_acquired_extent(recon) for recon in draws]) / np.array(_SHAPE)
    interpolated = extents.min(axis=1) < 0.98
    assert 0.4 < interpolated.mean() < 0.6
    assert extents.min() >= 0.4 - 2 / min(_SHAPE)
    orders = [recon.spline_order for recon in draws]
    assert {order for order, chosen in zip(orders, interpolated, strict=True) if chosen} == {None, 1, 3}
    assert {order for order, chosen in zip(orders, interpolated, strict=True) if not chosen} == {None}


def test_zero_filling_leaves_outer_k_space_empty_and_image_interpolation_a_soft_roll_off() -> None:
    draws = [recon for recon in _draws() if min(_acquired_extent(recon)) < 0.8 * min(_SHAPE)]
    zero_filled = next(recon for recon in draws if recon.spline_order is None)
    cubic = next(recon for recon in draws if recon.spline_order == 3)
    for recon in (zero_filled, cubic):
        image = recon.apply(_object())
        assert image.shape == _SHAPE
        power = np.abs(to_kspace(image)) ** 2
        outside = ~recon.window.astype(bool)
        share = power[outside].sum() / power.sum()
        if recon is zero_filled:
            assert share < 1e-20
        else:  # image-space interpolation leaks some energy past the acquired extent, but little
            assert 1e-8 < share < 0.05
