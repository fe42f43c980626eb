"""Small monotone models on a ramp basis, fitted with L-BFGS-B (numpy and scipy only).

Every feature ``f_j`` is expanded into ramps between quantile knots (see
:mod:`qcgate.contract.verdict_model`). The quality head is ``100 sigmoid(b - R w)`` with ``w >= 0``
(monotone non-increasing in every feature), fitted by least squares to the 0-100 label and then
calibrated isotonically (pool-adjacent-violators) on a separate synthetic validation split. Each
finding head is a logistic ``sigmoid(a + R v)`` with an L2 penalty, fitted by cross-entropy to the
applied severity of its kind (0 when absent).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["fit_finding", "fit_kind", "fit_quality", "fit_worst_kind", "isotonic_knots", "quantile_knots"]

_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0)


def quantile_knots(values: np.ndarray, floor: float | None = None) -> list[float]:
    """Distinct quantile knots of one feature (at least two, so every ramp has a width); with a
    ``floor``, the knots start there and spread over the values above it (a dead zone below)."""
    if floor is not None:
        above = values[values > floor]
        values = np.concatenate([[floor], above]) if above.size else np.array([floor])
    knots = np.unique(np.round(np.quantile(values, _QUANTILES), 6))
    if knots.size < 2:
        knots = np.array([knots[0], knots[0] + 1e-3])
    return [float(k) for k in knots]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _pair_term(p: np.ndarray, pairs: np.ndarray | None, weight: float) -> tuple[float, np.ndarray]:
    """``weight * mean((p_i - p_j)^2)`` over the row pairs (one clean image stored two ways) and its
    gradient with respect to every ``p``; zero without pairs or weight."""
    gradient = np.zeros_like(p)
    if pairs is None or not len(pairs) or weight <= 0:
        return 0.0, gradient
    first, second = pairs[:, 0], pairs[:, 1]
    d = p[first] - p[second]
    np.add.at(gradient, first, 2.0 * weight * d / len(d))
    np.add.at(gradient, second, -2.0 * weight * d / len(d))
    return weight * float(np.mean(d * d)), gradient


def fit_quality(
    basis: np.ndarray,
    label: np.ndarray,
    l2: float = 1e-3,
    pairs: np.ndarray | None = None,
    invariance: float = 0.0,
) -> tuple[float, np.ndarray]:
    """(b, w >= 0) minimising mean((sigmoid(b - basis w) - label/100)^2) + l2 |w|^2
    + invariance * mean over ``pairs`` (rows i, j: one clean image stored two ways) of (p_i - p_j)^2.

    The pair term teaches the head to lean on features that a benign re-storing leaves alone: what
    the issue asks of ``quality`` (the same score however a clean image was stored) becomes part of
    the objective instead of only a criterion of the selection.
    """
    target = label / 100.0
    n, m = basis.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, w = theta[0], theta[1:]
        p = _sigmoid(b - basis @ w)
        r = p - target
        pair_value, pair_gradient = _pair_term(p, pairs, invariance)
        value = float(np.mean(r * r) + l2 * w @ w) + pair_value
        g = (2.0 * r / n + pair_gradient) * p * (1.0 - p)
        return value, np.concatenate([[g.sum()], -(basis.T @ g) + 2 * l2 * w])

    theta0 = np.concatenate([[3.0], np.full(m, 0.1)])
    bounds = [(None, None)] + [(0.0, None)] * m
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 3000})
    return float(result.x[0]), result.x[1:]


def fit_finding(basis: np.ndarray, target: np.ndarray, l2: float = 1e-3) -> tuple[float, np.ndarray]:
    """(a, v) minimising cross-entropy of sigmoid(a + basis v) against ``target`` in [0, 1] + l2 |v|^2."""
    n, m = basis.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, v = theta[0], theta[1:]
        p = np.clip(_sigmoid(a + basis @ v), 1e-9, 1 - 1e-9)
        value = float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)) + l2 * v @ v)
        g = (p - target) / n
        return value, np.concatenate([[g.sum()], basis.T @ g + 2 * l2 * v])

    result = minimize(loss, np.zeros(m + 1), jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    return float(result.x[0]), result.x[1:]


def fit_worst_kind(
    basis: np.ndarray,
    severities: np.ndarray,
    l2: float = 1e-3,
    pairs: np.ndarray | None = None,
    invariance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(a (K,), W >= 0 (m, K)): per kind K a monotone logistic ``sigmoid(a_K + basis W_K)`` fitted by
    cross-entropy to that kind's applied severity (``severities[:, K]`` in [0, 1]) + l2 |W_K|^2
    + ``invariance`` * mean over ``pairs`` of the squared change of its output; the quality head
    ``100 (1 - max_K sigmoid(...))`` is then as good as the worst artifact."""
    n, m = basis.shape
    intercepts, weights = [], []
    for kind in range(severities.shape[1]):
        target = severities[:, kind]

        def loss(theta: np.ndarray, target: np.ndarray = target) -> tuple[float, np.ndarray]:
            a, v = theta[0], theta[1:]
            p = np.clip(_sigmoid(a + basis @ v), 1e-9, 1 - 1e-9)
            pair_value, pair_gradient = _pair_term(p, pairs, invariance)
            value = float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)) + l2 * v @ v)
            g = (p - target) / n + pair_gradient * p * (1.0 - p)  # d loss / d z
            return value + pair_value, np.concatenate([[g.sum()], basis.T @ g + 2 * l2 * v])

        bounds = [(None, None)] + [(0.0, None)] * m
        result = minimize(
            loss, np.zeros(m + 1), jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 3000}
        )
        intercepts.append(result.x[0])
        weights.append(result.x[1:])
    return np.array(intercepts), np.stack(weights, axis=1)


