"""Argument checks shared by kdbook's modules (private): one wording for the same error.

Every message names the argument and what is allowed. Value checks of numbers are skipped for
traced values (inside ``jax.jit`` or ``jax.vmap``), where only a concrete value can be compared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
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
    """A concrete scalar hyperparameter as a float; arrays of more than one value, bools,
    strings (also of digits: ``float("0.5")`` would accept them), complex numbers and other
    non-numbers are refused."""
    if isinstance(value, bool | np.bool_) or (
        hasattr(value, "dtype") and np.dtype(value.dtype) == np.bool_
    ):
        raise ValueError(f"{name} must be a number, got the bool {value!r}")
    kind = np.dtype(value.dtype).kind if hasattr(value, "dtype") else ""
    if isinstance(value, str | bytes) or kind in ("U", "S"):
        raise ValueError(f"{name} must be a number, got the string {value!r}")
    if isinstance(value, complex) or kind == "c":
        raise ValueError(f"{name} must be a real number, got the complex {value!r}")
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a single number, got an array of shape {np.shape(value)}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def check_number(name: str, value, *, why: str = "") -> None:
    """``value`` must be a single finite number (any sign)."""
    if not is_concrete(value):
        return
    if not np.isfinite(_scalar(name, value)):
        raise ValueError(_with_reason(f"{name} must be a finite number, got {value!r}", why))


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


def check_finite(name: str, value) -> None:
    """A concrete floating array must hold finite numbers only; traced values are not checked."""
    if not is_concrete(value):
        return
    a = np.asarray(value)
    if jax.dtypes.issubdtype(a.dtype, np.inexact):  # also bfloat16
        finite = np.isfinite(a)
        if not finite.all():
            bad = a.size - int(finite.sum())
            raise ValueError(f"{name} contains {bad} non-finite values (NaN or inf)")


def _array(name: str, value):
    """``value`` as it is if a JAX array, else as a NumPy array; ``None`` and what NumPy cannot
    read (ragged lists...) are refused."""
    if value is None:
        raise ValueError(f"{name} must be an array of numbers, got None")
    if isinstance(value, jax.Array):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers: {err}") from None


def as_float_array(name: str, value) -> jax.Array:
    """``value`` as a JAX array of a floating dtype: integer and bool arrays become the default
    float dtype (float32, or float64 under :func:`kdbook.enable_x64`); complex, string and object
    arrays, and ``None``, are refused."""
    array = _array(name, value)
    dtype = array.dtype
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return jax.numpy.asarray(array, dtype=jax.dtypes.canonicalize_dtype(float))
    if not jax.dtypes.issubdtype(dtype, np.floating):  # float16/32/64 and bfloat16 pass
        raise ValueError(f"{name} must be an array of real numbers, got dtype {dtype}")
    return jax.numpy.asarray(array)


def is_real_dtype(dtype) -> bool:
    """Integers and floating dtypes (float16/32/64, bfloat16); not bools, complex or strings."""
    return np.dtype(dtype).kind in "iu" or jax.dtypes.issubdtype(dtype, np.floating)


def _holds_bool(value) -> bool:
    if isinstance(value, list | tuple):
        return any(_holds_bool(entry) for entry in value)
    return isinstance(value, bool | np.bool_)


def real_array(name: str, value, *, integer: bool = False) -> np.ndarray:
    """A concrete NumPy copy of ``value``, numbers only: float64 (or int64 with ``integer=True``,
    which refuses non-integer dtypes). Bools (also inside lists), complex numbers, strings,
    ragged lists and ``None`` are refused; shapes and values are the caller's to check."""
    if not is_concrete(value):
        raise TypeError(f"{name} must be concrete (a list or NumPy array), not a traced value")
    if value is None or _holds_bool(value):
        raise ValueError(f"{name} must hold numbers, got {value!r}"[:200])
    array = np.asarray(_array(name, value))
    if not (is_real_dtype(array.dtype) and (array.dtype.kind in "iu" or not integer)):
        allowed = "integers" if integer else "real numbers"
        raise ValueError(f"{name} must hold {allowed}, got dtype {array.dtype}")
    return array.astype(np.int64 if integer else np.float64)  # bfloat16 and float16 too


def _check_fits_jax_integers(name: str, array: np.ndarray) -> None:
    """A NumPy integer array must fit the integer dtype JAX converts it to (int32 unless x64 is
    enabled): ``jnp.asarray`` would wrap ``2**32 + 1`` to 1 without an error."""
    if array.dtype.kind in "iu" and array.size:
        info = np.iinfo(jax.dtypes.canonicalize_dtype(array.dtype))
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise ValueError(
                f"{name} hold values in [{low}, {high}], beyond {info.dtype}, the integer "
                "dtype JAX uses here (kdbook.enable_x64() allows 64-bit integers)"
            )


