"""Numerical precision: a 64-bit switch that works on every supported JAX version.

JAX computes in float32 unless 64-bit mode is on. Closed-form checks and ill-conditioned solves
need float64; :func:`enable_x64` turns it on for a ``with`` block only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

__all__ = ["enable_x64"]


@contextlib.contextmanager
def enable_x64() -> Iterator[None]:
    """Context manager enabling 64-bit floats: inside it JAX creates and computes float64 arrays.

    A thin wrapper of ``jax.enable_x64`` (``jax.experimental.enable_x64`` on JAX 0.7), so that the
    same code runs on every JAX that kdbook supports.

    Example:
        >>> import jax.numpy as jnp
        >>> with enable_x64():
        ...     x = jnp.ones(3)       # float64 inside the block
        >>> x.dtype
        dtype('float64')
    """
    if callable(getattr(jax, "enable_x64", None)):  # JAX >= 0.8: a config context
        with jax.enable_x64(True):
            yield
    else:  # JAX 0.7: the experimental context manager
        from jax.experimental import enable_x64 as experimental_enable_x64

        with experimental_enable_x64():
            yield
