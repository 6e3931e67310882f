"""The model contract: every model becomes a pure function ``apply(params, x)``.

:func:`functionalize` turns a Flax NNX module into that pair; the pytree helpers below work on any
parameter pytree (inner products, norms and angles between weight changes), so the NTK,
linearization, pruning and theory code never depend on a specific module class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu
from flax import nnx

from kdbook._checks import (
    as_array,
    as_float_array,
    check_callable,
    check_finite,
    check_no_overflow,
    check_number,
    is_concrete,
)

__all__ = [
    "Apply",
    "Functional",
    "Params",
    "as_pytree",
    "functionalize",
    "tree_add",
    "tree_angle",
    "tree_difference",
    "tree_inner",
    "tree_norm",
    "tree_scale",
    "tree_size",
    "tree_stack",
]

# A parameter pytree (e.g. the ``nnx.State`` returned by :func:`functionalize`). kdbook defines
# this alias here, once; the other modules import it.
Params = Any
# The model contract: a pure function ``apply(params, x) -> outputs``.
Apply = Callable[[Params, jax.Array], jax.Array]


@jax.tree_util.register_pytree_node_class
class Functional:
    """``apply(params, x)`` of a Flax NNX module, as returned by :func:`functionalize`.

    It is a pytree: its leaves are the module's non-parameter state (e.g. fixed output weights)
    and its static part is the module's graph definition. Passed *as an argument* to a jitted
    function (kdbook's :func:`~kdbook.train.fit` and :func:`~kdbook.ntk.empirical_ntk` do so), two
    modules of the same structure therefore share one compilation, whatever their weights.

    Attributes:
        graphdef: the module's ``nnx.GraphDef`` (hashable; equal for equal structures).
        rest: the module's non-``nnx.Param`` state, closed over as constants by ``apply``.
        structure: for a dense network (a module with a ``dense_chain()`` method, such as
            :class:`~kdbook.models.MLP` and :class:`~kdbook.models.TwoLayerNet`), the function
            ``params -> DenseChain`` that the structured NTK needs; ``None`` for other modules.
            Pass it on as ``empirical_ntk(..., structure=apply.structure)`` when you wrap
            ``apply`` (in ``jax.jit``, ``functools.partial``, ...).
    """

    def __init__(self, graphdef, rest, module_type: type | None = None, shapes=None):
        self.graphdef = graphdef
        self.rest = rest
        self.module_type = module_type  # static, like graphdef
        self.shapes = shapes  # static: the shapes of the parameters' leaves, in tree order

    def merge(self, params: Params) -> nnx.Module:
        """Rebuild the module with ``params`` (e.g. to read its architecture).

        Raises:
            ValueError: if ``params`` are not parameters of this module (other leaves or shapes:
                the parameters of another width would run with this module's scale factors).
        """
        if self.shapes is not None:
            leaves = jax.tree.leaves(params)
            shapes = tuple(tuple(jnp.shape(leaf)) for leaf in leaves)
            if shapes != self.shapes:
                name = "the module" if self.module_type is None else self.module_type.__name__
                raise ValueError(
                    f"params do not fit {name}: it has {len(self.shapes)} parameter arrays of "
                    f"shapes {list(self.shapes)[:6]}, got {len(shapes)} of shapes "
                    f"{list(shapes)[:6]} (the parameters of another model?)"
                )
        return nnx.merge(self.graphdef, params, self.rest)

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        return self.merge(params)(x)

    @property
    def structure(self) -> Callable[[Params], Any] | None:
        if not callable(getattr(self.module_type, "dense_chain", None)):
            return None
        return jax.tree_util.Partial(_dense_chain, self)

    def tree_flatten(self):
        return (self.rest,), (self.graphdef, self.module_type, self.shapes)

    @classmethod
    def tree_unflatten(cls, static, children):
        graphdef, module_type, shapes = static
        return cls(graphdef, *children, module_type=module_type, shapes=shapes)

    def __repr__(self) -> str:
        name = "module" if self.module_type is None else self.module_type.__name__
        return f"Functional(apply of {name})"


def _dense_chain(apply: Functional, params: Params):
    return apply.merge(params).dense_chain()


def functionalize(model: nnx.Module) -> tuple[Functional, Params]:
    """Split an NNX module into a pure ``apply(params, x)`` and its parameters.

    Only ``nnx.Param`` variables become ``params``; any other state (e.g. fixed output weights
    stored as plain variables) is carried by ``apply`` as a constant. ``apply`` is pure, so
    ``jax.jit``, ``jax.grad``, ``jax.jvp`` and ``jax.vmap`` apply to it directly, and it is a
    pytree (:class:`Functional`), so models of the same structure share compiled code.

    Args:
        model: a Flax NNX module whose ``__call__`` maps a batch ``x`` to outputs.

    Raises:
        TypeError: if ``model`` is not an NNX module.
        ValueError: if it holds state that changes when it runs (``nnx.RngState`` of dropout,
            ``nnx.BatchStat`` of batch normalisation), which ``apply`` would silently freeze.

    Returns:
        ``(apply, params)``: ``apply(params, x)`` evaluates the module with ``params``
        (an ``nnx.State`` pytree of arrays) on ``x``. ``apply.merge(params)`` rebuilds the module
        with those parameters; ``apply.structure`` describes a dense network for the structured
        NTK (see :class:`Functional`).

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> import kdbook as kd
        >>> apply, params = kd.functionalize(kd.MLP(4, depth=1, width=64, out_features=1,
        ...                                         rngs=nnx.Rngs(0)))
        >>> apply(params, jnp.ones((8, 4))).shape
        (8, 1)
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    for kind, examples in [(nnx.RngState, "dropout"), (nnx.BatchStat, "batch normalisation")]:
        if jax.tree.leaves(nnx.state(model, kind)):
            raise ValueError(
                f"model holds {kind.__name__} variables ({examples}), which change every time the "
                "module runs; apply(params, x) would freeze them (the same dropout mask on every "
                "call, batch statistics never updated). Build the model without them (e.g. "
                "deterministic=True and no BatchNorm) for kdbook's pure-function contract."
            )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    shapes = tuple(tuple(jnp.shape(leaf)) for leaf in jax.tree.leaves(params))
    return Functional(graphdef, rest, type(model), shapes), params


def output_shape(
    apply: Apply,
    params: Params,
    x: jax.Array,
    *,
    name: str = "x",
    apply_name: str = "apply",
    params_name: str = "params",
):
    """The shapes and dtypes of ``apply(params, x)``, traced without computing anything.

    Raises:
        ValueError: if ``apply`` cannot take ``x`` (a feature dimension the network does not
            have, parameters of another model...), with the message naming ``name`` (and
            ``apply_name``, ``params_name``).
    """
    try:
        return jax.eval_shape(apply, params, x)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{apply_name}({params_name}, {name}) fails on {name} of shape {jnp.shape(x)} and "
            f"dtype {jnp.result_type(x)}: {err}"
        ) from err


def row_outputs(
    apply: Apply,
    params: Params,
    x: jax.Array,
    *,
    name: str = "x",
    apply_name: str = "apply",
    params_name: str = "params",
) -> jax.ShapeDtypeStruct:
    """:func:`output_shape` of an ``apply`` that must return one ``(n,)`` or ``(n, k)`` array,
    one row per row of ``x``.

    Raises:
        ValueError: as :func:`output_shape`, and for any other output (another rank, or not a
            real floating dtype).
    """
    outputs = output_shape(
        apply, params, x, name=name, apply_name=apply_name, params_name=params_name
    )
    if (
        not isinstance(outputs, jax.ShapeDtypeStruct)
        or outputs.ndim not in (1, 2)
        or outputs.shape[0] != x.shape[0]
    ):
        raise ValueError(
            f"{apply_name}({params_name}, x) must return one array of outputs, (n,) or (n, k), "
            f"one row per input; on {name} of {x.shape[0]} rows it returned {outputs}"
        )
    if not jax.dtypes.issubdtype(outputs.dtype, np.floating):
        raise ValueError(
            f"{apply_name}({params_name}, x) must return real floating outputs (they are "
            f"differentiated), got dtype {outputs.dtype}"
        )
    return outputs


def as_pytree(apply: Apply, *, name: str = "apply") -> Apply:
    """``apply`` as a pytree, to pass to a jitted function as an argument.

    kdbook's model functions (:class:`Functional`, a linearized model) already are pytrees whose
    arrays are leaves: compiled code is then shared by every model of the same structure. Any
    other callable becomes a leafless ``jax.tree_util.Partial``, which jit keys on the function's
    identity (the same function object is compiled once).

    Raises:
        ValueError: if ``apply`` is not callable (the message names it as ``name``).
    """
    check_callable(name, apply, what=f"{name}(params, x) -> outputs")
    if isinstance(apply, Functional | jax.tree_util.Partial):
        return apply
    return jax.tree_util.Partial(apply)


# The pytree algebra is optax.tree_utils'; these names add a check that both pytrees have the
# same structure, with an error that shows the two structures.


def _float_tree(name: str, tree: Params) -> Params:
    """``tree`` with finite floating leaves: integer and bool leaves become floats (integer
    arithmetic would wrap around silently), NaN or inf is refused (checked outside ``jit``)."""

    def leaf_as_float(path, leaf):
        leaf = as_float_array(f"{name}{jax.tree_util.keystr(path)}", leaf)
        check_finite(f"{name}{jax.tree_util.keystr(path)}", leaf)
        return leaf

    return jax.tree_util.tree_map_with_path(leaf_as_float, tree)


def _no_overflow_tree(tree: Params, what: str) -> Params:
    for leaf in jax.tree.leaves(tree):
        check_no_overflow(leaf, what)
    return tree


def tree_inner(a: Params, b: Params) -> jax.Array:
    """Euclidean inner product ``<a, b>`` of two pytrees with the same structure (integer and
    bool leaves are converted to floats, so they never wrap around).

    Raises:
        ValueError: for pytrees of different structures or leaf shapes, leaves that are not
            real numbers or hold NaN or inf, or a result that overflows (checked outside
            ``jax.jit``).
    """
    _check_same_structure(a, b)
    a, b = _float_tree("a", a), _float_tree("b", b)
    return check_no_overflow(otu.tree_vdot(a, b), "tree_inner")


def tree_norm(a: Params) -> jax.Array:
    r"""Euclidean norm of a pytree flattened into one vector.

    Computed as :math:`m \lVert a / m \rVert` with :math:`m` the largest magnitude of an
    entry, so the squares neither overflow nor underflow: a float32 pytree of entries ``1e20``
    or ``1e-30`` has its true norm, not ``inf`` or ``0``.

    Integer and bool leaves are converted to floats.

    Raises:
        ValueError: for leaves that are not real numbers or hold NaN or inf, or a norm beyond
            the dtype's largest number (checked outside ``jax.jit``).
    """
    a = _float_tree("a", a)
    leaves = jax.tree.leaves(a)
    if not leaves:
        return jnp.zeros(())
    largest = jnp.max(jnp.stack([jnp.max(jnp.abs(leaf), initial=0.0) for leaf in leaves]))
    scale = jnp.where(largest > 0, largest, 1.0)
    norm = largest * otu.tree_norm(jax.tree.map(lambda leaf: leaf / scale, a))
    return check_no_overflow(norm, "tree_norm")


def _power_of_two_scaled(tree: Params) -> Params:
    """A concrete float pytree scaled by the power of two near its largest entry (in NumPy,
    exactly), which leaves angles unchanged: XLA on CPU flushes subnormal entries (below
    1.2e-38 in float32) to zero, NumPy does not, so tiny pytrees keep their direction."""
    leaves = jax.tree.leaves(tree)
    if not leaves or not is_concrete(*leaves):
        return tree
    arrays = [np.asarray(leaf) for leaf in leaves]
    _, exponent = np.frexp(max(float(np.max(np.abs(a), initial=0.0)) for a in arrays))
    scaled = [jnp.asarray(np.ldexp(a, -exponent).astype(a.dtype)) for a in arrays]
    return jax.tree.unflatten(jax.tree.structure(tree), scaled)


def tree_difference(a: Params, b: Params) -> Params:
    """Leafwise ``a - b``, e.g. the weight change ``theta_t - theta_0`` (integer leaves become
    floats).

    Raises:
        ValueError: for pytrees of different structures or leaf shapes, leaves that are not
            real numbers or hold NaN or inf, or a result that overflows its dtype (checked
            outside ``jax.jit``).
    """
    _check_same_structure(a, b)
    a, b = _float_tree("a", a), _float_tree("b", b)
    return _no_overflow_tree(otu.tree_sub(a, b), "tree_difference")


def tree_add(a: Params, b: Params) -> Params:
    """Leafwise ``a + b`` (integer leaves become floats).

    Raises:
        ValueError: for pytrees of different structures or leaf shapes, leaves that are not
            real numbers or hold NaN or inf, or a result that overflows its dtype (checked
            outside ``jax.jit``).
    """
    _check_same_structure(a, b)
    a, b = _float_tree("a", a), _float_tree("b", b)
    return _no_overflow_tree(otu.tree_add(a, b), "tree_add")


def tree_scale(a: Params, scale: float | jax.Array) -> Params:
    """Leafwise ``scale * a`` (integer leaves become floats).

    Raises:
        ValueError: if ``scale`` is not a single finite number, for leaves that are not real
            numbers or hold NaN or inf, or a result that overflows its dtype (checked outside
            ``jax.jit``).
    """
    if np.ndim(scale) != 0:
        raise ValueError(f"scale must be a single number, got an array of shape {np.shape(scale)}")
    check_number("scale", scale)
    a = _float_tree("a", a)
    return _no_overflow_tree(otu.tree_scale(scale, a), "tree_scale")


def tree_angle(a: Params, b: Params) -> jax.Array:
    r"""Angle in radians in ``[0, pi]`` between two pytrees seen as vectors, accurate near 0 and pi.

    Computed as :math:`2 \operatorname{atan2}(\lVert \hat a - \hat b \rVert,
    \lVert \hat a + \hat b \rVert)` with :math:`\hat a = a / \lVert a \rVert`, which, unlike
    :math:`\arccos` of the cosine, keeps full relative precision for tiny angles (in float32,
    :math:`\arccos` cannot resolve angles below about ``3e-4``). The same computation as
    :func:`kdbook.theory.vector_angle`, which calls it on plain vectors.

    Raises:
        ValueError: if either pytree is zero (the angle is undefined), or for leaves that are
            not real numbers or hold NaN or inf. Traced inside ``jax.jit`` or ``jax.vmap``, where
            this cannot be checked, a zero pytree gives ``pi/2``.
    """
    _check_same_structure(a, b)
    a = _power_of_two_scaled(_float_tree("a", a))
    b = _power_of_two_scaled(_float_tree("b", b))
    na, nb = tree_norm(a), tree_norm(b)
    if is_concrete(na, nb) and (float(na) == 0.0 or float(nb) == 0.0):
        raise ValueError("tree_angle: the angle to a zero pytree is undefined")
    return _angle(a, b)


def _angle(a: Params, b: Params) -> jax.Array:
    """``2 atan2(|a^ - b^|, |a^ + b^|)`` of unit pytrees; a zero pytree is at ``pi/2`` of all."""

    def unit(tree):
        norm = tree_norm(tree)
        safe = jnp.where(norm > 0, norm, 1.0)
        return jax.tree.map(lambda u: u / safe, tree)

    ua, ub = unit(a), unit(b)
    return 2.0 * jnp.arctan2(tree_norm(otu.tree_sub(ua, ub)), tree_norm(otu.tree_add(ua, ub)))


def tree_size(a: Params) -> int:
    """Total number of scalars in a pytree."""
    return int(otu.tree_size(a))


def tree_stack(trees: list[Params]) -> Params:
    """Stack pytrees of the same structure along a new leading axis (e.g. one model per seed).

    The result can be passed to a function ``jax.vmap``-ed over its first axis.

    Raises:
        ValueError: for ``trees`` that is not a non-empty list, pytrees that differ in
            structure or leaf shapes, or leaves that are not arrays of real numbers, integers,
            bools or PRNG keys.
    """
    if not isinstance(trees, list | tuple) or not trees:
        raise ValueError(
            f"trees must be a non-empty list of pytrees, got {type(trees).__name__}"
            + (" (empty)" if isinstance(trees, list | tuple) else "")
        )
    for tree in trees[1:]:
        _check_same_structure(trees[0], tree)
    for i, tree in enumerate(trees):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            key = hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
            if not key:  # PRNG keys (e.g. in nnx.state(model)) stack too
                as_array(f"trees[{i}]{jax.tree_util.keystr(path)}", leaf)
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _check_same_structure(a: Params, b: Params) -> None:
    sa, sb = jax.tree.structure(a), jax.tree.structure(b)
    if sa != sb:
        raise ValueError(f"pytrees have different structures: {sa} vs {sb}")
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if np.shape(u) != np.shape(v):
            raise ValueError(f"pytree leaves have different shapes: {np.shape(u)} vs {np.shape(v)}")
