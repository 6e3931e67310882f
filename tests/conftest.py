"""Shared test configuration.

As in equinox's suite, implicit rank promotion raises, so a silent broadcasting bug fails loudly.
"""

import contextlib

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_disable_most_optimizations", True)

_COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kwargs: (
        _COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
)


@pytest.fixture
def count_compiles():
    """``with count_compiles() as n: ...`` then ``n()``: XLA compilations inside the block."""

    @contextlib.contextmanager
    def counting():
        start = len(_COMPILES)
        yield lambda: len(_COMPILES) - start

    return counting
