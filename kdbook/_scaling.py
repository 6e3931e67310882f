"""Exact power-of-two rescaling for scale-invariant computations (private to kdbook)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kdbook._checks import is_concrete


def unit_scale(x: jax.Array, axis: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``(x / 2**e, e)`` with ``2**e`` the power of two just above ``max |x|`` (along ``axis``).

    The entries of ``x / 2**e`` lie in ``(-1, 1)`` with the largest at least 1/2 in magnitude, so
    products and norms of them neither overflow nor underflow, and the rescaling is exact for
    every entry that stays a normal number: cosines, angles and signs computed from the rescaled
    arrays are those of the originals, up to the round-off they had anyway. A zero array (or
    slice) stays zero, with ``e = 0``. ``e`` has ``x``'s rank (``keepdims``), for broadcasting.
    """
    if is_concrete(x):
        # In NumPy: XLA on CPU flushes subnormal numbers (below 1.2e-38 in float32) to zero, so
        # a jnp maximum of all-subnormal entries would be 0; NumPy scales them up exactly.
        a = np.asarray(x)
        if not jax.dtypes.issubdtype(a.dtype, np.floating):
            a = a.astype(jax.dtypes.canonicalize_dtype(float))  # as jnp.ldexp would promote
        peak = np.max(np.abs(a), axis=axis, keepdims=True, initial=0.0)
        _, exponent = np.frexp(peak)
        return jnp.asarray(np.ldexp(a, -exponent).astype(a.dtype)), jnp.asarray(exponent)
    peak = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=0.0)
    _, exponent = jnp.frexp(peak)  # peak = m 2^e with m in [0.5, 1); e = 0 for peak = 0
    return jnp.ldexp(x, -exponent), exponent
