"""kdbook.precision: the float64 switch."""

import jax.numpy as jnp

import kdbook as kd


def test_float64_context_is_scoped():
    with kd.float64():
        assert jnp.ones(2).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32
