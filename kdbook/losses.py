r"""Distillation losses: soft targets, cross-entropy, label smoothing, the KD objective and its
gradient; accuracy; and the squared loss of regression in the kernel regime (:func:`squared_loss`).

What the KD gradient does: :func:`kd_gradient_decomposition` splits it into a per-example
re-weighting of the hard-label gradient and a dark-knowledge term on the wrong classes (an exact
identity, derived in the book's chapter 6 after the re-weighting reading of Tang et al., 2020);
:func:`partial_teacher_logits` builds teachers with part of that knowledge erased.

The KD objective of Hinton et al. (2015) mixes a hard-label term and a soft-target term with the
**soft ratio** :math:`\rho \in [0, 1]` and the **temperature** :math:`T > 0`. With student logits
:math:`z^s`, teacher logits :math:`z^t`, label :math:`y` and :math:`p_T(z) = \mathrm{softmax}(z/T)`
(or :math:`\operatorname{sigmoid}(z/T)` for a binary, one-logit model), the two conventions are

.. math::

    \text{"hinton"}:\quad \ell = (1-\rho)\,\mathrm{CE}(y, p_1(z^s))
        + \rho\, T^2\, \mathrm{KL}\big(p_T(z^t) \,\Vert\, p_T(z^s)\big)

    \text{"shared"}:\quad \ell = (1-\rho)\,\mathrm{CE}(y, p_T(z^s))
        + \rho\, \mathrm{KL}\big(p_T(z^t) \,\Vert\, p_T(z^s)\big)

**Why** :math:`T^2`: the gradient of the soft term with respect to :math:`z^s` is
:math:`\frac{1}{T}(p_T(z^s) - p_T(z^t))`, whose size shrinks like :math:`1/T^2` for large
:math:`T` (the probabilities approach uniform at rate :math:`1/T`). Multiplying by :math:`T^2`
keeps the soft term's gradient comparable across temperatures; as :math:`T \to \infty` it becomes
the gradient of logit matching, :func:`logit_matching_loss`. In the "shared" convention both terms
share the temperature and there is no :math:`T^2`; for :math:`\rho > 0` its per-example stationary
point has a closed form, :math:`p_T(z^s) = \rho\, p_T(z^t) + (1-\rho)\,y`, which makes it
convenient for analysis. It is not a rescaling of "hinton": its soft part is smaller by
:math:`T^2` and its hard part by only about :math:`T`, so the same :math:`\rho` weighs the two
terms differently. At ``T = 1`` the two conventions agree.

**KL or cross-entropy**: :math:`\mathrm{CE}(p, q) = \mathrm{KL}(p \Vert q) + H(p)`. The teacher's
entropy :math:`H(p_T(z^t))` does not depend on the student, so ``soft_term="kl"`` and
``soft_term="ce"`` differ by a constant and give identical gradients; ``"kl"`` is zero when the
student matches the teacher. The KL's value is computed directly, as a sum of non-negative terms,
never as :math:`\mathrm{CE} - H`: when the student nearly matches the teacher that difference of
two :math:`O(1)` numbers is float32 round-off (and can be negative), while the KL keeps its
relative precision. Its gradient is the cross-entropy's, computed exactly as for
``soft_term="ce"`` (bit for bit), so the choice of soft term never changes a training run.

Every loss here is the **mean over the batch**. Bad input (``soft_ratio`` outside ``[0, 1]``,
``temperature <= 0``, mismatched shapes, labels out of range, an empty batch) raises a
``ValueError`` naming the argument; value checks are skipped for traced values (inside ``jit`` or
``vmap``), where only shapes are checked.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import as_labels as _as_labels
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_no_overflow as _check_no_overflow
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_unit_interval as _check_unit_interval
from kdbook._checks import is_concrete as _concrete
from kdbook._scaling import unit_scale

__all__ = [
    "GradientDecomposition",
    "accuracy",
    "cross_entropy",
    "kd_gradient_decomposition",
    "kd_logit_gradient",
    "kd_loss",
    "logit_matching_loss",
    "partial_teacher_logits",
    "smooth_labels",
    "soft_targets",
    "squared_loss",
]

FORMS = ("softmax", "sigmoid")
CONVENTIONS = ("hinton", "shared")
SOFT_TERMS = ("kl", "ce")


# ----------------------------------------------------------------------------- validation


def _check_logits(name: str, logits: ArrayLike, form: str) -> jax.Array:
    """Validate logits: finite numbers (integers become floats) of the form's shape; sigmoid
    logits are returned with shape (n,)."""
    _check_choice("form", form, FORMS)
    logits = _as_float_array(name, logits)
    _check_finite(name, logits)
    if form == "softmax":
        if logits.ndim != 2 or logits.shape[1] < 2:
            raise ValueError(
                f"{name} must have shape (n, k) with k >= 2 classes for "
                f"form='softmax', got shape {logits.shape}"
            )
    else:
        if logits.ndim == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
        if logits.ndim != 1:
            raise ValueError(
                f"{name} must have shape (n,) or (n, 1) for form='sigmoid' "
                f"(one logit per example), got shape {logits.shape}"
            )
    if logits.shape[0] == 0:
        raise ValueError(f"{name} is empty: the batch needs at least one example")
    return logits


def _check_labels(labels, n: int | None, num_classes: int) -> jax.Array:
    """``labels`` as integer labels (:func:`_as_labels`) in ``[0, num_classes)`` of shape
    ``(n,)`` (any ``(n,)`` for ``n=None``)."""
    labels = _as_labels("labels", labels)
    if labels.ndim != 1 or (n is not None and labels.shape != (n,)):
        want = "(n,)" if n is None else f"({n},) to match the logits"
        raise ValueError(f"labels must have shape {want}, got {labels.shape}")
    if _concrete(labels) and labels.size:
        # NumPy, not jnp: inside a jit trace jnp ops on constants return tracers.
        low, high = int(np.min(np.asarray(labels))), int(np.max(np.asarray(labels)))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels must lie in [0, {num_classes - 1}], got values in [{low}, {high}]"
            )
    return labels


def _check_temperature(temperature, dtype) -> None:
    """:math:`T > 0`, finite, and such that :math:`T` and :math:`T^2` (the Hinton scale) are
    positive and finite in the logits' dtype: float32 holds temperatures in about
    ``[1e-19, 1e19]``."""
    _check_positive("temperature", temperature)
    if not _concrete(temperature):
        return
    info = np.finfo(np.dtype(dtype))
    t = float(temperature)
    if not (float(info.tiny) ** 0.5 <= t <= float(info.max) ** 0.5):
        raise ValueError(
            f"temperature={t!r} is outside what {np.dtype(dtype).name} can represent with its "
            f"square: it must lie in [{float(info.tiny) ** 0.5:.3g}, {float(info.max) ** 0.5:.3g}]"
            " (use float64 logits, kdbook.enable_x64(), for a wider range)"
        )


# ----------------------------------------------------------------------------- building blocks


def soft_targets(
    logits: ArrayLike, *, temperature: float = 1.0, form: str = "softmax"
) -> jax.Array:
    r"""Class probabilities at temperature :math:`T`: softmax or sigmoid of :math:`z/T`.

    Args:
        logits: ``(n, k)`` for ``form="softmax"``; ``(n,)`` or ``(n, 1)`` for ``"sigmoid"``.
        temperature: :math:`T > 0`; larger values give softer (closer to uniform) targets.
        form: ``"softmax"`` (multi-class) or ``"sigmoid"`` (binary, one logit).

    Returns:
        ``(n, k)`` probabilities, or ``(n,)`` probabilities of class 1 for ``"sigmoid"``.

    Raises:
        ValueError: for logits that are not finite numbers of the form's shape, or a
            ``temperature`` not a finite number ``> 0`` whose square its dtype can hold.
    """
    logits = _check_logits("logits", logits, form)
    _check_temperature(temperature, logits.dtype)
    if form == "sigmoid":
        return jax.nn.sigmoid(logits / temperature)
    # shifted by the row maximum before dividing: z / T may overflow, (z - max z) / T only
    # towards -inf, whose probability 0 is right
    return jax.nn.softmax(_shift_to_max(logits) / temperature, axis=-1)


def _shift_to_max(z: jax.Array) -> jax.Array:
    """``z - max(z)`` per row (the last axis); a softmax is unchanged by the shift."""
    return z - jnp.max(z, axis=-1, keepdims=True)


def smooth_labels(
    labels: ArrayLike, num_classes: int, *, label_smoothing: float = 0.0
) -> jax.Array:
    r"""One-hot targets with label smoothing :math:`(1-\epsilon)\,e_y + \epsilon / k`.

    Args:
        labels: ``(n,)`` integer class indices in ``[0, num_classes)``.
        num_classes: :math:`k \ge 2`; use ``2`` for a binary (sigmoid) model.
        label_smoothing: :math:`\epsilon \in [0, 1)`.

    Returns:
        ``(n, k)`` target probabilities.

    Raises:
        ValueError: for ``num_classes`` not an integer ``>= 2``, labels not ``(n,)`` integers
            in ``[0, num_classes)``, or ``label_smoothing`` outside ``[0, 1)``.
    """
    _check_int("num_classes", num_classes, minimum=2)
    labels = _check_labels(labels, None, num_classes)
    _check_unit_interval("label_smoothing", label_smoothing, closed_right=False)
    one_hot = jax.nn.one_hot(labels, num_classes)
    return (1.0 - label_smoothing) * one_hot + label_smoothing / num_classes


def _hard_probs(labels, num_classes, label_smoothing, form):
    """Hard targets in the representation of the form: (n, k) or P(class 1) of shape (n,)."""
    probs = smooth_labels(labels, num_classes, label_smoothing=label_smoothing)
    return probs if form == "softmax" else probs[:, 1]


def _cross_entropy_rows(logits, target_probs, form):
    """Per-example CE(target, p(logits)), computed from log-probabilities (no log of 0).

    The softmax form is ``optax.softmax_cross_entropy``. The sigmoid form is the same quantity as
    ``optax.sigmoid_binary_cross_entropy`` (the tests check it), written as
    ``-(y log s + (1 - y) log(1 - s))``, which kdbook has always computed: Optax's
    ``-y log s - (1 - y) log(1 - s)`` rounds differently in float64, and the chapters' numbers
    stay the same.
    """
    if form == "softmax":
        return optax.softmax_cross_entropy(logits, target_probs)
    return -(
        target_probs * jax.nn.log_sigmoid(logits)
        + (1.0 - target_probs) * jax.nn.log_sigmoid(-logits)
    )


def _kl_summand(d):
    r""":math:`f(d) = d e^d - e^d + 1 \ge 0`, accurate to round-off also for tiny :math:`|d|`.

    The series :math:`\sum_{k \ge 2} (k - 1) d^k / k!` for :math:`|d| < 0.05` (truncated where
    the rest is below float64 round-off), the closed form elsewhere.
    """
    small = jnp.abs(d) < 0.05
    x = jnp.where(small, d, 0.0)
    coefficients = (1 / 45360, 1 / 5760, 1 / 840, 1 / 144, 1 / 30, 1 / 8, 1 / 3, 1 / 2)
    series = jnp.zeros_like(x)
    for c in coefficients:  # Horner: x^2 (1/2 + x (1/3 + x (1/8 + ...)))
        series = series * x + c
    series = series * x * x
    y = jnp.where(small, 0.0, d)
    closed = y * jnp.exp(y) - jnp.expm1(y)
    return jnp.where(small, series, closed)


def _two_class(logits, form):
    """A binary logit z is the two-class softmax with logits (0, z): (n,) -> (n, 2)."""
    if form == "softmax":
        return logits
    return jnp.stack([jnp.zeros_like(logits), logits], axis=-1)


def _log_ratio(student_logits, teacher_logits, temperature):
    r""":math:`p^s = p_T(z^s)`, :math:`p^t = p_T(z^t)` and :math:`d = \log p^t - \log p^s`.

    :math:`d_j = u_j - c` takes the logit difference :math:`u = (z^t - z^s)/T` first, and the
    shared shift :math:`c = \log \sum_j p^s_j e^{u_j}` (the difference of the two
    log-normalisers) as ``log1p`` of a sum of ``expm1`` when the distributions are close, so
    :math:`d` keeps its relative precision as :math:`T \to \infty`, where :math:`d = O(1/T)`:
    an error in :math:`c` of a few ulps of :math:`c` is an ulp-sized error in :math:`d`.
    """
    a, b = student_logits / temperature, teacher_logits / temperature
    p_s, p_t = jax.nn.softmax(a, axis=-1), jax.nn.softmax(b, axis=-1)
    u = (teacher_logits - student_logits) / temperature
    near = jnp.max(jnp.abs(u), axis=-1, keepdims=True) < 1.0
    u_near = jnp.where(near, u, 0.0)
    shift_near = jnp.log1p(jnp.sum(p_s * jnp.expm1(u_near), axis=-1, keepdims=True))
    normaliser = partial(jax.nn.logsumexp, axis=-1, keepdims=True)
    shift = jnp.where(near, shift_near, normaliser(b) - normaliser(a))
    return p_s, p_t, u - shift


def _probability_gap(p_s, p_t, d):
    r""":math:`p^s - p^t = -p^s\,\mathrm{expm1}(d)`: no cancellation of two near-equal numbers
    where the distributions are close (large :math:`T`), the plain difference elsewhere."""
    small = jnp.abs(d) < 1.0
    return jnp.where(small, -p_s * jnp.expm1(jnp.where(small, d, 0.0)), p_s - p_t)


@jax.custom_jvp
def _kl_softmax_rows(student_logits, teacher_logits, temperature):
    r"""Per-example :math:`\mathrm{KL}(p_T(z^t) \Vert p_T(z^s))`, precise also when it is tiny.

    With :math:`d = \log p^t - \log p^s` (:func:`_log_ratio`) it is
    :math:`\sum_j p^s_j f(d_j)`, :math:`f(d) = d e^d - e^d + 1 \ge 0` (the terms
    :math:`p^t_j - p^s_j` sum to zero), a sum of non-negative terms, so there is no cancellation:
    unlike :math:`\mathrm{CE} - H` (two :math:`O(1)` numbers whose difference is tiny when the
    student matches the teacher) or :math:`\sum_j p^t_j (\log p^t_j - \log p^s_j)` (terms of
    both signs), it is never negative and keeps its relative precision in float32, up to
    :math:`T = 10^{10}` and beyond. Where :math:`|d_j|` is large, the term is computed as
    :math:`p^t_j d_j - (p^t_j - p^s_j)`, which cannot overflow. The derivatives (below) use the
    same :math:`d`, so :math:`T^2` times the gradient stays accurate at large :math:`T` too.
    """
    p_s, p_t, d = _log_ratio(student_logits, teacher_logits, temperature)
    small = jnp.abs(d) < 1.0
    terms = jnp.where(small, p_s * _kl_summand(jnp.where(small, d, 0.0)), p_t * d - (p_t - p_s))
    return jnp.sum(jnp.maximum(terms, 0.0), axis=-1)


@_kl_softmax_rows.defjvp
def _kl_softmax_rows_jvp(primals, tangents):
    r"""With :math:`a = z^s/T`, :math:`b = z^t/T`: :math:`\partial_a \mathrm{KL} = p^s - p^t`,
    :math:`\partial_b \mathrm{KL} = p^t \odot (d - \mathrm{KL})`, and the temperature acts
    through :math:`a` and :math:`b`."""
    student, teacher, temperature = primals
    d_student, d_teacher, d_temperature = tangents
    kl = _kl_softmax_rows(student, teacher, temperature)
    p_s, p_t, d = _log_ratio(student, teacher, temperature)
    t = jnp.asarray(temperature, kl.dtype)
    da = (d_student - student * d_temperature / t) / t
    db = (d_teacher - teacher * d_temperature / t) / t
    gap = _probability_gap(p_s, p_t, d)
    tangent = jnp.sum(gap * da, axis=-1) + jnp.sum(p_t * (d - kl[..., None]) * db, axis=-1)
    return kl, tangent


def _kl_rows(student_logits, teacher_logits, temperature, form):
    """Per-example KL of the soft targets at temperature ``temperature`` (see _kl_softmax_rows)."""
    return _kl_softmax_rows(
        _two_class(student_logits, form), _two_class(teacher_logits, form), temperature
    )


def _soft_gap(student_logits, teacher_logits, temperature, form):
    """:math:`p_T(z^s) - p_T(z^t)` accurately (shaped like the logits; (n,) for sigmoid)."""
    gap = _probability_gap(
        *_log_ratio(_two_class(student_logits, form), _two_class(teacher_logits, form), temperature)
    )
    return gap if form == "softmax" else gap[:, 1]


def cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, form: str = "softmax", label_smoothing: float = 0.0
) -> jax.Array:
    r"""Mean cross-entropy with hard labels, optionally smoothed.

    .. math:: \frac{1}{n}\sum_i \mathrm{CE}\big((1-\epsilon) e_{y_i} + \epsilon/k,\; p_1(z_i)\big)

    Args:
        logits: ``(n, k)`` (softmax) or ``(n,)``/``(n, 1)`` (sigmoid).
        labels: ``(n,)`` integer labels in ``[0, k)`` (``{0, 1}`` for sigmoid).
        form: ``"softmax"`` or ``"sigmoid"``.
        label_smoothing: :math:`\epsilon \in [0, 1)`.

    Returns:
        A scalar.

    Raises:
        ValueError: for logits that are not finite numbers of the form's shape, labels that
            are not ``(n,)`` integers in ``[0, k)``, ``label_smoothing`` outside ``[0, 1)``, or
            a loss that overflows the dtype (logits near its limit; concrete inputs).
    """
    logits = _check_logits("logits", logits, form)
    num_classes = logits.shape[1] if form == "softmax" else 2
    labels = _check_labels(labels, logits.shape[0], num_classes)
    targets = _hard_probs(labels, num_classes, label_smoothing, form)
    return _check_no_overflow(
        jnp.mean(_cross_entropy_rows(logits, targets, form)), "cross_entropy of these logits"
    )


# ----------------------------------------------------------------------------- the KD objective


def _check_kd_inputs(
    student_logits,
    teacher_logits,
    labels,
    soft_ratio,
    temperature,
    form,
    convention,
    label_smoothing,
):
    _check_choice("convention", convention, CONVENTIONS)
    student = _check_logits("student_logits", student_logits, form)
    teacher = _check_logits("teacher_logits", teacher_logits, form)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got "
            f"{student.shape} and {teacher.shape}"
        )
    num_classes = student.shape[1] if form == "softmax" else 2
    labels = _check_labels(labels, student.shape[0], num_classes)
    _check_unit_interval("soft_ratio", soft_ratio)
    _check_unit_interval("label_smoothing", label_smoothing, closed_right=False)
    _check_temperature(temperature, student.dtype)
    return student, teacher, labels, num_classes


def kd_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    *,
    soft_ratio: float,
    temperature: float,
    form: str = "softmax",
    convention: str = "hinton",
    soft_term: str = "kl",
    label_smoothing: float = 0.0,
) -> jax.Array:
    r"""The knowledge-distillation objective, mean over the batch.

    .. math::

        \ell = (1-\rho)\,\mathrm{CE}\big(\tilde y,\; p_{T_h}(z^s)\big)
             + \rho\, c_T\, D\big(p_T(z^t),\; p_T(z^s)\big)

    with :math:`\tilde y` the (optionally smoothed) one-hot label, :math:`D` the KL divergence
    (``soft_term="kl"``) or cross-entropy (``"ce"``), and

    * ``convention="hinton"``: :math:`T_h = 1`, :math:`c_T = T^2` (Hinton et al., 2015);
    * ``convention="shared"``: :math:`T_h = T`, :math:`c_T = 1`.

    ``soft_ratio=0`` is plain cross-entropy with the labels; ``soft_ratio=1`` uses the teacher only.

    Args:
        student_logits: ``(n, k)`` (softmax) or ``(n,)``/``(n, 1)`` (sigmoid).
        teacher_logits: same shape as ``student_logits``; treated as constants.
        labels: ``(n,)`` integer ground-truth labels.
        soft_ratio: :math:`\rho \in [0, 1]`, the weight of the soft-target term.
        temperature: :math:`T > 0`.
        form: ``"softmax"`` or ``"sigmoid"``.
        convention: ``"hinton"`` or ``"shared"``, see above.
        soft_term: ``"kl"`` or ``"ce"``; same gradients, values differ by the teacher's entropy.
        label_smoothing: :math:`\epsilon \in [0, 1)` applied to the hard-label term.

    Returns:
        A scalar.

    Raises:
        ValueError: for logits that are not finite numbers of the form's shape or differ in
            shape, labels that are not ``(n,)`` integers in ``[0, k)`` (checked for concrete
            labels; under ``jax.jit`` value checks are skipped), ``soft_ratio`` outside
            ``[0, 1]``, ``label_smoothing`` outside ``[0, 1)``, a ``temperature`` not a finite
            number ``> 0`` whose square its dtype can hold (float32: about ``[1e-19, 1e19]``),
            or an unknown ``form``, ``convention`` or ``soft_term``; a loss that overflows the
            dtype (logits near its limit, or logits / temperature beyond it; concrete inputs).

    Example:
        >>> import jax.numpy as jnp
        >>> student = jnp.array([[2.0, 0.5, -1.0]])
        >>> teacher = jnp.array([[3.0, 1.0, -2.0]])
        >>> loss = kd_loss(student, teacher, jnp.array([0]), soft_ratio=0.9, temperature=4.0)
        >>> loss.shape, bool(loss > 0)
        ((), True)
    """
    _check_choice("soft_term", soft_term, SOFT_TERMS)
    student, teacher, labels, num_classes = _check_kd_inputs(
        student_logits,
        teacher_logits,
        labels,
        soft_ratio,
        temperature,
        form,
        convention,
        label_smoothing,
    )
    teacher = jax.lax.stop_gradient(teacher)
    hard_temperature = 1.0 if convention == "hinton" else temperature
    soft_scale = temperature**2 if convention == "hinton" else 1.0

    hard = _cross_entropy_rows(
        student / hard_temperature, _hard_probs(labels, num_classes, label_smoothing, form), form
    )
    # The KL (value and derivatives accurate at any temperature, _kl_softmax_rows); the
    # cross-entropy differs from it by the teacher's entropy, a constant, so its value is
    # computed directly and its derivatives are the KL's: ce + (kl - kl), bit for bit the same
    # gradients for both soft terms.
    soft = _kl_rows(student, teacher, temperature, form)
    if soft_term == "ce":
        teacher_probs = soft_targets(teacher, temperature=temperature, form=form)
        ce = _cross_entropy_rows(student / temperature, teacher_probs, form)
        soft = jax.lax.stop_gradient(ce) + (soft - jax.lax.stop_gradient(soft))
    value = jnp.mean((1.0 - soft_ratio) * hard + soft_ratio * soft_scale * soft)
    return _check_no_overflow(value, "kd_loss of these logits at this temperature")


def kd_logit_gradient(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    *,
    soft_ratio: float,
    temperature: float,
    form: str = "softmax",
    convention: str = "hinton",
    label_smoothing: float = 0.0,
) -> jax.Array:
    r"""Closed-form gradient of :func:`kd_loss` with respect to the student's logits.

    With :math:`p^s_T = p_T(z^s)`, :math:`p^t_T = p_T(z^t)` and the smoothed one-hot label
    :math:`\tilde y`, the gradient of one example's loss is as below. :func:`kd_loss` is the mean
    over the batch, so row :math:`i` of the returned array is this per-example gradient divided by
    :math:`n`, the derivative of the batch loss with respect to example :math:`i`'s logits:

    .. math::

        \text{hinton}:\quad \frac{\partial \ell}{\partial z^s}
            = (1-\rho)\,(p^s_1 - \tilde y) + \rho\, T\,(p^s_T - p^t_T)

        \text{shared}:\quad \frac{\partial \ell}{\partial z^s}
            = \tfrac{1}{T}\big[(1-\rho)\,(p^s_T - \tilde y) + \rho\,(p^s_T - p^t_T)\big]

    The same formulas hold for the sigmoid form with the sigmoid in place of softmax and
    :math:`\tilde y` the probability of class 1. Tang et al. (2020) read the soft part as an
    implicit per-example *re-weighting* of the hard-label gradient;
    :func:`kd_gradient_decomposition` splits the gradient that way.

    Returns:
        An array shaped like ``student_logits`` (``(n,)`` for the sigmoid form): the per-example
        gradients divided by the batch size ``n``.

    Raises:
        ValueError: as :func:`kd_loss`.
    """
    student, teacher, labels, num_classes = _check_kd_inputs(
        student_logits,
        teacher_logits,
        labels,
        soft_ratio,
        temperature,
        form,
        convention,
        label_smoothing,
    )
    n = student.shape[0]
    target = _hard_probs(labels, num_classes, label_smoothing, form)
    gap = _soft_gap(student, teacher, temperature, form)  # p^s_T - p^t_T, no cancellation
    if convention == "hinton":
        p_s_1 = soft_targets(student, temperature=1.0, form=form)
        grad = (1.0 - soft_ratio) * (p_s_1 - target) + soft_ratio * temperature * gap
    else:
        p_s_t = soft_targets(student, temperature=temperature, form=form)
        grad = ((1.0 - soft_ratio) * (p_s_t - target) + soft_ratio * gap) / temperature
    return _check_no_overflow(grad / n, "kd_logit_gradient of these logits at this temperature")


class GradientDecomposition(NamedTuple):
    r"""What :func:`kd_gradient_decomposition` returns: :math:`g = w\,(p^s_1 - e_y) + d`.

    Attributes:
        weight: ``(n,)`` the per-example weight :math:`w_i` of the hard-label gradient.
        dark_knowledge: ``(n, k)`` the rest :math:`d_i`, zero on each example's true class.
    """

    weight: jax.Array
    dark_knowledge: jax.Array


def _off_class_mass(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r""":math:`1 - \mathrm{softmax}(z)_y` as the other classes' probability (no cancellation)."""
    others = jnp.where(jax.nn.one_hot(labels, logits.shape[1], dtype=bool), -jnp.inf, logits)
    return jnp.exp(jax.nn.logsumexp(others, axis=-1) - jax.nn.logsumexp(logits, axis=-1))


