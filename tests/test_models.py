"""kdbook.models and kdbook.functional: shapes, parameterizations, the pure contract, pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import kdbook as kd


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_shapes_and_functionalize_agree_with_the_module(activation, depth):
    model = kd.MLP(
        5, depth=depth, width=16, out_features=3, activation=activation, b_std=0.5, rngs=nnx.Rngs(0)
    )
    x = jax.random.normal(jax.random.key(1), (4, 5))
    apply, params = kd.functionalize(model)
    assert model(x).shape == (4, 3)
    np.testing.assert_array_equal(apply(params, x), model(x))
    np.testing.assert_allclose(jax.jit(apply)(params, x), model(x), rtol=1e-6, atol=1e-6)
    assert kd.tree_size(params) == sum(
        a * b + b for a, b in zip([5] + [16] * depth, [16] * depth + [3], strict=True)
    )


def test_ntk_and_standard_parameterizations_agree_at_initialisation():
    """Same draws, different parameterization: the same function, different gradients."""
    x = jax.random.normal(jax.random.key(2), (6, 8))
    nets = {
        p: kd.MLP(
            8,
            depth=2,
            width=64,
            out_features=2,
            parameterization=p,
            w_std=1.4,
            b_std=0.3,
            rngs=nnx.Rngs(3),
        )
        for p in ["ntk", "standard"]
    }
    np.testing.assert_allclose(nets["ntk"](x), nets["standard"](x), rtol=1e-5, atol=1e-6)
    grads = {}
    for p, net in nets.items():
        apply, params = kd.functionalize(net)
        grads[p] = jax.grad(lambda q, a=apply: a(q, x).sum())(params)
    # In the NTK parameterization the first-layer gradient carries the 1/sqrt(fan_in) factor.
    np.testing.assert_allclose(
        grads["ntk"]["layers"][0]["kernel"],
        1.4 / np.sqrt(8) * grads["standard"]["layers"][0]["kernel"],
        rtol=1e-4,
        atol=1e-7,
    )


def test_ntk_output_variance_matches_the_first_layer_formula():
    """One hidden layer, NTK parameterization: Var f(x) = w_std^2 |x|^2 / (2 d).

    20000 initialisations (one vmapped construction): the relative standard error of the sample
    variance of a near-Gaussian output is sqrt(2 / 20000) = 1%, so the 5% margin is 5 sigma."""
    x = jnp.ones((1, 4)) * 0.5

    def output(key):
        model = kd.MLP(4, depth=1, width=512, out_features=1, w_std=1.0, rngs=nnx.Rngs(key))
        return model(x)[0, 0]

    outs = jax.jit(jax.vmap(output))(jax.random.split(jax.random.key(0), 20_000))
    expected = float(jnp.sum(x**2)) / 4 / 2
    assert abs(float(jnp.var(outs)) - expected) < 0.05 * expected


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
    np.testing.assert_allclose(kd.tree_angle(a, a), 0.0, atol=1e-3)
    assert kd.tree_size(a) == 7
    stacked = kd.tree_stack([a, b, a])
    assert stacked["v"]["w"].shape == (3, 2, 2)
    np.testing.assert_array_equal(stacked["u"][1], b["u"])


def test_float64_context_is_scoped():
    with kd.float64():
        assert jnp.ones(2).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: kd.MLP(3, depth=-1, width=4, out_features=1, rngs=nnx.Rngs(0)),
            ValueError,
            "depth",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=0, out_features=1, rngs=nnx.Rngs(0)),
            ValueError,
            "width",
        ),
        (
            lambda: kd.MLP(
                3, depth=1, width=4, out_features=1, activation="gelu", rngs=nnx.Rngs(0)
            ),
            ValueError,
            "activation",
        ),
        (
            lambda: kd.MLP(
                3, depth=1, width=4, out_features=1, parameterization="mup", rngs=nnx.Rngs(0)
            ),
            ValueError,
            "parameterization",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=4, out_features=1, w_std=0.0, rngs=nnx.Rngs(0)),
            ValueError,
            "w_std",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=4, out_features=1, rngs=nnx.Rngs(0))(jnp.ones(3)),
            ValueError,
            "shape",
        ),
        (lambda: kd.functionalize(lambda x: x), TypeError, "nnx.Module"),
        (lambda: kd.tree_inner({"a": jnp.ones(2)}, {"b": jnp.ones(2)}), ValueError, "structure"),
        (lambda: kd.tree_inner({"a": jnp.ones(2)}, {"a": jnp.ones(3)}), ValueError, "shapes"),
        (lambda: kd.tree_angle({"a": jnp.zeros(2)}, {"a": jnp.ones(2)}), ValueError, "zero"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fit_power_law_recovers_an_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    slope, constant = kd.fit_power_law(x, 3.0 * x**-0.5)
    assert slope == pytest.approx(-0.5) and constant == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        kd.fit_power_law(x, -x)
    with pytest.raises(ValueError, match="same length"):
        kd.fit_power_law(x, x[:3])


def test_heatmap_checks_its_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    kd.plotting.heatmap(
        ax, np.zeros((2, 3)), row_labels=[1, 2], col_labels=[1, 2, 3], row_title="r", col_title="c"
    )
    with pytest.raises(ValueError, match="labels"):
        kd.plotting.heatmap(
            ax, np.zeros((2, 3)), row_labels=[1], col_labels=[1, 2, 3], row_title="r", col_title="c"
        )
    plt.close(fig)
