r"""Linearization: the first-order Taylor model of a network around its initialisation.

.. math:: f^{\mathrm{lin}}(\theta, x) = f(\theta_0, x)
    + \nabla_\theta f(\theta_0, x)^\top (\theta - \theta_0)

In the kernel regime a wide network trained by gradient descent stays close to this model
(Lee et al., 2019), whose training dynamics under the squared loss have a closed form
(:func:`kdbook.kernels.linearized_dynamics`) governed by the empirical NTK at :math:`\theta_0`.
"""

from __future__ import annotations

import jax

from kdbook.functional import Apply, Params, as_pytree, tree_difference

__all__ = ["linearize"]


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
    """
    return jax.tree_util.Partial(_linearized, as_pytree(apply), params0)


def _linearized(apply: Apply, params0: Params, params: Params, x: jax.Array) -> jax.Array:
    out0, tangent = jax.jvp(lambda p: apply(p, x), (params0,), (tree_difference(params, params0),))
    return out0 + tangent
