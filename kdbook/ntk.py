r"""Neural tangent kernels: empirical (finite width) and infinite-width.

The **empirical NTK** of a network ``apply(params, x)`` with outputs :math:`f(\theta, x) \in \R^k`
is

.. math:: \Theta_{ab}(x, x') = \big\langle \nabla_\theta f_a(\theta, x),\,
    \nabla_\theta f_b(\theta, x') \big\rangle .

:func:`empirical_ntk` computes it three ways that must agree (the tests check every one against
every other and against a brute-force flattened Jacobian):

* ``"jacobian"``: per-example Jacobians by ``jax.jacrev``, contracted over parameters. Works for
  any ``apply``; memory grows like ``n * k * (number of parameters)``.
* ``"ntvp"``: NTK-vector products (Novak et al., 2022). For each example of ``x2`` and each
  output, one vector-Jacobian product gives a parameter-space vector and one Jacobian-vector product
  pushes it through the network on ``x1``. Works for any ``apply`` and never holds more than ``k``
  parameter-sized vectors at once. Which of ``"jacobian"`` and ``"ntvp"`` is faster depends on
  the numbers of parameters, inputs and outputs (``"auto"`` decides by the Jacobian's memory).
* ``"structured"``: for networks made of dense layers (:class:`kdbook.models.MLP`,
  :class:`kdbook.models.TwoLayerNet`), the gradient with respect to a weight matrix is an outer
  product :math:`s\, h \otimes \delta` of the layer's input and the backpropagated signal, so each
  layer contributes :math:`(s_w^2\, h^\top h' + s_b^2)\,(\delta^\top \delta')` and no per-example
  Jacobian is ever formed. Fastest by far for dense networks.

The structured method needs the network's layers: ``structure``, a function
``params -> DenseChain``. ``apply`` from :func:`kdbook.functional.functionalize` of a dense network
carries it (``apply.structure``), and it is used by default; a wrapped ``apply`` (``jax.jit``,
``functools.partial``, a hand-written function) does not, so pass ``structure=apply.structure``
of the original along with it. ``method="auto"`` picks ``"structured"`` whenever a structure is
known, and ``"jacobian"`` (or ``"ntvp"``, for large Jacobians) otherwise.
``batch_size`` computes the kernel block by block so memory never exceeds one block's, and
``shard=True`` spreads the blocks over ``jax.devices()``.

:func:`infinite_kernels` gives the infinite-width NNGP and NTK of the matching
:class:`~kdbook.models.MLP` (NTK parameterization) by the layer recursion of Jacot et al. (2018)
and Lee et al. (2019), in the convention of neural-tangents' ``stax``: the arc-cosine kernel of
Cho & Saul (2009) for ReLU and Williams' closed form for erf. :func:`two_layer_ntk` gives the
Gram matrix :math:`\mathbf{H}^\infty` of :class:`~kdbook.models.TwoLayerNet` (Du et al., 2019;
Arora et al., 2019), whose output layer is fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, lru_cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_callable as _check_callable
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_float_leaves as _check_float_leaves
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_no_overflow as _check_no_overflow
from kdbook._checks import check_nonnegative as _check_nonnegative
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_square_fits as _check_square_fits
from kdbook._scaling import unit_scale
from kdbook.functional import Apply, Functional, Params, as_pytree, output_shape, row_outputs

__all__ = ["METHODS", "InfiniteKernels", "empirical_ntk", "infinite_kernels", "two_layer_ntk"]

METHODS = ("auto", "jacobian", "ntvp", "structured")
# "auto" falls back from "jacobian" to "ntvp" when one block's Jacobians would exceed this.
_MAX_JACOBIAN_BYTES = 2**31


# ----------------------------------------------------------------------------- empirical NTK


def _outputs_2d(apply: Apply, params: Params, x: jax.Array) -> jax.Array:
    """Network outputs as an (n, k) array (a scalar output becomes k = 1)."""
    out = apply(params, x)
    return out.reshape(out.shape[0], -1)


def _contract(j1: jax.Array, j2: jax.Array, trace: bool) -> jax.Array:
    """Contract (n1, k, p) and (n2, k, p) Jacobian blocks over parameters."""
    if trace:
        n1, n2 = j1.shape[0], j2.shape[0]
        return j1.reshape(n1, -1) @ j2.reshape(n2, -1).T / j1.shape[1]
    return jnp.einsum("iap,jbp->ijab", j1, j2)


def _jacobian_kernel(apply: Apply, params: Params, x1, x2, trace: bool) -> jax.Array:
    def single(p, x):
        return apply(p, x[None]).reshape(-1)

    jacobian = jax.vmap(jax.jacrev(single), in_axes=(None, 0))
    j1 = jacobian(params, x1)
    j2 = j1 if x2 is None else jacobian(params, x2)
    leaves1, leaves2 = jax.tree.leaves(j1), jax.tree.leaves(j2)
    total = None
    for a, b in zip(leaves1, leaves2, strict=True):
        term = _contract(
            a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1), trace
        )
        total = term if total is None else total + term
    return total


def _ntvp_kernel(apply: Apply, params: Params, x1, x2, trace: bool) -> jax.Array:
    x2 = x1 if x2 is None else x2
    n1 = x1.shape[0]

    def column(x):
        """Theta(x1, x) as (k_b, n1, k_a): one VJP per output of f(x), then a JVP on x1."""
        _, vjp = jax.vjp(lambda p: apply(p, x[None]).reshape(-1), params)

        def push(cotangent):
            (direction,) = vjp(cotangent)
            return jax.jvp(lambda p: apply(p, x1).reshape(n1, -1), (params,), (direction,))[1]

        k = _outputs_2d(apply, params, x[None]).shape[1]
        return jax.vmap(push)(jnp.eye(k, dtype=x1.dtype))

    blocks = jax.lax.map(column, x2)  # (n2, k_b, n1, k_a): sequential over x2, bounded memory
    if trace:
        return jnp.einsum("jaia->ij", blocks) / blocks.shape[1]
    return blocks.transpose(2, 0, 3, 1)


def _structured_factors(chain, x):
    """Per layer: its input h_l (n, m_in) and backpropagated signals delta_l (n, k, m_out).

    The activation's derivative is taken by autodiff, so that no activation is ever given
    another's (for ReLU, jax.grad gives 0 at 0, the convention the Jacobian uses)."""
    phi = chain.activation
    dphi = jnp.vectorize(jax.grad(phi))
    inputs, pre = [], []
    h = x
    for layer, (w, b, sw, sb) in enumerate(
        zip(chain.weights, chain.biases, chain.w_scales, chain.b_scales, strict=True)
    ):
        inputs.append(h)
        u = sw * (h @ w)
        if b is not None:
            u = u + sb * b[None, :]
        pre.append(u)
        if layer < len(chain.weights) - 1:
            h = phi(u)
    # delta of the output layer is the identity over outputs; go backwards from there.
    k = chain.weights[-1].shape[1]
    delta = jnp.broadcast_to(jnp.eye(k, dtype=x.dtype)[None], (x.shape[0], k, k))
    deltas = [delta]
    for layer in range(len(chain.weights) - 1, 0, -1):
        back = chain.w_scales[layer] * (delta @ chain.weights[layer].T)  # (n, k, m)
        delta = dphi(pre[layer - 1])[:, None, :] * back
        deltas.append(delta)
    return inputs, deltas[::-1]


