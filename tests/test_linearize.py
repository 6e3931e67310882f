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
