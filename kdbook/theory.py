r"""The theory's quantities: rates, risks and the other numbers the chapters' claims are about.

Linear distillation (the setting of Phuong & Lampert, 2019): a linear teacher :math:`w^*` and a
linear student :math:`w` classify :math:`x` by the sign of :math:`w^\top x`. This module computes
the student's **transfer risk** (its disagreement with the teacher) by Monte Carlo
(:func:`transfer_risk`) or exactly for Gaussian inputs (:func:`gaussian_transfer_risk`); the data
geometry, i.e. the angles of inputs to the teacher's decision boundary and their distribution
:math:`p(\theta)` (:func:`boundary_angles`, :func:`angular_cdf`); the risk bound
:math:`\min_\theta [p(\theta) + p(\pi/2 - \theta)^n]` (:func:`risk_bound`); and the projection
of a vector on the span of a transfer set (:func:`span_projection`), which is what gradient
descent on soft labels converges to from zero.

Wide networks (the setting of Ji & Zhu, 2020): the **effective logits** a wide student fits
when it is trained to convergence on the KD loss (:func:`effective_logits`), the teacher logits
that hard labels correct (:func:`correction_threshold`), the disagreement in sign of two sets of
logits (:func:`sign_disagreement`, the transfer risk of a nonlinear student), and the **data
inefficiency**, the log-derivative of a weight change's norm in the number of samples
(:func:`data_inefficiency`).

Kernel regime: the complexity :math:`\sqrt{y^\top K^{-1} y}` of targets under a kernel
(:func:`kernel_complexity`), the quantity in the generalisation bound of Arora et al. (2019) for
wide two-layer networks, and the kernel-target alignment of Cristianini et al. (2002)
(:func:`kernel_alignment`).

Class geometry (the setting of Tang et al., 2020): how much more alike the vectors of classes in
one group (a superclass) are than those of different groups (:func:`group_similarity`), for class
weight vectors or for a teacher's probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_unit_interval as _check_unit_interval
from kdbook._checks import is_concrete
from kdbook.functional import _angle
from kdbook.kernels import kernel_solve
from kdbook.losses import CONVENTIONS

__all__ = [
    "GroupSimilarity",
    "angular_cdf",
    "boundary_angles",
    "correction_threshold",
    "data_inefficiency",
    "effective_logits",
    "fit_power_law",
    "gaussian_transfer_risk",
    "group_similarity",
    "kernel_alignment",
    "kernel_complexity",
    "risk_bound",
    "sign_disagreement",
    "span_projection",
    "transfer_risk",
    "vector_angle",
]


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    r"""Fit :math:`y \approx C x^{a}` by least squares on :math:`(\log x, \log y)`.

    Args:
        x, y: 1-D positive sequences of the same length (at least 2).

    Returns:
        ``(a, C)``: the exponent (the log-log slope) and the constant.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(np.log(y))):
        raise ValueError("x and y must be positive and finite for a power-law fit")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(np.exp(intercept))


# ----------------------------------------------------------------------------- linear distillation


def _as_vector(name: str, value: ArrayLike) -> jax.Array:
    array = jnp.asarray(value)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector of shape (d,), got {array.shape}")
    return array


