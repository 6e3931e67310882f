"""Models, as Flax NNX modules.

:class:`MLP` is the fully connected network of the NTK literature, in the NTK parameterization of
Jacot et al. (2018) or the standard one; :class:`TwoLayerNet` is the two-layer ReLU network of Du
et al. (2019) and Arora et al. (2019), whose output weights are fixed. Use
:func:`kdbook.functional.functionalize` to turn any of these into a pure ``apply(params, x)``.

Both describe themselves as a :class:`DenseChain` (dense layers with one activation between them),
which is what the structured empirical NTK (:func:`kdbook.ntk.empirical_ntk`) needs.

:class:`Linear` and :class:`DeepLinear` are the students of linear distillation (Phuong & Lampert,
2019): a product of weight matrices with no bias and no activation, whose end-to-end weights
:func:`end_to_end` reads from the parameters.

:class:`CNN` is a small convolutional network for images (such as CIFAR-10's), in the NTK
parameterization too; it takes images flattened to vectors, so that every kdbook function that
takes ``(n, d)`` inputs (the empirical NTK, :func:`~kdbook.train.fit`) takes its inputs as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_nonnegative as _check_nonnegative
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_square_fits as _check_square_fits

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "MLP",
    "DeepLinear",
    "Dense",
    "DenseChain",
    "Linear",
    "TwoLayerNet",
    "end_to_end",
]

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "tanh": jnp.tanh,
}
PARAMETERIZATIONS = ("ntk", "standard")


def _check_inputs(x, in_features: int, name: str = "x") -> jax.Array:
    """``x`` as a float array, which must be ``(n, in_features)``: n inputs of the network's
    input dimension (lists are converted; complex, string and object arrays are refused)."""
    x = _as_float_array(name, x)
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != in_features:
        raise ValueError(
            f"{name} must have shape (n, {in_features}) (n inputs of dimension in_features="
            f"{in_features}), got shape {jnp.shape(x)}"
        )
    _check_finite(name, x)
    return x


def _check_rngs(rngs) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise ValueError(f"rngs must be NNX random streams, e.g. nnx.Rngs(0), got {rngs!r}")


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

    Raises:
        ValueError: for integer arguments that are not integers (bools are refused) or out of
            range, scales that are not finite or out of range, an unknown option, ``rngs`` that
            are not ``nnx.Rngs``; when called, for inputs that are not ``(n, in_features)``.
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
        _check_int("in_features", in_features)
        _check_int("out_features", out_features)
        _check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        _check_positive("w_std", w_std)
        _check_nonnegative("b_std", b_std)
        _check_square_fits("w_std", w_std)
        _check_square_fits("b_std", b_std)
        _check_rngs(rngs)
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
        h = _check_inputs(h, self.kernel.shape[0], name="h")
        if self.parameterization == "ntk":
            out = self.w_scale * (h @ self.kernel[...])
            return out if self.bias is None else out + self.b_scale * self.bias[...][None, :]
        out = h @ self.kernel[...]
        return out if self.bias is None else out + self.bias[...][None, :]


class DenseChain(NamedTuple):
    """A network ``x -> L_K(phi(... phi(L_1(x))))`` made of dense layers, for the structured NTK.

    Attributes:
        weights: the ``(fan_in, fan_out)`` weight matrix of each layer.
        biases: each layer's bias vector, or ``None``.
        w_scales: the factor multiplying ``h @ W`` in each layer.
        b_scales: the factor multiplying the bias in each layer.
        trainable: whether each layer's parameters are trained (count in the NTK).
        activation: the activation function between layers (e.g. ``jax.nn.relu``).
    """

    weights: list
    biases: list
    w_scales: list
    b_scales: list
    trainable: list
    activation: Callable[[jax.Array], jax.Array]


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

    Raises:
        ValueError: for integer arguments that are not integers (bools are refused) or out of
            range, scales that are not finite or out of range, an unknown option, ``rngs`` that
            are not ``nnx.Rngs``; when called, for inputs that are not ``(n, in_features)``.

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
        _check_int("in_features", in_features)
        _check_int("depth", depth, minimum=0)
        _check_int("width", width)
        _check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation
        sizes = [in_features] + [width] * depth + [out_features]
        kwargs = dict(parameterization=parameterization, w_std=w_std, b_std=b_std, rngs=rngs)
        layers = [Dense(a, b, **kwargs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        # Flax >= 0.12 needs nnx.List to track a list of modules; Flax 0.11 takes a plain list.
        self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _check_inputs(x, self.layers[0].kernel.shape[0])
        phi = ACTIVATIONS[self.activation]
        h = x
        for layer in self.layers[:-1]:
            h = phi(layer(h))
        return self.layers[-1](h)

    def dense_chain(self) -> DenseChain:
        """This network as a :class:`DenseChain` (every layer trainable)."""
        return _chain(list(self.layers), [True] * len(self.layers), self.activation)


def _chain(layers: list[Dense], trainable: list[bool], activation: str) -> DenseChain:
    ntk = [layer.parameterization == "ntk" for layer in layers]
    return DenseChain(
        weights=[layer.kernel[...] for layer in layers],
        biases=[None if layer.bias is None else layer.bias[...] for layer in layers],
        w_scales=[
            layer.w_scale if is_ntk else 1.0 for layer, is_ntk in zip(layers, ntk, strict=True)
        ],
        b_scales=[
            layer.b_scale if is_ntk else 1.0 for layer, is_ntk in zip(layers, ntk, strict=True)
        ],
        trainable=trainable,
        activation=ACTIVATIONS[activation],
    )


class TwoLayerNet(nnx.Module):
    r"""The two-layer ReLU network of Du et al. (2019) and Arora et al. (2019).

    .. math:: f(x) = \frac{1}{\sqrt{m}} \sum_{r=1}^{m} a_r\, \mathrm{relu}(w_r^\top x),
        \qquad w_r \sim N(0, I_d),\quad a_r \in \{-1, +1\} \text{ fixed}.

    Only the first layer ``W = (w_1, ..., w_m)`` is trained; the output weights ``a`` are a
    non-trainable ``nnx.Variable``. Its NTK at infinite width is the Gram matrix
    :math:`H^\infty_{ij} = x_i^\top x_j\,(\pi - \arccos(x_i^\top x_j)) / (2\pi)` for unit inputs.

    Args:
        in_features: input dimension ``d``.
        width: number of hidden units ``m`` (even when ``antisymmetric``).
        antisymmetric: initialise neurons in pairs ``(w_r, a_r)`` and ``(w_r, -a_r)``, so the
            network's initial output is exactly zero. The NTK has the same expectation and the
            same infinite-width limit, but it averages only ``m / 2`` independent neurons, so its
            fluctuations are those of a network of half the width.
        rngs: NNX random streams.

    Returns from ``__call__``: outputs of shape ``(n, 1)``.

    Raises:
        ValueError: for integer arguments that are not integers (bools are refused) or out of
            range, scales that are not finite or out of range, an unknown option, ``rngs`` that
            are not ``nnx.Rngs``; when called, for inputs that are not ``(n, in_features)``.
    """

    def __init__(
        self, in_features: int, *, width: int, antisymmetric: bool = False, rngs: nnx.Rngs
    ):
        _check_int("in_features", in_features)
        _check_int("width", width)
        _check_bool("antisymmetric", antisymmetric)
        _check_rngs(rngs)
        if antisymmetric and width % 2:
            raise ValueError(f"width must be even when antisymmetric=True, got {width}")
        # w_std = sqrt(d) cancels Dense's 1/sqrt(fan_in): the hidden layer is exactly x @ W.
        self.hidden = Dense(in_features, width, w_std=math.sqrt(in_features), rngs=rngs)
        signs = jnp.where(jax.random.bernoulli(rngs.params(), 0.5, (width, 1)), 1.0, -1.0)
        if antisymmetric:
            half = width // 2
            self.hidden.kernel[...] = jnp.concatenate(
                [self.hidden.kernel[...][:, :half]] * 2, axis=1
            )
            signs = jnp.concatenate([signs[:half], -signs[:half]], axis=0)
        self.output_weights = nnx.Variable(signs)
        self.width = width

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _check_inputs(x, self.hidden.kernel.shape[0])
        return jax.nn.relu(self.hidden(x)) @ self.output_weights[...] / math.sqrt(self.width)

    def dense_chain(self) -> DenseChain:
        """This network as a :class:`DenseChain` (the output layer is fixed)."""
        hidden = _chain([self.hidden], [True], "relu")
        return DenseChain(
            weights=hidden.weights + [self.output_weights[...]],
            biases=hidden.biases + [None],
            w_scales=hidden.w_scales + [1.0 / math.sqrt(self.width)],
            b_scales=hidden.b_scales + [0.0],
            trainable=[True, False],
            activation=hidden.activation,
        )


class CNN(nnx.Module):
    r"""A small convolutional network: ``len(channels)`` blocks of a 3x3 convolution, an
    activation and a 2x2 average pooling, then a global average and a dense output layer.

    It takes images **flattened** to vectors, ``x`` of shape ``(n, H * W * C)`` in row-major
    (height, width, channel) order, e.g. CIFAR-10's ``(n, 3072)`` from
    :func:`kdbook.data.load_cifar10` or the digits' ``(n, 64)`` with ``image_shape=(8, 8, 1)``,
    so that the NTK methods ``"jacobian"`` and ``"ntvp"`` and :func:`~kdbook.train.fit` take it
    like any network. Every layer is in the NTK parameterization of :class:`Dense`: weights
    :math:`N(0, 1)` scaled by :math:`\sigma_w / \sqrt{\text{fan-in}}` (for a convolution the
    fan-in is :math:`3 \cdot 3 \cdot C_{in}`), no biases. Integer inputs are computed in the
    parameters' dtype and float64 inputs in float64, as ``x @ W`` in :class:`MLP`.

    Args:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2 ** len(channels)``
            (each block halves them).
        channels: the output channels of each convolution block.
        out_features: number of outputs.
        activation: a name in ``ACTIVATIONS`` (as for :class:`MLP`).
        w_std: :math:`\sigma_w`, as in :class:`Dense` (``sqrt(2)`` suits ReLU).
        rngs: NNX random streams.

    Raises:
        ValueError: for an image shape the blocks cannot halve, channels that are not positive
            integers, an unknown activation, ``rngs`` that are not ``nnx.Rngs``; when called,
            for inputs that are not ``(n, H * W * C)``.

    Example:
        >>> model = CNN((8, 8, 1), channels=(4, 8), out_features=10, rngs=nnx.Rngs(0))
        >>> model(jnp.ones((5, 64))).shape
        (5, 10)
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        channels: tuple[int, ...] = (32, 64),
        out_features: int = 10,
        activation: str = "relu",
        w_std: float = math.sqrt(2.0),
        rngs: nnx.Rngs,
    ):
        if isinstance(image_shape, np.ndarray) and image_shape.ndim == 1:
            image_shape = image_shape.tolist()  # a NumPy shape array, e.g. np.array([8, 8, 1])
        if not isinstance(image_shape, tuple | list) or len(image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape!r}")
        for name, value in zip(("H", "W", "C"), image_shape, strict=True):
            _check_int(f"image_shape's {name}", value)
        if not isinstance(channels, tuple | list) or not channels:
            raise ValueError(f"channels must be a non-empty tuple of integers, got {channels!r}")
        for value in channels:
            _check_int("channels", value)
        height, width, depth = image_shape
        halvings = 2 ** len(channels)
        if height % halvings or width % halvings:
            raise ValueError(
                f"image_shape={tuple(image_shape)}: H and W must be divisible by "
                f"2 ** len(channels) = {halvings} (each of the {len(channels)} blocks halves them)"
            )
        _check_int("out_features", out_features)
        _check_choice("activation", activation, ACTIVATIONS)
        _check_positive("w_std", w_std)
        _check_square_fits("w_std", w_std)
        _check_rngs(rngs)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.activation = activation
        self.w_std = float(w_std)
        sizes = [depth, *channels]
        filters = [
            nnx.Param(jax.random.normal(rngs.params(), (3, 3, c_in, c_out)))
            for c_in, c_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.filters = nnx.List(filters) if hasattr(nnx, "List") else filters
        self.head = Dense(sizes[-1], out_features, w_std=w_std, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        height, width, depth = self.image_shape
        x = _check_inputs(x, height * width * depth)
        phi = ACTIVATIONS[self.activation]
        h = x.reshape(x.shape[0], height, width, depth)
        for kernel in self.filters:
            w = kernel[...]
            scale = self.w_std / math.sqrt(w.shape[0] * w.shape[1] * w.shape[2])
            dtype = jnp.result_type(h, w)  # as h @ W in a dense layer: int x -> float, f64 stays
            h = jax.lax.conv_general_dilated(
                h.astype(dtype),
                w.astype(dtype),
                (1, 1),
                "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            h = phi(scale * h)
            n, a, b, c = h.shape  # 2x2 average pooling
            h = h.reshape(n, a // 2, 2, b // 2, 2, c).mean(axis=(2, 4))
        return self.head(h.mean(axis=(1, 2)))


class Linear(nnx.Module):
    r"""Linear map :math:`f(x) = x W` with no bias, starting at W = 0 (unlike ``nnx.Linear``).

    The student of linear distillation. ``flax.nnx.Linear`` has a bias and random initial
    weights; this model has neither, by default. The weights are used as they are (no
    parameterization factor), so gradient descent on :math:`W` is plain gradient descent on the
    model's weight vector. They start at zero by default, where gradient descent on a loss of the
    outputs never leaves the span of the inputs; with ``init_scale = s > 0`` they start at
    :math:`W_{ij} \sim N(0, s^2 / d)`.

    Args:
        in_features: input dimension :math:`d`.
        out_features: number of outputs (``1`` for a binary classifier with one logit).
        init_scale: :math:`s \ge 0`, the scale of the initial weights (``0``: zeros).
        rngs: NNX random streams; needed only when ``init_scale > 0``.

    Raises:
        ValueError: for integer arguments that are not integers (bools are refused) or out of
            range, scales that are not finite or out of range, an unknown option, ``rngs`` that
            are not ``nnx.Rngs``; when called, for inputs that are not ``(n, in_features)``.

    Example:
        >>> model = Linear(50)                 # zero initialisation
        >>> model(jnp.ones((8, 50))).shape
        (8, 1)
    """

    def __init__(
        self,
        in_features: int,
        *,
        out_features: int = 1,
        init_scale: float = 0.0,
        rngs: nnx.Rngs | None = None,
    ):
        _check_int("in_features", in_features)
        _check_int("out_features", out_features)
        _check_nonnegative("init_scale", init_scale)
        _check_square_fits("init_scale", init_scale)
        shape = (in_features, out_features)
        if init_scale == 0:
            weight = jnp.zeros(shape)
        elif rngs is None:
            raise ValueError(f"init_scale={init_scale!r} > 0 needs random streams: pass rngs=...")
        else:
            _check_rngs(rngs)
            weight = init_scale / math.sqrt(in_features) * jax.random.normal(rngs.params(), shape)
        # "weight", not "kernel" (the name of Dense's): end_to_end tells a linear model's
        # parameters from those of a network with activations and scale factors by it
        self.weight = nnx.Param(weight)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _check_inputs(x, self.weight.shape[0])
        return x @ self.weight[...]


class DeepLinear(nnx.Module):
    r"""A deep linear network :math:`f(x) = x W_1 W_2 \cdots W_N`: ``depth = N - 1``, no biases.

    It computes a linear function, with end-to-end weights :math:`W_1 \cdots W_N` (see
    :func:`end_to_end`), but gradient descent on the factors follows different dynamics than on
    the product. Every factor starts at :math:`N(0, s^2 / \text{fan-in})` with
    :math:`s` = ``init_scale``; a small :math:`s` is the regime in which deep linear students
    behave like linear ones started at zero.

    Args:
        in_features: input dimension :math:`d`.
        depth: number of hidden layers ``L >= 0``, as in :class:`MLP`: the network has
            :math:`N = L + 1` weight matrices (``0`` is a :class:`Linear` model).
        width: width of the hidden layers (ignored when ``depth = 0``).
        out_features: number of outputs.
        init_scale: :math:`s > 0` (for ``depth >= 1``, zero weights are a stationary point that
            gradient descent never leaves).
        rngs: NNX random streams.

    Raises:
        ValueError: for integer arguments that are not integers (bools are refused) or out of
            range, scales that are not finite or out of range, an unknown option, ``rngs`` that
            are not ``nnx.Rngs``; when called, for inputs that are not ``(n, in_features)``.

    Example:
        >>> from kdbook.functional import functionalize
        >>> model = DeepLinear(50, depth=2, width=30, init_scale=0.1, rngs=nnx.Rngs(0))
        >>> apply, params = functionalize(model)
        >>> len(params["layers"])  # depth + 1 weight matrices
        3
        >>> end_to_end(params).shape
        (50, 1)
    """

    def __init__(
        self,
        in_features: int,
        *,
        depth: int,
        width: int,
        out_features: int = 1,
        init_scale: float,
        rngs: nnx.Rngs,
    ):
        _check_int("in_features", in_features)
        _check_int("depth", depth, minimum=0)
        _check_int("width", width)
        _check_int("out_features", out_features)
        _check_positive(
            "init_scale", init_scale, why="all-zero factors never move under gradient descent"
        )
        sizes = [in_features] + [width] * depth + [out_features]
        layers = [
            Linear(a, out_features=b, init_scale=init_scale, rngs=rngs)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


def end_to_end(params) -> jax.Array:
    r"""The end-to-end weights :math:`W_1 \cdots W_N` of a :class:`Linear` or :class:`DeepLinear`.

    Works on the parameters returned by :func:`kdbook.functional.functionalize` (also inside
    ``jax.jit`` and ``jax.vmap``), so the model computes ``x @ end_to_end(params)``. For a binary
    classifier, ``end_to_end(params)[:, 0]`` is the student's weight vector :math:`w`.

    Args:
        params: the ``nnx.Param`` state of a :class:`Linear` or :class:`DeepLinear` model.

    Returns:
        ``(in_features, out_features)`` array.

    Raises:
        ValueError: for ``params`` that are not those of a :class:`Linear` or
            :class:`DeepLinear` (one ``"weight"`` per layer and nothing else: the ``"kernel"``
            of a :class:`Dense` layer is scaled and followed by an activation), or weights that
            do not chain.
    """
    if not isinstance(params, Mapping):
        raise ValueError(
            f"params must be the parameters of a Linear or DeepLinear model (from "
            f"kdbook.functionalize), got {type(params).__name__}"
        )
    if set(params) == {"layers"} and isinstance(params["layers"], Mapping):
        layers = [params["layers"][i] for i in range(len(params["layers"]))]
        names = [f"params['layers'][{i}]['weight']" for i in range(len(layers))]
    else:
        layers, names = [params], ["params['weight']"]
    if any(not isinstance(layer, Mapping) or set(layer) != {"weight"} for layer in layers):
        raise ValueError(
            "params must be those of a Linear or DeepLinear model (a 'weight' per layer and "
            "nothing else; a Dense layer's 'kernel' is scaled and followed by an activation), "
            f"got entries {[list(la) if isinstance(la, Mapping) else la for la in layers]}"
        )
    weights = []
    for name, layer in zip(names, layers, strict=True):
        weight = layer["weight"]
        weight = _as_float_array(name, weight[...] if isinstance(weight, nnx.Variable) else weight)
        if weight.ndim != 2:
            raise ValueError(f"{name} must be a 2-D weight matrix, got shape {weight.shape}")
        weights.append(weight)
    for i, (a, b) in enumerate(zip(weights[:-1], weights[1:], strict=True)):
        if a.shape[1] != b.shape[0]:
            raise ValueError(
                f"params: the weights of layers {i} and {i + 1} do not chain, shapes "
                f"{a.shape} and {b.shape}"
            )
    product = weights[0]
    for weight in weights[1:]:
        product = product @ weight
    return product
