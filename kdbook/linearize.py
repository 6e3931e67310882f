r"""Linearization: the first-order Taylor model of a network around its initialisation.

.. math:: f^{\mathrm{lin}}(\theta, x) = f(\theta_0, x)
    + \nabla_\theta f(\theta_0, x)^\top (\theta - \theta_0)

In the kernel regime a wide network trained by gradient descent stays close to this model
(Lee et al., 2019), whose training dynamics under the squared loss have a closed form
(:func:`kdbook.kernels.linearized_dynamics`) governed by the empirical NTK at :math:`\theta_0`.
Trained to convergence from :math:`\theta_0`, it ends at the minimum-norm weight change that
fits its targets (:func:`min_norm_params`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_callable as _check_callable
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_float_leaves as _check_float_leaves
from kdbook.functional import Apply, Params, as_pytree, row_outputs, tree_add, tree_difference
from kdbook.kernels import kernel_solve
from kdbook.ntk import empirical_ntk

__all__ = ["linearize", "min_norm_params"]

_FLOAT_PARAMS = "the linearization differentiates with respect to floating-point parameters"


def linearize(apply: Apply, params0: Params) -> Apply:
    r"""The linearized model of ``apply`` around ``params0``, with the same contract.

    The returned ``apply_lin(params, x)`` evaluates :math:`f(\theta_0, x) + J(x)(\theta-\theta_0)`
    with one ``jax.jvp`` (never forming the Jacobian), so it trains with :func:`kdbook.train.fit`
    like any model: ``fit(linearize(apply, params0), params0, data, ...)``.

    Args:
        apply: ``apply(params, x) -> outputs``.
        params0: the expansion point :math:`\theta_0` (usually the initialisation).

    Returns:
        ``apply_lin(params, x)``; at ``params = params0`` it equals ``apply(params0, x)``. It is a
        ``jax.tree_util.Partial`` holding ``params0`` as leaves, so jitted training shares one
        compilation across expansion points of models with the same structure.

    Raises:
        ValueError: for ``apply`` not callable, ``params0`` without arrays or with integer or
            bool leaves; calling
            ``apply_lin`` with parameters of another structure or shapes than ``params0``.
    """
    _check_callable("apply", apply, what="apply(params, x) -> outputs")
    if not jax.tree.leaves(params0):
        raise ValueError(f"params0 must be a pytree of parameter arrays, got {params0!r}"[:200])
    _check_float_leaves("params0", params0, why=_FLOAT_PARAMS)
    return jax.tree_util.Partial(_linearized, as_pytree(apply), params0)


def _linearized(apply: Apply, params0: Params, params: Params, x: jax.Array) -> jax.Array:
    same = jax.tree.structure(params) == jax.tree.structure(params0) and all(
        jnp.shape(a) == jnp.shape(b)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params0), strict=True)
    )
    if not same:
        raise ValueError(
            "params must have the structure and shapes of params0, the expansion point of this "
            "linearized model (the parameters of another model?)"
        )
    out0, tangent = jax.jvp(lambda p: apply(p, x), (params0,), (tree_difference(params, params0),))
    return out0 + tangent


def min_norm_params(
    apply: Apply, params0: Params, x: ArrayLike, targets: ArrayLike, *, ridge: float = 0.0
) -> Params:
    r"""The parameters of the linearized model that fit ``targets`` with the smallest change.

    With the Jacobian :math:`J = \nabla_\theta f(\theta_0, X)` on the ``n`` inputs and the
    empirical NTK :math:`\Theta = J J^\top`,

    .. math:: \theta^\star = \theta_0 + J^\top (\Theta + \lambda I)^{-1}
        \big(y - f(\theta_0, X)\big),

    the minimum-norm solution of :math:`f^{\mathrm{lin}}(\theta, X) = y` (for :math:`\lambda =
    0`). Gradient descent on the linearized model from :math:`\theta_0` only ever adds
    combinations of the rows of :math:`J`, so when it fits its targets it ends here: under the
    squared loss, and under any loss whose per-example minimiser is the target, e.g. the binary
    KD loss with targets :func:`kdbook.theory.effective_logits`. The kernel is computed with
    :func:`kdbook.ntk.empirical_ntk` (all output pairs, so ``k`` outputs give an ``nk x nk``
    system) and :math:`J^\top c` with one ``jax.vjp``.

    Args:
        apply: ``apply(params, x) -> outputs`` of shape ``(n,)`` or ``(n, k)``.
        params0: the expansion point :math:`\theta_0`.
        x: ``(n, d)`` inputs.
        targets: shaped like ``apply(params0, x)``.
        ridge: :math:`\lambda \ge 0` (kernel ridge regression for :math:`\lambda > 0`).

    Returns:
        Parameters shaped like ``params0``.

    Raises:
        ValueError: for ``apply`` not callable or returning no ``(n,)``/``(n, k)`` array of
            real floats with one row per input, ``params0`` with integer or bool leaves, ``x``
            with NaN or inf or that ``apply`` cannot take, targets whose shape differs from the
            outputs', and as
            :func:`kdbook.kernels.kernel_solve` (non-finite targets, ``ridge < 0``).
        numpy.linalg.LinAlgError: when the NTK cannot be factorised (more outputs to fit than
            parameters, duplicate inputs, or too ill-conditioned for the dtype): add a ridge.
    """
    _check_callable("apply", apply, what="apply(params, x) -> outputs")
    _check_float_leaves("params0", params0, why=_FLOAT_PARAMS)
    x = _as_float_array("x", x)
    _check_finite("x", x)
    row_outputs(apply, params0, x, params_name="params0")
    outputs, pullback = jax.vjp(lambda p: apply(p, x), params0)
    targets = jnp.asarray(targets)
    if targets.shape != outputs.shape:
        raise ValueError(
            f"targets must have the shape of the outputs apply(params0, x), {outputs.shape}, "
            f"got {targets.shape}"
        )
    kernel = empirical_ntk(apply, params0, x, trace=False)  # (n, n, k, k), or (n, n, 1, 1)
    n, k = x.shape[0], kernel.shape[-1]
    kernel = kernel.transpose(0, 2, 1, 3).reshape(n * k, n * k)
    residual = (targets - outputs).reshape(n * k)
    coefficients = kernel_solve(kernel, residual, ridge=ridge)
    (change,) = pullback(coefficients.reshape(outputs.shape).astype(outputs.dtype))
    return tree_add(params0, change)
