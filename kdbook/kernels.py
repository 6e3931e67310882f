r"""Kernel regression and the closed-form gradient-descent dynamics of linearized models.

Everything here takes kernel matrices and knows nothing about networks: a kernel is a symmetric
positive semi-definite matrix :math:`K_{ij} = k(x_i, x_j)` on the ``n`` training inputs, and a
cross kernel :math:`K_* \in \mathbb{R}^{m \times n}` holds :math:`k(x^*_a, x_j)` for ``m`` test
inputs. Targets ``y`` are ``(n,)`` or ``(n, k)``; with ``k`` outputs the same scalar kernel is
shared by every output (as for the NTK of a network whose output layer is a plain dense layer).

* :func:`kernel_solve` solves :math:`(K + \lambda I)\,x = b` by Cholesky.
* :func:`kernel_regression` predicts :math:`K_* (K + \lambda I)^{-1} y`: kernel ridge regression,
  and for :math:`\lambda = 0` the minimum-norm interpolant.
* :func:`kernel_features` gives explicit features whose inner products are the kernel, so a
  kernel model is a linear model with finite weights (the weight change of a wide network).
* :func:`kernel_spectrum` gives eigenvalues in descending order and their eigenvectors.
* :func:`linearized_dynamics` gives the predictions of a linearized model trained by gradient
  descent (or gradient flow) under the mean squared error, in closed form, at any times.

**Calling convention.** Every function takes the kernel on the training inputs first and the
``targets`` second, positionally; everything else is keyword-only (``kernel_test_train=``,
``ridge=``, ``times=``, ...): ``kernel_regression(K, y, kernel_test_train=K_star)``. The
kernel-regime quantities of :mod:`kdbook.theory` (:func:`~kdbook.theory.kernel_complexity`,
:func:`~kdbook.theory.kernel_alignment`) follow it too.

**Errors.** Bad shapes or values raise ``ValueError`` naming the argument. A kernel that a
Cholesky factorisation cannot handle in its dtype, because it has a negative eigenvalue or is too
ill-conditioned (a float32 kernel on near-duplicate inputs has a condition number beyond
:math:`10^8`), raises :class:`numpy.linalg.LinAlgError` (a subclass of ``ValueError``) whose
message suggests a ridge or float64 (:func:`kdbook.precision.enable_x64`); it never returns NaN
silently. Value checks (symmetry, signs, non-finite results) need concrete arrays: for traced
arguments, inside ``jax.jit`` or ``jax.vmap``, only shapes are checked and results are returned
as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_no_overflow as _check_no_overflow
from kdbook._checks import check_nonnegative as _check_nonnegative
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import is_concrete as _concrete
from kdbook._checks import real_array as _real_array
from kdbook._scaling import unit_scale

__all__ = [
    "kernel_features",
    "kernel_regression",
    "kernel_solve",
    "kernel_spectrum",
    "linearized_dynamics",
]


# ----------------------------------------------------------------------------- validation


@jax.jit
def _kernel_summary(kernel: jax.Array):
    """Largest entry, largest asymmetry and finiteness, in one fused pass (O(n^2))."""
    return (
        jnp.max(jnp.abs(kernel)),
        jnp.max(jnp.abs(kernel - kernel.T)),
        jnp.all(jnp.isfinite(kernel)),
    )


def _check_kernel(name: str, kernel: ArrayLike) -> jax.Array:
    """A square, finite, symmetric (n, n) float matrix with n >= 1."""
    kernel = _as_float_array(name, kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] == 0:
        raise ValueError(f"{name} must be a square (n, n) matrix with n >= 1, got {kernel.shape}")
    if _concrete(kernel):
        # Evaluate now, even inside a jit trace where a constant kernel would become a tracer.
        with jax.ensure_compile_time_eval():
            scale, asymmetry, finite = (x.item() for x in _kernel_summary(kernel))
        if not finite:
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")
        # Kernels built as J J^T are symmetric only up to round-off; sqrt(eps) is generous.
        tolerance = float(np.sqrt(np.finfo(kernel.dtype).eps)) * scale
        if asymmetry > tolerance:
            raise ValueError(
                f"{name} must be symmetric: max |K - K^T| = {asymmetry:.3g} exceeds "
                f"{tolerance:.3g} (sqrt(eps) of {kernel.dtype} times max |K|)"
            )
    return kernel


def _check_rows(name: str, x: ArrayLike, n: int, what: str) -> jax.Array:
    """A finite float (n,) or (n, k) array whose rows belong to the n points of ``what``."""
    x = _as_float_array(name, x)
    if x.ndim not in (1, 2) or x.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) or ({n}, k) to match {what}, got {x.shape}"
        )
    _check_finite(name, x)
    return x


def _check_shape(name: str, x: ArrayLike, shape: tuple[int, ...], why: str) -> jax.Array:
    """A finite float array of the given shape."""
    x = _as_float_array(name, x)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({why}), got {x.shape}")
    _check_finite(name, x)
    return x


def _check_cross(kernel_test_train: ArrayLike, n: int) -> jax.Array:
    """A finite float (m, n) cross kernel."""
    cross = _as_float_array("kernel_test_train", kernel_test_train)
    if cross.ndim != 2 or cross.shape[1] != n:
        raise ValueError(
            f"kernel_test_train must have shape (m, {n}) (test points by the {n} training "
            f"points), got {cross.shape}"
        )
    _check_finite("kernel_test_train", cross)
    return cross


def _ridge_exponent(ridge, dtype) -> int:
    """An even ``k`` such that ``(K + ridge I) / 2**k`` is safe to factorise in ``dtype``: 0 (no
    rescaling) unless the ridge is within a factor 16 of the dtype's largest number. Scaling by a
    power of two is exact, and the solution of the scaled system is scaled back."""
    if not _concrete(ridge):
        return 0
    value = float(ridge)
    if value <= float(np.finfo(dtype).max) / 16:
        return 0
    k = math.frexp(value)[1] - np.finfo(dtype).maxexp // 2  # ridge / 2**k is about 2**(maxexp/2)
    return k + k % 2


def _not_positive_definite(name: str, kernel: jax.Array) -> np.linalg.LinAlgError:
    n, dtype = kernel.shape[0], kernel.dtype
    suggestion = 1e-6 * float(np.mean(np.diag(np.asarray(kernel))))
    return np.linalg.LinAlgError(
        f"{name} is not numerically positive definite in {dtype}: the Cholesky factorisation "
        f"of the ({n}, {n}) matrix failed (a pivot was not positive or not finite). Either the "
        f"kernel has a negative eigenvalue, or it is too ill-conditioned for {dtype} (for "
        f"example near-duplicate inputs). Add a ridge to its diagonal, e.g. "
        f"ridge={suggestion:.1e} (1e-6 times the mean diagonal; increase it if this error "
        "persists), or compute in float64 inside "
        "`with kdbook.enable_x64():`."
    )


# ----------------------------------------------------------------------------- solves

# The numerical cores are jitted: eager dispatch of their O(n^2) steps cost as much as the
# O(n^3) factorisations they surround.


@jax.jit
def _cholesky_solve(kernel: jax.Array, rhs: jax.Array, ridge) -> tuple[jax.Array, jax.Array]:
    """(K + ridge I)^{-1} rhs, and whether the factorisation succeeded (a finite factor with
    positive pivots)."""
    factor = cho_factor(kernel + ridge * jnp.eye(kernel.shape[0], dtype=kernel.dtype), lower=True)
    solution = cho_solve(factor, rhs)
    # A failed Cholesky (a pivot <= 0) fills the factor with NaN instead of raising.
    factored = jnp.all(jnp.isfinite(factor[0])) & jnp.all(jnp.diagonal(factor[0]) > 0)
    return solution, factored


def _solve(name: str, kernel: jax.Array, rhs: jax.Array, ridge) -> jax.Array:
    """(K + ridge I)^{-1} rhs for validated arguments; raises instead of returning NaN: a failed
    factorisation, or (a factorisation that succeeded) a solution too large for the dtype."""
    dtype = jnp.result_type(kernel, rhs)
    kernel = kernel.astype(dtype)
    k = _ridge_exponent(ridge, dtype)
    if k:  # a ridge near overflow: solve (K / 2^k + ridge / 2^k I) z = rhs, x = z / 2^k
        solution, factored = _cholesky_solve(
            jnp.ldexp(kernel, -k), rhs.astype(dtype), math.ldexp(float(ridge), -k)
        )
        solution = jnp.ldexp(solution, -k)
    else:
        solution, factored = _cholesky_solve(kernel, rhs.astype(dtype), ridge)
    if _concrete(factored) and not factored.item():
        raise _not_positive_definite(name, kernel)
    return _check_no_overflow(solution, f"the solution of ({name} + ridge I) x = b")


def kernel_solve(kernel: ArrayLike, targets: ArrayLike, *, ridge: float = 0.0) -> jax.Array:
    r"""Solve :math:`(K + \lambda I)\,x = b` for a symmetric positive (semi-)definite kernel.

    .. math:: x = (K + \lambda I)^{-1} b, \qquad K + \lambda I = L L^\top \text{ (Cholesky)}

    Args:
        kernel: :math:`K`, a symmetric ``(n, n)`` matrix (symmetric up to ``sqrt(eps)`` of its
            dtype times its largest entry; only the lower triangle is used).
        targets: :math:`b`, the right-hand side, shape ``(n,)`` or ``(n, k)``.
        ridge: :math:`\lambda \ge 0`, added to the diagonal.

    Returns:
        :math:`x`, shaped like ``targets``.

    Raises:
        ValueError: bad shapes, a non-symmetric or non-finite kernel, a non-finite ``targets``,
            a ``ridge`` that is not a finite number ``>= 0``, or (concrete input) a solution
            that overflows the dtype although the factorisation succeeded.
        numpy.linalg.LinAlgError: (a ``ValueError`` subclass) the Cholesky factorisation failed,
            because :math:`K + \lambda I` has an eigenvalue that is negative beyond round-off or
            is too ill-conditioned for its dtype. The message suggests a ridge and float64. This
            check needs concrete values: under ``jax.jit`` a failed factorisation returns NaN.
    """
    kernel = _check_kernel("kernel", kernel)
    targets = _check_rows("targets", targets, kernel.shape[0], "kernel")
    _check_nonnegative("ridge", ridge)
    return _solve("kernel", kernel, targets, ridge)


def kernel_regression(
    kernel: ArrayLike,
    targets: ArrayLike,
    *,
    kernel_test_train: ArrayLike | None = None,
    ridge: float = 0.0,
) -> jax.Array:
    r"""Kernel ridge regression; with ``ridge=0`` the minimum-norm interpolant.

    .. math:: \hat f(X_*) = K_* (K + \lambda I)^{-1} y

    With :math:`\lambda = 0` this is the minimum-RKHS-norm function that interpolates the
    training targets, and the limit :math:`t \to \infty` of :func:`linearized_dynamics` started
    from :math:`f_0 = 0`.

    Args:
        kernel: :math:`K`, ``(n, n)`` on the training inputs, symmetric positive definite (or
            semi-definite with ``ridge > 0``).
        targets: :math:`y`, ``(n,)`` or ``(n, k)`` training targets.
        kernel_test_train: :math:`K_*`, ``(m, n)``; ``None`` predicts on the training points
            (:math:`K_* = K`), giving the fitted values.
        ridge: :math:`\lambda \ge 0`.

    Returns:
        ``(m,)`` or ``(m, k)`` predictions (``(n,)``/``(n, k)`` with ``kernel_test_train=None``).

    Raises:
        ValueError: as :func:`kernel_solve`, for a ``kernel_test_train`` not of shape
            ``(m, n)`` or with NaN or infinite values, and (concrete input) for predictions that
            overflow their dtype.
        numpy.linalg.LinAlgError: as :func:`kernel_solve`.
    """
    kernel = _check_kernel("kernel", kernel)
    n = kernel.shape[0]
    y = _check_rows("targets", targets, n, "kernel")
    cross = kernel if kernel_test_train is None else _check_cross(kernel_test_train, n)
    _check_nonnegative("ridge", ridge)
    weights = _solve("kernel", kernel, y, ridge)
    return _check_no_overflow(cross.astype(weights.dtype) @ weights, "kernel_regression")


def kernel_features(
    kernel: ArrayLike,
    *,
    kernel_test_train: ArrayLike | None = None,
    test_diagonal: ArrayLike | None = None,
    ridge: float = 0.0,
) -> tuple[jax.Array, jax.Array | None]:
    r"""Explicit features for a kernel: a kernel model as a linear model with finite weights.

    With the Cholesky factorisation :math:`K + \lambda I = L L^\top`, the rows of :math:`L` are
    vectors :math:`\psi(x_i) \in \mathbb{R}^n` whose inner products are the kernel, so every
    kernel model :math:`f = \sum_i c_i k(\cdot, x_i)` on the training inputs becomes a linear
    model :math:`f(x) = \psi(x)^\top w` with weights :math:`w = L^\top c`, and the RKHS norm
    of :math:`f` is :math:`\lVert w \rVert`. In the kernel regime :math:`w` plays the part of a
    wide network's weight change :math:`\Delta\theta`: inner products, norms and angles of weight
    changes, which live in the span of the training features, are those of these vectors
    (:func:`kdbook.theory.vector_angle`, :func:`kdbook.theory.span_projection`,
    :func:`kdbook.theory.boundary_angles` apply unchanged).

    A test input :math:`x` gets the coordinates :math:`L^{-1} k(X, x)` of its feature's
    projection on that span, and one more coordinate,
    :math:`\sqrt{k(x, x) - \lVert L^{-1} k(X, x) \rVert^2}`, the length of the part orthogonal
    to it, so that :math:`\lVert \psi(x) \rVert^2 = k(x, x)`. Training features get a zero
    there. The features are exact for inner products with training features (and with any weight
    vector in their span) and for norms; the orthogonal parts of two test inputs are in truth
    different directions, so inner products *between test features* are not the kernel.

    With a ridge :math:`\lambda > 0` the training features are those of :math:`K + \lambda I`
    (each training point has a private extra feature of length :math:`\sqrt\lambda`), and the
    minimum-norm interpolant in these features is kernel ridge regression.

    Args:
        kernel: :math:`K`, ``(n, n)`` symmetric positive definite (semi-definite with a ridge).
        kernel_test_train: :math:`K_*`, ``(m, n)``, or ``None`` for training features only.
        test_diagonal: :math:`k(x, x)` for the ``m`` test inputs, ``(m,)``; required with
            ``kernel_test_train``.
        ridge: :math:`\lambda \ge 0`.

    Returns:
        ``(train_features, test_features)``: ``(n, n + 1)`` and ``(m, n + 1)`` (``None``
        without test inputs). ``train_features @ train_features.T`` is :math:`K + \lambda I`.

    Raises:
        ValueError: bad shapes, one of ``kernel_test_train`` and ``test_diagonal`` without the
            other, non-finite values, a ``ridge`` that is not a finite number ``>= 0``, or a
            test diagonal smaller than the squared length of its projection beyond round-off
            (a kernel that is not positive semi-definite across train and test).
        numpy.linalg.LinAlgError: as :func:`kernel_solve`, when :math:`K + \lambda I` cannot be
            factorised.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
        >>> K = x @ x.T + 1.0  # a linear kernel with a constant
        >>> phi, phi_test = kernel_features(K[:2, :2], kernel_test_train=K[2:, :2],
        ...                                 test_diagonal=jnp.diag(K)[2:])
        >>> bool(jnp.allclose(phi @ phi.T, K[:2, :2]))
        True
        >>> bool(jnp.allclose(phi_test @ phi.T, K[2:, :2]))  # exact against training features
        True
    """
    kernel = _check_kernel("kernel", kernel)
    n = kernel.shape[0]
    _check_nonnegative("ridge", ridge)
    if (kernel_test_train is None) != (test_diagonal is None):
        raise ValueError(
            "kernel_test_train and test_diagonal go together: a test feature needs its "
            "projection (from kernel_test_train) and its length (from test_diagonal)"
        )
    cross = diagonal = None
    if kernel_test_train is not None:
        cross = _check_cross(kernel_test_train, n)
        diagonal = _check_shape(
            "test_diagonal", test_diagonal, (cross.shape[0],), "one k(x, x) per test input"
        )
    dtype = jnp.result_type(*(a for a in (kernel, cross, diagonal) if a is not None))
    k = _ridge_exponent(ridge, dtype)
    if k:  # a ridge near overflow: L = 2^(k/2) chol(K / 2^k + ridge / 2^k I)
        factor, finite = _cholesky_factor(
            jnp.ldexp(kernel.astype(dtype), -k), math.ldexp(float(ridge), -k)
        )
        factor = jnp.ldexp(factor, k // 2)
    else:
        factor, finite = _cholesky_factor(kernel.astype(dtype), ridge)
    if _concrete(finite) and not finite.item():
        raise _not_positive_definite("kernel", kernel.astype(dtype))
    train = jnp.concatenate([factor, jnp.zeros((n, 1), dtype)], axis=1)
    if cross is None:
        return train, None
    projection, rest = _test_features(factor, cross.astype(dtype), diagonal.astype(dtype))
    if _concrete(rest):
        scale = float(jnp.max(jnp.abs(diagonal), initial=0.0))
        tolerance = float(np.sqrt(np.finfo(np.dtype(dtype)).eps)) * max(scale, 1e-300)
        if float(jnp.min(rest, initial=0.0)) < -tolerance:
            raise ValueError(
                "test_diagonal is smaller than the squared length of the test features' "
                f"projection (by {-float(jnp.min(rest)):.3g}): the kernel on the training and "
                "test inputs together is not positive semi-definite"
            )
    length = jnp.sqrt(jnp.maximum(rest, 0.0))
    return train, jnp.concatenate([projection, length[:, None]], axis=1)


@jax.jit
def _cholesky_factor(kernel: jax.Array, ridge) -> tuple[jax.Array, jax.Array]:
    """Lower Cholesky factor of K + ridge I, and whether it is finite."""
    factor = jnp.linalg.cholesky(kernel + ridge * jnp.eye(kernel.shape[0], dtype=kernel.dtype))
    return factor, jnp.all(jnp.isfinite(factor))


@jax.jit
def _test_features(factor, cross, diagonal):
    projection = jax.scipy.linalg.solve_triangular(factor, cross.T, lower=True).T
    return projection, diagonal - jnp.sum(projection**2, axis=1)


def kernel_spectrum(kernel: ArrayLike) -> tuple[jax.Array, jax.Array]:
    r"""Eigenvalues in descending order and their eigenvectors: :math:`K = V \Lambda V^\top`.

    Args:
        kernel: a symmetric ``(n, n)`` matrix.

    Returns:
        ``(eigenvalues, eigenvectors)``: ``(n,)`` with
        :math:`\lambda_1 \ge \dots \ge \lambda_n`, and ``(n, n)`` orthonormal columns,
        ``eigenvectors[:, i]`` belonging to ``eigenvalues[i]``.

    Raises:
        ValueError: for a kernel that is not a square ``(n, n)`` array of real numbers with
            ``n >= 1``, or (concrete input) is not finite or not symmetric.
    """
    kernel = _check_kernel("kernel", kernel)
    eigenvalues, eigenvectors = _spectrum(kernel)
    return eigenvalues[::-1], eigenvectors[:, ::-1]


def _eigh(kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jnp.linalg.eigh`` (ascending) of the kernel scaled by the power of two near its largest
    entry, the eigenvalues scaled back: exact, and free of the overflow (entries near the dtype's
    largest number) and the underflow of intermediate products (entries below about the square
    root of its smallest normal number) of a direct call. Subnormal entries themselves are
    flushed to zero by XLA on CPU before any scaling."""
    scaled, exponent = unit_scale(kernel)
    eigenvalues, eigenvectors = jnp.linalg.eigh(scaled)
    return jnp.ldexp(eigenvalues, exponent.reshape(())), eigenvectors


