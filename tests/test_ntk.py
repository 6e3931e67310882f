"""kdbook.ntk: every empirical-NTK method against every other and a brute-force Jacobian;
the infinite-width kernels against Monte-Carlo estimates and hand-derived special cases."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import kdbook as kd
from kdbook.models import TwoLayerNet
from kdbook.ntk import _arccos, _structured_factors, empirical_ntk, infinite_kernels, two_layer_ntk

METHODS = ["jacobian", "ntvp", "structured"]


def _models():
    return {
        "mlp-erf-bias": lambda: kd.MLP(
            5, depth=2, width=16, out_features=3, activation="erf", b_std=0.3, rngs=nnx.Rngs(0)
        ),
        "mlp-relu-standard": lambda: kd.MLP(
            5,
            depth=1,
            width=16,
            out_features=2,
            b_std=0.2,
            parameterization="standard",
            rngs=nnx.Rngs(1),
        ),
        "mlp-tanh-scalar": lambda: kd.MLP(
            5, depth=3, width=8, out_features=1, activation="tanh", rngs=nnx.Rngs(2)
        ),
        "two-layer": lambda: TwoLayerNet(5, width=16, rngs=nnx.Rngs(3)),
    }


def _brute_force(apply, params, x1, x2):
    """Theta from the flattened Jacobian: J1 J2^T, shape (n1, n2, k, k)."""
    flat, unravel = ravel_pytree(params)

    def jac(x):
        return jax.jacrev(lambda f: apply(unravel(f), x).reshape(x.shape[0], -1))(flat)

    return jnp.einsum("iap,jbp->ijab", jac(x1), jac(x2))


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("symmetric", [True, False])
def test_every_method_matches_the_brute_force_jacobian(name, symmetric):
    with kd.enable_x64():
        apply, params = kd.functionalize(_models()[name]())
        x1 = jax.random.normal(jax.random.key(0), (7, 5))
        x2 = None if symmetric else jax.random.normal(jax.random.key(1), (4, 5))
        full = _brute_force(apply, params, x1, x1 if symmetric else x2)
        traced = jnp.einsum("ijaa->ij", full) / full.shape[2]
        for method in METHODS:
            for batch_size in [None, 3]:
                # unbatched: the traced kernel; in blocks: the full one (one kernel function serves
                # both paths, so each combination of method and trace is covered once)
                trace = batch_size is None
                got = empirical_ntk(
                    apply, params, x1, x2, method=method, trace=trace, batch_size=batch_size
                )
                np.testing.assert_allclose(
                    got,
                    traced if trace else full,
                    rtol=1e-10,
                    atol=1e-12,
                    err_msg=f"{method}, batch_size={batch_size}, trace={trace}",
                )


def test_methods_agree_in_float32_and_auto_picks_structured():
    apply, params = kd.functionalize(
        kd.MLP(8, depth=2, width=256, out_features=4, rngs=nnx.Rngs(4))
    )
    x = jax.random.normal(jax.random.key(2), (32, 8))
    kernels = {m: empirical_ntk(apply, params, x, method=m) for m in METHODS + ["auto"]}
    for method in METHODS:
        np.testing.assert_allclose(kernels[method], kernels["jacobian"], rtol=2e-5, atol=1e-6)
    assert np.array_equal(kernels["auto"], kernels["structured"])


def test_any_apply_works_with_jacobian_and_ntvp():
    """A hand-written model (not an NNX module) with a nonlinearity in its parameters."""

    def apply(params, x):
        return jnp.tanh(x @ params["w"]) @ params["v"] + jnp.sin(params["c"])[None, :]

    params = {
        "w": jnp.ones((3, 4)) * 0.3,
        "v": jnp.arange(8.0).reshape(4, 2) / 8,
        "c": jnp.array([0.5, -0.2]),
    }
    x = jax.random.normal(jax.random.key(3), (5, 3))
    with kd.enable_x64():
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = jnp.asarray(x, jnp.float64)
        full = _brute_force(apply, params, x, x)
        for method in ["jacobian", "ntvp", "auto"]:
            got = empirical_ntk(apply, params, x, method=method, trace=False)
            np.testing.assert_allclose(got, full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="structured"):
        empirical_ntk(apply, params, x, method="structured")


def test_infinite_kernels_at_depth_zero_are_the_input_kernel():
    x = jax.random.normal(jax.random.key(4), (5, 3))
    nngp, ntk = infinite_kernels(x, depth=0, w_std=2.0, b_std=0.5)
    # atol: an entry where w^2 x.x'/d and b^2 nearly cancel keeps only float32's absolute error
    np.testing.assert_allclose(nngp, 4.0 * x @ x.T / 3 + 0.25, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ntk, nngp)


def test_infinite_relu_kernel_hand_derived_cases():
    """One hidden ReLU layer, w_std = 1, b_std = 0, inputs of norm sqrt(d)."""
    d = 4
    x = jnp.sqrt(d) * jnp.eye(d)[:2]  # two orthogonal inputs of norm sqrt(d)
    nngp, ntk = infinite_kernels(x, depth=1)
    # Same input: Sigma1 = 1/2, Theta1 = Sigma1 + Sigma0 * 1/2 = 1.
    np.testing.assert_allclose(jnp.diag(nngp), 0.5, rtol=1e-6)
    np.testing.assert_allclose(jnp.diag(ntk), 1.0, rtol=1e-6)
    # Orthogonal inputs: Sigma1 = 1/(2 pi) (sin(pi/2) term only), Theta1 = Sigma1.
    np.testing.assert_allclose(nngp[0, 1], 1 / (2 * np.pi), rtol=1e-6)
    np.testing.assert_allclose(ntk[0, 1], 1 / (2 * np.pi), rtol=1e-6)


def test_infinite_erf_kernel_hand_derived_case():
    """One erf layer: E[erf(u)^2] = 2/pi arcsin(2s / (1 + 2s)) for u ~ N(0, s)."""
    x = jnp.ones((1, 2))
    nngp, ntk = infinite_kernels(x, depth=1, activation="erf")
    s = 1.0
    np.testing.assert_allclose(nngp[0, 0], 2 / np.pi * np.arcsin(2 * s / (1 + 2 * s)), rtol=1e-6)
    derivative = 4 / np.pi / np.sqrt((1 + 2 * s) ** 2 - 4 * s**2)
    np.testing.assert_allclose(ntk[0, 0], nngp[0, 0] + derivative * s, rtol=1e-6)


@pytest.mark.parametrize("activation, b_std", [("relu", 0.0), ("relu", 0.4), ("erf", 0.3)])
def test_infinite_kernels_match_wide_networks(activation, b_std):
    """Monte Carlo: empirical NTK of wide networks (mean of 8) and the last layer's NNGP."""
    x = jax.random.normal(jax.random.key(5), (6, 5))
    exact = infinite_kernels(x, depth=2, activation=activation, w_std=1.4, b_std=b_std)
    ntks, nngps = [], []
    for seed in range(8):
        model = kd.MLP(
            5,
            depth=2,
            width=2048,
            out_features=1,
            activation=activation,
            w_std=1.4,
            b_std=b_std,
            rngs=nnx.Rngs(seed),
        )
        apply, params = kd.functionalize(model)
        ntks.append(empirical_ntk(apply, params, x))
        # The output layer's contribution to the NTK is the empirical NNGP.
        inputs, _ = _structured_factors(model.dense_chain(), x)
        last = inputs[-1]
        nngps.append(1.4**2 * last @ last.T / last.shape[1] + b_std**2)
    for estimate, target in [(np.mean(ntks, 0), exact.ntk), (np.mean(nngps, 0), exact.nngp)]:
        # Fluctuations are O(1/sqrt(width * seeds)): 1.7-2.5% measured for these seeds; a wrong
        # kernel recursion (a missing 1/2, a bias term) is off by far more than 5%.
        assert np.linalg.norm(estimate - target) / np.linalg.norm(target) < 0.05


