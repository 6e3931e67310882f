"""Kernel regime: the complexity of targets under a kernel, kernel-target alignment, and the
supervision complexity, margins and margin-bound terms of a distilled kernel student.

Part of :mod:`kdbook.theory`; import the names from there."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import as_labels as _as_labels
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_no_overflow as _check_no_overflow
from kdbook._checks import check_nonnegative as _check_nonnegative
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import is_concrete
from kdbook._scaling import unit_scale
from kdbook.kernels import kernel_solve


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

    The targets are divided by a power of two near their largest entry before the solve and
    the result multiplied back (exact: the complexity is proportional to the targets' scale), so
    that large targets do not overflow :math:`y^\top K^{-1} y`.

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
            Cholesky cannot factorise raises instead of returning NaN); ValueError also when
            (concrete input) the complexity itself overflows the dtype.
    """
    targets = _as_float_array("targets", targets)
    _check_finite("targets", targets)
    _check_nonnegative("ridge", ridge)
    scaled, exponent = unit_scale(targets)
    weights = kernel_solve(kernel, scaled, ridge=ridge)
    value = jnp.sqrt(jnp.maximum(jnp.sum(scaled * weights), 0.0))
    value = jnp.ldexp(value, exponent.reshape(()))
    if is_concrete(value) and not np.isfinite(float(value)):
        raise ValueError(
            f"the complexity of the targets overflows {value.dtype}: rescale the kernel or the "
            "targets, or compute in float64 inside kdbook.enable_x64()"
        )
    return value


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

    Both are divided by a power of two near their largest entry first (exact, and the alignment
    does not change), so kernels and targets of any scale neither overflow nor underflow.

    Args:
        kernel: :math:`K`, ``(n, n)`` (symmetric in use; not required).
        targets: ``(n,)``, or ``(n, k)`` (then :math:`\operatorname{tr}(Y^\top K Y) /
            (\lVert K \rVert_F \lVert Y Y^\top \rVert_F)`).

    Returns:
        A scalar.

    Raises:
        ValueError: for shapes that do not match, or (concrete inputs) NaN or infinite entries,
            a zero kernel or zero targets, for which the cosine is undefined.
    """
    kernel = _as_float_array("kernel", kernel)
    targets = _as_float_array("targets", targets)
    n = kernel.shape[0] if kernel.ndim == 2 else -1
    if kernel.ndim != 2 or kernel.shape[1] != n or targets.ndim not in (1, 2):
        raise ValueError(
            f"kernel must be (n, n) and targets (n,) or (n, k), got shapes {kernel.shape} and "
            f"{targets.shape}"
        )
    if targets.shape[0] != n:
        raise ValueError(f"targets must have n={n} rows like kernel, got shape {targets.shape}")
    _check_finite("kernel", kernel)
    _check_finite("targets", targets)
    for name, value in (("kernel", kernel), ("targets", targets)):
        if is_concrete(value) and not np.any(np.asarray(value)):
            raise ValueError(f"{name} must be non-zero: the alignment with zero is undefined")
    kernel = unit_scale(kernel)[0]
    y = unit_scale(targets.reshape(n, -1))[0]
    gram = y @ y.T
    kernel_norm, target_norm = jnp.linalg.norm(kernel), jnp.linalg.norm(gram)
    if is_concrete(kernel_norm, target_norm):
        for name, norm in (("kernel", kernel_norm), ("targets", target_norm)):
            if not norm > 0:
                raise ValueError(f"{name} must be non-zero: the alignment with zero is undefined")
    return jnp.sum(kernel * gram) / (kernel_norm * target_norm)


def adjusted_supervision_complexity(
    kernel: ArrayLike, targets: ArrayLike, *, ridge: float = 0.0
) -> jax.Array:
    r"""The complexity of targets under a kernel, made invariant to the kernel's scale.

    .. math:: \operatorname{ASC}(K, Y) = \frac1n \sqrt{\operatorname{tr}(K)\,
        \operatorname{tr}\big(Y^\top (K + \lambda \bar\kappa I)^{-1} Y\big)},
        \qquad \bar\kappa = \operatorname{tr}(K) / n .

    :math:`\operatorname{tr}(Y^\top K^{-1} Y)` is the squared norm :math:`\lVert W^*\rVert_F^2`
    of the minimum-norm kernel predictor that fits the targets (:func:`kernel_complexity`
    squared). Predictors of norm at most :math:`B` have empirical Rademacher complexity at most
    :math:`B \sqrt{\operatorname{tr} K} / n` (Bartlett & Mendelson, 2002); with :math:`B =
    \lVert W^* \rVert_F` that is the quantity above. Harutyunyan et al. (2023) call how well a
    teacher's targets align with the student's neural tangent kernel the *supervision
    complexity*; this normalisation of it, with the trace, is this book's reconstruction.

    It does not change when the kernel is rescaled (:math:`K \to cK`; the ridge is relative to the
    mean eigenvalue :math:`\bar\kappa` so that this holds with a ridge too), so it compares the
    kernels of a network at initialisation and after training. It is a seminorm of the targets:
    :math:`Y \to cY` multiplies it by :math:`|c|`. The solve runs on
    :math:`n K / \operatorname{tr} K`, whose mean eigenvalue is 1, by Cholesky; an ill-conditioned
    kernel needs a ridge or float64, and a failed factorisation raises (see
    :func:`kdbook.kernels.kernel_solve`).

    Args:
        kernel: :math:`K`, ``(n, n)`` symmetric positive definite (semi-definite with
            ``ridge > 0``), e.g. a student's empirical NTK on the training inputs.
        targets: :math:`Y`, ``(n,)`` or ``(n, k)``: one-hot labels or a teacher's probabilities.
        ridge: :math:`\lambda \ge 0`, relative to the mean eigenvalue of the kernel.

    Returns:
        A scalar.

    Raises:
        ValueError: as :func:`kdbook.kernels.kernel_solve`, and (concrete input) for a kernel
            with NaN or infinite entries or whose trace is not positive.
        numpy.linalg.LinAlgError: when Cholesky cannot factorise the (ridged) kernel.

    Example:
        >>> import jax.numpy as jnp
        >>> kernel, y = jnp.array([[2.0, 1.0], [1.0, 2.0]]), jnp.array([1.0, -1.0])
        >>> a = adjusted_supervision_complexity(kernel, y)
        >>> b = adjusted_supervision_complexity(10 * kernel, 3 * y)
        >>> round(float(a), 4), round(float(b / a), 4)
        (1.4142, 3.0)
    """
    kernel = _as_float_array("kernel", kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[-1]:
        raise ValueError(f"kernel must be a square (n, n) matrix, got shape {kernel.shape}")
    _check_finite("kernel", kernel)
    n = kernel.shape[0]
    # Dividing by a power of two changes nothing below (exact) and keeps the trace finite.
    kernel = unit_scale(kernel)[0]
    trace = jnp.trace(kernel)
    if is_concrete(trace) and not float(trace) > 0:
        raise ValueError(
            f"kernel must have a positive trace (a positive semi-definite kernel that is not "
            f"zero), got trace {float(trace)!r}"
        )
    return kernel_complexity(kernel * (n / trace), targets, ridge=ridge) / np.sqrt(n)


def _check_class_outputs(name: str, outputs: ArrayLike, labels: ArrayLike, labels_name: str):
    outputs, labels = _as_float_array(name, outputs), _as_labels(labels_name, labels)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (n, k) with k >= 2 classes, got shape {outputs.shape}"
        )
    _check_finite(name, outputs)
    if labels.shape != outputs.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{labels_name} must be ({outputs.shape[0]},) integers, one per row of {name}, got "
            f"shape {labels.shape} and dtype {labels.dtype}"
        )
    k = outputs.shape[1]
    if is_concrete(labels) and labels.size and not (0 <= int(labels.min()) <= labels.max() < k):
        raise ValueError(
            f"{labels_name} must lie in [0, {k}) for {k} classes, got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return outputs, labels


def multiclass_margin(outputs: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""The multiclass margin of each example: :math:`f_y(x) - \max_{c \ne y} f_c(x)`.

    Positive exactly when the example is classified as ``labels`` (ties count as errors: margin
    0). The margin bound (:func:`supervision_bound_terms`) counts the examples whose margin is at
    most :math:`\gamma`.

    Args:
        outputs: ``(n, k)`` scores (logits, or a kernel regressor's outputs), ``k >= 2``.
        labels: ``(n,)`` integer classes in ``[0, k)``.

    Returns:
        ``(n,)`` margins.

    Raises:
        ValueError: for shapes that do not match, fewer than two classes, or (concrete input)
            NaN or infinite outputs, labels outside ``[0, k)``, or margins that overflow the
            dtype (scores near its largest value).

    Example:
        >>> import jax.numpy as jnp
        >>> multiclass_margin(jnp.array([[3.0, 1.0, 2.5], [0.0, 1.0, 0.0]]), jnp.array([0, 0]))
        Array([ 0.5, -1. ], dtype=float32)
    """
    outputs, labels = _check_class_outputs("outputs", outputs, labels, "labels")
    return _check_no_overflow(_margins(outputs, labels), "multiclass_margin")


