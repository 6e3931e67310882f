"""Argument checks shared by kdbook's modules (private): one wording for the same error.

Every message names the argument and what is allowed. Value checks of numbers are skipped for
traced values (inside ``jax.jit`` or ``jax.vmap``), where only a concrete value can be compared.
"""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(*values) -> bool:
    """Whether every value is concrete, i.e. not traced inside ``jit``/``vmap`` (value checks)."""
    return not any(isinstance(value, jax.core.Tracer) for value in values)


def _with_reason(message: str, why: str) -> str:
    return f"{message} ({why})" if why else message


def check_choice(name: str, value, allowed, *, why: str = "") -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            _with_reason(f"{name} must be one of {tuple(allowed)}, got {value!r}", why)
        )


def check_int(name: str, value, *, minimum: int = 1, allow_none: bool = False) -> None:
    """``value`` must be a Python or NumPy integer (not a bool) ``>= minimum`` (or ``None``)."""
    if allow_none and value is None:
        return
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _scalar(name: str, value) -> float:
    """A concrete scalar hyperparameter as a float; arrays of more than one value are refused."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a single number, got an array of shape {np.shape(value)}")
    return float(value)


def check_unit_interval(name: str, value, *, closed_right: bool = True) -> None:
    """``value`` must lie in ``[0, 1]`` (or ``[0, 1)`` with ``closed_right=False``)."""
    if not is_concrete(value):
        return
    v = _scalar(name, value)
    inside = 0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0  # also rejects NaN
    if not inside:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {v!r}")


def check_positive(name: str, value, *, why: str = "") -> None:
    """``value`` must be a finite number ``> 0``."""
    if not is_concrete(value):
        return
    v = _scalar(name, value)
    if not v > 0:  # also rejects NaN
        raise ValueError(_with_reason(f"{name} must be > 0, got {v!r}", why))
    if not np.isfinite(v):
        raise ValueError(_with_reason(f"{name} must be a finite number > 0, got {v!r}", why))


def check_nonnegative(name: str, value, *, why: str = "") -> None:
    """``value`` must be a finite number ``>= 0``."""
    if not is_concrete(value):
        return
    v = _scalar(name, value)
    if not v >= 0:  # also rejects NaN
        raise ValueError(_with_reason(f"{name} must be >= 0, got {v!r}", why))
    if not np.isfinite(v):
        raise ValueError(_with_reason(f"{name} must be a finite number >= 0, got {v!r}", why))