def _as_points(name: str, value: ArrayLike, dim: int) -> jax.Array:
    array = jnp.asarray(value)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n, d) with n >= 1 and d = {dim} (the dimension of the "
            f"weight vectors), got {array.shape}"
        )
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
    (:func:`~kdbook.functional.tree_angle` raises instead).

    Args:
        a, b: vectors of the same shape ``(d,)``; ``jax.vmap`` it for batches.

    Returns:
        A scalar in radians.
    """
    a, b = _as_vector("a", a), _as_vector("b", b)
    _check_same_dim("a", a, "b", b)
    return _angle(a, b)


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
    """
    w, w_star = _as_vector("w", w), _as_vector("w_star", w_star)
    _check_same_dim("w", w, "w_star", w_star)
    x_test = _as_points("x_test", x_test, w.shape[0])
    return sign_disagreement(x_test @ w, x_test @ w_star)


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
        ValueError: for shapes that differ or are not ``(m,)`` with ``m >= 1``, or (concrete
            input) NaN logits, whose sign is undefined.
    """
    logits, reference_logits = jnp.asarray(logits), jnp.asarray(reference_logits)
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
        ValueError: for mismatched shapes, or a covariance that is not positive definite.
    """
    w, w_star = _as_vector("w", w), _as_vector("w_star", w_star)
    _check_same_dim("w", w, "w_star", w_star)
    if covariance is not None:
        covariance = jnp.asarray(covariance)
        d = w.shape[0]
        if covariance.shape != (d, d):
            raise ValueError(f"covariance must have shape ({d}, {d}), got {covariance.shape}")
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
    """
    w_star = _as_vector("w_star", w_star)
    x = _as_points("x", x, w_star.shape[0])
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
    """
    angles = jnp.sort(boundary_angles(x, w_star))
    theta = jnp.asarray(theta)
    if theta.ndim > 1:
        raise ValueError(f"theta must be a scalar or 1-D, got shape {theta.shape}")
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
    """
    sizes = np.asarray(n)
    if sizes.ndim > 1 or sizes.size == 0:
        raise ValueError(
            f"n must be an integer or a non-empty 1-D sequence, got shape {sizes.shape}"
        )
    if not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 0):
        raise ValueError(f"n must hold non-negative integers, got {n!r}")
    _check_int("num_thetas", num_thetas, minimum=2)
    thetas = np.linspace(0.0, np.pi / 2, int(num_thetas))
    if callable(p):
        near, far = (np.asarray(p(t), dtype=np.float64) for t in (thetas, np.pi / 2 - thetas))
        if near.shape != thetas.shape:
            raise ValueError(
                f"p must map an array of angles to an array of the same shape, got {near.shape} "
                f"for {thetas.shape}"
            )
    else:
        samples = np.sort(np.asarray(p, dtype=np.float64))
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(
                f"p must be a callable or a non-empty 1-D array of boundary angles, got shape "
                f"{samples.shape}"
            )
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

    Args:
        x: ``(n, d)`` inputs, one per row (any ``n``, also ``n >= d``).
        w: ``(d,)`` vector to project.
        method: ``"qr"`` or ``"svd"``.
        rtol: relative tolerance below which a direction counts as missing (default: machine
            epsilon times ``max(n, d)``).

    Returns:
        ``(d,)`` the projection; it equals ``w`` when the rows of ``x`` span the whole space.

    Raises:
        ValueError: for mismatched shapes, an unknown method, or (method ``"qr"``, concrete
            input) linearly dependent rows.
    """
    w = _as_vector("w", w)
    x = _as_points("x", x, w.shape[0])
    _check_choice("method", method, SPAN_METHODS)
    n, d = x.shape
    if rtol is None:
        rtol = float(jnp.finfo(x.dtype).eps) * max(n, d)
    if method == "svd":
        return x.T @ jnp.linalg.lstsq(x.T, w, rcond=rtol)[0]
    zero = jnp.all(x == 0, axis=1)
    order = jnp.argsort(zero, stable=True)  # zero rows last: they then add no direction to Q
    q, r = jnp.linalg.qr(x[order].T)  # q: (d, k), r: (k, n), k = min(n, d)
    k = q.shape[1]
    keep = jnp.arange(k) < jnp.sum(~zero)
    diagonal = jnp.abs(jnp.diagonal(r))
    if is_concrete(diagonal):
        small = keep & (diagonal <= rtol * jnp.max(diagonal, initial=0.0))
        if bool(jnp.any(small)):
            raise ValueError(
                "the non-zero rows of x are linearly dependent, so method='qr' cannot project "
                "on their span: use method='svd'"
            )
    return q @ jnp.where(keep, q.T @ w, 0.0)


# ----------------------------------------------------------------------------- wide networks


