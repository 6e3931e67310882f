"""Shared test configuration.

As in equinox's suite, implicit rank promotion raises, so a silent broadcasting bug fails loudly.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