def kd_gradient_decomposition(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    *,
    soft_ratio: float,
    temperature: float,
    convention: str = "hinton",
) -> GradientDecomposition:
    r"""The KD gradient as a re-weighted hard-label gradient plus a dark-knowledge term.

    Write :math:`g_i` for the gradient of example :math:`i`'s loss :func:`kd_loss` (softmax form)
    with respect to its logits, and :math:`g^{\mathrm{CE}}_i = p_1(z^s_i) - e_{y_i}`, that of plain
    cross-entropy. Then

    .. math:: g_i = w_i\, g^{\mathrm{CE}}_i + d_i, \qquad (d_i)_{y_i} = 0,

    where the **weight** :math:`w_i` is the ratio of the two gradients on the true-class logit.
    With :math:`r = 1 - p_{y}` the probability a distribution puts off the true class,
    :math:`r^s_T, r^t_T` the student's and teacher's at temperature :math:`T` and
    :math:`r^s_1` the student's at :math:`T = 1`,

    .. math::

        \text{hinton}:\quad w = (1-\rho) + \rho\,T\,\frac{r^s_T - r^t_T}{r^s_1},
        \qquad
        \text{shared}:\quad w = \frac{r^s_T - \rho\, r^t_T}{T\, r^s_1}.

    At :math:`T = 1` both read :math:`w = 1 - \rho\, r^t / r^s`: it increases with the
    teacher's confidence :math:`1 - r^t` on the true class, so examples the teacher finds hard
    get a smaller share of the hard-label gradient (the re-weighting that Tang et al., 2020,
    describe in words; this formula is kdbook's), and it is negative once the student is more
    confident than the target mixture. The term
    :math:`d_i` acts on the wrong classes only; at :math:`T = 1` it is
    :math:`\rho\, r^t (\bar p^s - \bar p^t)`, with :math:`\bar p` a distribution renormalised over
    the wrong classes.

    Args:
        student_logits: ``(n, k)``.
        teacher_logits: ``(n, k)``.
        labels: ``(n,)`` integer labels.
        soft_ratio, temperature, convention: as in :func:`kd_loss`.

    Returns:
        A :class:`GradientDecomposition` of the per-example gradients (not divided by ``n``:
        ``n * kd_logit_gradient(...) == weight[:, None] * (p - one_hot) + dark_knowledge``).
        The weight is :math:`\pm\infty` or NaN only where the student's probability off the true
        class underflows to zero (a logit margin beyond about 700 in float64, 85 in float32).

    Raises:
        ValueError: as :func:`kd_loss`; logits must be ``(n, k)`` (the softmax form: one
            logit has no wrong classes to carry dark knowledge).
    """
    gradient = kd_logit_gradient(
        student_logits,
        teacher_logits,
        labels,
        soft_ratio=soft_ratio,
        temperature=temperature,
        convention=convention,
    )
    student = _as_float_array("student_logits", student_logits)
    teacher = _as_float_array("teacher_logits", teacher_logits)
    labels = jnp.asarray(labels)
    n, k = student.shape
    r_s1 = _off_class_mass(student, labels)
    one_hot = jax.nn.one_hot(labels, k, dtype=student.dtype)
    if convention == "hinton":
        # r^s_T - r^t_T = p^t_{T,y} - p^s_{T,y}, without the cancellation at large T
        gap = _soft_gap(student, jax.lax.stop_gradient(teacher), temperature, "softmax")
        r_gap = -jnp.sum(gap * one_hot, axis=-1)
        weight = (1.0 - soft_ratio) + soft_ratio * temperature * r_gap / r_s1
    else:
        r_s = _off_class_mass(student / temperature, labels)
        r_t = jax.lax.stop_gradient(_off_class_mass(teacher / temperature, labels))
        weight = (r_s - soft_ratio * r_t) / (temperature * r_s1)
    hard = jax.nn.softmax(student, axis=-1) - one_hot
    dark = jnp.where(one_hot > 0, 0.0, n * gradient - weight[:, None] * hard)
    return GradientDecomposition(weight, dark)