_spectrum = jax.jit(_eigh)


# ----------------------------------------------------------------------------- dynamics


def _check_times(times, discrete: bool) -> np.ndarray:
    times = _real_array("times", times)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-D sequence, got shape {times.shape}")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError(f"times must be >= 0 (np.inf allowed), got {times}")
    finite = times[np.isfinite(times)]
    if discrete and not np.all(finite == np.round(finite)):
        raise ValueError(
            f"with discrete=True, times are numbers of gradient-descent steps and must be "
            f"integers (or np.inf), got {times}"
        )
    if discrete and np.any(finite > np.iinfo(np.int32).max):
        raise ValueError(
            f"with discrete=True, times must be at most 2**31 - 1 steps (or np.inf for the "
            f"limit), got {times}"
        )
    return times


def _check_step_size(learning_rate, largest_eigenvalue, n: int) -> None:
    if not _concrete(learning_rate, largest_eigenvalue):
        return
    largest = float(largest_eigenvalue)
    if learning_rate * largest / n >= 2:
        raise ValueError(
            f"learning_rate={learning_rate} makes gradient descent diverge: it needs "
            f"learning_rate * lambda_max / n < 2, i.e. learning_rate < 2n/lambda_max = "
            f"{2 * n / largest:.6g} (n={n}, lambda_max={largest:.6g})"
        )