def test_empirical_ntk_concentrates_like_inverse_sqrt_width():
    x = jax.random.normal(jax.random.key(6), (8, 4))
    target = infinite_kernels(x, depth=1).ntk
    widths = [64, 256, 1024, 4096]
    errors = []
    for width in widths:
        distances = []
        for seed in range(6):
            apply, params = kd.functionalize(
                kd.MLP(4, depth=1, width=width, out_features=1, rngs=nnx.Rngs(seed))
            )
            k = empirical_ntk(apply, params, x)
            distances.append(np.linalg.norm(k - target) / np.linalg.norm(target))
        errors.append(np.mean(distances))
    slope, _ = kd.fit_power_law(widths, errors)
    assert -0.7 < slope < -0.3, (slope, errors)


def test_two_layer_ntk_is_the_closed_form_and_the_monte_carlo_expectation():
    with kd.enable_x64():
        x = jax.random.normal(jax.random.key(7), (6, 3), dtype=jnp.float64)
        z = 2.0 * jax.random.normal(jax.random.key(8), (4, 3), dtype=jnp.float64)
        cross = np.asarray(x @ z.T)
        norms = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(z, axis=1))
        closed = cross * (np.pi - np.arccos(np.clip(cross / norms, -1, 1))) / (2 * np.pi)
        np.testing.assert_allclose(two_layer_ntk(x, z), closed, rtol=1e-12, atol=1e-14)
        # the definition, E_w[x.z 1{w.x >= 0} 1{w.z >= 0}], by Monte Carlo over 400k draws of w
        w = jax.random.normal(jax.random.key(9), (400_000, 3), dtype=jnp.float64)
        both = ((x @ w.T >= 0)[:, None, :] & (z @ w.T >= 0)[None, :, :]).mean(axis=2)
        # both-active probability (pi - theta) / (2 pi); its Monte Carlo error is <= 0.5/sqrt(4e5)
        np.testing.assert_allclose(two_layer_ntk(x, z) / cross, both, atol=5 * 0.5 / np.sqrt(4e5))
    # float32: the polynomial arccos keeps the result within 1e-6 of the float64 closed form
    gram = two_layer_ntk(np.asarray(x, np.float32))
    np.testing.assert_allclose(gram, two_layer_ntk_64(x), rtol=1e-5, atol=1e-6)
    assert np.array_equal(gram, gram.T)
    assert np.linalg.eigvalsh(np.asarray(gram, np.float64)).min() > 0