def _structured_kernel(chain, x1, x2, trace: bool) -> jax.Array:
    in1, d1 = _structured_factors(chain, x1)
    in2, d2 = (in1, d1) if x2 is None else _structured_factors(chain, x2)
    n1, n2 = x1.shape[0], in2[0].shape[0]
    total = None
    for layer, trainable in enumerate(chain.trainable):
        if not trainable:
            continue
        sw, sb = chain.w_scales[layer], chain.b_scales[layer]
        inputs = sw**2 * (in1[layer] @ in2[layer].T)
        if chain.biases[layer] is not None:
            inputs = inputs + sb**2
        k = d1[layer].shape[1]
        if trace:
            signal = d1[layer].reshape(n1, -1) @ d2[layer].reshape(n2, -1).T / k
            term = inputs * signal
        else:
            signal = jnp.einsum("iam,jbm->ijab", d1[layer], d2[layer])
            term = inputs[:, :, None, None] * signal
        total = term if total is None else total + term
    if total is None:
        raise ValueError("the network has no trainable layer, so its NTK is zero")
    return total


def _validate_inputs(x1, x2) -> tuple[jax.Array, jax.Array | None]:
    """``x1`` and ``x2`` as finite float arrays (integers become floats) of matching width."""
    x1 = _as_float_array("x1", x1)
    x2 = None if x2 is None else _as_float_array("x2", x2)
    _check_finite("x1", x1)
    if x2 is not None:
        _check_finite("x2", x2)
    if jnp.ndim(x1) != 2:
        raise ValueError(f"x1 must have shape (n1, d), got shape {jnp.shape(x1)}")
    if x2 is not None and (jnp.ndim(x2) != 2 or jnp.shape(x2)[1] != jnp.shape(x1)[1]):
        raise ValueError(
            f"x2 must have shape (n2, {jnp.shape(x1)[1]}) like x1, got shape {jnp.shape(x2)}"
        )
    if jnp.shape(x1)[0] == 0 or (x2 is not None and jnp.shape(x2)[0] == 0):
        raise ValueError("x1 and x2 must contain at least one input each")
    if jnp.shape(x1)[1] == 0:
        raise ValueError(f"x1 must have d >= 1 features per input, got shape {jnp.shape(x1)}")
    return x1, x2