def _log_sigmoid_difference(a: jax.Array, b: jax.Array) -> jax.Array:
    r""":math:`\log(s(a) - s(b))` for :math:`a > b` (:math:`s` the sigmoid), without cancellation.

    :math:`s(a) - s(b) = s(a)\,s(-b)\,(1 - e^{b - a})`.
    """
    return -jax.nn.softplus(-a) - jax.nn.softplus(b) + jnp.log(-jnp.expm1(b - a))


def _shared_positive(u, rho, temperature):
    r"""Effective logit for label 1, "shared": :math:`T\,\mathrm{logit}(\rho\,s(u/T) + 1-\rho)`.

    With :math:`q = \rho\,s(u/T) + 1 - \rho`, :math:`1 - q = \rho\,s(-u/T)`, so
    :math:`\mathrm{logit}(q) = \log(1 - \rho\,s(-u/T)) - \log\rho + \mathrm{softplus}(u/T)`:
    no cancellation, and :math:`+\infty` at :math:`\rho = 0`.
    """
    s = u / temperature
    return temperature * (jnp.log1p(-rho * jax.nn.sigmoid(-s)) - jnp.log(rho) + jax.nn.softplus(s))


def _hinton_positive(u, rho, temperature, iterations: int = 160):
    r"""Effective logit for label 1, "hinton": the root :math:`z > u` of

    :math:`G(z) = (1-\rho)(s(z) - 1) + \rho T (s(z/T) - s(u/T))`, increasing in
    :math:`z` and negative for :math:`z \le u`. The sign of :math:`G` is decided in log space,
    :math:`\log(\rho T) + \log(s(z/T) - s(u/T))` against
    :math:`\log(1-\rho) - \mathrm{softplus}(z)`, so it stays exact where both sigmoids are
    close to 1. The bracket :math:`[u, u + w]` doubles ``w`` until :math:`G(u + w) \ge 0`, then
    bisection halves it ``iterations`` times (to round-off for brackets up to :math:`2^{64}`).
    """
    log_soft = jnp.log(rho * temperature)
    log_hard = jnp.log1p(-rho)

    def positive(z):  # G(z) >= 0, for z > u
        gap = _log_sigmoid_difference(z / temperature, u / temperature)
        return log_soft + gap >= log_hard - jax.nn.softplus(z)

    def widen(_, width):
        return jnp.where(positive(u + width), width, 2.0 * width)

    width = jax.lax.fori_loop(0, 64, widen, jnp.ones_like(u))
    low, high = u + jnp.where(width > 1.0, width / 2.0, 0.0), u + width

    def halve(_, bracket):
        low, high = bracket
        middle = low + (high - low) / 2.0
        up = positive(middle)
        return jnp.where(up, low, middle), jnp.where(up, middle, high)

    low, high = jax.lax.fori_loop(0, iterations, halve, (low, high))
    return low + (high - low) / 2.0