def _check_semidefinite(smallest_eigenvalue, largest_eigenvalue) -> None:
    if not _concrete(smallest_eigenvalue, largest_eigenvalue):
        return
    smallest, largest = smallest_eigenvalue.item(), largest_eigenvalue.item()
    # Round-off makes zero eigenvalues of a PSD kernel slightly negative; those are clipped.
    tolerance = float(np.sqrt(np.finfo(smallest_eigenvalue.dtype).eps)) * max(largest, 0.0)
    if smallest < -tolerance:
        raise np.linalg.LinAlgError(
            f"kernel is not positive semi-definite: its smallest eigenvalue {smallest:.3g} "
            f"is negative beyond round-off (largest eigenvalue {largest:.3g})"
        )


def _flow_factors(eigenvalues, times, eta_over_n):
    r""":math:`1 - e^{-a\lambda}` and :math:`(1 - e^{-a\lambda})/\lambda`, :math:`a = \eta t/n`."""
    scale = eta_over_n * times[:, None]  # (T, 1)
    x = scale * eigenvalues[None, :]  # (T, n)
    learned = -jnp.expm1(-x)
    # (1 - e^{-x})/lambda = a (1 - e^{-x})/x, and (1 - e^{-x})/x -> 1 as x -> 0. For huge x, where
    # (1 - e^{-x})/x would underflow (or x overflow), it is 1/lambda (x > 0 implies lambda > 0).
    positive = x > jnp.finfo(x.dtype).tiny
    huge = x > 2.0**64
    safe = jnp.where(positive & ~huge, x, 1.0)
    gain = jnp.where(
        huge,
        1.0 / jnp.where(huge, eigenvalues[None, :], 1.0),
        scale * jnp.where(positive, learned / safe, 1.0),
    )
    return learned, gain