def _resolve_method(method, structure, apply, params, x1, batch_size) -> str:
    _check_choice("method", method, METHODS)
    if method == "structured" and structure is None:
        raise ValueError(
            "method='structured' needs the network's layers: pass structure=apply.structure, "
            "where apply = kdbook.functionalize(model) of a dense network (MLP or TwoLayerNet), "
            "also when you wrap apply (jax.jit, functools.partial); or use method='jacobian' or "
            "'ntvp', which need no structure"
        )
    if method == "auto":
        if structure is not None:
            return "structured"
        outputs = output_shape(apply, params, x1[:1], name="x1")
        k = math.prod(outputs.shape[1:]) if isinstance(outputs, jax.ShapeDtypeStruct) else 1
        rows = x1.shape[0] if batch_size is None else batch_size
        size = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(params))
        return "jacobian" if 2 * rows * k * size <= _MAX_JACOBIAN_BYTES else "ntvp"
    return method


_FLOAT_PARAMS = "the NTK differentiates with respect to floating-point parameters"


def empirical_ntk(
    apply: Apply,
    params: Params,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    method: str = "auto",
    structure: Callable[[Params], Any] | None = None,
    trace: bool = True,
    batch_size: int | None = None,
    shard: bool = False,
) -> jax.Array:
    r"""The empirical NTK :math:`\Theta(x_1, x_2)` of ``apply`` at ``params``.

    Args:
        apply: ``apply(params, x) -> outputs`` of shape ``(n,)`` or ``(n, k)``.
        params: the parameters (any pytree) at which to linearize.
        x1: ``(n1, d)`` inputs.
        x2: ``(n2, d)`` inputs; ``None`` means ``x1`` (and exploits the symmetry).
        method: ``"auto"``, ``"jacobian"``, ``"ntvp"`` or ``"structured"`` (see the module
            docstring for when each wins).
        structure: ``params -> DenseChain`` (:class:`kdbook.models.DenseChain`), the layers the
            structured method needs. Default: ``apply.structure`` when ``apply`` is a
            :class:`~kdbook.functional.Functional` of a dense network, else none.
        trace: return the mean over outputs of the diagonal,
            :math:`\frac1k \sum_a \Theta_{aa}`, of shape ``(n1, n2)`` (for a scalar output this is
            the NTK itself, and it is what :func:`infinite_kernels` predicts); ``False`` returns
            the full ``(n1, n2, k, k)`` kernel.
        batch_size: compute the kernel in ``batch_size x batch_size`` blocks (bounded memory).
        shard: spread the blocks over ``jax.devices()`` (needs ``batch_size``).

    Returns:
        The kernel, ``(n1, n2)`` or ``(n1, n2, k, k)``.

    Raises:
        ValueError: for ``apply`` (or ``structure``) not callable, or returning no
            ``(n,)``/``(n, k)`` array of real floats with one row per input; ``params`` with no
            arrays or with integer or bool leaves; ``x1``/``x2`` not 2-D finite numbers of one
            width ``d >= 1`` (integers are converted to floats) or that ``apply`` cannot take
            (the message names ``x1``); ``params`` of another model;
            ``trace``/``shard`` not bools; ``batch_size`` not an integer; an unknown ``method``;
            a kernel that overflows its dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> import kdbook as kd
        >>> apply, params = kd.functionalize(kd.MLP(4, depth=2, width=512, out_features=1,
        ...                                         rngs=nnx.Rngs(0)))
        >>> x = jnp.ones((6, 4))
        >>> kd.empirical_ntk(apply, params, x).shape
        (6, 6)
    """
    _check_callable("apply", apply, what="apply(params, x) -> outputs")
    _check_float_leaves("params", params, why=_FLOAT_PARAMS)
    if not jax.tree.leaves(params):
        raise ValueError(
            f"params holds no arrays (got {params!r}"[:120]
            + "): the NTK differentiates apply with respect to them"
        )
    x1, x2 = _validate_inputs(x1, x2)
    _check_bool("trace", trace)
    _check_bool("shard", shard)
    _check_int("batch_size", batch_size, allow_none=True)
    if shard and batch_size is None:
        raise ValueError("shard=True splits the kernel into blocks: set batch_size as well")
    if structure is None and isinstance(apply, Functional):
        structure = apply.structure
    method = _resolve_method(method, structure, apply, params, x1, batch_size)
    for name, x in (("x1", x1), ("x2", x2)):
        if x is not None:
            row_outputs(apply, params, x, name=name)
    # apply and structure are arguments of the compiled function (pytrees): one compilation is
    # shared by every model of the same structure
    apply = as_pytree(apply)
    structure = as_pytree(structure, name="structure") if method == "structured" else None
    if batch_size is None:
        kernel = _compiled(method, trace)(apply, structure, params, x1, x2)
    else:
        kernel = _blockwise(apply, structure, method, trace, params, x1, x2, batch_size, shard)
    return _check_no_overflow(kernel, "the empirical NTK")


