r"""Pruning on any parameter pytree: masks, masked training and iterative magnitude pruning.

A **mask** is a pytree with the structure of the parameters whose leaves are boolean arrays of the
leaves' shapes, ``True`` where the entry is kept. The functions below build masks and use them:

* :func:`magnitude_mask` keeps the entries with the largest :math:`|s|` of a score pytree: the
  weights themselves (magnitude pruning, Frankle & Carbin, 2019) or the weight change
  :math:`|\theta_T - \theta_0|` (the *movement* criterion of Zhou et al., 2019, not the movement
  pruning of Sanh et al., 2020, which scores weights by :math:`-\theta\,\partial L/\partial\theta`
  accumulated during training); globally or layer by layer, and composed with an earlier mask for
  iterative pruning.
* :func:`random_mask` keeps random entries, exactly as many as :func:`magnitude_mask` would (the
  random-pruning baseline); :func:`neuron_mask` keeps or drops whole units (e.g. the hidden neurons
  of :class:`kdbook.models.TwoLayerNet`) by their norm, and ``random_mask(..., groups=
  unit_groups(params))`` at random. Every random mask comes from :func:`random_mask`, whose key
  is keyword-only (``key=``), as everywhere in kdbook.
* **Tied entries.** :func:`magnitude_mask`, :func:`random_mask` and
  :func:`iterative_magnitude_pruning` accept ``groups=``, integer labels that tie entries of a
  leaf together: a group is scored by the L2 norm of its entries' scores and kept or pruned as a
  whole. :func:`unit_groups` ties the entries of each unit (a slice along an axis, e.g. a neuron's
  weights); :func:`pair_groups` ties unit :math:`r` with unit :math:`r + m/2`, the antisymmetric
  pairs of ``TwoLayerNet(antisymmetric=True)``: pruning both members of a pair together keeps the
  pruned network's initial output exactly zero.
* :func:`apply_mask` sets pruned entries to zero; :func:`masked_optimizer` wraps an Optax optimizer
  so that they stay exactly zero during training with :func:`kdbook.train.fit` or
  :func:`kdbook.train.train_scan`.
* :func:`count`, :func:`density` and :func:`sparsity` account for what a mask keeps.
* :func:`iterative_magnitude_pruning` runs the lottery-ticket procedure of Frankle & Carbin (2019):
  train, prune the smallest weights, rewind the survivors to their initial values (or to an early
  training step, Frankle et al., 2019, "Stabilizing the lottery ticket hypothesis"), and repeat.

Only some leaves are pruned: by default those with ``ndim >= 2`` (weight matrices, not biases), the
convention of Frankle & Carbin; :func:`prunable` returns that selection and every mask builder
accepts ``prunable=`` to change it (a callable ``(path, leaf) -> bool`` or a pytree of bools).
Masks are built from concrete arrays with NumPy, outside ``jax.jit``; the counts are exact (the
fraction ``keep`` of ``n`` candidates keeps ``round(keep * n)`` entries, with ties broken by
position) so that experiments at a given sparsity are reproducible.

A mask may be applied to parameters of another container type with the same leaves: leaves are
matched by their paths, ignoring the ``.value`` of ``nnx.Variable`` wrappers, so a plain nested
``dict`` mask fits the ``nnx.State`` returned by :func:`kdbook.functional.functionalize`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_callable as _check_callable
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_key as _check_key
from kdbook._checks import is_concrete, is_real_dtype
from kdbook.functional import Params

__all__ = [
    "PruningRun",
    "apply_mask",
    "count",
    "density",
    "iterative_magnitude_pruning",
    "magnitude_mask",
    "masked_optimizer",
    "neuron_mask",
    "pair_groups",
    "prunable",
    "random_mask",
    "sparsity",
    "unit_groups",
]

Mask = Any
Prunable = Callable[[tuple, Any], bool] | Any | None

SCOPES = ("global", "layer")


class PruningRun(NamedTuple):
    """What :func:`iterative_magnitude_pruning` returns; one entry per round ``0..rounds``.

    Attributes:
        masks: the mask of each round (round 0: all ``True``, the dense network).
        params: the parameters each round's training returned.
        densities: the fraction of *prunable* entries each mask keeps
            (:func:`density` with ``prunable_only=True``), as Python floats.
    """

    masks: list[Mask]
    params: list[Params]
    densities: list[float]


# ----------------------------------------------------------------------------- pytree helpers


def _shape(leaf) -> tuple[int, ...]:
    return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _dtype(leaf) -> np.dtype:
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def _flatten(tree) -> tuple[list[tuple], list[Any], Any]:
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [path for path, _ in pairs], [leaf for _, leaf in pairs], treedef


def _key(entry) -> Any:
    for attribute in ("key", "idx", "name"):
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
    return str(entry)


def _normalise(path: tuple) -> tuple:
    """A leaf's path as plain keys, without the ``.value`` step of an ``nnx.Variable``."""
    return tuple(
        _key(entry)
        for entry in path
        if not (isinstance(entry, jax.tree_util.GetAttrKey) and entry.name == "value")
    )


