"""Argument checks shared by kdbook's modules (private): one wording for the same error."""

from __future__ import annotations

import jax


def is_concrete(*values) -> bool:
    """Whether every value is concrete, i.e. not traced inside ``jit``/``vmap`` (value checks)."""
    return not any(isinstance(value, jax.core.Tracer) for value in values)


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