def two_layer_ntk_64(x):
    with kd.enable_x64():
        return np.asarray(two_layer_ntk(jnp.asarray(x, jnp.float64)))


def test_two_layer_net_ntk_is_the_gram_matrix_at_large_width():
    x = jax.random.normal(jax.random.key(7), (6, 3))
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    h_infinity = two_layer_ntk(x)
    apply, params = kd.functionalize(TwoLayerNet(3, width=20_000, rngs=nnx.Rngs(0)))
    k = empirical_ntk(apply, params, x)
    assert np.linalg.norm(k - h_infinity) / np.linalg.norm(h_infinity) < 0.03


def test_polynomial_arccos_is_accurate_in_float32():
    c = jnp.linspace(-1.0, 1.0, 20_001, dtype=jnp.float32)
    error = np.abs(np.asarray(_arccos(c), np.float64) - np.arccos(np.asarray(c, np.float64)))
    assert error.max() < 1e-6


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a, p: empirical_ntk(a, p, jnp.ones(3)), "x1 must have shape"),
        (lambda a, p: empirical_ntk(a, p, jnp.ones((2, 3)), jnp.ones((2, 4))), "x2 must have"),
        (lambda a, p: empirical_ntk(a, p, jnp.ones((0, 3))), "at least one"),
        (lambda a, p: empirical_ntk(a, p, jnp.ones((2, 3)), method="fast"), "method must be"),
        (lambda a, p: empirical_ntk(a, p, jnp.ones((2, 3)), batch_size=0), "batch_size"),
        (lambda a, p: empirical_ntk(a, p, jnp.ones((2, 3)), shard=True), "set batch_size"),
        (lambda a, p: infinite_kernels(jnp.ones((2, 3)), depth=-1), "depth"),
        (lambda a, p: infinite_kernels(jnp.ones((2, 3)), depth=1, activation="tanh"), "closed"),
        (lambda a, p: two_layer_ntk(jnp.ones(3)), "x1 must have shape"),
        (lambda a, p: two_layer_ntk(jnp.ones((2, 3)), jnp.ones((2, 4))), "x2 must have"),
        (lambda a, p: infinite_kernels(jnp.ones((2, 3)), depth=1, w_std=0.0), "w_std"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    apply, params = kd.functionalize(kd.MLP(3, depth=1, width=4, out_features=1, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=match):
        call(apply, params)


@pytest.mark.parametrize("method", ["structured", "jacobian", "ntvp"])
def test_a_new_model_of_the_same_structure_does_not_recompile(count_compiles, method):
    x = jax.random.normal(jax.random.key(0), (6, 3))

    def model(seed):
        return kd.functionalize(kd.TwoLayerNet(3, width=32, rngs=nnx.Rngs(seed)))

    kd.empirical_ntk(*model(0), x, method=method)
    apply, params = model(1)
    with count_compiles() as compiles:
        kernel = kd.empirical_ntk(apply, params, x, method=method)
    assert compiles() == 0, f"{compiles()} compilations for a model of a known structure"
    # ... and the shared compilation uses this model's own weights and output signs.
    reference = kd.empirical_ntk(lambda p, x: apply(p, x), params, x, method="jacobian")
    np.testing.assert_allclose(kernel, reference, rtol=1e-5, atol=1e-6)


def test_the_structured_kernel_differentiates_any_activation(monkeypatch):
    """A new activation gets its own derivative (by autodiff), not another activation's."""
    monkeypatch.setitem(kd.models.ACTIVATIONS, "softplus", jax.nn.softplus)
    with kd.enable_x64():
        apply, params = kd.functionalize(
            kd.MLP(3, depth=2, width=8, out_features=2, activation="softplus", rngs=nnx.Rngs(0))
        )
        x = jax.random.normal(jax.random.key(1), (5, 3))
        structured = empirical_ntk(apply, params, x, method="structured", trace=False)
        reference = _brute_force(apply, params, x, x)
    np.testing.assert_allclose(structured, reference, rtol=1e-10, atol=1e-12)


def test_a_wrapped_apply_keeps_the_structured_path_through_an_explicit_structure():
    apply, params = kd.functionalize(
        kd.MLP(5, depth=2, width=64, out_features=2, b_std=0.2, rngs=nnx.Rngs(7))
    )
    x = jax.random.normal(jax.random.key(3), (9, 5))
    reference = empirical_ntk(apply, params, x, method="jacobian")
    for wrapped in [jax.jit(apply), partial(apply), lambda p, x: apply(p, x)]:
        # structured with the structure passed on explicitly ...
        kernel = empirical_ntk(wrapped, params, x, method="structured", structure=apply.structure)
        np.testing.assert_allclose(kernel, reference, rtol=2e-5, atol=1e-6)
        # ... told what to pass when it is missing ...
        with pytest.raises(ValueError, match="structure=apply.structure"):
            empirical_ntk(wrapped, params, x, method="structured")
        # ... and "auto" without it falls back to a method that needs no structure
        np.testing.assert_allclose(
            empirical_ntk(wrapped, params, x), reference, rtol=2e-5, atol=1e-6
        )


def test_structure_is_none_for_a_module_that_is_not_a_dense_chain():
    apply, _ = kd.functionalize(kd.Linear(4))
    assert apply.structure is None
    assert kd.functionalize(kd.TwoLayerNet(3, width=8, rngs=nnx.Rngs(0)))[0].structure is not None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(w_std=float("inf")), "w_std must be a finite number > 0"),
        (dict(b_std=float("inf")), "b_std must be a finite number >= 0"),
    ],
)
def test_infinite_kernels_refuse_infinite_scales(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kd.infinite_kernels(jnp.ones((2, 3)), depth=1, **kwargs)