def _where(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "the root"


def _align(reference, tree, *, name: str, ref_name: str, check_shapes: bool = True) -> list:
    """The leaves of ``tree`` in the order of ``reference``'s leaves; the two must match.

    Same tree structure, or the same leaf paths up to container types and ``nnx.Variable``
    wrappers (a nested ``dict`` matches an ``nnx.State``); with ``check_shapes``, the same shapes.
    """
    ref_paths, ref_leaves, ref_def = _flatten(reference)
    paths, leaves, treedef = _flatten(tree)
    if treedef != ref_def:
        ref_keys = [_normalise(path) for path in ref_paths]
        by_key = {_normalise(path): leaf for path, leaf in zip(paths, leaves, strict=True)}
        if len(by_key) != len(paths) or set(by_key) != set(ref_keys) or len(ref_keys) != len(paths):
            only_tree = sorted(map(str, set(by_key) - set(ref_keys)))[:3]
            only_ref = sorted(map(str, set(ref_keys) - set(by_key)))[:3]
            raise ValueError(
                f"{name} and {ref_name} have different structures ({len(paths)} vs "
                f"{len(ref_keys)} leaves; leaves only in {name}: {only_tree}, only in "
                f"{ref_name}: {only_ref}): {treedef} vs {ref_def}"
            )
        leaves = [by_key[key] for key in ref_keys]
    if check_shapes:
        for path, ref_leaf, leaf in zip(ref_paths, ref_leaves, leaves, strict=True):
            if _shape(leaf) != _shape(ref_leaf):
                raise ValueError(
                    f"{name} and {ref_name} have leaves of different shapes at {_where(path)}: "
                    f"{_shape(leaf)} vs {_shape(ref_leaf)}"
                )
    return leaves


def _mask_leaves(reference, mask, *, ref_name: str) -> list:
    """The leaves of ``mask`` aligned with ``reference``'s leaves, checked to be boolean."""
    leaves = _align(reference, mask, name="mask", ref_name=ref_name)
    paths, _, _ = _flatten(reference)
    for path, leaf in zip(paths, leaves, strict=True):
        if _dtype(leaf) != np.bool_:
            raise ValueError(
                f"mask leaves must be boolean arrays (True = kept), got dtype {_dtype(leaf)} at "
                f"{_where(path)}"
            )
    return leaves


def _concrete(name: str, leaves: list, *, real: bool = False) -> list[np.ndarray]:
    """The leaves as NumPy arrays (``real``: of real numbers, as scores must be)."""
    if not is_concrete(*leaves):
        raise ValueError(f"{name} must be concrete arrays: build masks outside jax.jit/vmap")
    arrays = [np.asarray(leaf) for leaf in leaves]
    for array in arrays if real else ():
        if not is_real_dtype(array.dtype):
            raise ValueError(f"{name} must be arrays of real numbers, got dtype {array.dtype}")
    return arrays


# ----------------------------------------------------------------------------- argument checks


def _check_keep(name: str, keep) -> float:
    if (
        not isinstance(keep, numbers.Real | np.ndarray | jax.Array)
        or np.ndim(keep) != 0
        or not is_concrete(keep)
        or np.asarray(keep).dtype.kind not in "iuf"  # not bool, complex or object
    ):
        raise ValueError(f"{name} must be a number in (0, 1], got {keep!r}")
    value = float(keep)
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be a number in (0, 1] (the fraction kept), got {value!r}")
    return value


def _magnitudes(values: np.ndarray) -> np.ndarray:
    """``|values|`` in float64; integers are converted first, so ``|INT_MIN|`` does not overflow."""
    if values.dtype.kind in "iub":
        values = values.astype(np.float64)
    return np.abs(values).astype(np.float64)


def _n_keep(keep: float, n: int) -> int:
    """``round(keep * n)`` entries out of ``n`` candidates, at least one when ``n >= 1``."""
    return min(n, max(1, round(keep * n))) if n > 0 else 0


def _as_bool(value, where: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray | jax.Array) and value.shape == () and value.dtype == bool:
        return bool(value)
    raise ValueError(f"prunable must give a bool for each leaf, got {value!r} at {where}")


def _selection(tree, prunable: Prunable) -> list[bool]:
    """Which leaves of ``tree`` may be pruned, one bool per leaf; at least one must be."""
    paths, leaves, _ = _flatten(tree)
    if prunable is None:
        selected = [len(_shape(leaf)) >= 2 for leaf in leaves]
        rule = "the default rule (leaves with ndim >= 2)"
    elif callable(prunable):
        selected = [
            _as_bool(prunable(path, leaf), _where(path))
            for path, leaf in zip(paths, leaves, strict=True)
        ]
        rule = "the prunable callable"
    else:
        flags = _align(tree, prunable, name="prunable", ref_name="params", check_shapes=False)
        selected = [_as_bool(flag, _where(path)) for path, flag in zip(paths, flags, strict=True)]
        rule = "the prunable pytree"
    if not any(selected):
        shapes = [_shape(leaf) for leaf in leaves]
        raise ValueError(f"no leaf is prunable under {rule}; leaf shapes: {shapes}")
    return selected


# ----------------------------------------------------------------------------- masks


def prunable(params: Params) -> Any:
    """The default selection of prunable leaves: weight matrices and tensors, not biases.

    A leaf is prunable when it has ``ndim >= 2``, the convention of Frankle & Carbin (2019).

    Args:
        params: any parameter pytree.

    Returns:
        A pytree with the structure of ``params`` whose leaves are Python bools; it can be edited
        and passed as ``prunable=`` to the mask builders.
    """
    return jax.tree.map(lambda leaf: len(_shape(leaf)) >= 2, params)


def _build(tree, leaves: list[np.ndarray]) -> Mask:
    _, _, treedef = _flatten(tree)
    return jax.tree.unflatten(treedef, [jnp.asarray(leaf) for leaf in leaves])


def _group_leaves(
    tree, groups, selected: list[bool], paths: list[tuple], *, ref_name: str = "scores"
) -> list:
    """The integer group labels of each prunable leaf (``None`` for the others), checked."""
    if groups is None:
        return [None] * len(selected)
    leaves = _align(tree, groups, name="groups", ref_name=ref_name)
    out = []
    for path, leaf, chosen in zip(paths, leaves, selected, strict=True):
        if not chosen:
            out.append(None)
            continue
        if not is_concrete(leaf):
            raise ValueError("groups must be concrete arrays: build masks outside jax.jit/vmap")
        labels = np.asarray(leaf)
        if labels.dtype.kind not in "iu":
            raise ValueError(
                f"groups leaves must be integer arrays (group labels), got dtype {labels.dtype} "
                f"at {_where(path)}"
            )
        out.append(labels.ravel())
    return out


def _units(index: np.ndarray, labels: np.ndarray | None, kept: np.ndarray, where: str):
    """The units ranked in one leaf: its candidate entries, or the groups they form.

    Returns ``(unit_of_candidate, n_units)``: for each candidate entry (in ``index`` order) the
    number of its unit, units numbered in the order of their first entry.
    """
    if labels is None:
        return np.arange(index.size), index.size
    candidate_labels = labels[index]
    split = np.intersect1d(candidate_labels, labels[~kept])
    if split.size:
        raise ValueError(
            f"the mask keeps only part of group {int(split[0])} in {where}: a group of tied "
            f"entries must be kept or pruned as a whole"
        )
    _, first, inverse = np.unique(candidate_labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()], first.size


def magnitude_mask(
    scores: Params,
    keep: float,
    *,
    scope: str = "global",
    prunable: Prunable = None,
    mask: Mask | None = None,
    groups: Params | None = None,
) -> Mask:
    r"""Keep the fraction ``keep`` of prunable entries with the largest :math:`|s|`.

    ``scores`` is any pytree shaped like the parameters:

    * the weights themselves, for **magnitude pruning** (Frankle & Carbin, 2019): after training,
      ``magnitude_mask(trained, 0.2)`` keeps the 20% largest weights;
    * the weight change ``kdbook.functional.tree_difference(trained, init)``: it keeps the weights
      that moved most during training, the *movement* criterion :math:`|\theta_T - \theta_0|` of
      Zhou et al. (2019) (not the movement pruning of Sanh et al., 2020).

    Of ``n`` candidate entries, exactly ``round(keep * n)`` are kept (Python's ``round``, at least
    one), those with the largest :math:`|s|`; ties are broken by position (leaves in
    ``jax.tree`` order, entries in row-major order, the first ones kept), never by keeping extra
    tied entries.

    With ``groups``, the units ranked are groups of tied entries instead of single entries: the
    entries of a prunable leaf with the same integer label form a group (labels are local to a
    leaf), scored by the L2 norm :math:`(\sum_{j \in g} s_j^2)^{1/2}` of its entries' scores
    (:math:`|s_j|` for a group of one), and kept or pruned as a whole. Exactly
    ``round(keep * G)`` of the ``G`` candidate groups are kept (ties: the group whose first entry
    comes first). ``groups=pair_groups(params)`` prunes the antisymmetric pairs of a
    ``TwoLayerNet`` together (see :func:`pair_groups`).

    Args:
        scores: a pytree of concrete arrays (not traced inside ``jax.jit``).
        keep: the fraction in ``(0, 1]`` of candidate entries (or groups) to keep.
        scope: ``"global"``: one ranking over the candidates of all prunable leaves;
            ``"layer"``: the fraction ``keep`` of each prunable leaf separately.
        prunable: which leaves may be pruned: ``None`` (leaves with ``ndim >= 2``, see
            :func:`prunable`), a callable ``(path, leaf) -> bool`` (``path`` as given by
            ``jax.tree_util.tree_flatten_with_path``), or a pytree of bools shaped like ``scores``.
        mask: an earlier mask. The candidates are then the entries it keeps, so ``keep`` is the
            fraction of *currently kept* entries to keep (one round of iterative pruning), and
            entries it pruned stay pruned, in non-prunable leaves too.
        groups: ``None`` (every entry on its own) or a pytree shaped like ``scores`` whose
            prunable leaves are integer arrays of group labels (the other leaves are ignored).

    Returns:
        A mask with the structure of ``scores``: boolean arrays, ``True`` = kept. Leaves that are
        not prunable are all ``True`` (or as in ``mask``).

    Raises:
        ValueError: for ``keep`` outside ``(0, 1]``, an unknown ``scope``, no prunable leaf, a
            ``mask`` or ``groups`` that does not match ``scores``, a ``mask`` that is not boolean
            or keeps only part of a group, non-integer group labels, scores that are not real
            numbers (complex, bool), NaN scores at candidate entries, or traced scores.
    """
    keep = _check_keep("keep", keep)
    _check_choice("scope", scope, SCOPES)
    paths, leaves, _ = _flatten(scores)
    current = None if mask is None else _mask_leaves(scores, mask, ref_name="scores")
    selected = _selection(scores, prunable)
    labels = _group_leaves(scores, groups, selected, paths)
    leaves = _concrete("scores", leaves, real=True)
    current = (
        [np.ones(leaf.shape, dtype=bool) for leaf in leaves]
        if current is None
        else _concrete("mask", current)
    )

    candidates, unit_of, magnitudes = [], [], []
    for path, leaf, kept, chosen, label in zip(
        paths, leaves, current, selected, labels, strict=True
    ):
        if not chosen:
            candidates.append(None)
            unit_of.append(None)
            magnitudes.append(None)
            continue
        index = np.flatnonzero(kept.ravel())
        values = _magnitudes(leaf.ravel()[index])
        if np.isnan(values).any():
            raise ValueError(
                f"scores are NaN at {int(np.isnan(values).sum())} candidate entries of "
                f"{_where(path)}: they cannot be ranked"
            )
        unit, n_units = _units(index, label, kept.ravel(), _where(path))
        if label is not None:
            values = np.sqrt(np.bincount(unit, weights=values**2, minlength=n_units))
        candidates.append(index)
        unit_of.append(unit)
        magnitudes.append(values)

    ranked = (
        [[i for i, chosen in enumerate(selected) if chosen]]
        if scope == "global"
        else [[i] for i, chosen in enumerate(selected) if chosen]
    )
    out = [kept.copy() for kept in current]
    for together in ranked:
        values = np.concatenate([magnitudes[i] for i in together])
        order = np.argsort(-values, kind="stable")  # largest first, ties: first position first
        chosen = np.zeros(values.size, dtype=bool)
        chosen[order[: _n_keep(keep, values.size)]] = True
        offset = 0
        for i in together:
            n_units = magnitudes[i].size
            flat = np.zeros(leaves[i].size, dtype=bool)
            flat[candidates[i]] = chosen[offset : offset + n_units][unit_of[i]]
            offset += n_units
            out[i] = flat.reshape(leaves[i].shape)
    return _build(scores, out)


def random_mask(
    params: Params,
    keep: float,
    *,
    key: jax.Array,
    scope: str = "layer",
    prunable: Prunable = None,
    groups: Params | None = None,
) -> Mask:
    """A uniformly random mask keeping as many entries as :func:`magnitude_mask` would.

    The random-pruning baseline: with ``scope="layer"``, each prunable leaf of ``n`` entries keeps
    a uniformly random subset of exactly ``round(keep * n)`` entries (at least one); with
    ``scope="global"``, one uniformly random subset of ``round(keep * N)`` of all ``N`` prunable
    entries. With ``groups`` (as in :func:`magnitude_mask`), the same holds for groups of tied
    entries, each kept or pruned as a whole. The same key gives the same mask.

    Random whole units (e.g. neurons, the random baseline of :func:`neuron_mask`) are groups:
    ``random_mask(params, keep, key=key, groups=unit_groups(params))`` keeps a uniformly random
    ``round(keep * m)`` of the ``m`` units of each prunable leaf.

    Args:
        params: any parameter pytree (only the leaves' shapes are used).
        keep: the fraction in ``(0, 1]`` of prunable entries (or groups) to keep.
        key: a JAX PRNG key (keyword-only, as everywhere in kdbook).
        scope: ``"layer"`` (default) or ``"global"``, as in :func:`magnitude_mask`.
        prunable: which leaves may be pruned, as in :func:`magnitude_mask`.
        groups: ``None`` or integer group labels shaped like ``params``, as in
            :func:`magnitude_mask`.

    Returns:
        A mask with the structure of ``params``; non-prunable leaves are all ``True``.

    Raises:
        ValueError: for ``keep`` outside ``(0, 1]``, a ``key`` that is not a concrete JAX PRNG
            key, an unknown ``scope``, no prunable leaf, or ``groups`` that do not match
            ``params`` or are not integer labels.
    """
    keep = _check_keep("keep", keep)
    _check_key("key", key)
    _check_choice("scope", scope, SCOPES)
    paths, leaves, _ = _flatten(params)
    selected = _selection(params, prunable)
    labels = _group_leaves(params, groups, selected, paths, ref_name="params")
    if not is_concrete(key):
        raise ValueError("random_mask needs a concrete key: build masks outside jax.jit/vmap")
    shapes = [_shape(leaf) for leaf in leaves]
    sizes = [math.prod(shape) for shape in shapes]
    # the units drawn in each prunable leaf: its entries, or its groups (unit_of[i][j]: the unit
    # of entry j)
    unit_of, n_units = [], []
    for i, label in enumerate(labels):
        if label is None:
            unit_of.append(None)
            n_units.append(sizes[i])
        else:
            unit, count = _units(np.arange(sizes[i]), label, np.ones(sizes[i], bool), "")
            unit_of.append(unit)
            n_units.append(count)

    def subset(key, n: int) -> np.ndarray:
        flat = np.zeros(n, dtype=bool)
        if n:
            flat[np.asarray(jax.random.permutation(key, n))[: _n_keep(keep, n)]] = True
        return flat

    def entries(i: int, units: np.ndarray) -> np.ndarray:
        flat = units if unit_of[i] is None else units[unit_of[i]]
        return flat.reshape(shapes[i])

    out = [np.ones(shape, dtype=bool) for shape in shapes]
    if scope == "layer":
        for i, chosen in enumerate(selected):
            if chosen:
                out[i] = entries(i, subset(jax.random.fold_in(key, i), n_units[i]))
    else:
        flat = subset(key, sum(n_units[i] for i, chosen in enumerate(selected) if chosen))
        offset = 0
        for i, chosen in enumerate(selected):
            if chosen:
                out[i] = entries(i, flat[offset : offset + n_units[i]])
                offset += n_units[i]
    return _build(params, out)


def neuron_mask(
    scores: Params,
    keep: float,
    *,
    axis: int = -1,
    prunable: Prunable = None,
) -> Mask:
    r"""Structured pruning: keep or drop whole units (slices along ``axis``) of each prunable leaf.

    For a leaf with ``m`` units along ``axis``, unit :math:`r` is scored by the L2 norm of its
    slice, and the ``round(keep * m)`` units (at least one) with the largest norms are kept (ties:
    the first units). For :class:`kdbook.models.TwoLayerNet`, whose hidden kernel has shape
    ``(d, m)`` with neuron :math:`r` in column :math:`r`, ``neuron_mask(params, keep)`` keeps the
    neurons with the largest weight vectors :math:`\|w_r\|`, and
    ``neuron_mask(tree_difference(trained, init), keep)`` those that moved most; the pruned
    network computes
    :math:`\frac{1}{\sqrt m}\sum_{r\ \mathrm{kept}} a_r\,\mathrm{relu}(w_r^\top x)`.

    It prunes by score only; random whole units come from :func:`random_mask`, with the units as
    groups: ``random_mask(params, keep, key=key, groups=unit_groups(params, axis=axis))``.

    Args:
        scores: a pytree of concrete arrays shaped like the parameters.
        keep: the fraction in ``(0, 1]`` of units to keep in each prunable leaf.
        axis: the axis indexing units (``-1``: columns, the output units of a dense kernel).
        prunable: which leaves may be pruned, as in :func:`magnitude_mask`.

    Returns:
        A mask with the structure of ``scores``, constant along every axis but ``axis``;
        non-prunable leaves are all ``True``.

    Raises:
        ValueError: for ``keep`` outside ``(0, 1]``, an ``axis`` out of range for a prunable leaf,
            no prunable leaf, scores that are not real numbers (complex, bool), or NaN scores.
    """
    keep = _check_keep("keep", keep)
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    paths, leaves, _ = _flatten(scores)
    selected = _selection(scores, prunable)
    leaves = _concrete("scores", leaves, real=True)
    out = []
    for path, leaf, chosen in zip(paths, leaves, selected, strict=True):
        shape = _shape(leaf)
        if not chosen:
            out.append(np.ones(shape, dtype=bool))
            continue
        if not -len(shape) <= axis < len(shape):
            raise ValueError(
                f"axis={axis} is out of range for the leaf at {_where(path)} of shape {shape}"
            )
        unit_axis = int(axis) % len(shape)
        m = shape[unit_axis]
        others = tuple(a for a in range(len(shape)) if a != unit_axis)
        norms = np.sqrt(np.sum(_magnitudes(leaf) ** 2, axis=others))
        if np.isnan(norms).any():
            raise ValueError(f"scores are NaN in the leaf at {_where(path)}")
        order = np.argsort(-norms, kind="stable")
        units = np.zeros(m, dtype=bool)
        units[order[: _n_keep(keep, m)]] = True
        view = [1] * len(shape)
        view[unit_axis] = m
        out.append(np.broadcast_to(units.reshape(view), shape).copy())
    return _build(scores, out)


def pair_groups(params: Params, *, axis: int = -1, prunable: Prunable = None) -> Any:
    r"""Group labels that tie unit :math:`r` with unit :math:`r + m/2` along ``axis``.

    ``TwoLayerNet(antisymmetric=True)`` (the "doubling trick") starts neuron :math:`r + m/2` at the
    weights of neuron :math:`r` with the opposite output sign, so the network computes exactly zero
    at initialisation. A mask that keeps entry :math:`(i, r)` of the hidden kernel but not its
    partner :math:`(i, r + m/2)` breaks that cancellation, and the pruned network starts from a
    non-zero function; once trained, the two partners differ (:math:`w_0 \pm \Delta`), so
    magnitude pruning of single entries keeps the one that moved away from zero and starts the
    rewound network from part of the learned function. Passing ``groups=pair_groups(params)`` to
    :func:`magnitude_mask`, :func:`random_mask` or :func:`iterative_magnitude_pruning` keeps or
    prunes both partners together, so the pruned network of a pair-symmetric initialisation is
    still exactly zero.

    Args:
        params: any parameter pytree; each prunable leaf must have an even size along ``axis``.
        axis: the axis indexing units (``-1``: the columns of a dense kernel, the neurons of
            ``TwoLayerNet``).
        prunable: which leaves will be pruned, as in :func:`magnitude_mask`; the other leaves get
            one label per entry (they are ignored by the mask builders).

    Returns:
        A pytree with the structure of ``params`` whose leaves are ``int32`` NumPy arrays of the
        leaves' shapes: entries :math:`(\dots, r, \dots)` and :math:`(\dots, r + m/2, \dots)`
        share a label, all others differ.

    Raises:
        ValueError: for no prunable leaf, an ``axis`` out of range or an odd number of units in
            a prunable leaf.
    """

    def pair(path, shape, axis):
        m = shape[axis]
        if m % 2:
            raise ValueError(
                f"the leaf at {_where(path)} has {m} units along axis {axis}: pairs need an "
                f"even number"
            )
        index = np.arange(math.prod(shape), dtype=np.int32).reshape(shape)
        first = np.take(index, np.arange(m // 2), axis=axis)
        return np.concatenate([first, first], axis=axis)

    return _label_units(params, axis, prunable, pair)


def unit_groups(params: Params, *, axis: int = -1, prunable: Prunable = None) -> Any:
    r"""Group labels that tie the entries of each unit, the slice :math:`r` along ``axis``.

    With ``groups=unit_groups(params)``, :func:`random_mask` keeps or prunes whole units at random
    (exactly ``round(keep * m)`` of the ``m`` units of each prunable leaf with the default
    ``scope="layer"``), the random counterpart of :func:`neuron_mask`; :func:`magnitude_mask`
    ranks units by the L2 norm of their scores. For a dense kernel of shape ``(d, m)`` and the
    default ``axis=-1`` the units are its ``m`` columns, the neurons of
    :class:`kdbook.models.TwoLayerNet`.

    Args:
        params: any parameter pytree.
        axis: the axis indexing units.
        prunable: which leaves will be pruned, as in :func:`magnitude_mask`; the other leaves get
            one label per entry (they are ignored by the mask builders).

    Returns:
        A pytree with the structure of ``params`` whose leaves are ``int32`` NumPy arrays of the
        leaves' shapes: in a prunable leaf, the entries of unit :math:`r` share the label
        :math:`r`.

    Raises:
        ValueError: for no prunable leaf or an ``axis`` out of range for a prunable leaf.

    Example:
        >>> params = {"kernel": jnp.ones((2, 3))}
        >>> unit_groups(params)["kernel"]
        array([[0, 1, 2],
               [0, 1, 2]], dtype=int32)
    """

    def unit(path, shape, axis):
        view = [1] * len(shape)
        view[axis] = shape[axis]
        labels = np.arange(shape[axis], dtype=np.int32).reshape(view)
        return np.broadcast_to(labels, shape).copy()

    return _label_units(params, axis, prunable, unit)


def _label_units(params: Params, axis, prunable: Prunable, label) -> Any:
    """Group labels: ``label(path, shape, axis)`` for each prunable leaf (``axis`` made
    non-negative), one label per entry for the others."""
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    paths, leaves, treedef = _flatten(params)
    out = []
    for path, leaf, chosen in zip(paths, leaves, _selection(params, prunable), strict=True):
        shape = _shape(leaf)
        if not chosen:
            out.append(np.arange(math.prod(shape), dtype=np.int32).reshape(shape))
            continue
        if not -len(shape) <= axis < len(shape):
            raise ValueError(
                f"axis={axis} is out of range for the leaf at {_where(path)} of shape {shape}"
            )
        out.append(label(path, shape, int(axis) % len(shape)))
    return jax.tree.unflatten(treedef, out)


# ----------------------------------------------------------------------------- masked training


def apply_mask(params: Params, mask: Mask) -> Params:
    """``params`` with the pruned entries set to exactly zero.

    Works inside ``jax.jit`` (on traced parameters and masks).

    Args:
        params: any parameter pytree.
        mask: a mask matching ``params`` (same leaves and shapes, boolean leaves).

    Returns:
        A pytree with the structure and dtypes of ``params``.

    Raises:
        ValueError: if the mask does not match ``params`` or has non-boolean leaves.
    """
    masks = _mask_leaves(params, mask, ref_name="params")
    _, leaves, treedef = _flatten(params)
    return jax.tree.unflatten(
        treedef,
        [
            jnp.where(kept, leaf, jnp.zeros((), dtype=_dtype(leaf)))
            for leaf, kept in zip(leaves, masks, strict=True)
        ],
    )


def masked_optimizer(
    optimizer: optax.GradientTransformation, mask: Mask
) -> optax.GradientTransformation:
    """``optimizer`` on the gradients of kept entries, followed by zeroing pruned entries' updates.

    Started from ``apply_mask(params, mask)``, pruned weights then stay exactly zero through any
    training with :func:`kdbook.train.fit` or :func:`kdbook.train.train_scan`, whatever the
    optimizer does (momentum, Adam's moments, weight decay in ``optax.adamw``): their gradients
    are usually not zero, but their updates are. The gradients of pruned entries are also set to
    zero *before* ``optimizer`` sees them, so that transformations that mix entries (e.g.
    ``optax.clip_by_global_norm``) act on the gradient of the sparse network; for elementwise
    optimizers (SGD, momentum, Adam, AdamW) this changes nothing for the kept entries. Entries are
    selected with ``jnp.where``, so a NaN or infinite gradient or update at a pruned entry is
    dropped too.

    Example:
        >>> params = {"w": jnp.array([[0.5, -2.0], [0.1, 1.5]])}
        >>> mask = magnitude_mask(params, 0.5)  # keep the 2 largest of 4
        >>> optimizer = masked_optimizer(optax.sgd(0.1), mask)
        >>> grads = {"w": jnp.ones((2, 2))}
        >>> updates, _ = optimizer.update(grads, optimizer.init(params), params)
        >>> updates["w"]  # pruned entries get no update
        Array([[ 0. , -0.1],
               [ 0. , -0.1]], dtype=float32)

    Args:
        optimizer: any Optax gradient transformation.
        mask: a mask matching the parameters that will be trained.

    Returns:
        An ``optax.GradientTransformation``.

    Raises:
        ValueError: (when built) for an ``optimizer`` that is not an Optax gradient transformation
            or a mask with non-boolean leaves; (at ``init`` and ``update``) for parameters or
            updates that do not match the mask.
    """
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise ValueError(
            "optimizer must be an Optax gradient transformation (with init and update), e.g. "
            f"optax.sgd(0.1), got {type(optimizer).__name__}"
        )
    _mask_leaves(mask, mask, ref_name="mask")
    mask = jax.tree.map(jnp.asarray, mask)

    def init(params):
        _mask_leaves(params, mask, ref_name="params")
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        masks = _mask_leaves(updates, mask, ref_name="updates")
        _, leaves, treedef = _flatten(updates)
        zeroed = [
            jnp.where(kept, u, jnp.zeros((), dtype=_dtype(u)))
            for u, kept in zip(leaves, masks, strict=True)
        ]
        return jax.tree.unflatten(treedef, zeroed), state

    zero_pruned = optax.GradientTransformation(init, update)
    return optax.chain(zero_pruned, optimizer, zero_pruned)


# ----------------------------------------------------------------------------- accounting


def count(mask: Mask, *, prunable_only: bool = False, prunable: Prunable = None) -> tuple[int, int]:
    """``(kept, total)``: the numbers of kept and of all entries of a mask, as Python ints.

    Args:
        mask: a mask (boolean leaves, concrete).
        prunable_only: count only the prunable leaves (else every leaf).
        prunable: with ``prunable_only``, which leaves are prunable, as in
            :func:`magnitude_mask` (default: ``ndim >= 2``).

    Raises:
        ValueError: for a mask without leaves (e.g. ``None``), non-boolean or traced leaves, a
            ``prunable_only`` that is not a bool, or ``prunable`` without ``prunable_only``.
    """
    _check_bool("prunable_only", prunable_only)
    if prunable is not None and not prunable_only:
        raise ValueError("prunable= selects leaves only with prunable_only=True")
    if not jax.tree.leaves(mask):
        raise ValueError(
            f"mask must be a pytree of boolean arrays with at least one leaf, got {mask!r}"[:200]
        )
    leaves = _concrete("mask", _mask_leaves(mask, mask, ref_name="mask"))
    if prunable_only:
        selected = _selection(mask, prunable)
        leaves = [leaf for leaf, chosen in zip(leaves, selected, strict=True) if chosen]
    return sum(int(np.count_nonzero(leaf)) for leaf in leaves), sum(leaf.size for leaf in leaves)


def density(mask: Mask, *, prunable_only: bool = False, prunable: Prunable = None) -> float:
    """The fraction of entries a mask keeps, ``kept / total`` from :func:`count`.

    By default over *all* entries of all leaves; with ``prunable_only=True`` over the prunable
    leaves only (the fraction of weights remaining in Frankle & Carbin's plots).

    Raises:
        ValueError: as :func:`count`, or for a mask whose leaves have no entries.
    """
    kept, total = count(mask, prunable_only=prunable_only, prunable=prunable)
    if total == 0:
        raise ValueError("the mask has no entries: its density is undefined")
    return kept / total


def sparsity(mask: Mask, *, prunable_only: bool = False, prunable: Prunable = None) -> float:
    """The fraction of entries a mask prunes, ``(total - kept) / total`` (see :func:`density`).

    Raises:
        ValueError: as :func:`density`.
    """
    kept, total = count(mask, prunable_only=prunable_only, prunable=prunable)
    if total == 0:
        raise ValueError("the mask has no entries: its sparsity is undefined")
    return (total - kept) / total


# ----------------------------------------------------------------------------- lottery tickets


def iterative_magnitude_pruning(
    train: Callable[[Params, Mask], Params],
    params: Params,
    *,
    rounds: int,
    keep_per_round: float,
    scope: str = "global",
    prunable: Prunable = None,
    rewind_to: Params | None = None,
    groups: Params | None = None,
    progress: bool = True,
) -> PruningRun:
    r"""Iterative magnitude pruning with rewinding (Frankle & Carbin, 2019).

    Round 0 trains the dense network: ``trained_0 = train(params, all-True mask)``. Round
    :math:`r \ge 1` keeps the fraction ``keep_per_round`` of the weights that survived round
    :math:`r-1`, those of largest magnitude after training,
    ``mask_r = magnitude_mask(trained_{r-1}, keep_per_round, mask=mask_{r-1})``, rewinds them,
    ``start_r = apply_mask(rewind_to, mask_r)``, and trains again: ``trained_r = train(start_r,
    mask_r)``. After :math:`r` rounds about ``keep_per_round ** r`` of the prunable weights remain.

    ``rewind_to`` defaults to ``params``: rewinding to the initialisation, as in Frankle & Carbin
    (2019). Passing the dense network's weights after a few training steps (e.g. a checkpoint of
    :func:`kdbook.train.fit`) rewinds to an early step instead, as introduced by Frankle et al.
    (2019, "Stabilizing the lottery ticket hypothesis") and studied by Frankle et al. (2020,
    "Linear mode connectivity and the lottery ticket hypothesis").

    With ``groups`` (e.g. :func:`pair_groups`), every round ranks and prunes groups of tied
    entries instead of single entries, and ``keep_per_round`` is the fraction of remaining
    groups kept (see :func:`magnitude_mask`).

    Args:
        train: ``train(params, mask) -> trained_params``; it should train with
            ``masked_optimizer(optimizer, mask)`` so that pruned weights stay zero.
        params: the initial parameters.
        rounds: the number of pruning rounds (a positive integer), after the dense round 0.
        keep_per_round: the fraction in ``(0, 1]`` of remaining weights each round keeps.
        scope: ``"global"`` (default, as Frankle & Carbin for deep networks) or ``"layer"``,
            see :func:`magnitude_mask`.
        prunable: which leaves may be pruned, as in :func:`magnitude_mask`.
        rewind_to: the weights pruned networks restart from (default: ``params``).
        groups: ``None`` or integer group labels of tied entries, as in :func:`magnitude_mask`.
        progress: show a progress bar over rounds (tqdm).

    Returns:
        A :class:`PruningRun` with lists over rounds ``0..rounds``.

    Raises:
        ValueError: for a ``train`` that is not callable, a bad ``rounds``, ``keep_per_round``,
            ``scope`` or ``progress``, a ``rewind_to``, ``groups`` or a result of ``train`` that
            does not match ``params``, NaN or infinite values in ``params``, ``rewind_to`` or a
            result of ``train``, non-integer group labels, or no prunable leaf.
    """
    _check_callable("train", train, what="train(params, mask) -> trained params")
    _check_int("rounds", rounds)
    keep = _check_keep("keep_per_round", keep_per_round)
    _check_choice("scope", scope, SCOPES)
    _check_bool("progress", progress)
    paths, _, _ = _flatten(params)
    _group_leaves(params, groups, _selection(params, prunable), paths, ref_name="params")
    rewind_to = params if rewind_to is None else rewind_to
    rewind_leaves = _align(params, rewind_to, name="rewind_to", ref_name="params")
    _, params_leaves, treedef = _flatten(params)
    for name, leaves in (("params", params_leaves), ("rewind_to", rewind_leaves)):
        for path, leaf in zip(paths, leaves, strict=True):
            _check_finite(f"{name} (the leaf at {_where(path)})", leaf)

    mask = jax.tree.map(lambda leaf: jnp.ones(_shape(leaf), dtype=bool), params)
    start, trained_leaves = params, []
    run = PruningRun([], [], [])
    with tqdm(total=rounds + 1, desc="pruning rounds", leave=False, disable=not progress) as bar:
        for r in range(rounds + 1):
            if r > 0:
                scores = jax.tree.unflatten(treedef, trained_leaves)
                mask = magnitude_mask(
                    scores, keep, scope=scope, prunable=prunable, mask=mask, groups=groups
                )
                start = apply_mask(rewind_to, mask)
            trained = train(start, mask)
            try:
                trained_leaves = _align(params, trained, name="train's result", ref_name="params")
            except ValueError as error:
                raise ValueError(
                    f"train(params, mask) must return the trained parameters, a pytree like "
                    f"params: {error}"
                ) from None
            for path, leaf in zip(paths, trained_leaves, strict=True):
                try:
                    _check_finite(f"the leaf at {_where(path)}", leaf)
                except ValueError as error:
                    raise ValueError(
                        f"train(params, mask) must return finite parameters, but in round {r} "
                        f"{error}"
                    ) from None
            run.masks.append(mask)
            run.params.append(trained)
            run.densities.append(density(mask, prunable_only=True, prunable=prunable))
            bar.set_postfix(density=f"{run.densities[-1]:.4g}", refresh=False)
            bar.update(1)
    return run