def effective_logits(
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    *,
    soft_ratio: float,
    temperature: float = 1.0,
    convention: str = "hinton",
) -> jax.Array:
    r"""The logit a student fitted to convergence on the binary KD loss ends at, per example.

    A wide student interpolates its training set, so each training logit settles where the
    per-example loss of :func:`kdbook.losses.kd_loss` (``form="sigmoid"``) is stationary in the
    student's logit :math:`z`. With teacher logit :math:`z^t`, label :math:`y \in \{0, 1\}`,
    soft ratio :math:`\rho`, temperature :math:`T` and the sigmoid :math:`s(u) = 1 / (1 + e^{-u})`,
    the stationary point solves

    .. math::

        \text{"hinton"}:\quad (1-\rho)\,(s(z) - y) + \rho\,T\,(s(z/T) - s(z^t/T))
            = 0,

        \text{"shared"}:\quad s(z/T) = \rho\,s(z^t/T) + (1-\rho)\,y
        \;\Rightarrow\; z = T\,\mathrm{logit}\big(\rho\,s(z^t/T) + (1-\rho)\,y\big).

    The left side of the "hinton" equation increases strictly in :math:`z`, so the root is
    unique; it is found by a bracketing bisection to round-off (there is no simple closed form;
    at :math:`T = 1` the conventions agree). The edges are exact: :math:`\rho = 1` returns
    the teacher's logits unchanged, and :math:`\rho = 0` returns :math:`\pm\infty` (the
    cross-entropy with a hard label has no finite minimiser: the logits of a student trained on
    labels alone grow without bound). The result is increasing in :math:`z^t`, and
    ``effective_logits(-z, 1 - y) == -effective_logits(z, y)``.

    Args:
        teacher_logits: ``(n,)`` (or any shape) teacher logits :math:`z^t`, finite.
        labels: integer or boolean labels in ``{0, 1}``, the same shape.
        soft_ratio: :math:`\rho \in [0, 1]`.
        temperature: :math:`T > 0`, finite.
        convention: ``"hinton"`` (default, as in :func:`~kdbook.losses.kd_loss`) or
            ``"shared"``.

    Returns:
        An array shaped like ``teacher_logits`` (float; ``inf`` only at ``soft_ratio=0``).

    Raises:
        ValueError: for shapes that differ, labels outside ``{0, 1}``, non-finite teacher logits,
            ``soft_ratio`` outside ``[0, 1]``, a temperature that is not finite and positive, or an
            unknown convention. Value checks are skipped for traced values (inside ``jit`` or
            ``vmap``).

    Example:
        >>> import jax.numpy as jnp
        >>> z = effective_logits(jnp.array([-1.0, 2.0]), jnp.array([1, 1]), soft_ratio=0.5)
        >>> bool(z[0] > 0)  # the label pulls a wrong, unconfident teacher logit across zero
        True
    """
    _check_choice("convention", convention, CONVENTIONS)
    teacher = jnp.asarray(teacher_logits)
    if not jnp.issubdtype(teacher.dtype, jnp.inexact):
        teacher = teacher.astype(jnp.result_type(float))
    labels = jnp.asarray(labels)
    if labels.shape != teacher.shape:
        raise ValueError(
            f"labels must have the shape of teacher_logits {teacher.shape}, got {labels.shape}"
        )
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise ValueError(f"labels must be integers in {{0, 1}}, got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size and not np.isin(np.asarray(labels), (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (binary classification)")
    if is_concrete(teacher) and not np.isfinite(np.asarray(teacher)).all():
        raise ValueError("teacher_logits contains non-finite values (NaN or inf)")
    _check_unit_interval("soft_ratio", soft_ratio)
    _check_positive("temperature", temperature)
    return _effective_logits(teacher, labels.astype(bool), soft_ratio, temperature, convention)


@partial(jax.jit, static_argnames="convention")
def _effective_logits(teacher, positive_label, soft_ratio, temperature, convention):
    rho = jnp.asarray(soft_ratio, teacher.dtype)
    temperature = jnp.asarray(temperature, teacher.dtype)
    sign = jnp.where(positive_label, 1.0, -1.0).astype(teacher.dtype)
    u = sign * teacher  # the label-1 problem: z_eff(z, 0) = -z_eff(-z, 1)
    solve = _shared_positive if convention == "shared" else _hinton_positive
    safe_rho = jnp.where((rho > 0) & (rho < 1), rho, 0.5)
    positive = solve(u, safe_rho, temperature)
    positive = jnp.where(rho >= 1, u, jnp.where(rho <= 0, jnp.inf, positive))
    return sign * positive


