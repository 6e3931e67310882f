"""Rates: the exponent of a power law and the data inefficiency of Ji & Zhu (2020).

Part of :mod:`kdbook.theory`; import the names from there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import real_array as _real_array


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    r"""Fit :math:`y \approx C x^{a}` by least squares on :math:`(\log x, \log y)`.

    Args:
        x, y: 1-D positive sequences of the same length (at least 2); ``x`` not all equal.

    Returns:
        ``(a, C)``: the exponent (the log-log slope) and the constant.

    Raises:
        ValueError: for sequences that are not numbers, not 1-D or of different lengths or
            shorter than 2, entries that are not positive and finite, an ``x`` whose entries
            are all equal (the slope is undefined), or a constant :math:`C` beyond float64's
            range (too large or too small).
    """
    x, y = _real_array("x", x), _real_array("y", y)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got {x.shape}, {y.shape}")
    for name, value in (("x", x), ("y", y)):
        if not np.all(np.isfinite(value) & (value > 0)):
            raise ValueError(
                f"{name} must be positive and finite for a power-law fit, got {value.tolist()}"[
                    :200
                ]
            )
    log_x = np.log(x)
    if np.all(log_x == log_x[0]):
        raise ValueError(
            f"x must not be all equal: the log-log slope is undefined, got {x.tolist()}"[:200]
        )
    slope, intercept = np.polyfit(log_x, np.log(y), 1)
    if intercept > np.log(np.finfo(np.float64).max):
        raise ValueError(
            f"the constant C = exp({intercept:.6g}) of the fit overflows float64: rescale x "
            "(the fit extrapolates to x = 1)"
        )
    if intercept < np.log(np.finfo(np.float64).tiny):
        raise ValueError(
            f"the constant C = exp({intercept:.6g}) of the fit underflows float64: rescale x "
            "(the fit extrapolates to x = 1)"
        )
    return float(slope), float(np.exp(intercept))


# ----------------------------------------------------------------------------- linear distillation


def data_inefficiency(
    sizes: Sequence[int] | np.ndarray, norms: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    r"""Data inefficiency: how fast a fitted weight change still grows with the sample size.

    .. math:: I(n) = \frac{d\, \E \log \lVert \Delta w_n \rVert}{d \log n}
        \approx \frac{\overline{\log \lVert \Delta w_{n_{j+1}} \rVert}
        - \overline{\log \lVert \Delta w_{n_j} \rVert}}{\log n_{j+1} - \log n_j}

    at :math:`n = \sqrt{n_j n_{j+1}}`, the bar an average over draws of the training set.
    :math:`\lVert \Delta w_n \rVert` is the norm of the minimum-norm weight change that fits
    :math:`n` samples (:func:`kernel_complexity` computes it from the kernel). When a task is
    learnable the norm saturates at the norm of the weight change that fits the whole
    distribution and :math:`I(n) \to 0`; when every new sample demands new weight (random
    labels), the norm grows like a power of :math:`n` and :math:`I` stays at its exponent. For
    consecutive sizes :math:`n, n + 1` it is :math:`\approx n\, \E[\log\lVert\Delta w_{n+1}\rVert
    - \log\lVert\Delta w_n\rVert]`. (This book's normalisation; a squared norm would double it.)

    Args:
        sizes: ``(k,)`` increasing sample sizes, ``k >= 2``, all ``>= 1``.
        norms: ``(k,)`` weight-change norms, or ``(draws, k)`` for several draws (averaged in
            log space); all positive and finite.

    Returns:
        ``(midpoints, inefficiency)``: two ``(k - 1,)`` float64 arrays, the geometric midpoints
        :math:`\sqrt{n_j n_{j+1}}` and :math:`I` there.

    Raises:
        ValueError: for sizes that are not increasing positive integers, or norms of another
            length, with no draws, or not positive and finite.
    """
    sizes = _real_array("sizes", sizes, integer=True)
    if sizes.ndim != 1 or sizes.size < 2:
        raise ValueError(f"sizes must be a 1-D sequence of at least 2 integers, got {sizes!r}")
    if sizes[0] < 1 or np.any(np.diff(sizes) <= 0):
        raise ValueError(f"sizes must be increasing integers >= 1, got {sizes.tolist()}")
    norms = _real_array("norms", norms)
    if norms.ndim not in (1, 2) or norms.shape[-1] != sizes.size:
        raise ValueError(
            f"norms must have shape ({sizes.size},) or (draws, {sizes.size}) like sizes, got "
            f"{norms.shape}"
        )
    if norms.size == 0:
        raise ValueError(f"norms must hold at least one draw, got shape {norms.shape}")
    if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        raise ValueError("norms must be positive and finite (their logarithms are averaged)")
    log_norms = np.log(norms).reshape(-1, sizes.size).mean(axis=0)
    log_sizes = np.log(sizes.astype(np.float64))
    return np.exp((log_sizes[1:] + log_sizes[:-1]) / 2), np.diff(log_norms) / np.diff(log_sizes)