def partial_teacher_logits(
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    *,
    top_k: int = 0,
    temperature: float = 1.0,
) -> jax.Array:
    r"""Logits of a *partial teacher*: the teacher with some of its wrong-class detail erased.

    At temperature :math:`T` the teacher's distribution :math:`p = p_T(z^t)` is replaced by
    :math:`\tilde p`, which keeps :math:`p_y` on the true class and :math:`p_j` on the teacher's
    ``top_k`` most probable wrong classes, and shares the remaining probability equally among
    the other wrong classes. ``top_k=0`` keeps only the teacher's confidence on the true class
    (its per-example difficulty, with no preference among wrong classes); ``top_k = k - 1`` is the
    teacher itself. The result is returned as logits, :math:`T \log \tilde p`, so that a
    partial teacher is used exactly like a teacher: ``kd_loss(student, partial_teacher_logits(
    teacher, labels, temperature=T), labels, temperature=T, ...)`` distils from
    :math:`\tilde p` (softmax of the returned logits divided by :math:`T` is :math:`\tilde p`).
    Everything is computed in log space, so a confident teacher's tiny remaining mass is kept,
    not rounded to :math:`\log 0`.

    Args:
        teacher_logits: ``(n, k)``.
        labels: ``(n,)`` integer true classes.
        top_k: how many of the teacher's most probable wrong classes keep their probability,
            an integer in ``[0, k - 1]``.
        temperature: :math:`T > 0`, at which :math:`p` and :math:`\tilde p` are taken.

    Returns:
        ``(n, k)`` logits (each row defined up to a constant, as logits are).

    Raises:
        ValueError: for teacher logits that are not finite ``(n, k)``, labels not in
            ``[0, k)``, ``top_k`` not an integer in ``[0, k - 1]``, a ``temperature`` not a
            finite number ``> 0`` whose square its dtype can hold, or (concrete input) logits
            whose differences overflow the dtype.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> teacher = jnp.log(jnp.array([[0.6, 0.25, 0.1, 0.05]]))
        >>> p = jax.nn.softmax(partial_teacher_logits(teacher, jnp.array([0])))
        >>> [round(float(v), 3) for v in p[0]]
        [0.6, 0.133, 0.133, 0.133]
    """
    teacher = _check_logits("teacher_logits", teacher_logits, "softmax")
    n, k = teacher.shape
    labels = _check_labels(labels, n, k)
    _check_int("top_k", top_k, minimum=0)
    if top_k > k - 1:
        raise ValueError(
            f"top_k must be an integer in [0, {k - 1}] (the k - 1 wrong classes), got {top_k}"
        )
    _check_temperature(temperature, teacher.dtype)
    # In logit units, T log p_T: (z - max z) - T logsumexp((z - max z) / T). Unlike
    # T * log_softmax(z / T), neither z / T nor the product can overflow.
    shifted = _shift_to_max(jax.lax.stop_gradient(teacher))
    log_p = shifted - temperature * jax.nn.logsumexp(shifted / temperature, -1, keepdims=True)
    true = jax.nn.one_hot(labels, k, dtype=bool)
    wrong = jnp.where(true, -jnp.inf, log_p)
    # rank 0 = the most probable wrong class; the true class ranks last
    rank = jnp.argsort(jnp.argsort(-wrong, axis=-1), axis=-1)
    kept = true | (rank < top_k)
    count = k - 1 - top_k
    if count == 0:
        return _check_no_overflow(log_p, "partial_teacher_logits")
    # T log(mean of p_T over the rest), shifted by the rest's largest log_p, as above
    rest = jnp.where(kept, -jnp.inf, log_p)
    top = jnp.max(rest, axis=-1, keepdims=True)
    spread = jax.nn.logsumexp((rest - top) / temperature, -1, keepdims=True) - np.log(count)
    return _check_no_overflow(
        jnp.where(kept, log_p, top + temperature * spread), "partial_teacher_logits"
    )