def as_array(name: str, value) -> jax.Array:
    """``value`` as a JAX array of real numbers, integers or bools, dtype kept (lists are
    converted); complex, string and object arrays, ``None``, and NumPy integers beyond JAX's
    integer dtype are refused."""
    array = _array(name, value)
    if not (is_real_dtype(array.dtype) or array.dtype == np.bool_):
        raise ValueError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    if not isinstance(array, jax.Array):
        _check_fits_jax_integers(name, array)
    return jnp.asarray(array)


def as_labels(name: str, labels, *, allow_bool: bool = False) -> jax.Array:
    """Integer class labels as a JAX array (``allow_bool``: bools too). ``None``, strings, floats
    and values beyond the default integer dtype are refused: ``jnp.asarray`` would wrap labels
    of ``2**32`` and more to small classes without an error in float32 mode (int32)."""
    if labels is None:
        raise ValueError(f"{name} must be an array of integer class labels, got None")
    labels = _array(name, labels)
    if not isinstance(labels, jax.Array):
        _check_fits_jax_integers(name, labels)
    dtype = np.dtype(labels.dtype)
    if not (dtype.kind in "iu" or (allow_bool and dtype == np.bool_)):
        allowed = "integers or bools" if allow_bool else "integer class indices"
        raise ValueError(f"{name} must be {allowed}, got dtype {dtype}")
    return jnp.asarray(labels)


def check_float_leaves(name: str, tree, *, why: str = "") -> None:
    """Every leaf of the pytree ``tree`` must have a floating dtype (checked on dtypes, so also
    for traced values): integer and bool leaves are refused, e.g. parameters to differentiate."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if not jax.dtypes.issubdtype(dtype, np.floating):
            raise ValueError(
                _with_reason(
                    f"{name}{jax.tree_util.keystr(path)} must be a floating array, got dtype "
                    f"{dtype}",
                    why,
                )
            )


def check_key(name: str, key) -> None:
    """``key`` must be one JAX PRNG key: ``jax.random.key(seed)`` (shape ``()``, or a legacy
    ``jax.random.PRNGKey(seed)`` of shape ``(2,)``), not an integer seed, ``None`` or an array of
    several (split) keys."""
    if isinstance(key, jax.Array | jax.core.Tracer):
        typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        if typed or (key.dtype == np.uint32 and key.shape[-1:] == (2,)):  # a legacy raw key
            if key.shape == (() if typed else (2,)):
                return
            shape = key.shape if typed else key.shape[:-1]
            raise ValueError(
                f"{name} must be a single JAX PRNG key such as jax.random.key(0), got an array "
                f"of keys of shape {shape} (to use split keys, pass one of them, e.g. keys[0])"
            )
    raise ValueError(
        f"{name} must be a JAX PRNG key such as jax.random.key(0), got "
        f"{type(key).__name__}{'' if key is None else ' ' + repr(key)[:40]}"
    )


def check_callable(name: str, value, *, what: str) -> None:
    """``value`` must be callable (``what`` says what it computes)."""
    if not callable(value):
        raise ValueError(f"{name} must be a function {what}, got {value!r}"[:200])


def check_bool(name: str, value) -> None:
    """``value`` must be ``True`` or ``False`` (a Python or NumPy bool)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_square_fits(name: str, value, dtype=None) -> None:
    """A scale whose square (a variance) must be finite in ``dtype`` (default: JAX's float)."""
    if not is_concrete(value):
        return
    dtype = jax.dtypes.canonicalize_dtype(float) if dtype is None else np.dtype(dtype)
    if abs(_scalar(name, value)) > float(np.finfo(dtype).max) ** 0.5:
        raise ValueError(f"{name}={value!r} is too large: its square overflows {np.dtype(dtype)}")


def check_no_overflow(value, what: str, *, scale: tuple[str, object] | None = None):
    """A concrete result computed from finite inputs must be finite: else its dtype overflowed.
    ``scale=(name, given)`` blames the argument ``name`` (a scale that was too large)."""
    if is_concrete(value) and not np.isfinite(np.asarray(value)).all():
        dtype = np.asarray(value).dtype
        if scale is not None:
            name, given = scale
            raise ValueError(
                f"{name} must be small enough that {what} are finite in {dtype}, got {given!r} "
                f"(use a smaller {name}, or float64 inside kdbook.enable_x64())"
            )
        raise ValueError(
            f"{what} overflows {dtype} for these inputs (beyond {float(np.finfo(dtype).max):.3g}):"
            " rescale them, or compute in float64 with kdbook.enable_x64()"
        )
    return value