def _kernel_function(method: str, trace: bool):
    """The pure (apply, structure, params, x1, x2) -> kernel function of one method."""
    if method == "structured":
        return lambda f, s, p, a, b: _structured_kernel(s(p), a, b, trace)
    if method == "jacobian":
        return lambda f, s, p, a, b: _jacobian_kernel(f, p, a, b, trace)
    return lambda f, s, p, a, b: _ntvp_kernel(f, p, a, b, trace)


# One jitted function per (method, trace[, devices]). `apply` is a pytree argument (see
# kdbook.functional.as_pytree), so jit's own cache compiles once per model structure and shapes.
@cache
def _compiled(method: str, trace: bool):
    return jax.jit(_kernel_function(method, trace))


@lru_cache(maxsize=16)
def _compiled_blocks(method: str, trace: bool, devices: tuple):
    kernel_fn = _kernel_function(method, trace)
    block_fn = jax.vmap(kernel_fn, in_axes=(None, None, None, 0, 0))
    if len(devices) == 1:
        return jax.jit(block_fn)
    sharded = NamedSharding(Mesh(np.asarray(devices), ("blocks",)), PartitionSpec("blocks"))
    replicated = NamedSharding(Mesh(np.asarray(devices), ("blocks",)), PartitionSpec())
    return jax.jit(
        block_fn,
        in_shardings=(replicated, replicated, replicated, sharded, sharded),
        out_shardings=sharded,
    )


