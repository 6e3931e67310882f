"""Models, as Flax NNX modules.

:class:`MLP` is the fully connected network of the NTK literature, in the NTK parameterization of
Jacot et al. (2018) or the standard one. Use :func:`kdbook.functional.functionalize` to turn any of
these into a pure ``apply(params, x)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ACTIVATIONS", "MLP", "Dense"]

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "tanh": jnp.tanh,
}
PARAMETERIZATIONS = ("ntk", "standard")


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Dense(nnx.Module):
    """A dense layer in the NTK or the standard parameterization.

    * ``"ntk"``: ``W ~ N(0, 1)``, ``b ~ N(0, 1)``,
      output ``w_std / sqrt(fan_in) * h @ W + b_std * b``.
    * ``"standard"``: ``W ~ N(0, w_std**2 / fan_in)``, ``b ~ N(0, b_std**2)``, output ``h @ W + b``.

    Both give the same function distribution at initialisation; they differ in how gradient
    descent scales with width (the NTK parameterization has a width-independent kernel limit).

    Args:
        in_features: input dimension (fan-in).
        out_features: output dimension.
        parameterization: ``"ntk"`` or ``"standard"``.
        w_std: weight scale ``sigma_w``.
        b_std: bias scale ``sigma_b``; ``0`` disables the bias (no bias parameter is created).
        rngs: NNX random streams (the ``params`` stream is used).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        parameterization: str = "ntk",
        w_std: float = 1.0,
        b_std: float = 0.0,
        rngs: nnx.Rngs,
    ):
        _check_positive_int("in_features", in_features)
        _check_positive_int("out_features", out_features)
        _check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        if not w_std > 0:
            raise ValueError(f"w_std must be > 0, got {w_std!r}")
        if not b_std >= 0:
            raise ValueError(f"b_std must be >= 0, got {b_std!r}")
        self.parameterization = parameterization
        self.w_scale = w_std / math.sqrt(in_features)
        self.b_scale = b_std
        kernel = jax.random.normal(rngs.params(), (in_features, out_features))
        if parameterization == "standard":
            kernel = kernel * self.w_scale
        self.kernel = nnx.Param(kernel)
        if b_std > 0:
            bias = jax.random.normal(rngs.params(), (out_features,))
            self.bias = nnx.Param(bias * b_std if parameterization == "standard" else bias)
        else:
            self.bias = None

    def __call__(self, h: jax.Array) -> jax.Array:
        if self.parameterization == "ntk":
            out = self.w_scale * (h @ self.kernel[...])
            return out if self.bias is None else out + self.b_scale * self.bias[...][None, :]
        out = h @ self.kernel[...]
        return out if self.bias is None else out + self.bias[...][None, :]


class MLP(nnx.Module):
    """Fully connected network with ``depth`` hidden layers of ``width`` units.

    ``x (n, in_features) -> logits (n, out_features)``; every layer is a :class:`Dense` with the
    same parameterization and scales, and the activation follows every hidden layer.

    Args:
        in_features: input dimension ``d``.
        depth: number of hidden layers ``L`` (``0`` gives a linear model).
        width: hidden width ``m``.
        out_features: number of outputs (logits) ``k``.
        activation: ``"relu"``, ``"erf"`` or ``"tanh"``.
        parameterization: ``"ntk"`` (default) or ``"standard"``, see :class:`Dense`.
        w_std: weight scale ``sigma_w``.
        b_std: bias scale ``sigma_b`` (``0``: no biases).
        rngs: NNX random streams.

    Example:
        >>> model = MLP(64, depth=2, width=512, out_features=10, rngs=nnx.Rngs(0))
        >>> model(jnp.ones((5, 64))).shape
        (5, 10)
    """

    def __init__(
        self,
        in_features: int,
        *,
        depth: int,
        width: int,
        out_features: int,
        activation: str = "relu",
        parameterization: str = "ntk",
        w_std: float = 1.0,
        b_std: float = 0.0,
        rngs: nnx.Rngs,
    ):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
        _check_positive_int("width", width)
        _check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation
        sizes = [in_features] + [width] * depth + [out_features]
        kwargs = dict(parameterization=parameterization, w_std=w_std, b_std=b_std, rngs=rngs)
        layers = [Dense(a, b, **kwargs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        # Flax >= 0.12 needs nnx.List to track a list of modules; Flax 0.11 takes a plain list.
        self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, in_features), got shape {x.shape}")
        phi = ACTIVATIONS[self.activation]
        h = x
        for layer in self.layers[:-1]:
            h = phi(layer(h))
        return self.layers[-1](h)
