"""kdbook.linearize: exactness at the expansion point, against a flattened Jacobian, second-order
error, and gradient descent on the linearized model against its closed-form dynamics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

import kdbook as kd


def _model(depth=2, width=32, out=2, seed=0):
    return kd.functionalize(
        kd.MLP(3, depth=depth, width=width, out_features=out, b_std=0.2, rngs=nnx.Rngs(seed))
    )


def test_linearized_model_equals_the_network_at_the_expansion_point():
    apply, params = _model()
    x = jax.random.normal(jax.random.key(0), (5, 3))
    np.testing.assert_allclose(kd.linearize(apply, params)(params, x), apply(params, x), rtol=1e-6)


def test_linearization_of_a_linear_model_is_exact():
    apply, params = _model(depth=0)
    _, other = _model(depth=0, seed=1)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    np.testing.assert_allclose(
        kd.linearize(apply, params)(other, x), apply(other, x), rtol=1e-5, atol=1e-6
    )


def test_linearized_model_is_the_first_order_taylor_expansion():
    with kd.enable_x64():
        apply, params = _model()
        x = jax.random.normal(jax.random.key(2), (4, 3))
        flat, unravel = ravel_pytree(params)
        direction = jax.random.normal(jax.random.key(3), flat.shape)
        jacobian = jax.jacrev(lambda f: apply(unravel(f), x))(flat)  # (n, k, p)
        lin = kd.linearize(apply, params)
        moved = unravel(flat + 0.1 * direction)
        np.testing.assert_allclose(
            lin(moved, x), apply(params, x) + 0.1 * jacobian @ direction, rtol=1e-10
        )
        # The network differs from its linearization at second order in the step size.
        steps = np.array([1e-1, 3e-2, 1e-2, 3e-3])
        gaps = [
            float(
                jnp.linalg.norm(
                    apply(unravel(flat + e * direction), x) - lin(unravel(flat + e * direction), x)
                )
            )
            for e in steps
        ]
        slope, _ = kd.fit_power_law(steps, gaps)
        assert 1.8 < slope < 2.2, (slope, gaps)


def test_gradient_descent_on_the_linearized_model_follows_the_closed_form_dynamics():
    """Discrete GD under L = 1/(2n) sum |f - y|^2 on f_lin equals the kernel recursion."""
    with kd.enable_x64():
        apply, params = _model(depth=1, width=64, out=2)
        x = jax.random.normal(jax.random.key(4), (12, 3))
        x_test = jax.random.normal(jax.random.key(5), (5, 3))
        y = jax.random.normal(jax.random.key(6), (12, 2))
        lin = kd.linearize(apply, params)
        ntk_full = kd.empirical_ntk(apply, params, x, trace=False)  # (n, n, k, k)
        n, k = y.shape
        # Gradient descent as a recursion on the outputs, with the full (n k x n k) kernel.
        big = ntk_full.transpose(0, 2, 1, 3).reshape(n * k, n * k)
        cross = kd.empirical_ntk(apply, params, x_test, x, trace=False)
        cross = cross.transpose(0, 2, 1, 3).reshape(x_test.shape[0] * k, n * k)
        lr, steps = 0.5, 40
        f, f_test = apply(params, x).reshape(-1), apply(params, x_test).reshape(-1)
        for _ in range(steps):
            residual = f - y.reshape(-1)
            f, f_test = f - lr / n * big @ residual, f_test - lr / n * cross @ residual
        result = kd.fit(
            lin,
            params,
            (x, y),
            loss=kd.squared_loss,
            optimizer=optax.sgd(lr),
            steps=steps,
            progress=False,
        )
        np.testing.assert_allclose(lin(result.params, x).reshape(-1), f, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            lin(result.params, x_test).reshape(-1), f_test, rtol=1e-8, atol=1e-10
        )


# ----------------------------------------------------------------------------- min_norm_params


def test_min_norm_params_of_a_linear_model_is_the_pseudo_inverse_solution():
    with kd.enable_x64():
        apply = lambda w, x: x @ w  # noqa: E731  (Jacobian X, NTK X X^T)
        rng = np.random.default_rng(0)
        x, w0, y = rng.normal(size=(5, 12)), rng.normal(size=12), rng.normal(size=5)
        got = kd.min_norm_params(apply, jnp.asarray(w0), x, y)
        expected = w0 + np.linalg.pinv(x) @ (y - x @ w0)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_min_norm_params_fits_a_network_and_predicts_like_kernel_regression():
    with kd.enable_x64():
        model = kd.TwoLayerNet(3, width=256, rngs=nnx.Rngs(0))
        apply, params0 = kd.functionalize(model)
        x = kd.sample_sphere(20, dim=3, key=jax.random.key(1))
        x_test = kd.sample_sphere(7, dim=3, key=jax.random.key(2))
        y = jnp.sin(3 * x[:, :1])
        star = kd.min_norm_params(apply, params0, x, y)
        linear = kd.linearize(apply, params0)
        np.testing.assert_allclose(linear(star, x), y, atol=1e-8)
        kernel = kd.empirical_ntk(apply, params0, x)
        cross = kd.empirical_ntk(apply, params0, x_test, x)
        f0, f0_test = apply(params0, x)[:, 0], apply(params0, x_test)[:, 0]
        expected = f0_test + kd.kernel_regression(kernel, y[:, 0] - f0, kernel_test_train=cross)
        np.testing.assert_allclose(linear(star, x_test)[:, 0], expected, rtol=1e-8, atol=1e-10)


def test_gradient_descent_on_the_kd_loss_converges_to_min_norm_params():
    # the binary KD loss has its per-example minimum at the effective logits, so gradient descent
    # on the linearized model ends at the minimum-norm fit of those (Proposition of chapter 5)
    with kd.enable_x64():
        apply, params0 = kd.functionalize(kd.TwoLayerNet(3, width=128, rngs=nnx.Rngs(3)))
        x = kd.sample_sphere(8, dim=3, key=jax.random.key(4))
        teacher = 3.0 * x[:, 0]
        labels = (x[:, 1] > 0).astype(jnp.int32)
        target = kd.effective_logits(teacher, labels, soft_ratio=0.5, temperature=2.0)
        star = kd.min_norm_params(apply, params0, x, target[:, None])

        def loss(out, z, y):
            return kd.kd_loss(out, z, y, soft_ratio=0.5, temperature=2.0, form="sigmoid")

        linear = kd.linearize(apply, params0)
        trained, _, _ = kd.train_scan(
            linear,
            params0,
            (x, teacher[:, None], labels),
            loss=loss,
            optimizer=optax.sgd(5.0, momentum=0.9),
            steps=3000,
        )
        gap = kd.tree_norm(kd.tree_difference(trained, star))
        assert float(gap / kd.tree_norm(kd.tree_difference(star, params0))) < 1e-6


def test_min_norm_params_with_several_outputs_and_bad_targets():
    apply, params = _model(depth=1, width=64, out=2)
    x = jax.random.normal(jax.random.key(5), (6, 3))
    y = jax.random.normal(jax.random.key(6), (6, 2))
    with kd.enable_x64():
        params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
        x64, y64 = x.astype(jnp.float64), y.astype(jnp.float64)
        star = kd.min_norm_params(apply, params64, x64, y64)
        np.testing.assert_allclose(kd.linearize(apply, params64)(star, x64), y64, atol=1e-9)
    try:
        kd.min_norm_params(apply, params, x, y[:, 0])
    except ValueError as error:
        assert "targets must have the shape" in str(error)
    else:
        raise AssertionError("a (6,) target for (6, 2) outputs was accepted")
