"""kdbook.models: MLP, Linear, DeepLinear and end_to_end: shapes, parameterizations, products of
layers, training, errors."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import kdbook as kd
from kdbook import models, theory

# ----------------------------------------------------------------------------- MLP


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
        model = kd.MLP(4, depth=1, width=128, out_features=1, w_std=1.0, rngs=nnx.Rngs(key))
        return model(x)[0, 0]

    outs = jax.jit(jax.vmap(output))(jax.random.split(jax.random.key(0), 20_000))
    expected = float(jnp.sum(x**2)) / 4 / 2
    assert abs(float(jnp.var(outs)) - expected) < 0.05 * expected


# ----------------------------------------------------------------------------- linear networks


def test_linear_starts_at_zero_and_computes_x_times_w():
    model = models.Linear(6)
    x = jax.random.normal(jax.random.key(0), (4, 6))
    assert model(x).shape == (4, 1)
    np.testing.assert_array_equal(model(x), 0.0)
    apply, params = kd.functionalize(
        models.Linear(6, out_features=2, init_scale=1.0, rngs=nnx.Rngs(1))
    )
    np.testing.assert_allclose(apply(params, x), x @ models.end_to_end(params), rtol=1e-6)
    assert models.end_to_end(params).shape == (6, 2)


def test_init_scale_sets_the_variance_of_the_weights():
    d, s = 400, 0.5
    weights = models.Linear(d, out_features=50, init_scale=s, rngs=nnx.Rngs(2)).weight[...]
    # 20,000 draws of N(0, s^2 / d): the sample variance is within 3% with overwhelming odds.
    assert float(jnp.var(weights)) == pytest.approx(s**2 / d, rel=0.03)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_deep_linear_is_the_product_of_its_layers(depth):
    """depth counts hidden layers, as in MLP: depth + 1 weight matrices."""
    model = models.DeepLinear(
        7, depth=depth, width=5, out_features=3, init_scale=0.8, rngs=nnx.Rngs(3)
    )
    apply, params = kd.functionalize(model)
    x = jax.random.normal(jax.random.key(4), (9, 7))
    assert len(params["layers"]) == depth + 1
    kernels = [params["layers"][i]["weight"][...] for i in range(depth + 1)]
    sizes = [7] + [5] * depth + [3]
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    assert [k.shape for k in kernels] == shapes
    product = kernels[0]
    for kernel in kernels[1:]:
        product = product @ kernel
    np.testing.assert_allclose(models.end_to_end(params), product, rtol=1e-6)
    np.testing.assert_allclose(apply(params, x), x @ product, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), apply(params, x), rtol=1e-6)
    assert kd.tree_size(params) == sum(int(np.prod(s)) for s in shapes)


def test_end_to_end_works_under_jit_and_vmap():
    inits = kd.tree_stack(
        [
            kd.functionalize(
                models.DeepLinear(5, depth=2, width=4, init_scale=1.0, rngs=nnx.Rngs(seed))
            )[1]
            for seed in range(3)
        ]
    )
    stacked = jax.jit(jax.vmap(models.end_to_end))(inits)
    assert stacked.shape == (3, 5, 1)
    for i in range(3):
        one = jax.tree.map(lambda leaf, i=i: leaf[i], inits)
        np.testing.assert_allclose(stacked[i], models.end_to_end(one), rtol=1e-6)


def _soft_label_data(n, d, key):
    key_x, key_w = jax.random.split(key)
    x = jax.random.normal(key_x, (n, d))
    w_star = 1.5 * jax.random.normal(key_w, (d,)) / np.sqrt(d)
    logits = x @ w_star
    return x, w_star, (x, logits, (logits >= 0).astype(jnp.int32))


SOFT = partial(kd.kd_loss, soft_ratio=1.0, temperature=1.0, form="sigmoid")


@pytest.mark.parametrize("n", [8, 40])
def test_a_linear_student_on_soft_labels_converges_to_the_projection(n):
    """Gradient descent from zero reaches P_X w* (w* itself once n >= d)."""
    d = 20
    with kd.enable_x64():
        x, w_star, data = _soft_label_data(n, d, jax.random.key(n))
        apply, params = kd.functionalize(models.Linear(d))
        learning_rate = 4 * n / float(jnp.linalg.eigvalsh(x.T @ x)[-1])
        params, _, _ = jax.jit(
            lambda p: kd.train_scan(
                apply, p, data, loss=SOFT, optimizer=optax.sgd(learning_rate), steps=20_000
            )
        )(params)
        w = models.end_to_end(params)[:, 0]
        target = theory.span_projection(x, w_star)
        np.testing.assert_allclose(w, target, atol=1e-9 * float(jnp.linalg.norm(w_star)))
        if n >= d:
            np.testing.assert_allclose(w, w_star, atol=1e-9 * float(jnp.linalg.norm(w_star)))


def test_deep_linear_first_layer_keeps_its_component_outside_the_span():
    """The first layer's gradient lies in span(X): its out-of-span part never moves."""
    n, d = 6, 15
    x, _, data = _soft_label_data(n, d, jax.random.key(5))
    apply, params0 = kd.functionalize(
        models.DeepLinear(d, depth=2, width=8, init_scale=0.3, rngs=nnx.Rngs(6))
    )
    params, losses, _ = kd.train_scan(
        apply, params0, data, loss=SOFT, optimizer=optax.sgd(0.2), steps=500
    )
    assert float(losses[-1]) < 0.1 * float(losses[0])

    def outside(kernel):
        return kernel - jax.vmap(theory.span_projection, in_axes=(None, 1), out_axes=1)(x, kernel)

    first0, first = params0["layers"][0]["weight"][...], params["layers"][0]["weight"][...]
    assert float(jnp.linalg.norm(first - first0)) > 0.05  # the layer did move...
    np.testing.assert_allclose(outside(first), outside(first0), atol=1e-5)  # ...inside the span


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: kd.MLP(3, depth=-1, width=4, out_features=1, rngs=nnx.Rngs(0)),
            "depth",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=0, out_features=1, rngs=nnx.Rngs(0)),
            "width",
        ),
        (
            lambda: kd.MLP(
                3, depth=1, width=4, out_features=1, activation="gelu", rngs=nnx.Rngs(0)
            ),
            "activation",
        ),
        (
            lambda: kd.MLP(
                3, depth=1, width=4, out_features=1, parameterization="mup", rngs=nnx.Rngs(0)
            ),
            "parameterization",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=4, out_features=1, w_std=0.0, rngs=nnx.Rngs(0)),
            "w_std",
        ),
        (
            lambda: kd.MLP(3, depth=1, width=4, out_features=1, rngs=nnx.Rngs(0))(jnp.ones(3)),
            "shape",
        ),
        (lambda: models.Linear(0), "in_features"),
        (lambda: models.Linear(3, out_features=0), "out_features"),
        (lambda: models.Linear(3, init_scale=-1.0), "init_scale must be >= 0"),
        (lambda: models.Linear(3, init_scale=1.0), "rngs"),
        (lambda: models.Linear(3)(jnp.ones((2, 4))), r"x must have shape \(n, 3\)"),
        (lambda: models.Linear(3)(jnp.ones(3)), "x must have shape"),
        (
            lambda: models.DeepLinear(3, depth=-1, width=2, init_scale=1.0, rngs=nnx.Rngs(0)),
            "depth",
        ),
        (
            lambda: models.DeepLinear(3, depth=1, width=0, init_scale=1.0, rngs=nnx.Rngs(0)),
            "width",
        ),
        (
            lambda: models.DeepLinear(3, depth=1, width=2, init_scale=0.0, rngs=nnx.Rngs(0)),
            "init_scale must be > 0",
        ),
        (lambda: models.end_to_end({"w": jnp.ones(3)}), "Linear or DeepLinear"),
        (
            lambda: models.end_to_end(
                kd.functionalize(
                    kd.MLP(3, depth=1, width=4, out_features=1, b_std=0.5, rngs=nnx.Rngs(0))
                )[1]
            ),
            "Linear or DeepLinear",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cnn_takes_flattened_images_and_works_with_the_ntk_methods_and_fit():
    """Its eNTK by Jacobians equals the one by NTK-vector products; fit lowers its loss; a
    convolution matches a hand-written one on the flattened (H, W, C) layout."""
    model = kd.CNN((8, 8, 1), channels=(4, 8), out_features=3, rngs=nnx.Rngs(0))
    apply, params = kd.functionalize(model)
    x = jax.random.normal(jax.random.key(0), (6, 64))
    y = jnp.arange(6) % 3
    assert apply(params, x).shape == (6, 3)
    by_jacobian = kd.empirical_ntk(apply, params, x, method="jacobian", trace=False)
    by_ntvp = kd.empirical_ntk(apply, params, x, method="ntvp", trace=False)
    np.testing.assert_allclose(by_jacobian, by_ntvp, rtol=1e-4, atol=1e-6)
    result = kd.fit(
        apply,
        params,
        (x, y),
        loss=kd.cross_entropy,
        optimizer=optax.sgd(1.0),
        steps=20,
        progress=False,
    )
    assert result.history["loss"][-1] < 0.95 * result.history["loss"][0]
    # one block, one channel in and out, by hand: 3x3 "same" correlation, ReLU, 2x2 average
    one = kd.CNN((4, 4, 1), channels=(1,), out_features=1, rngs=nnx.Rngs(1))
    image = np.asarray(jax.random.normal(jax.random.key(2), (4, 4)))
    w = np.asarray(one.filters[0][...])[:, :, 0, 0] * np.sqrt(2.0) / 3.0
    padded = np.pad(image, 1)
    conv = np.array(
        [[np.sum(padded[i : i + 3, j : j + 3] * w) for j in range(4)] for i in range(4)]
    )
    pooled = np.maximum(conv, 0).reshape(2, 2, 2, 2).mean(axis=(1, 3))
    head = np.asarray(one.head.kernel[...])[0, 0] * np.sqrt(2.0)
    np.testing.assert_allclose(
        one(jnp.asarray(image.reshape(1, 16))), [[pooled.mean() * head]], rtol=1e-5
    )


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(image_shape=(6, 8, 1)), "divisible by 2 \\*\\* len\\(channels\\) = 4"),
        (dict(image_shape=(8, 8)), "image_shape must be"),
        (dict(channels=()), "channels must be a non-empty"),
        (dict(channels=(4, 0)), "channels must be an integer"),
        (dict(activation="gelu"), "activation must be one of"),
    ],
)
def test_cnn_bad_options(options, match):
    kwargs = dict(image_shape=(8, 8, 1), channels=(4, 8), out_features=3, rngs=nnx.Rngs(0))
    kwargs.update(options)
    with pytest.raises(ValueError, match=match):
        kd.CNN(kwargs.pop("image_shape"), **kwargs)