def correction_threshold(
    *, soft_ratio: float, temperature: float = 1.0, convention: str = "hinton"
) -> float:
    r"""The teacher logit above which a wrong teacher is overruled by the label.

    Take an example of class 1 on which the teacher is wrong, :math:`z^t \le 0`. The student's
    effective logit (:func:`effective_logits`) is positive, i.e. the hard label corrects the
    teacher, exactly when :math:`z^t > \tau`, with

    .. math::

        \text{"shared"}:\quad \tau = T \log(2\rho - 1) \quad (\rho > 1/2),

        \text{"hinton"}:\quad \tau = T \log\frac{\rho(T + 1) - 1}{\rho(T - 1) + 1}
            \quad (\rho\,T > 1 - \rho),

        \text{and } \tau = -\infty \text{ otherwise (every wrong teacher logit is corrected)}.

    Both follow from setting :math:`z = 0` in the stationarity equation; they agree at
    :math:`T = 1`, and :math:`\tau = 0` at :math:`\rho = 1` (nothing is corrected). By symmetry an
    example of class 0 is corrected when :math:`z^t < -\tau`.

    Args:
        soft_ratio: :math:`\rho \in [0, 1]`.
        temperature: :math:`T > 0`, finite.
        convention: ``"hinton"`` or ``"shared"``.

    Returns:
        :math:`\tau \le 0` as a float (``-inf`` when every wrong logit is corrected).
    """
    _check_choice("convention", convention, CONVENTIONS)
    _check_unit_interval("soft_ratio", soft_ratio)
    _check_positive("temperature", temperature)
    rho, t = float(soft_ratio), float(temperature)
    if convention == "shared":
        return t * float(np.log(2 * rho - 1)) if rho > 0.5 else -np.inf
    if rho * t <= 1 - rho:
        return -np.inf
    return t * float(np.log((rho * (t + 1) - 1) / (rho * (t - 1) + 1)))


def data_inefficiency(
    sizes: Sequence[int] | np.ndarray, norms: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    r"""Data inefficiency: how fast a fitted weight change still grows with the sample size.

    .. math:: I(n) = \frac{d\, \E \log \lVert \Delta w_n \rVert}{d \log n}
        \approx \frac{\overline{\log \lVert \Delta w_{n_{j+1}} \rVert}
        - \overline{\log \lVert \Delta w_{n_j} \rVert}}{\log n_{j+1} - \log n_j}

    at :math:`n = \sqrt{n_j n_{j+1}}`, the bar an average over draws of the training set.
    :math:`\lVert \Delta w_n \rVert` is the norm of the minimum-norm weight change that fits
    :math:`n` samples (:func:`kernel_complexity` computes it from the kernel). When a task is
    learnable the norm saturates at the norm of the weight change that fits the whole
    distribution and :math:`I(n) \to 0`; when every new sample demands new weight (random
    labels), the norm grows like a power of :math:`n` and :math:`I` stays at its exponent. For
    consecutive sizes :math:`n, n + 1` it is :math:`\approx n\, \E[\log\lVert\Delta w_{n+1}\rVert
    - \log\lVert\Delta w_n\rVert]`. (This book's normalisation; a squared norm would double it.)

    Args:
        sizes: ``(k,)`` increasing sample sizes, ``k >= 2``, all ``>= 1``.
        norms: ``(k,)`` weight-change norms, or ``(draws, k)`` for several draws (averaged in
            log space); all positive and finite.

    Returns:
        ``(midpoints, inefficiency)``: two ``(k - 1,)`` float64 arrays, the geometric midpoints
        :math:`\sqrt{n_j n_{j+1}}` and :math:`I` there.

    Raises:
        ValueError: for sizes that are not increasing positive integers, or norms of another
            length, or not positive and finite.
    """
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or sizes.size < 2 or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"sizes must be a 1-D sequence of at least 2 integers, got {sizes!r}")
    if sizes[0] < 1 or np.any(np.diff(sizes) <= 0):
        raise ValueError(f"sizes must be increasing integers >= 1, got {sizes.tolist()}")
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim not in (1, 2) or norms.shape[-1] != sizes.size:
        raise ValueError(
            f"norms must have shape ({sizes.size},) or (draws, {sizes.size}) like sizes, got "
            f"{norms.shape}"
        )
    if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        raise ValueError("norms must be positive and finite (their logarithms are averaged)")
    log_norms = np.log(norms).reshape(-1, sizes.size).mean(axis=0)
    log_sizes = np.log(sizes.astype(np.float64))
    return np.exp((log_sizes[1:] + log_sizes[:-1]) / 2), np.diff(log_norms) / np.diff(log_sizes)


