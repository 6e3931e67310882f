"""kdbook.functional: the apply(params, x) contract, the pytree helpers, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import kdbook as kd
from kdbook.functional import Functional, as_pytree


class _WithDropout(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.linear(x))


class _WithBatchNorm(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)
        self.norm = nnx.BatchNorm(2, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.linear(x))


@pytest.mark.parametrize(
    "module, name", [(_WithDropout, "RngState"), (_WithBatchNorm, "BatchStat")]
)
def test_state_that_changes_when_the_module_runs_is_refused(module, name):
    with pytest.raises(ValueError, match=f"model holds {name} variables"):
        kd.functionalize(module(nnx.Rngs(0)))


def test_apply_is_a_pytree_carrying_the_fixed_state_as_leaves():
    model = kd.TwoLayerNet(3, width=8, rngs=nnx.Rngs(0))
    apply, params = kd.functionalize(model)
    assert isinstance(apply, Functional)
    x = jax.random.normal(jax.random.key(1), (4, 3))
    np.testing.assert_array_equal(apply(params, x), model(x))
    leaves, treedef = jax.tree.flatten(apply)
    assert len(leaves) == 1 and set(np.unique(np.asarray(leaves[0]))) <= {-1.0, 1.0}
    # Rebuilt from other leaves, it is the same network with other output signs.
    flipped = jax.tree.unflatten(treedef, [-leaves[0]])
    np.testing.assert_allclose(flipped(params, x), -apply(params, x), rtol=1e-6)
    # Under jit the leaves are traced, not baked in: one compilation serves both.
    evaluate = jax.jit(lambda f, p: f(p, x))
    np.testing.assert_allclose(evaluate(flipped, params), -evaluate(apply, params), rtol=1e-6)
    assert evaluate._cache_size() == 1


def test_as_pytree_wraps_plain_functions_and_refuses_non_callables():
    def plain(params, x):
        return x @ params

    wrapped = as_pytree(plain)
    assert jax.tree.leaves(wrapped) == []
    np.testing.assert_array_equal(wrapped(jnp.eye(2), jnp.ones((1, 2))), jnp.ones((1, 2)))
    apply, _ = kd.functionalize(kd.MLP(2, depth=1, width=4, out_features=1, rngs=nnx.Rngs(0)))
    assert as_pytree(apply) is apply
    with pytest.raises(ValueError, match=r"apply must be a function apply\(params, x\)"):
        as_pytree(3.0)


def test_tree_helpers_match_flattened_vectors():
    a = {"u": jnp.arange(3.0), "v": {"w": jnp.ones((2, 2))}}
    b = {"u": jnp.array([1.0, -1.0, 2.0]), "v": {"w": 2 * jnp.eye(2)}}
    fa, fb = ravel_pytree(a)[0], ravel_pytree(b)[0]
    np.testing.assert_allclose(kd.tree_inner(a, b), fa @ fb)
    np.testing.assert_allclose(kd.tree_norm(a), jnp.linalg.norm(fa), rtol=1e-6)
    np.testing.assert_allclose(ravel_pytree(kd.tree_difference(a, b))[0], fa - fb)
    np.testing.assert_allclose(ravel_pytree(kd.tree_add(a, b))[0], fa + fb)
    np.testing.assert_allclose(ravel_pytree(kd.tree_scale(a, 3.0))[0], 3 * fa)
    cos = fa @ fb / (jnp.linalg.norm(fa) * jnp.linalg.norm(fb))
    np.testing.assert_allclose(kd.tree_angle(a, b), jnp.arccos(cos), rtol=1e-5)
    assert float(kd.tree_angle(a, a)) == 0.0
    assert kd.tree_size(a) == 7
    stacked = kd.tree_stack([a, b, a])
    assert stacked["v"]["w"].shape == (3, 2, 2)
    np.testing.assert_array_equal(stacked["u"][1], b["u"])


def _rotated_pair(seed: int, theta: float, dim: int = 50):
    """A float64 vector and one at angle theta from it (another norm), and the two in float32."""
    rng = np.random.default_rng(seed)
    a, u = rng.normal(size=(2, dim))
    u -= (u @ a) / (a @ a) * a
    b = 3.0 * (np.cos(theta) * a / np.linalg.norm(a) + np.sin(theta) * u / np.linalg.norm(u))
    return a.astype(np.float32), b.astype(np.float32)


def _reference_angle(a, b) -> float:
    """The angle between the float32 vectors, computed in float64 (NumPy)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rejection = b - (a @ b) / (a @ a) * a
    return float(np.arctan2(np.linalg.norm(a) * np.linalg.norm(rejection), a @ b))


@pytest.mark.parametrize("theta", [1e-4, 1e-3, np.pi - 1e-4])
def test_tree_angle_is_accurate_for_tiny_and_near_pi_angles_in_float32(theta):
    for seed in range(5):
        a, b = _rotated_pair(seed, theta)
        reference = _reference_angle(a, b)
        # pytrees: the same vector split into a matrix and a vector leaf
        tree_a = {"w": jnp.asarray(a[:30].reshape(5, 6)), "b": jnp.asarray(a[30:])}
        tree_b = {"w": jnp.asarray(b[:30].reshape(5, 6)), "b": jnp.asarray(b[30:])}
        flat_a, flat_b = ravel_pytree(tree_a)[0], ravel_pytree(tree_b)[0]
        # one implementation: vector_angle is tree_angle's computation on plain vectors
        for angle in [kd.tree_angle(tree_a, tree_b), kd.vector_angle(flat_a, flat_b)]:
            assert angle.dtype == jnp.float32
            if theta < 1:  # relative precision at small angles (the cosine form: 100% error)
                np.testing.assert_allclose(float(angle), reference, rtol=1e-3)
            else:
                np.testing.assert_allclose(float(angle), reference, atol=1e-6)
    # the cosine form this replaces cannot resolve 1e-4 rad in float32
    a, b = _rotated_pair(0, 1e-4)
    cosine = jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
    assert abs(float(jnp.arccos(jnp.clip(cosine, -1.0, 1.0))) - 1e-4) > 1e-5


def test_tree_angle_under_jit():
    a, b = _rotated_pair(1, 0.3)
    angle = jax.jit(kd.tree_angle)({"x": jnp.asarray(a)}, {"x": jnp.asarray(b)})
    np.testing.assert_allclose(float(angle), _reference_angle(a, b), rtol=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: kd.functionalize(lambda x: x), TypeError, "nnx.Module"),
        (lambda: kd.tree_inner({"a": jnp.ones(2)}, {"b": jnp.ones(2)}), ValueError, "structure"),
        (lambda: kd.tree_inner({"a": jnp.ones(2)}, {"a": jnp.ones(3)}), ValueError, "shapes"),
        (lambda: kd.tree_angle({"a": jnp.zeros(2)}, {"a": jnp.ones(2)}), ValueError, "zero"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