def _margins(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """The margins of checked arguments; an overflow gives +-inf, of the right sign."""
    true = labels[:, None] == jnp.arange(outputs.shape[1])[None, :]
    own = jnp.sum(jnp.where(true, outputs, 0.0), axis=1)
    return own - jnp.max(jnp.where(true, -jnp.inf, outputs), axis=1)


class BoundTerms(NamedTuple):
    r"""The three terms of a margin bound for a student trained on teacher targets.

    Attributes:
        teacher_error: the fraction of training examples whose teacher prediction (the argmax of
            the targets) is not the label.
        margin_loss: the fraction whose student margin with respect to the teacher's prediction
            is at most :math:`\gamma`.
        complexity: :math:`k \operatorname{ASC}(K, \tilde Y) / \gamma`, the complexity of the
            centred targets in the student's kernel over the margin.
    """

    teacher_error: jax.Array
    margin_loss: jax.Array
    complexity: jax.Array

    @property
    def total(self) -> jax.Array:
        """The sum of the three terms (the bound with constant 1 and no confidence term)."""
        return self.teacher_error + self.margin_loss + self.complexity


def supervision_bound_terms(
    outputs: ArrayLike,
    labels: ArrayLike,
    targets: ArrayLike,
    kernel: ArrayLike,
    *,
    margin: float,
    ridge: float = 0.0,
) -> BoundTerms:
    r"""The terms of a margin bound on the error of a kernel student fitted to teacher targets.

    Let :math:`\hat y^t_i = \arg\max_c Y_{ic}` be the teacher's prediction and
    :math:`\mu_f(x, c)` the margin (:func:`multiclass_margin`). Pointwise,
    :math:`\mathbb 1[\mu_f(x_i, y_i) \le \gamma] \le \mathbb 1[\hat y^t_i \ne y_i] +
    \mathbb 1[\mu_f(x_i, \hat y^t_i) \le \gamma]`, and the multiclass margin bound (e.g. Mohri
    et al., 2018, Theorem 9.2) with the Rademacher complexity of predictors of norm
    :math:`\lVert W^* \rVert_F` gives, with probability at least :math:`1 - \delta`,

    .. math:: P[\arg\max f(x) \ne y] \le \underbrace{\tfrac1n \textstyle\sum_i
        \mathbb 1[\hat y^t_i \ne y_i]}_{\text{teacher error}} + \underbrace{\tfrac1n
        \textstyle\sum_i \mathbb 1[\mu_f(x_i, \hat y^t_i) \le \gamma]}_{\text{margin loss}} +
        C\, \underbrace{\frac{k\, \operatorname{ASC}(K, \tilde Y)}{\gamma}}_{\text{complexity}}
        + O\Big(\sqrt{\log(1/\delta) / n}\Big)

    for a constant :math:`C` (4 in Mohri et al.'s statement for a norm fixed in advance; a union
    bound over the norm and :math:`\gamma` adds logarithmic terms). The targets enter centred,
    :math:`\tilde Y = Y - \bar Y \mathbf 1^\top` with :math:`\bar Y` the row means: the fit of
    :math:`\bar Y \mathbf 1^\top` adds the same number to every class score of an input, which
    changes no margin and no prediction, so the student of :math:`\tilde Y` classifies exactly as
    the student of :math:`Y` with a smaller norm. Harutyunyan et al. (2023) name these three
    ingredients; the form and constants here are this book's reconstruction.
    :attr:`BoundTerms.total` takes :math:`C = 1` and drops the confidence term, so any bound of
    this form with :math:`C \ge 1` is at least as large.

    The complexity term is the student's only when ``outputs`` are those of the minimum-norm
    kernel predictor fitted to ``targets`` with this ``kernel`` (e.g.
    :func:`kdbook.kernels.kernel_regression`), whose norm is the one the term measures.

    Args:
        outputs: ``(n, k)`` the student's outputs on the training inputs.
        labels: ``(n,)`` the true labels.
        targets: ``(n, k)`` the teacher's targets :math:`Y` (probabilities or one-hot labels).
        kernel: ``(n, n)`` the student's kernel on the training inputs.
        margin: :math:`\gamma > 0`.
        ridge: relative ridge, as in :func:`adjusted_supervision_complexity`.

    Returns:
        A :class:`BoundTerms`.

    Raises:
        ValueError: for shapes that do not match, labels outside ``[0, k)``, a ``margin`` that
            is not a finite number ``> 0``, NaN or infinite outputs or targets (concrete input),
            constant targets (nothing to fit once centred), and as
            :func:`adjusted_supervision_complexity`.
    """
    _check_positive("margin", margin)
    outputs, labels = _check_class_outputs("outputs", outputs, labels, "labels")
    targets = _as_float_array("targets", targets)
    if targets.shape != outputs.shape:
        raise ValueError(
            f"targets must have the shape of outputs {outputs.shape}, got {targets.shape}"
        )
    _check_finite("targets", targets)
    n = outputs.shape[0]
    if jnp.shape(kernel) != (n, n):
        raise ValueError(
            f"kernel must have shape ({n}, {n}), the student's kernel on the n={n} training "
            f"inputs (the rows of outputs), got shape {jnp.shape(kernel)}"
        )
    centred = targets - jnp.mean(targets, axis=1, keepdims=True)
    if is_concrete(centred) and not bool(jnp.any(centred != 0)):
        raise ValueError("targets must differ between classes: every row of targets is constant")
    teacher = jnp.argmax(targets, axis=1)
    return BoundTerms(
        teacher_error=jnp.mean(teacher != labels),
        margin_loss=jnp.mean(_margins(outputs, teacher) <= margin),  # +-inf counts right
        complexity=outputs.shape[1]
        * adjusted_supervision_complexity(kernel, centred, ridge=ridge)
        / margin,
    )
