"""kdbook.precision: the 64-bit switch."""

import jax.numpy as jnp

import kdbook as kd


def test_enable_x64_context_is_scoped():
    with kd.enable_x64():
        assert jnp.ones(2).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32


def test_float64_is_no_longer_a_name_of_kdbook():
    """The switch reads as a context manager, not as a dtype (it was kd.float64())."""
    assert not hasattr(kd, "float64")
