"""Linear distillation (Phuong & Lampert, 2019): angles, transfer risks, the data geometry,
the risk bound and span projections; the sign disagreement of two sets of logits.

Part of :mod:`kdbook.theory`; import the names from there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_unit_interval as _check_unit_interval
from kdbook._checks import is_concrete
from kdbook._checks import real_array as _real_array
from kdbook._scaling import unit_scale
from kdbook.functional import _angle
from kdbook.kernels import _check_kernel


def _as_vector(name: str, value: ArrayLike) -> jax.Array:
    """A non-empty float vector, finite when concrete."""
    array = _as_float_array(name, value)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector of shape (d,), got {array.shape}")
    _check_finite(name, array)
    return array


def _as_points(name: str, value: ArrayLike, dim: int) -> jax.Array:
    """A float ``(n, dim)`` array with ``n >= 1``, finite when concrete."""
    array = _as_float_array(name, value)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n, d) with n >= 1 and d = {dim} (the dimension of the "
            f"weight vectors), got {array.shape}"
        )
    _check_finite(name, array)
    return array


def _check_same_dim(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {a.shape}, {b.shape}"
        )


def vector_angle(a: ArrayLike, b: ArrayLike) -> jax.Array:
    r"""The angle :math:`\angle(a, b) \in [0, \pi]` between two vectors, accurate near 0 and pi.

    Computed as :math:`2 \operatorname{atan2}(\lVert \hat a - \hat b \rVert,
    \lVert \hat a + \hat b \rVert)` with :math:`\hat a = a / \lVert a \rVert`, which, unlike
    :math:`\arccos` of the cosine, keeps full relative precision for tiny angles: the
    computation of :func:`kdbook.functional.tree_angle`, on vectors. A zero vector makes the
    angle :math:`\pi/2` (its cosine with anything is taken to be 0), so that for a zero student
    :func:`gaussian_transfer_risk` gives 1/2, the risk of predicting one class everywhere
    (:func:`~kdbook.functional.tree_angle` raises instead). Each vector is first divided by a
    power of two near its largest entry (exact), so that vectors of any scale, such as ``1e20``
    or ``1e-25`` in float32, neither overflow nor underflow.

    Args:
        a, b: vectors of the same shape ``(d,)``; ``jax.vmap`` it for batches.

    Returns:
        A scalar in radians.

    Raises:
        ValueError: for shapes that differ or are not ``(d,)`` with ``d >= 1``, or (concrete
            input) NaN or infinite entries.
    """
    a, b = _as_vector("a", a), _as_vector("b", b)
    _check_same_dim("a", a, "b", b)
    return _angle(unit_scale(a)[0], unit_scale(b)[0])


def transfer_risk(w: ArrayLike, w_star: ArrayLike, x_test: ArrayLike) -> jax.Array:
    r"""Monte Carlo transfer risk: how often the student's decision differs from the teacher's.

    .. math:: \hat R(w) = \frac{1}{m} \sum_{j=1}^{m}
        \mathbb{1}\big[\mathbb{1}[w^\top x_j \ge 0] \ne \mathbb{1}[w^{*\top} x_j \ge 0]\big]

    an unbiased estimate of :math:`R(w) = P_x[h_w(x) \ne h_{w^*}(x)]` with standard error
    :math:`\sqrt{R(1-R)/m}`.

    Args:
        w: ``(d,)`` student weights.
        w_star: ``(d,)`` teacher weights.
        x_test: ``(m, d)`` test inputs drawn from the input distribution.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: for shapes that do not match, or (concrete input) NaN or infinite entries
            in ``w``, ``w_star`` or ``x_test``.
    """
    w, w_star = _as_vector("w", w), _as_vector("w_star", w_star)
    _check_same_dim("w", w, "w_star", w_star)
    x_test = _as_points("x_test", x_test, w.shape[0])
    # Dividing a weight vector by a power of two changes no sign of x^T w, and keeps it finite.
    return sign_disagreement(x_test @ unit_scale(w)[0], x_test @ unit_scale(w_star)[0])


def sign_disagreement(logits: ArrayLike, reference_logits: ArrayLike) -> jax.Array:
    r"""How often two binary classifiers disagree: the fraction of points where the signs differ.

    .. math:: \hat R = \frac{1}{m} \sum_{j=1}^{m}
        \mathbb{1}\big[\mathbb{1}[z_j \ge 0] \ne \mathbb{1}[z^*_j \ge 0]\big]

    With a student's logits ``z`` and a teacher's (or an oracle's) ``z*`` on test inputs drawn
    from the input distribution, this is the Monte Carlo **transfer risk** of any binary student,
    linear or not; :func:`transfer_risk` is the linear case, ``z = X w``.

    Args:
        logits: ``(m,)`` logits of one classifier.
        reference_logits: ``(m,)`` logits of the other.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: for logits that are not real numbers, shapes that differ or are not
            ``(m,)`` with ``m >= 1``, or (concrete input) NaN logits, whose sign is undefined.
    """
    logits = _as_float_array("logits", logits)
    reference_logits = _as_float_array("reference_logits", reference_logits)
    for name, value in (("logits", logits), ("reference_logits", reference_logits)):
        if value.ndim != 1 or value.shape[0] == 0:
            raise ValueError(f"{name} must have shape (m,) with m >= 1, got {value.shape}")
        if is_concrete(value) and bool(jnp.any(jnp.isnan(value))):
            raise ValueError(f"{name} contains NaN: its sign, and so the risk, is undefined")
    _check_same_dim("logits", logits, "reference_logits", reference_logits)
    return jnp.mean((logits >= 0) != (reference_logits >= 0))


def gaussian_transfer_risk(
    w: ArrayLike, w_star: ArrayLike, *, covariance: ArrayLike | None = None
) -> jax.Array:
    r"""Exact transfer risk of a linear student for centred Gaussian (or rotation-invariant) inputs.

    For :math:`x \sim N(0, \Sigma)`, the pair :math:`(w^\top x, w^{*\top} x)` is Gaussian with
    correlation :math:`\cos\angle(\Sigma^{1/2} w, \Sigma^{1/2} w^*)`, and two correlated Gaussians
    have different signs with probability angle / :math:`\pi`:

    .. math:: R(w) = \frac{1}{\pi} \angle\big(\Sigma^{1/2} w,\; \Sigma^{1/2} w^*\big).

    With ``covariance=None`` (:math:`\Sigma = I`) this is :math:`\angle(w, w^*)/\pi`, exact for any
    rotation-invariant input distribution, not only the Gaussian.

    Args:
        w: ``(d,)`` student weights.
        w_star: ``(d,)`` teacher weights.
        covariance: ``(d, d)`` positive definite covariance :math:`\Sigma`, or ``None`` for the
            identity.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: for mismatched shapes, NaN or infinite entries (concrete input), or a
            covariance that is not symmetric (beyond ``sqrt(eps)`` times its largest entry) or
            not positive definite.
    """
    w, w_star = _as_vector("w", w), _as_vector("w_star", w_star)
    _check_same_dim("w", w, "w_star", w_star)
    if covariance is not None:
        covariance = _check_kernel("covariance", covariance)
        d = w.shape[0]
        if covariance.shape != (d, d):
            raise ValueError(f"covariance must have shape ({d}, {d}), got {covariance.shape}")
        # The risk does not change when w, w_star or the covariance is rescaled: dividing them
        # by powers of two near their largest entries (4^k for the covariance, so that its
        # factor scales by 2^k) is exact and keeps L^T w from overflowing or underflowing.
        _, exponent = unit_scale(covariance)
        covariance = jnp.ldexp(covariance, -(exponent + exponent % 2))
        w, w_star = unit_scale(w)[0], unit_scale(w_star)[0]
        factor = jnp.linalg.cholesky(covariance)  # covariance = L L^T, so |L^T w| = |w|_Sigma
        if is_concrete(factor) and not bool(jnp.all(jnp.isfinite(factor))):
            raise ValueError("covariance must be symmetric positive definite (Cholesky failed)")
        w, w_star = factor.T @ w, factor.T @ w_star
    return vector_angle(w, w_star) / jnp.pi


def boundary_angles(x: ArrayLike, w_star: ArrayLike) -> jax.Array:
    r"""The angle :math:`\bar\alpha(x) \in [0, \pi/2]` of each input to the teacher's hyperplane.

    .. math:: \sin \bar\alpha(x) = \frac{|w^{*\top} x|}{\lVert w^* \rVert\, \lVert x \rVert},

    i.e. :math:`\bar\alpha = \pi/2 - \angle(x, \pm w^*)`. A zero input lies on the hyperplane
    (angle 0).

    Args:
        x: ``(n, d)`` inputs.
        w_star: ``(d,)`` teacher weights (not zero).

    Returns:
        ``(n,)`` angles in radians.

    Raises:
        ValueError: for shapes that do not match, a zero ``w_star``, or (concrete input) NaN or
            infinite entries.
    """
    w_star = _as_vector("w_star", w_star)
    x = _as_points("x", x, w_star.shape[0])
    # The angles do not change when w_star or a row of x is divided by a power of two near its
    # largest entry (exact); the norms below then neither overflow nor underflow.
    w_star, x = unit_scale(w_star)[0], unit_scale(x, axis=1)[0]
    norm_star = jnp.linalg.norm(w_star)
    if is_concrete(norm_star) and float(norm_star) == 0.0:
        raise ValueError("w_star must not be zero: the teacher's hyperplane is undefined")
    direction = w_star / norm_star
    along = x @ direction
    across = jnp.linalg.norm(x - along[:, None] * direction[None, :], axis=1)
    # atan2 of the two components keeps full precision at both ends, unlike arcsin of the sine.
    return jnp.arctan2(jnp.abs(along), across)


def angular_cdf(x: ArrayLike, w_star: ArrayLike, theta: ArrayLike) -> jax.Array:
    r"""Estimate the data geometry :math:`p(\theta) = P_x[\bar\alpha(x) \le \theta]` from samples.

    :math:`p(\theta)` is the probability mass within angle :math:`\theta` of the teacher's decision
    boundary (see :func:`boundary_angles`); the estimate is the fraction of the samples ``x``
    that lie within that angle, whose uniform error is at most
    :math:`\sqrt{\log(2/\delta) / (2n)}` with probability :math:`1 - \delta` (the
    Dvoretzky-Kiefer-Wolfowitz inequality).

    Args:
        x: ``(n, d)`` samples of the input distribution.
        w_star: ``(d,)`` teacher weights.
        theta: a scalar or a ``(k,)`` array of angles in radians.

    Returns:
        An array shaped like ``theta``, with values in ``[0, 1]``.

    Raises:
        ValueError: as :func:`boundary_angles`, and for a ``theta`` that is not a scalar or 1-D
            or (concrete input) not finite.
    """
    theta = _as_float_array("theta", theta)
    if theta.ndim > 1:
        raise ValueError(f"theta must be a scalar or 1-D, got shape {theta.shape}")
    _check_finite("theta", theta)
    angles = jnp.sort(boundary_angles(x, w_star))
    return jnp.searchsorted(angles, theta, side="right") / angles.shape[0]


def risk_bound(
    n: int | Sequence[int] | np.ndarray,
    p: Callable[[np.ndarray], np.ndarray] | ArrayLike,
    *,
    num_thetas: int = 2001,
    return_theta: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""The geometry bound on the transfer risk of a linear student trained on soft labels.

    .. math:: B(n) = \min_{\theta \in [0, \pi/2]} \big[p(\theta) + p(\pi/2 - \theta)^n\big]

    In the linear distillation setting of Phuong & Lampert (2019), this bounds the expected
    transfer risk of the student that gradient descent on soft labels finds from :math:`n`
    transfer points (derived in the book's chapter on linear students). The minimum is taken over
    a uniform grid of ``num_thetas`` angles including both ends, so the value returned is at
    least the exact minimum, and tends to it as the grid is refined.

    Args:
        n: a transfer-set size :math:`n \ge 0`, or a 1-D sequence of sizes.
        p: the data geometry :math:`p(\theta)`, either a callable that maps a NumPy array of
            angles to probabilities (e.g. ``lambda t: (2 * t / np.pi) ** kappa``), or a 1-D array
            of sampled boundary angles (from :func:`boundary_angles`), whose empirical
            distribution function is then used.
        num_thetas: number of grid angles (at least 2).
        return_theta: also return the minimising angle(s).

    Returns:
        NumPy float64 array shaped like ``n``; with ``return_theta``, a pair ``(bound, theta)``.

    Raises:
        ValueError: for an ``n`` that is not a non-negative integer or a non-empty 1-D sequence
            of them, a ``num_thetas`` that is not an integer ``>= 2``, a ``return_theta`` that is
            not a bool, a callable ``p`` that returns the wrong shape or values outside
            ``[0, 1]``, or sampled angles ``p`` that are empty, not 1-D, NaN or outside
            ``[0, pi/2]``.
    """
    sizes = _real_array("n", n, integer=True)
    if sizes.ndim > 1 or sizes.size == 0:
        raise ValueError(
            f"n must be an integer or a non-empty 1-D sequence, got shape {sizes.shape}"
        )
    if np.any(sizes < 0):
        raise ValueError(f"n must hold non-negative integers, got {n!r}")
    _check_int("num_thetas", num_thetas, minimum=2)
    _check_bool("return_theta", return_theta)
    thetas = np.linspace(0.0, np.pi / 2, int(num_thetas))
    if callable(p):
        near, far = (_real_array("p(theta)", p(t)) for t in (thetas, np.pi / 2 - thetas))
        for values in (near, far):
            if values.shape != thetas.shape:
                raise ValueError(
                    f"p must map an array of angles to an array of the same shape, got "
                    f"{values.shape} for {thetas.shape}"
                )
    else:
        samples = _real_array("p", p)
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(
                f"p must be a callable or a non-empty 1-D array of boundary angles, got shape "
                f"{samples.shape}"
            )
        samples = np.sort(samples)
        _check_finite("p", samples)
        if samples[0] < 0 or samples[-1] > np.pi / 2 + 1e-6:
            raise ValueError("boundary angles in p must lie in [0, pi/2]")
        near, far = (
            np.searchsorted(samples, t, side="right") / samples.size
            for t in (thetas, np.pi / 2 - thetas)
        )
    if not (np.all(np.isfinite(near)) and np.all((near >= 0) & (near <= 1))):
        raise ValueError("p must return probabilities in [0, 1]")
    values = near[None, :] + far[None, :] ** sizes.reshape(-1)[:, None].astype(np.float64)
    best = np.argmin(values, axis=1)
    bound = values[np.arange(values.shape[0]), best].reshape(sizes.shape)
    theta = thetas[best].reshape(sizes.shape)
    return (bound, theta) if return_theta else bound


SPAN_METHODS = ("qr", "svd")


def span_projection(
    x: ArrayLike, w: ArrayLike, *, method: str = "qr", rtol: float | None = None
) -> jax.Array:
    r"""Orthogonal projection of ``w`` on the span of the rows of ``x``: :math:`P_X w`.

    With the inputs as the columns of :math:`X = (x_1, \dots, x_n) \in \mathbb{R}^{d \times n}`,

    .. math:: P_X w = X (X^\top X)^{+} X^\top w,

    computed without ever forming or inverting :math:`X^\top X` (whose condition number is the
    square of :math:`X`'s), by one of two methods:

    * ``"qr"`` (default): a Householder QR factorisation :math:`X = QR`, then
      :math:`P_X w = Q Q^\top w`. Rows of ``x`` that are exactly zero are ignored, so padding a
      transfer set with zero rows does not change the result. The non-zero rows must be linearly
      independent (true almost surely for inputs drawn from a density) when ``n <= d``, and the
      first ``d`` of them when ``n > d``; this is checked, except on traced values inside
      ``jax.jit`` or ``jax.vmap``.
    * ``"svd"``: the least-squares solution :math:`c = \operatorname{arg\,min}_c
      \lVert X c - w \rVert` by a singular value decomposition, and :math:`P_X w = X c`. It
      handles any rank deficiency but is much slower on CPU.

    Each non-zero row is first scaled to unit norm, which leaves the span unchanged, so the
    rank tolerance judges directions, not magnitudes: rows of norms ``1e3`` and ``1e-4`` count
    as two directions.

    Args:
        x: ``(n, d)`` inputs, one per row (any ``n``, also ``n >= d``).
        w: ``(d,)`` vector to project.
        method: ``"qr"`` or ``"svd"``.
        rtol: relative tolerance in ``[0, 1)`` below which a direction counts as missing
            (default: machine epsilon times ``max(n, d)``).

    Returns:
        ``(d,)`` the projection; it equals ``w`` when the rows of ``x`` span the whole space.

    Raises:
        ValueError: for mismatched shapes, an unknown method, an ``rtol`` outside ``[0, 1)``,
            (concrete input) NaN or infinite entries, or (method ``"qr"``, concrete input)
            linearly dependent rows.
    """
    w = _as_vector("w", w)
    x = _as_points("x", x, w.shape[0])
    _check_choice("method", method, SPAN_METHODS)
    if rtol is not None:
        _check_unit_interval("rtol", rtol, closed_right=False)
    n, d = x.shape
    if rtol is None:
        rtol = float(jnp.finfo(x.dtype).eps) * max(n, d)
    projection, dependent = _project(x, w, rtol, method)
    if method == "qr" and is_concrete(dependent) and bool(dependent):
        raise ValueError(
            "the non-zero rows of x are linearly dependent, so method='qr' cannot project "
            "on their span: use method='svd'"
        )
    return projection


@partial(jax.jit, static_argnames="method")
def _project(x: jax.Array, w: jax.Array, rtol, method: str) -> tuple[jax.Array, jax.Array]:
    """:func:`span_projection`'s numerical core (one compilation per shape), and (``"qr"``)
    whether the non-zero rows are linearly dependent."""
    # unit rows (the span is unchanged): the rank tolerance then compares directions, not sizes
    u = unit_scale(x, axis=1)[0]
    norms = jnp.linalg.norm(u, axis=1, keepdims=True)
    x = u / jnp.where(norms > 0, norms, 1.0)
    if method == "svd":
        return x.T @ jnp.linalg.lstsq(x.T, w, rcond=rtol)[0], jnp.array(False)
    zero = jnp.all(x == 0, axis=1)
    order = jnp.argsort(zero, stable=True)  # zero rows last: they then add no direction to Q
    q, r = jnp.linalg.qr(x[order].T)  # q: (d, k), r: (k, n), k = min(n, d)
    k = q.shape[1]
    keep = jnp.arange(k) < jnp.sum(~zero)
    diagonal = jnp.abs(jnp.diagonal(r))
    dependent = jnp.any(keep & (diagonal <= rtol * jnp.max(diagonal, initial=0.0)))
    return q @ jnp.where(keep, q.T @ w, 0.0), dependent