def logit_matching_loss(
    student_logits: ArrayLike, teacher_logits: ArrayLike, *, form: str = "softmax"
) -> jax.Array:
    r"""The :math:`T \to \infty` limit of the :math:`T^2`-scaled soft term: logit matching.

    For the softmax form, with logits centred per example (:math:`\bar z = z - \mathrm{mean}(z)`),

    .. math:: \frac{1}{n} \sum_i \frac{1}{2k} \lVert \bar z^s_i - \bar z^t_i \rVert^2,

    and for the sigmoid form :math:`\frac{1}{n}\sum_i \frac{1}{8}(z^s_i - z^t_i)^2`. Its gradient is
    the limit of :math:`T(p_T(z^s) - p_T(z^t))/n` as :math:`T \to \infty` (Hinton et al., 2015,
    Section 2.1): a first-order expansion of the softmax around the uniform distribution.

    Returns:
        A scalar.

    Raises:
        ValueError: for logits that are not finite numbers of the form's shape, or that differ
            in shape.
    """
    student = _check_logits("student_logits", student_logits, form)
    teacher = _check_logits("teacher_logits", teacher_logits, form)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got "
            f"{student.shape} and {teacher.shape}"
        )
    teacher = jax.lax.stop_gradient(teacher)
    if form == "sigmoid":
        return _check_no_overflow(_mean_square(student - teacher, 8), "logit_matching_loss")
    diff = student - teacher
    return _check_no_overflow(
        _mean_square(diff, 2 * student.shape[1], centre=True), "logit_matching_loss"
    )