def kernel_complexity(kernel: ArrayLike, targets: ArrayLike, *, ridge: float = 0.0) -> jax.Array:
    r"""The complexity of targets under a kernel: :math:`\sqrt{y^\top (K + \lambda I)^{-1} y}`.

    With :math:`\lambda = 0` this is the RKHS norm of the minimum-norm interpolant of the targets
    (:func:`kdbook.kernels.kernel_regression`), which is also how far gradient descent on a wide
    network moves its weights to fit them in the kernel regime. Arora et al. (2019) bound the
    population loss of a wide two-layer ReLU network trained on :math:`n` points with targets
    :math:`y` by :math:`\sqrt{2\, y^\top (H^\infty)^{-1} y / n}` plus a term that does not depend
    on :math:`y`; that is ``sqrt(2 / n) * kernel_complexity(H, y)``. Targets whose energy lies
    on eigenvectors of :math:`K` with large eigenvalues have small complexity:
    :math:`y^\top K^{-1} y = \sum_i (v_i^\top y)^2 / \lambda_i`.

    Args:
        kernel: :math:`K`, ``(n, n)`` symmetric positive definite (or semi-definite with
            ``ridge > 0``).
        targets: ``(n,)``, or ``(n, k)`` for ``k`` outputs (then :math:`\sqrt{\operatorname{tr}
            Y^\top K^{-1} Y}`).
        ridge: :math:`\lambda \ge 0`.

    Returns:
        A scalar.

    Raises:
        ValueError, numpy.linalg.LinAlgError: as :func:`kdbook.kernels.kernel_solve` (a kernel
            Cholesky cannot factorise raises instead of returning NaN).
    """
    targets = jnp.asarray(targets)
    weights = kernel_solve(kernel, targets, ridge=ridge)
    return jnp.sqrt(jnp.maximum(jnp.sum(targets * weights), 0.0))


def kernel_alignment(kernel: ArrayLike, targets: ArrayLike) -> jax.Array:
    r"""Kernel-target alignment (Cristianini et al., 2002): the cosine between :math:`K` and
    :math:`y y^\top`.

    .. math:: A(K, y) = \frac{\langle K, y y^\top \rangle_F}{\lVert K \rVert_F\,
        \lVert y y^\top \rVert_F} = \frac{y^\top K y}{\lVert K \rVert_F\, \lVert y \rVert^2}
        = \frac{\sum_i \lambda_i (v_i^\top y)^2}{\sqrt{\sum_i \lambda_i^2}\,
        \lVert y \rVert^2}.

    It lies in :math:`[-1, 1]` (in :math:`[0, 1]` for a positive semi-definite :math:`K`),
    equals 1 exactly when :math:`K` is a positive multiple of :math:`y y^\top`, and does not
    change when :math:`K` or :math:`y` is rescaled. A kernel aligned with the targets puts their
    energy on its large eigenvalues, where gradient descent fits fast.

    Args:
        kernel: :math:`K`, ``(n, n)`` (symmetric in use; not required).
        targets: ``(n,)``, or ``(n, k)`` (then :math:`\operatorname{tr}(Y^\top K Y) /
            (\lVert K \rVert_F \lVert Y Y^\top \rVert_F)`).

    Returns:
        A scalar.

    Raises:
        ValueError: for shapes that do not match, or (concrete inputs) a zero kernel or zero
            targets, for which the cosine is undefined.
    """
    kernel = jnp.asarray(kernel)
    targets = jnp.asarray(targets)
    n = kernel.shape[0] if kernel.ndim == 2 else -1
    if kernel.ndim != 2 or kernel.shape[1] != n or targets.ndim not in (1, 2):
        raise ValueError(
            f"kernel must be (n, n) and targets (n,) or (n, k), got shapes {kernel.shape} and "
            f"{targets.shape}"
        )
    if targets.shape[0] != n:
        raise ValueError(f"targets must have n={n} rows like kernel, got shape {targets.shape}")
    y = targets.reshape(n, -1)
    gram = y @ y.T
    kernel_norm, target_norm = jnp.linalg.norm(kernel), jnp.linalg.norm(gram)
    if is_concrete(kernel_norm, target_norm) and not (kernel_norm > 0 and target_norm > 0):
        raise ValueError("kernel and targets must be non-zero: the alignment of zero is undefined")
    return jnp.sum(kernel * gram) / (kernel_norm * target_norm)


