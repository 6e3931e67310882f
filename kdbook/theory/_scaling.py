"""Exact power-of-two rescaling for scale-invariant quantities (private to kdbook.theory)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def unit_scale(x: jax.Array, axis: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``(x / 2**e, e)`` with ``2**e`` the power of two just above ``max |x|`` (along ``axis``).

    The entries of ``x / 2**e`` lie in ``(-1, 1)`` with the largest at least 1/2 in magnitude, so
    products and norms of them neither overflow nor underflow, and the rescaling is exact for
    every entry that stays a normal number: cosines, angles and signs computed from the rescaled
    arrays are those of the originals, up to the round-off they had anyway. A zero array (or
    slice) stays zero, with ``e = 0``. ``e`` has ``x``'s rank (``keepdims``), for broadcasting.
    """
    peak = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=0.0)
    _, exponent = jnp.frexp(peak)  # peak = m 2^e with m in [0.5, 1); e = 0 for peak = 0
    return jnp.ldexp(x, -exponent), exponent