def accuracy(logits: ArrayLike, labels: ArrayLike, *, form: str = "softmax") -> jax.Array:
    """Fraction of examples whose predicted class (argmax, or ``logit > 0``) equals the label.

    Raises:
        ValueError: for logits that are not finite numbers of the form's shape (a NaN logit
            has no class), or labels that are not ``(n,)`` integers in ``[0, k)``.
    """
    logits = _check_logits("logits", logits, form)
    num_classes = logits.shape[1] if form == "softmax" else 2
    labels = _check_labels(labels, logits.shape[0], num_classes)
    if form == "softmax":
        predicted = jnp.argmax(logits, axis=-1)
    else:
        predicted = (logits > 0).astype(labels.dtype)
    return jnp.mean(predicted == labels)


# ----------------------------------------------------------------------------- regression


def squared_loss(outputs: ArrayLike, targets: ArrayLike) -> jax.Array:
    r"""The squared loss :math:`\frac{1}{2n}\sum_{i=1}^n \lVert f(x_i) - y_i \rVert^2`.

    Half the mean over examples of the squared error (summed over outputs for ``(n, k)`` arrays):
    the loss that :func:`kdbook.kernels.linearized_dynamics` assumes, whose gradient step with
    learning rate :math:`\eta` moves the outputs of a linearized model by
    :math:`-\frac{\eta}{n} K (f(X) - y)`. For ``(n,)`` arrays it equals
    ``optax.l2_loss(outputs, targets).mean()``; for ``(n, k)`` arrays that mean also averages
    over the ``k`` outputs, while this sums them, as :func:`~kdbook.kernels.linearized_dynamics`
    does.

    Args:
        outputs: ``(n,)`` or ``(n, k)`` (or ``(n, ...)``) model outputs :math:`f(x_i)`.
        targets: :math:`y_i`, the same shape as ``outputs``.

    Returns:
        A scalar.

    Raises:
        ValueError: for shapes that differ (no broadcasting: ``(n, 1)`` outputs against ``(n,)``
            targets would silently give an ``(n, n)`` error matrix), scalars, an empty batch,
            NaN or infinite values, or (concrete input) a loss beyond the dtype's largest number
            (the squares are formed after an exact rescaling, so only the loss itself counts).

    Example:
        >>> import jax.numpy as jnp
        >>> float(squared_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))  # (1 + 4) / 4
        1.25
    """
    outputs, targets = _as_float_array("outputs", outputs), _as_float_array("targets", targets)
    _check_finite("outputs", outputs)
    _check_finite("targets", targets)
    if outputs.shape != targets.shape:
        raise ValueError(
            f"outputs and targets must have the same shape, got {outputs.shape} and "
            f"{targets.shape} (select an output, e.g. outputs[:, 0], rather than broadcast)"
        )
    if outputs.ndim == 0 or outputs.shape[0] == 0:
        raise ValueError(
            f"outputs must have shape (n,) or (n, k) with n >= 1 examples, got {outputs.shape}"
        )
    return _check_no_overflow(_mean_square(outputs - targets, 2), "squared_loss")


def _mean_square(diff: jax.Array, divisor: float, *, centre: bool = False) -> jax.Array:
    """The mean over examples (axis 0) of the sum over the other axes of ``diff ** 2``, divided
    by ``divisor``. ``diff`` is scaled by a power of two near its largest entry before squaring,
    so the squares overflow only when the result does (e.g. ``diff = 2e19`` in float32). Scaling
    by a power of two is exact: the value is the same, bit for bit, as without it (within the
    normal range). ``centre``: subtract each row's mean (over the last axis) first, from the
    scaled entries, so the mean cannot overflow either."""
    scaled, exponent = unit_scale(diff)  # entries in (-1, 1); exact in any dtype
    exponent = exponent.reshape(())
    if centre:
        scaled = scaled - jnp.mean(scaled, axis=-1, keepdims=True)
    value = jnp.mean(jnp.sum(scaled**2, axis=tuple(range(1, diff.ndim))))
    return jnp.ldexp(value / divisor, 2 * exponent)