class GroupSimilarity(NamedTuple):
    """What :func:`group_similarity` returns.

    Attributes:
        matrix: ``(k, k)`` similarities of every pair of vectors (ones on the diagonal).
        within: mean similarity of distinct vectors in the same group.
        between: mean similarity of vectors in different groups.
    """

    matrix: jax.Array
    within: jax.Array
    between: jax.Array

    @property
    def gap(self) -> jax.Array:
        """``within - between``: positive when the vectors cluster by group."""
        return self.within - self.between


def group_similarity(
    vectors: ArrayLike, groups: ArrayLike, *, measure: str = "cosine"
) -> GroupSimilarity:
    r"""How much more alike vectors of one group are than vectors of different groups.

    For class weight vectors :math:`w_1, \dots, w_k` (the rows of ``vectors``, e.g. the columns
    of a linear classifier's weight matrix) grouped by superclass, or for the columns
    :math:`(p_c(x_1), \dots, p_c(x_n))` of a teacher's probabilities (``vectors = probs.T``), it
    returns the matrix :math:`S_{ab}` of cosines (``measure="cosine"``) or Pearson correlations
    (``"correlation"``, the cosine of the centred vectors), and the means of :math:`S_{ab}` over
    pairs :math:`a \ne b` in the same group and in different groups: a positive gap is the block
    structure of classes that resemble each other, the "domain knowledge" that Tang et al. (2020)
    say a teacher's soft labels carry.

    Args:
        vectors: ``(k, d)``, one vector per row.
        groups: ``(k,)`` integer group of each row; some group must have two rows, and there must
            be two groups.
        measure: ``"cosine"`` or ``"correlation"``.

    Returns:
        A :class:`GroupSimilarity`.

    Raises:
        ValueError: for shapes that do not match, too few groups, or (concrete inputs) a zero
            vector (a constant one, for ``"correlation"``), whose cosine is undefined.

    Example:
        >>> import jax.numpy as jnp
        >>> w = jnp.array([[1.0, 0.2], [1.0, 0.0], [0.0, 1.0], [0.2, 1.0]])
        >>> result = group_similarity(w, jnp.array([0, 0, 1, 1]))
        >>> round(float(result.within), 3), round(float(result.between), 3)
        (0.981, 0.194)
    """
    _check_choice("measure", measure, ("cosine", "correlation"))
    vectors, groups = jnp.asarray(vectors), np.asarray(groups)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (k, d), one vector per row, got {vectors.shape}")
    if groups.shape != (vectors.shape[0],) or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(
            f"groups must be ({vectors.shape[0]},) integers, one per row of vectors, got "
            f"shape {groups.shape} and dtype {groups.dtype}"
        )
    same = groups[:, None] == groups[None, :]
    distinct = ~np.eye(groups.size, dtype=bool)
    if not (same & distinct).any() or same.all():
        raise ValueError(
            "groups needs a group with two rows and at least two groups, got "
            f"{np.unique(groups).size} group(s) of sizes {np.unique(groups, return_counts=True)[1]}"
        )
    if measure == "correlation":
        vectors = vectors - jnp.mean(vectors, axis=1, keepdims=True)
    norms = jnp.linalg.norm(vectors, axis=1)
    if is_concrete(norms) and not np.all(np.asarray(norms) > 0):
        zero = int(np.argmin(np.asarray(norms) > 0))
        what = "constant" if measure == "correlation" else "zero"
        raise ValueError(f"row {zero} of vectors is {what}: its {measure} is undefined")
    unit = vectors / norms[:, None]
    matrix = unit @ unit.T
    within = jnp.sum(jnp.where(same & distinct, matrix, 0.0)) / np.sum(same & distinct)
    between = jnp.sum(jnp.where(~same, matrix, 0.0)) / np.sum(~same)
    return GroupSimilarity(matrix, within, between)