def isotonic_knots(x: np.ndarray, y: np.ndarray, max_knots: int = 40) -> tuple[list[float], list[float]]:
    """Non-decreasing fit of ``y`` on ``x`` (pool adjacent violators), as interpolation knots."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order].astype(float), y[order].astype(float)
    blocks: list[list[float]] = []  # [sum_y, count, sum_x]
    for xv, yv in zip(xs, ys, strict=True):
        blocks.append([yv, 1.0, xv])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c, sx = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] += sx
    kx = np.array([b[2] / b[1] for b in blocks])
    ky = np.array([b[0] / b[1] for b in blocks])
    if kx.size > max_knots:
        pick = np.unique(np.round(np.linspace(0, kx.size - 1, max_knots)).astype(int))
        kx, ky = kx[pick], ky[pick]
    kx = np.concatenate([[0.0], kx, [100.0]])
    ky = np.concatenate([[ky[0]], ky, [ky[-1]]])
    kx, unique = np.unique(kx, return_index=True)
    return [float(v) for v in kx], [float(v) for v in np.maximum.accumulate(ky[unique])]


def fit_kind(
    basis: np.ndarray, classes: np.ndarray, count: int, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """(intercepts (K,), weights (m, K)) of a softmax over ``count`` kinds minimising cross-entropy
    against the integer ``classes`` + l2 |W|^2: which kind an image's damage is, not how much."""
    n, m = basis.shape
    onehot = np.eye(count)[classes]  # (n, K)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, w = theta[:count], theta[count:].reshape(m, count)
        z = b + basis @ w
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        value = float(-np.mean(np.sum(onehot * np.log(np.clip(p, 1e-12, None)), axis=1)) + l2 * np.sum(w * w))
        g = (p - onehot) / n
        return value, np.concatenate([g.sum(axis=0), (basis.T @ g + 2 * l2 * w).ravel()])

    result = minimize(loss, np.zeros(count * (m + 1)), jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    return result.x[:count], result.x[count:].reshape(m, count)
