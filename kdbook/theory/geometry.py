"""Class geometry (Tang et al., 2020): within- vs between-group similarity of class vectors.

Part of :mod:`kdbook.theory`; import the names from there."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import check_choice as _check_choice
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import is_concrete
from kdbook._scaling import unit_scale


class GroupSimilarity(NamedTuple):
    """What :func:`group_similarity` returns.

    Attributes:
        matrix: ``(k, k)`` similarities of every pair of vectors (ones on the diagonal).
        within: mean similarity of distinct vectors in the same group.
        between: mean similarity of vectors in different groups.
    """

    matrix: jax.Array
    within: jax.Array
    between: jax.Array

    @property
    def gap(self) -> jax.Array:
        """``within - between``: positive when the vectors cluster by group."""
        return self.within - self.between


def group_similarity(
    vectors: ArrayLike, groups: ArrayLike, *, measure: str = "cosine"
) -> GroupSimilarity:
    r"""How much more alike vectors of one group are than vectors of different groups.

    For class weight vectors :math:`w_1, \dots, w_k` (the rows of ``vectors``, e.g. the columns
    of a linear classifier's weight matrix) grouped by superclass, or for the columns
    :math:`(p_c(x_1), \dots, p_c(x_n))` of a teacher's probabilities (``vectors = probs.T``), it
    returns the matrix :math:`S_{ab}` of cosines (``measure="cosine"``) or Pearson correlations
    (``"correlation"``, the cosine of the centred vectors), and the means of :math:`S_{ab}` over
    pairs :math:`a \ne b` in the same group and in different groups: a positive gap is the block
    structure of classes that resemble each other, the "domain knowledge" that Tang et al. (2020)
    say a teacher's soft labels carry.

    Each row is divided by a power of two near its largest entry before the cosines are formed
    (exact, and the cosines do not change), so rows of any scale neither overflow nor underflow.

    Args:
        vectors: ``(k, d)``, one vector per row.
        groups: ``(k,)`` integer group of each row; some group must have two rows, and there must
            be two groups.
        measure: ``"cosine"`` or ``"correlation"``.

    Returns:
        A :class:`GroupSimilarity`.

    Raises:
        ValueError: for shapes that do not match, too few groups, or (concrete inputs) NaN or
            infinite entries, or a zero vector (a constant one, for ``"correlation"``), whose
            cosine is undefined.

    Example:
        >>> import jax.numpy as jnp
        >>> w = jnp.array([[1.0, 0.2], [1.0, 0.0], [0.0, 1.0], [0.2, 1.0]])
        >>> result = group_similarity(w, jnp.array([0, 0, 1, 1]))
        >>> round(float(result.within), 3), round(float(result.between), 3)
        (0.981, 0.194)
    """
    _check_choice("measure", measure, ("cosine", "correlation"))
    vectors, groups = _as_float_array("vectors", vectors), np.asarray(groups)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (k, d), one vector per row, got {vectors.shape}")
    _check_finite("vectors", vectors)
    if groups.shape != (vectors.shape[0],) or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(
            f"groups must be ({vectors.shape[0]},) integers, one per row of vectors, got "
            f"shape {groups.shape} and dtype {groups.dtype}"
        )
    same = groups[:, None] == groups[None, :]
    distinct = ~np.eye(groups.size, dtype=bool)
    if not (same & distinct).any() or same.all():
        raise ValueError(
            "groups needs a group with two rows and at least two groups, got "
            f"{np.unique(groups).size} group(s) of sizes {np.unique(groups, return_counts=True)[1]}"
        )
    vectors = unit_scale(vectors, axis=1)[0]
    if measure == "correlation":
        vectors = unit_scale(vectors - jnp.mean(vectors, axis=1, keepdims=True), axis=1)[0]
    norms = jnp.linalg.norm(vectors, axis=1)
    if is_concrete(norms) and not np.all(np.asarray(norms) > 0):
        zero = int(np.argmin(np.asarray(norms) > 0))
        what = "constant" if measure == "correlation" else "zero"
        raise ValueError(f"row {zero} of vectors is {what}: its {measure} is undefined")
    unit = vectors / norms[:, None]
    matrix = unit @ unit.T
    within = jnp.sum(jnp.where(same & distinct, matrix, 0.0)) / np.sum(same & distinct)
    between = jnp.sum(jnp.where(~same, matrix, 0.0)) / np.sum(~same)
    return GroupSimilarity(matrix, within, between)