def _blockwise(
    apply, structure, method, trace, params, x1, x2, batch_size: int, shard: bool
) -> jax.Array:
    """Assemble the kernel from fixed-size blocks (padded), in parallel over devices if asked."""
    symmetric = x2 is None
    x2 = x1 if symmetric else x2

    def pad(x):
        blocks = -(-x.shape[0] // batch_size)
        padded = jnp.zeros((blocks * batch_size, x.shape[1]), x.dtype).at[: x.shape[0]].set(x)
        return padded.reshape(blocks, batch_size, x.shape[1])

    b1, b2 = pad(x1), pad(x2)
    pairs = [
        (i, j) for i in range(b1.shape[0]) for j in range(b2.shape[0]) if not symmetric or i <= j
    ]
    devices = tuple(jax.devices()) if shard else tuple(jax.devices()[:1])
    block_fn = partial(_compiled_blocks(method, trace, devices), apply, structure)

    out = None
    step = len(devices)
    for start in range(0, len(pairs), step):
        chunk = pairs[start : start + step]
        chunk = chunk + [chunk[-1]] * (step - len(chunk))  # pad so every device gets a block
        left = jnp.stack([b1[i] for i, _ in chunk])
        right = jnp.stack([b2[j] for _, j in chunk])
        values = np.asarray(block_fn(params, left, right))
        if out is None:
            shape = (b1.shape[0] * batch_size, b2.shape[0] * batch_size) + values.shape[3:]
            out = np.zeros(shape, values.dtype)
        for (i, j), block in zip(chunk, values, strict=True):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            cols = slice(j * batch_size, (j + 1) * batch_size)
            out[rows, cols] = block
            if symmetric and i != j:
                # Theta(x', x)_{ba} = Theta(x, x')_{ab}: swap examples and, if present, outputs.
                out[cols, rows] = (
                    np.swapaxes(np.swapaxes(block, 0, 1), 2, 3) if block.ndim == 4 else block.T
                )
    return jnp.asarray(out[: x1.shape[0], : x2.shape[0]])


# ----------------------------------------------------------------------------- infinite width


class InfiniteKernels(NamedTuple):
    """The infinite-width kernels of an MLP's scalar output.

    Attributes:
        nngp: the NNGP kernel: the covariance of the outputs at initialisation.
        ntk: the neural tangent kernel.
    """

    nngp: jax.Array
    ntk: jax.Array


# Abramowitz & Stegun 4.4.46: arccos(x) = sqrt(1 - x) * poly(x) on [0, 1], |error| <= 2e-8.
_ARCCOS_COEFFICIENTS = (
    1.5707963050,
    -0.2145988016,
    0.0889789874,
    -0.0501743046,
    0.0308918810,
    -0.0170881256,
    0.0066700901,
    -0.0012624911,
)


def _arccos_parts(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(arccos(c), sqrt(1 - |c|))`` for ``c`` in [-1, 1].

    In float32 the arccos is a polynomial: XLA's own arccos goes through a slow atan2. The square
    root is returned because the ReLU kernel's sine term reuses it.
    """
    a = jnp.abs(c)
    root = jnp.sqrt(1.0 - a)
    if c.dtype == jnp.float64:
        return jnp.arccos(c), root
    poly = jnp.zeros_like(a)
    for coefficient in reversed(_ARCCOS_COEFFICIENTS):
        poly = poly * a + coefficient
    positive = root * poly
    return jnp.where(c >= 0, positive, math.pi - positive), root


def _arccos(c: jax.Array) -> jax.Array:
    return _arccos_parts(c)[0]


def _inverse(v):
    return jnp.where(v > 0, 1.0 / jnp.where(v > 0, v, 1.0), 0.0)


def _cosines(x1, x2):
    """Cosines between the rows of ``x1`` and ``x2`` and the rows' norms as ``(m, e)`` pairs,
    ``|x_i| = m_i 2^{e_i}``: each row is rescaled by a power of two first (exact), so squares
    neither overflow nor underflow whatever the rows' magnitudes."""
    u1, e1 = unit_scale(x1, axis=1)
    u2, e2 = unit_scale(x2, axis=1)
    m1, m2 = jnp.linalg.norm(u1, axis=1), jnp.linalg.norm(u2, axis=1)
    cross = u1 @ u2.T
    cosine = jnp.clip(cross * _inverse(m1)[:, None] * _inverse(m2)[None, :], -1.0, 1.0)
    return cross, cosine, (m1, e1[:, 0]), (m2, e2[:, 0])


def _outer_product(c, s1, s2):
    """``c * s1[:, None] * s2[None, :]`` for positive ``s1``, ``s2`` by mantissas and exponents,
    so that no intermediate over- or underflows when the result is representable."""
    m1, e1 = jnp.frexp(s1)
    m2, e2 = jnp.frexp(s2)
    return jnp.ldexp(c * m1[:, None] * m2[None, :], e1[:, None] + e2[None, :])


def _asinc(r):
    """``arcsin(r) / r``, 1 at 0, accurate for tiny ``r`` (where ``arcsin(r)`` alone would leave
    ``r``'s underflow to the caller)."""
    small = jnp.abs(r) < 1e-4
    safe = jnp.where(small, 1.0, r)
    return jnp.where(small, 1.0 + r * r / 6.0, jnp.arcsin(safe) / safe)


# Largest relative error of the erf derivative that infinite_kernels returns rather than raising.
_ERF_ROUNDING_LIMIT = 1e-2


def infinite_kernels(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    activation: str = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
) -> InfiniteKernels:
    r"""Infinite-width NNGP and NTK of ``MLP(depth=depth, activation=..., w_std, b_std)``.

    With :math:`\Sigma^{(0)}(x, x') = \sigma_w^2\, x^\top x' / d + \sigma_b^2` and
    :math:`\Theta^{(0)} = \Sigma^{(0)}`, each hidden layer maps

    .. math::

        \Sigma^{(l+1)} = \sigma_w^2\, \E[\phi(u)\phi(u')] + \sigma_b^2, \qquad
        \Theta^{(l+1)} = \Sigma^{(l+1)} + \sigma_w^2\, \E[\phi'(u)\phi'(u')]\, \Theta^{(l)},

    with :math:`(u, u') \sim N(0, \Sigma^{(l)})`; after ``depth`` hidden layers these are the
    kernels of the scalar output. The empirical NTK of a network of width :math:`m` (NTK
    parameterization) converges to :math:`\Theta` at rate :math:`m^{-1/2}`.

    Args:
        x1: ``(n1, d)`` inputs.
        x2: ``(n2, d)`` inputs, or ``None`` for ``x1``.
        depth: number of hidden layers ``L >= 0``.
        activation: ``"relu"`` or ``"erf"``.
        w_std: :math:`\sigma_w > 0`.
        b_std: :math:`\sigma_b \ge 0`.

    Returns:
        :class:`InfiniteKernels` ``(nngp, ntk)``, each ``(n1, n2)``.

    Raises:
        ValueError: for inputs that are not 2-D finite numbers of one width, ``depth`` not an
            integer ``>= 0``, an unknown ``activation``, ``w_std``/``b_std`` out of range or
            so large that their squares overflow, or kernels that overflow the dtype; for
            ``"erf"``, nearly parallel inputs so large that the dtype's rounding of their
            cosine could change the kernel by more than 1% (use float64 or smaller inputs).
    """
    x1, x2 = _validate_inputs(x1, x2)
    _check_int("depth", depth, minimum=0)
    _check_choice(
        "activation", activation, ("relu", "erf"), why="the activations with closed-form kernels"
    )
    _check_positive("w_std", w_std)
    _check_nonnegative("b_std", b_std)
    _check_square_fits("w_std", w_std, x1.dtype)
    _check_square_fits("b_std", b_std, x1.dtype)
    gram = x2 is None
    args = (x1, x1 if gram else x2, depth, activation, float(w_std), float(b_std))
    if activation == "erf" and depth > 0:
        worst = float(_infinite(*args, "rounding", gram))
        if worst > _ERF_ROUNDING_LIMIT:
            raise ValueError(
                f"infinite_kernels(activation='erf'): {x1.dtype} cannot resolve the angle "
                "between nearly parallel inputs of this size (layer variances "
                "sigma_w^2 |x|^2 / d this large make the erf derivative's determinant depend "
                f"on the cosine's last bits: relative error up to {worst:.1g}); rescale the "
                "inputs or w_std, or compute in float64 inside `with kd.enable_x64():`"
            )
    return InfiniteKernels(
        _check_no_overflow(_infinite(*args, "nngp", gram), "the NNGP kernel"),
        _check_no_overflow(_infinite(*args, "ntk", gram), "the NTK"),
    )


def _relu_scales(s, w_std, b_std):
    """The next layer's standard deviations ``s'`` after ReLU, ``Sigma' = w^2 s^2 / 2 + b^2``,
    and the ratios ``w s / s'`` (at most sqrt(2))."""
    new = jnp.hypot(w_std * s / math.sqrt(2), b_std)
    return new, w_std * s * _inverse(new)


def _erf_scales(g, q, w_std, b_std):
    """The next layer's ``s'`` after erf, ``Sigma' = w^2 2/pi arcsin(2 g^2) + b^2`` with
    ``g = s q``, ``q = 1 / sqrt(1 + 2 s^2)``, and the ratios ``w g / s'`` (bounded: ``s' ~ w g``
    for small ``g``). Near 1, ``arcsin(2 g^2) = pi/2 - 2 arcsin(q / sqrt 2)`` (``1 - 2 g^2 =
    q^2`` exactly), so large inputs lose nothing to the arcsin's slope at 1."""
    two = 2.0 * g * g
    big = two > 0.5
    root = jnp.where(
        big,
        jnp.sqrt(jnp.maximum(1.0 - 4.0 / math.pi * jnp.arcsin(q / math.sqrt(2)), 0.0)),
        g * jnp.sqrt(4.0 / math.pi * _asinc(jnp.minimum(two, 0.5))),
    )  # sqrt(2/pi arcsin(2 g^2))
    new = jnp.hypot(w_std * root, b_std)
    return new, w_std * g * _inverse(new)


def _erf_value(cosine, g1, g2, h1, h2):
    """``E[erf(u) erf(u')] / (g1 g2) = 2/pi arcsin(rho) / (g1 g2)``, ``rho = 2 c g1 g2``; for
    ``|rho| > 1/2`` from ``1 - |rho| = (h1 + h2 - h1 h2) / (1 + 2 g1 g2) + 2 g1 g2 (1 - |c|)``
    (no cancellation) and ``arcsin(r) = pi/2 - 2 arcsin(sqrt((1 - r) / 2))``."""
    gg = g1[:, None] * g2[None, :]
    rho = jnp.clip(2.0 * cosine * gg, -1.0, 1.0)
    big = jnp.abs(rho) > 0.5
    gap = (h1 + h2 - h1 * h2) / (1.0 + 2.0 * gg) + 2.0 * gg * (1.0 - jnp.abs(cosine))
    far = jnp.sign(rho) * (math.pi / 2 - 2.0 * jnp.arcsin(jnp.sqrt(jnp.clip(gap, 0.0, 1.0) / 2)))
    near = jnp.where(big, 0.0, rho)
    return jnp.where(
        big,
        2.0 / math.pi * far / jnp.where(big, gg, 1.0),
        4.0 / math.pi * cosine * _asinc(near),
    )


# One output per compiled call: XLA on CPU fuses the whole elementwise layer recursion into a
# single pass when it produces one n1 x n2 array, but not when it produces two (measured 8x
# slower), so the NNGP and the NTK are computed by two calls that each redo the cheap recursion.
@partial(jax.jit, static_argnames=("depth", "activation", "w_std", "b_std", "output", "gram"))
def _infinite(x1, x2, depth, activation, w_std, b_std, output, gram):
    r"""The layer recursion in scale-free form, so that no square of an input is ever formed.

    Each layer's covariance is carried as the standard deviations :math:`s_i = \sqrt{\Sigma(x_i,
    x_i)}` of the rows and the correlations :math:`c = \Sigma / (s_1 s_2)`; the NTK as
    :math:`\tau = \Theta / (s_1 s_2)`. Every update multiplies ratios of magnitudes bounded by a
    few (``w s / s'``, ``b / s'``), and the kernels are ``c s_1 s_2`` and ``tau s_1 s_2`` at the
    end, formed by exponents: inputs of norm ``1e-23`` or ``1e15`` in float32 give their true
    kernels rather than squares that underflow to 0 or overflow to inf.
    """
    d = x1.shape[1]
    _, cosine, (m1, e1), (m2, e2) = _cosines(x1, x2)
    # layer 0: Sigma = w^2 x.x' / d + b^2, so s = hypot(w |x| / sqrt(d), b)
    a1 = jnp.ldexp(w_std * m1 / math.sqrt(d), e1)
    a2 = jnp.ldexp(w_std * m2 / math.sqrt(d), e2)
    s1, s2 = jnp.hypot(a1, b_std), jnp.hypot(a2, b_std)
    eye = jnp.eye(x1.shape[0], x2.shape[0], dtype=bool) if gram else None

    def correlation(weight1, weight2, bias1, bias2, value):
        c = weight1[:, None] * weight2[None, :] * value + bias1[:, None] * bias2[None, :]
        c = jnp.clip(c, -1.0, 1.0)
        return jnp.where(eye, 1.0, c) if gram else c  # an input with itself: exactly 1

    inverse1, inverse2 = _inverse(s1), _inverse(s2)
    cosine = correlation(a1 * inverse1, a2 * inverse2, b_std * inverse1, b_std * inverse2, cosine)
    tau = cosine
    worst = jnp.zeros((), cosine.dtype)
    for _ in range(depth):
        if activation == "relu":
            # E[relu(u) relu(u')] = s1 s2 (sin + (pi - theta) cos) / (2 pi) (Cho & Saul, 2009),
            # E[relu'(u) relu'(u')] = (pi - theta) / (2 pi); Sigma' = s^2 w^2 / 2 + b^2
            theta, root = _arccos_parts(cosine)
            sine = root * jnp.sqrt(1.0 + jnp.abs(cosine))  # sqrt(1 - c^2), accurate near |c| = 1
            value = (sine + (math.pi - theta) * cosine) / (2 * math.pi)
            slope = (math.pi - theta) / (2 * math.pi)
            (new1, r1), (new2, r2) = _relu_scales(s1, w_std, b_std), _relu_scales(s2, w_std, b_std)
        else:
            # Williams (1997) with q = 1 / sqrt(1 + 2 s^2), g = s q (both <= 1):
            # E[erf erf] = 2/pi arcsin(rho), rho = 2 c g1 g2; E[erf' erf'] s1 s2 = 4/pi g1 g2 /
            # sqrt(det'), det' = det / ((1 + 2 s1^2)(1 + 2 s2^2)) = h1 + h2 - h1 h2
            # + 4 g1^2 g2^2 sin^2 (h = q^2; every term >= 0: no cancellation); and
            # Sigma' = w^2 2/pi arcsin(2 g^2) + b^2.
            q1, q2 = (
                1.0 / jnp.hypot(1.0, math.sqrt(2) * s1),
                1.0 / jnp.hypot(1.0, math.sqrt(2) * s2),
            )
            g1, g2 = s1 * q1, s2 * q2
            h1, h2 = (q1 * q1)[:, None], (q2 * q2)[None, :]
            sine2 = (1.0 - jnp.abs(cosine)) * (1.0 + jnp.abs(cosine))
            gg = (g1 * g1)[:, None] * (g2 * g2)[None, :]
            determinant = h1 + h2 - h1 * h2 + 4.0 * gg * sine2
            if output == "rounding":
                # the cosine's round-off of a few ulps eps moves sin^2 by ~8 eps, and the
                # derivative ~ det^{-1/2} by 16 eps d1 d2 / det (an input with itself is exact)
                bound = 16.0 * jnp.finfo(cosine.dtype).eps * gg / determinant
                worst = jnp.maximum(worst, jnp.max(jnp.where(eye, 0.0, bound) if gram else bound))
            value = _erf_value(cosine, g1, g2, h1, h2)  # E[erf erf] / (g1 g2)
            slope = 4.0 / math.pi * jax.lax.rsqrt(determinant)  # E[erf' erf'] s1 s2 / (g1 g2)
            (new1, r1), (new2, r2) = (
                _erf_scales(g1, q1, w_std, b_std),
                _erf_scales(g2, q2, w_std, b_std),
            )
        cosine = correlation(r1, r2, b_std * _inverse(new1), b_std * _inverse(new2), value)
        if output == "ntk":
            tau = cosine + r1[:, None] * r2[None, :] * slope * tau
        s1, s2 = new1, new2
    if output == "rounding":
        return worst
    return _outer_product(tau if output == "ntk" else cosine, s1, s2)


def two_layer_ntk(x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    r"""Infinite-width NTK of :class:`~kdbook.models.TwoLayerNet`: the Gram matrix :math:`H^\infty`.

    Only the hidden layer of that network is trained, so its tangent kernel is

    .. math::

        H^\infty(x, x') = \E_{w \sim N(0, I_d)}\big[x^\top x'\,
            \mathbb{1}\{w^\top x \ge 0,\ w^\top x' \ge 0\}\big]
            = x^\top x'\, \frac{\pi - \theta(x, x')}{2\pi},

    with :math:`\theta(x, x')` the angle between :math:`x` and :math:`x'` (Du et al., 2019;
    Arora et al., 2019). For unit-norm inputs :math:`x^\top x' = \cos\theta`. The empirical NTK
    of a width-:math:`m` :class:`~kdbook.models.TwoLayerNet` at initialisation,
    :math:`H(0)_{ij} = \frac{1}{m} x_i^\top x_j \sum_r \mathbb{1}\{w_r^\top x_i \ge 0,
    w_r^\top x_j \ge 0\}`, is an average of :math:`m` independent draws of the bracket, so it
    converges to :math:`H^\infty` at rate :math:`m^{-1/2}`. It is positive definite when no two
    inputs are parallel (Du et al., 2019). A zero input has kernel 0 with everything.

    **Accuracy.** The angle is computed from the cosine, which float32 holds to about ``1e-7``:
    for nearly opposite inputs (:math:`\pi - \theta` below about ``1e-3``) the factor
    :math:`\pi - \theta`, and with it the entry, loses most of its relative accuracy (the
    absolute error stays below about ``1e-4`` :math:`\lVert x\rVert\lVert x'\rVert`).
    Compute in float64 (``kdbook.enable_x64()``) where such pairs matter.

    Args:
        x1: ``(n1, d)`` inputs.
        x2: ``(n2, d)`` inputs, or ``None`` for ``x1`` (then the result is the Gram matrix).

    Returns:
        ``(n1, n2)`` kernel matrix.

    Raises:
        ValueError: for inputs that are not 2-D finite numbers, have no rows or differ in
            dimension, or a kernel that overflows the dtype.
    """
    x1, x2 = _validate_inputs(x1, x2)
    kernel = _two_layer_gram(x1) if x2 is None else _two_layer_cross(x1, x2)
    return _check_no_overflow(kernel, "the NTK")


@jax.jit
def _two_layer_gram(x):
    """Exactly symmetric, with the exact diagonal |x|^2 / 2 (theta = 0): in float32 a cosine of
    1 - 1e-7 would give theta ~ 5e-4 there, a relative error of 1e-4."""
    kernel = _two_layer_ntk(x, x)
    kernel = (kernel + kernel.T) / 2
    u, e = unit_scale(x, axis=1)
    diagonal = jnp.ldexp(jnp.sum(u**2, axis=1) / 2, 2 * e[:, 0])
    return jnp.where(jnp.eye(x.shape[0], dtype=bool), diagonal[:, None], kernel)


def _two_layer_ntk(x1, x2):
    """``x.x' (pi - theta) / (2 pi)`` from rows rescaled by powers of two (exact), so that the
    norms neither overflow nor underflow; the scales multiply back in by exponents."""
    cross, cosine, (_, e1), (_, e2) = _cosines(x1, x2)
    value = cross * (math.pi - _arccos(cosine)) / (2 * math.pi)
    return jnp.ldexp(value, e1[:, None] + e2[None, :])


_two_layer_cross = jax.jit(_two_layer_ntk)
