"""Numerical precision: a float64 switch that works on every supported JAX version.

JAX computes in float32 unless 64-bit mode is on. Closed-form checks and ill-conditioned solves
need float64; :func:`float64` turns it on for a ``with`` block only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

__all__ = ["float64"]


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Context manager in which JAX creates and computes float64 arrays.

    Example:
        >>> import jax.numpy as jnp
        >>> with float64():
        ...     x = jnp.ones(3)       # float64 inside the block
        >>> x.dtype
        dtype('float64')
    """
    if callable(getattr(jax, "enable_x64", None)):  # JAX >= 0.8: a config context
        with jax.enable_x64(True):
            yield
    else:  # JAX 0.7: the experimental context manager
        from jax.experimental import enable_x64

        with enable_x64():
            yield