def _discrete_factors(eigenvalues, steps, eta_over_n):
    r""":math:`1 - (1 - h)^t` and :math:`(1 - (1 - h)^t)/\lambda` with :math:`h = \eta\lambda/n`."""
    h = eta_over_n * eigenvalues[None, :]  # (1, n), in [0, 2) for a stable step
    t = steps[:, None]  # (T, 1) integers
    # For small h, 1 - (1 - h)^t cancels; -expm1(t log1p(-h)) does not. For h >= 1/2 there is
    # no cancellation, and an integer power keeps the sign of (1 - h)^t when 1 < h < 2.
    small = h < 0.5
    log_base = jnp.log1p(-jnp.where(small, h, 0.0))
    learned = jnp.where(small, -jnp.expm1(t * log_base), 1.0 - jnp.power(1.0 - h, t))
    # (1 - (1 - h)^t)/lambda = (eta/n) (1 - (1 - h)^t)/h, which -> (eta/n) t as h -> 0.
    positive = h > jnp.finfo(h.dtype).tiny
    gain = eta_over_n * jnp.where(
        positive, learned / jnp.where(positive, h, 1.0), t.astype(h.dtype)
    )
    return learned, gain


@partial(jax.jit, static_argnames="discrete")
def _finite_time_outputs(kernel, f0, residual, cross, f0_star, times, eta_over_n, discrete):
    """Train and test outputs at finite times from one eigendecomposition, and its extremes."""
    eigenvalues, eigenvectors = _eigh(kernel)  # ascending
    clipped = jnp.maximum(eigenvalues, 0.0)
    factors = _discrete_factors if discrete else _flow_factors
    learned, gain = factors(clipped, times, eta_over_n)  # (T, n) each
    coefficients = (eigenvectors.T @ residual)[None]  # r_0 in the eigenbasis, (1, n, k)
    # f_t(X) = f_0(X) + (I - M_t) r_0, which is exactly f_0 at t = 0.
    f_train = f0[None] + jnp.einsum("ij,tjk->tik", eigenvectors, learned[:, :, None] * coefficients)
    f_test = None
    if cross is not None:
        gained = gain[:, :, None] * coefficients
        f_test = f0_star[None] + jnp.einsum("ij,tjk->tik", cross @ eigenvectors, gained)
    finite = jnp.all(jnp.isfinite(f_train))
    if f_test is not None:
        finite = finite & jnp.all(jnp.isfinite(f_test))
    return f_train, f_test, eigenvalues[0], eigenvalues[-1], finite


