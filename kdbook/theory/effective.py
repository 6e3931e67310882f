"""Wide students trained to convergence on the KD loss (Ji & Zhu, 2020): their effective logits
and the teacher logits that hard labels correct.

Part of :mod:`kdbook.theory`; import the names from there."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import as_labels as _as_labels
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_unit_interval as _check_unit_interval
from kdbook._checks import is_concrete
from kdbook.losses import CONVENTIONS


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
    close to 1. The bracket :math:`[u, u + w]` doubles ``w`` until :math:`G(u + w) \ge 0` (at
    most until ``w`` overflows: the root is near :math:`u/T` for a correct teacher at a tiny
    temperature), then bisection halves it ``iterations`` times (to round-off for any bracket).
    """
    log_soft = jnp.log(rho * temperature)
    log_hard = jnp.log1p(-rho)

    def positive(z):  # G(z) >= 0, for z > u
        gap = _log_sigmoid_difference(z / temperature, u / temperature)
        return log_soft + gap >= log_hard - jax.nn.softplus(z)

    def widen(state):
        count, width, done = state
        width = jnp.where(done, width, 2.0 * width)
        return count + 1, width, positive(u + width) | ~jnp.isfinite(width)

    def widening(state):
        count, _, done = state
        return (count <= jnp.finfo(u.dtype).maxexp) & ~jnp.all(done)

    ones = jnp.ones_like(u)
    state = (jnp.zeros((), jnp.int32), ones, positive(u + ones))
    width = jax.lax.while_loop(widening, widen, state)[1]
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
        temperature: :math:`T > 0`, finite, at least the smallest normal number of the teacher
            logits' dtype (``tiny``, about ``1.2e-38`` in float32) and, for ``"hinton"``, at
            most ``eps / tiny`` (about ``1e31`` in float32; beyond, ``z / T`` underflows). A
            correct teacher at a tiny temperature has an effective logit near :math:`z^t / T`,
            which must not overflow.
        convention: ``"hinton"`` (default, as in :func:`~kdbook.losses.kd_loss`) or
            ``"shared"``.

    Returns:
        An array shaped like ``teacher_logits`` (float; ``inf`` only at ``soft_ratio=0``).

    Raises:
        ValueError: for shapes that differ, labels outside ``{0, 1}``, non-finite teacher logits,
            ``soft_ratio`` outside ``[0, 1]``, a temperature that is not finite and positive or
            outside the range above, an unknown convention, or effective logits that overflow
            the dtype. Value checks are skipped for traced values (inside ``jit`` or ``vmap``).

    Example:
        >>> import jax.numpy as jnp
        >>> z = effective_logits(jnp.array([-1.0, 2.0]), jnp.array([1, 1]), soft_ratio=0.5)
        >>> bool(z[0] > 0)  # the label pulls a wrong, unconfident teacher logit across zero
        True
    """
    _check_choice("convention", convention, CONVENTIONS)
    teacher = _as_float_array("teacher_logits", teacher_logits)
    labels = _as_labels("labels", labels, allow_bool=True)
    if labels.shape != teacher.shape:
        raise ValueError(
            f"labels must have the shape of teacher_logits {teacher.shape}, got {labels.shape}"
        )
    if is_concrete(labels) and labels.size and not np.isin(np.asarray(labels), (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (binary classification)")
    _check_finite("teacher_logits", teacher)
    _check_unit_interval("soft_ratio", soft_ratio)
    _check_positive("temperature", temperature)
    info = jnp.finfo(teacher.dtype)
    lowest, highest = float(info.tiny), float(info.eps) / float(info.tiny)
    if is_concrete(temperature) and float(temperature) < lowest:
        raise ValueError(
            f"temperature must be >= {lowest:.3g} (the smallest normal {teacher.dtype}) for "
            f"{teacher.dtype} teacher logits, got {float(temperature)!r}; float64 "
            "(kdbook.enable_x64()) allows smaller ones"
        )
    if is_concrete(temperature) and convention == "hinton" and float(temperature) > highest:
        raise ValueError(
            f"temperature must be <= {highest:.3g} for {teacher.dtype} teacher logits with "
            f"convention='hinton' (beyond, logits / temperature underflow and the soft term is "
            f"lost), got {float(temperature)!r}; float64 (kdbook.enable_x64()) allows larger ones"
        )
    result = _effective_logits(teacher, labels.astype(bool), soft_ratio, temperature, convention)
    if is_concrete(result, soft_ratio) and float(soft_ratio) > 0:
        finite = np.isfinite(np.asarray(result))
        if not finite.all():
            raise ValueError(
                f"the effective logits overflow {result.dtype} at {int((~finite).sum())} "
                f"examples (temperature={float(temperature)!r}; for a correct teacher at a small "
                "temperature they are near teacher_logits / temperature): use a temperature "
                "closer to 1, or float64 inside kdbook.enable_x64()"
            )
    return result


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
    :math:`T = 1`, and :math:`\tau = 0` at :math:`\rho = 1` (nothing is corrected). As
    :math:`T \to \infty` the Hinton threshold tends to :math:`-2(1 - \rho)/\rho`; it is
    computed as :math:`T \operatorname{log1p}\big(-2(1-\rho) / (\rho(T-1)+1)\big)`, accurate
    for any :math:`T`. By symmetry an
    example of class 0 is corrected when :math:`z^t < -\tau`.

    Args:
        soft_ratio: :math:`\rho \in [0, 1]`.
        temperature: :math:`T > 0`, finite.
        convention: ``"hinton"`` or ``"shared"``.

    Returns:
        :math:`\tau \le 0` as a float (``-inf`` when every wrong logit is corrected).

    Raises:
        ValueError: for a ``soft_ratio`` outside ``[0, 1]``, a ``temperature`` that is not a
            finite number ``> 0``, or an unknown convention.
    """
    _check_choice("convention", convention, CONVENTIONS)
    _check_unit_interval("soft_ratio", soft_ratio)
    _check_positive("temperature", temperature)
    rho, t = float(soft_ratio), float(temperature)
    if convention == "shared":
        return t * float(np.log(2 * rho - 1)) if rho > 0.5 else -np.inf
    if rho * t <= 1 - rho:
        return -np.inf
    # log((rho (T + 1) - 1) / (rho (T - 1) + 1)) = log1p(-2 (1 - rho) / (rho (T - 1) + 1)): no
    # ratio of two nearly equal numbers, so large T keeps its limit -2 (1 - rho) / rho
    return t * float(np.log1p(-2.0 * (1.0 - rho) / (rho * (t - 1.0) + 1.0)))
