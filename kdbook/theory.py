"""The theory's quantities: rates, risks and the other numbers the chapters' claims are about."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fit_power_law"]


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    r"""Fit :math:`y \approx C x^{a}` by least squares on :math:`(\log x, \log y)`.

    Args:
        x, y: 1-D positive sequences of the same length (at least 2).

    Returns:
        ``(a, C)``: the exponent (the log-log slope) and the constant.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(np.log(y))):
        raise ValueError("x and y must be positive and finite for a power-law fit")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(np.exp(intercept))