def linearized_dynamics(
    kernel: ArrayLike,
    targets: ArrayLike,
    *,
    times: Sequence[float] | np.ndarray,
    learning_rate: float,
    f0_train: ArrayLike | None = None,
    kernel_test_train: ArrayLike | None = None,
    f0_test: ArrayLike | None = None,
    discrete: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
    r"""Closed-form predictions of a linearized model trained by gradient descent under MSE.

    The loss is :math:`L(\theta) = \frac{1}{2n}\sum_{i=1}^n \lVert f(x_i) - y_i \rVert^2`
    (:func:`kdbook.losses.squared_loss`, the loss to train the network with for a comparison). A
    linearized model :math:`f(x) = f_0(x) + \nabla_\theta f_0(x)\,(\theta - \theta_0)` with
    tangent kernel :math:`K` trained with learning rate :math:`\eta` moves its training outputs by

    .. math:: f_{s+1}(X) = f_s(X) - \tfrac{\eta}{n} K \big(f_s(X) - y\big),

    and its outputs on test inputs by :math:`-\tfrac{\eta}{n} K_* (f_s(X) - y)`. With the initial
    residual :math:`r_0 = y - f_0(X)`, after time :math:`t`

    .. math::

        f_t(X) = y - M_t\, r_0, \qquad
        f_t(X_*) = f_0(X_*) + K_* K^{-1} (I - M_t)\, r_0,

    where :math:`M_t = (I - \eta K / n)^t` for ``discrete=True`` (``t`` gradient-descent steps,
    an integer) and :math:`M_t = e^{-\eta K t / n}` for gradient flow (``t`` real, the limit of
    ``t / dt`` steps of size ``dt`` as ``dt -> 0``; one flow time unit is one step). Along an
    eigenvector of :math:`K` with eigenvalue :math:`\lambda`, the residual decays by
    :math:`e^{-\eta\lambda t/n}` (or :math:`(1 - \eta\lambda/n)^t`).

    **Computation.** Finite times share one eigendecomposition :math:`K = V\Lambda V^\top`; the
    factor :math:`K^{-1}(I - M_t)` is applied per eigenvalue as :math:`(1 - m_t(\lambda))/\lambda`,
    evaluated with ``expm1``/``log1p`` and its limit :math:`\eta t/n` as :math:`\lambda \to 0`, so
    a singular :math:`K` is fine at finite times. Eigenvalues slightly negative from round-off are
    clipped to 0. ``t = np.inf`` gives the limit :math:`f_\infty(X) = y`,
    :math:`f_\infty(X_*) = f_0(X_*) + K_* K^{-1} r_0`, computed by :func:`kernel_solve`
    (Cholesky), so it needs a positive definite :math:`K`.

    Args:
        kernel: :math:`K`, the ``(n, n)`` tangent kernel on the training inputs.
        targets: :math:`y`, ``(n,)`` or ``(n, k)`` training targets (one scalar kernel shared by
            the ``k`` outputs).
        times: 1-D sequence of times ``>= 0`` (numbers of steps if ``discrete``); ``np.inf``
            allowed. Must be concrete (not traced).
        learning_rate: :math:`\eta > 0`. For ``discrete=True`` it must satisfy
            :math:`\eta \lambda_{\max} / n < 2`, or gradient descent diverges.
        f0_train: :math:`f_0(X)`, shaped like ``targets``; default zeros.
        kernel_test_train: :math:`K_*`, ``(m, n)``; ``None`` returns no test predictions.
        f0_test: :math:`f_0(X_*)`, ``(m,)`` or ``(m, k)`` like ``targets``; default zeros. Only
            allowed together with ``kernel_test_train``.
        discrete: gradient descent with integer steps (``True``) or gradient flow (``False``).

    Returns:
        ``(f_train, f_test)``: ``(len(times), n)`` or ``(len(times), n, k)`` training outputs and
        ``(len(times), m)`` or ``(len(times), m, k)`` test outputs (``None`` without
        ``kernel_test_train``).

    Raises:
        ValueError: bad shapes, ``times`` not 1-D numbers, negative, or (discrete) not
            integers, a ``learning_rate`` that is not a finite number ``> 0``, a step size with
            :math:`\eta\lambda_{\max}/n \ge 2` (discrete), a non-symmetric kernel, NaN or
            infinite values in any array argument, a ``discrete`` that is not a bool, or
            (concrete values) outputs that overflow the dtype.
        TypeError: traced ``times``.
        numpy.linalg.LinAlgError: a kernel with an eigenvalue negative beyond round-off (finite
            times), or one Cholesky cannot factorise in its dtype (``t = np.inf``), as in
            :func:`kernel_solve`. These checks are skipped when the kernel is traced.

    Example:
        >>> import jax.numpy as jnp
        >>> import kdbook as kd
        >>> x = kd.sample_sphere(20, dim=3, key=jax.random.key(0))
        >>> K, K_star = kd.two_layer_ntk(x), kd.two_layer_ntk(x[:5], x)
        >>> y = jnp.sin(3 * x[:, 0])
        >>> f_train, f_test = kd.linearized_dynamics(
        ...     K, y, times=[0, 10, np.inf], learning_rate=1.0, kernel_test_train=K_star)
        >>> f_train.shape, f_test.shape  # one row per time
        ((3, 20), (3, 5))
        >>> bool(jnp.allclose(f_train[-1], y, atol=1e-4))  # the limit interpolates
        True
    """
    kernel = _check_kernel("kernel", kernel)
    n = kernel.shape[0]
    y = _check_rows("targets", targets, n, "kernel")
    _check_bool("discrete", discrete)
    times = _check_times(times, discrete)
    _check_positive("learning_rate", learning_rate)
    if f0_train is None:
        f0 = jnp.zeros_like(y)
    else:
        f0 = _check_shape("f0_train", f0_train, y.shape, "like targets")
    if kernel_test_train is None:
        if f0_test is not None:
            raise ValueError("f0_test was given without kernel_test_train: pass both or neither")
        cross = f0_star = None
    else:
        cross = _check_cross(kernel_test_train, n)
        test_shape = (cross.shape[0], *y.shape[1:])
        if f0_test is None:
            f0_star = jnp.zeros(test_shape, y.dtype)
        else:
            why = "test points by the outputs of targets"
            f0_star = _check_shape("f0_test", f0_test, test_shape, why)

    dtype = jnp.result_type(*(a for a in (kernel, y, f0, cross, f0_star) if a is not None))
    squeeze = y.ndim == 1
    as_2d = (lambda a: a[:, None]) if squeeze else (lambda a: a)
    kernel, y, f0 = kernel.astype(dtype), as_2d(y).astype(dtype), as_2d(f0).astype(dtype)
    residual = y - f0
    if cross is not None:
        cross, f0_star = cross.astype(dtype), as_2d(f0_star).astype(dtype)

    finite = np.isfinite(times)
    train_parts, test_parts = [], []
    largest_eigenvalue = None
    concrete_rate = _concrete(learning_rate)
    eta_over_n = float(learning_rate) / n if concrete_rate else learning_rate / n
    if finite.any():
        biggest = float(np.finfo(dtype).max)
        latest = float(times[finite].max())
        if discrete:
            finite_times = jnp.asarray(times[finite].astype(np.int32))
            # A step too large for the dtype only passes the step-size check for a zero kernel.
            eta_over_n = min(eta_over_n, biggest) if concrete_rate else eta_over_n
        elif concrete_rate and max(eta_over_n, latest, eta_over_n * latest) > biggest:
            # eta / n, t or eta t / n overflows the dtype: pass eta t / n, clipped, as the times
            # (with eta / n = 1); e^{-eta lambda t / n} has long reached 0 for every lambda > 0.
            with np.errstate(over="ignore"):  # inf, then clipped
                scaled = np.minimum(eta_over_n * times[finite], biggest)
            finite_times = jnp.asarray(scaled, dtype)
            eta_over_n = 1.0
        else:
            finite_times = jnp.asarray(times[finite], dtype)
        f_train, f_test, smallest_eigenvalue, largest_eigenvalue, outputs_finite = (
            _finite_time_outputs(
                kernel, f0, residual, cross, f0_star, finite_times, eta_over_n, discrete
            )
        )
        _check_semidefinite(smallest_eigenvalue, largest_eigenvalue)
        if discrete:
            _check_step_size(learning_rate, largest_eigenvalue, n)
        if _concrete(outputs_finite) and not outputs_finite.item():
            raise ValueError(
                f"the outputs overflow {dtype} at times up to {times[finite].max():.3g} with "
                f"learning_rate={learning_rate!r}: reduce the targets' scale, or compute in "
                "float64 inside kdbook.enable_x64()"
            )
        train_parts.append(f_train)
        test_parts.append(f_test)
    if not finite.all():
        if discrete:
            if largest_eigenvalue is None:
                largest_eigenvalue = jnp.linalg.eigvalsh(kernel)[-1]
            _check_step_size(learning_rate, largest_eigenvalue, n)
        # The factorisation also certifies f_inf(X) = y, which fails for a singular K.
        weights = _solve("kernel", kernel, residual, 0.0)
        count = int((~finite).sum())
        train_parts.append(jnp.broadcast_to(y[None], (count, *y.shape)))
        if cross is not None:
            limit = f0_star + cross @ weights
            test_parts.append(jnp.broadcast_to(limit[None], (count, *limit.shape)))

    f_train = jnp.concatenate(train_parts)
    f_test = None if cross is None else jnp.concatenate(test_parts)
    if finite.any() and not finite.all():
        # Parts are stacked finite times first; put them back in the order of `times`.
        order = np.argsort(np.concatenate([np.flatnonzero(finite), np.flatnonzero(~finite)]))
        f_train = f_train[order]
        f_test = None if f_test is None else f_test[order]
    if squeeze:
        f_train = f_train[..., 0]
        f_test = None if f_test is None else f_test[..., 0]
    return f_train, f_test
