"""kdbook.theory.risk: transfer risks, data geometry, the risk bound, span projections and sign
disagreement.

Each function is checked against a closed form or an independent computation: the angle formula
against Monte Carlo, the projection against X (X^T X)^-1 X^T w in float64, the empirical p(theta)
of `sample_angular` against (2 theta / pi)^kappa, the bound against values worked out by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdbook as kd
from kdbook import theory


def _unit(v):
    return v / jnp.linalg.norm(v)


# ----------------------------------------------------------------------------- angles and risks


def test_vector_angle_known_values_and_small_angles():
    e1, e2 = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    assert float(theory.vector_angle(e1, e2)) == pytest.approx(np.pi / 2)
    assert float(theory.vector_angle(e1, -3.0 * e1)) == pytest.approx(np.pi)
    assert float(theory.vector_angle(2.0 * e1, e1)) == pytest.approx(0.0, abs=1e-7)
    # arccos of the cosine would return 0 here in float32; the atan2 form keeps the digits.
    tiny = theory.vector_angle(e1, jnp.array([1.0, 1e-5, 0.0]))
    assert float(tiny) == pytest.approx(1e-5, rel=1e-4)
    # A zero vector is at a right angle to everything (a student that predicts one class).
    assert float(theory.vector_angle(jnp.zeros(3), e1)) == pytest.approx(np.pi / 2)


def test_vector_angle_matches_arccos_in_float64():
    with kd.enable_x64():
        a, b = jax.random.normal(jax.random.key(0), (2, 20, 7))
        angles = jax.vmap(theory.vector_angle)(a, b)
        cosine = jnp.sum(a * b, axis=1) / jnp.linalg.norm(a, axis=1) / jnp.linalg.norm(b, axis=1)
        np.testing.assert_allclose(angles, jnp.arccos(cosine), rtol=1e-12)


def test_transfer_risk_of_the_teacher_and_its_opposite():
    x = jax.random.normal(jax.random.key(0), (1000, 5))
    w_star = jnp.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert float(theory.transfer_risk(w_star, w_star, x)) == 0.0
    assert float(theory.transfer_risk(2.5 * w_star, w_star, x)) == 0.0
    assert float(theory.transfer_risk(-w_star, w_star, x)) == 1.0


@pytest.mark.parametrize("anisotropic", [False, True])
def test_gaussian_transfer_risk_matches_monte_carlo(anisotropic):
    """R = angle(S^1/2 w, S^1/2 w*) / pi for x ~ N(0, S), against 200,000 samples."""
    d, m = 6, 200_000
    key_x, key_w, key_s, key_c = jax.random.split(jax.random.key(1), 4)
    w_star = jax.random.normal(key_w, (d,))
    students = w_star[None, :] + jnp.array([0.3, 1.0, 3.0])[:, None] * jax.random.normal(
        key_s, (3, d)
    )
    if anisotropic:
        a = jax.random.normal(key_c, (d, d))
        covariance = a @ a.T / d + 0.1 * jnp.eye(d)
        x = jax.random.normal(key_x, (m, d)) @ jnp.linalg.cholesky(covariance).T
    else:
        covariance, x = None, jax.random.normal(key_x, (m, d))
    for w in students:
        exact = float(theory.gaussian_transfer_risk(w, w_star, covariance=covariance))
        measured = float(theory.transfer_risk(w, w_star, x))
        standard_error = np.sqrt(exact * (1 - exact) / m)
        assert 0.02 < exact < 0.98  # a proper range of students, not only trivial ones
        assert abs(measured - exact) < 5 * standard_error, (measured, exact)


def test_gaussian_transfer_risk_of_a_zero_student_is_one_half():
    assert float(theory.gaussian_transfer_risk(jnp.zeros(4), jnp.ones(4))) == pytest.approx(0.5)


def test_gaussian_transfer_risk_with_identity_covariance_is_the_isotropic_formula():
    w, w_star = jnp.array([1.0, 2.0, -1.0]), jnp.array([0.5, 0.0, 1.0])
    np.testing.assert_allclose(
        theory.gaussian_transfer_risk(w, w_star, covariance=jnp.eye(3)),
        theory.vector_angle(w, w_star) / np.pi,
        rtol=1e-6,
    )


# ----------------------------------------------------------------------------- data geometry


def test_boundary_angles_of_sample_angular_are_arcsin_of_the_first_coordinate():
    with kd.enable_x64():
        x, _ = kd.sample_angular(500, dim=8, kappa=0.5, key=jax.random.key(2))
        angles = theory.boundary_angles(x, 4.0 * jnp.eye(8)[0])
    np.testing.assert_allclose(angles, np.arcsin(np.abs(np.asarray(x[:, 0]))), rtol=1e-7)
    assert float(theory.boundary_angles(jnp.zeros((1, 8)), jnp.eye(8)[0])[0]) == 0.0


@pytest.mark.parametrize("kappa", [0.25, 1.0, 3.0])
def test_angular_cdf_of_sample_angular_is_the_power_law(kappa):
    m = 20_000
    x, _ = kd.sample_angular(m, dim=10, kappa=kappa, key=jax.random.key(3))
    thetas = jnp.linspace(0.0, np.pi / 2, 50)
    # Rotating the data and the teacher together changes no angle.
    rotation, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(4), (10, 10)))
    estimate = theory.angular_cdf(x @ rotation.T, rotation @ jnp.eye(10)[0], thetas)
    assert estimate.shape == thetas.shape
    # Dvoretzky-Kiefer-Wolfowitz: the sup error exceeds this with probability 1e-4.
    tolerance = np.sqrt(np.log(2 / 1e-4) / (2 * m))
    assert np.max(np.abs(estimate - (2 * thetas / np.pi) ** kappa)) < tolerance
    assert float(theory.angular_cdf(x, jnp.eye(10)[0], np.pi / 2)) == 1.0


# ----------------------------------------------------------------------------- the bound


def test_risk_bound_hand_computed_values():
    """p(theta) = 2 theta / pi: min_u [u + (1 - u)^n] is 1 at n = 1, 3/4 at n = 2 (u = 1/2)."""

    def uniform(t):
        return 2 * t / np.pi

    bound, theta = theory.risk_bound([0, 1, 2], uniform, return_theta=True)
    np.testing.assert_allclose(bound, [1.0, 1.0, 0.75], atol=1e-12)
    assert theta[2] == pytest.approx(np.pi / 4)
    # Large n: the minimiser u = 1 - n^(-1/(n-1)) gives about log(n) / n.
    n = 1000
    u = 1 - n ** (-1 / (n - 1))
    exact = u + (1 - u) ** n
    assert float(theory.risk_bound(n, uniform, num_thetas=200_001)) == pytest.approx(
        exact, rel=1e-4
    )
    assert theory.risk_bound(np.array([3, 4]), uniform).shape == (2,)


def test_risk_bound_with_a_margin_decays_exponentially():
    """No mass within theta0 of the boundary: the bound is p(pi/2 - theta0)^n."""
    theta0 = np.pi / 8

    def margin(t):
        return np.clip((t - theta0) / (np.pi / 2 - theta0), 0.0, 1.0)

    sizes = np.array([1, 5, 10, 20])
    expected = margin(np.pi / 2 - theta0) ** sizes
    np.testing.assert_allclose(theory.risk_bound(sizes, margin, num_thetas=16_001), expected)


def test_risk_bound_from_samples_agrees_with_the_exact_geometry():
    kappa = 0.5
    x, _ = kd.sample_angular(50_000, dim=10, kappa=kappa, key=jax.random.key(5))
    sizes = [2, 10, 40]
    from_samples = theory.risk_bound(sizes, theory.boundary_angles(x, jnp.eye(10)[0]))
    exact = theory.risk_bound(sizes, lambda t: (2 * t / np.pi) ** kappa)
    np.testing.assert_allclose(from_samples, exact, atol=0.02)


# ----------------------------------------------------------------------------- projections


@pytest.mark.parametrize("method", ["qr", "svd"])
@pytest.mark.parametrize("n", [1, 7, 20, 30, 45])
def test_span_projection_matches_the_explicit_formula(method, n):
    d = 30
    with kd.enable_x64():
        x = jax.random.normal(jax.random.key(n), (n, d))
        w = jax.random.normal(jax.random.key(100 + n), (d,))
        projection = theory.span_projection(x, w, method=method)
        if n <= d:
            xt = np.asarray(x).T
            expected = xt @ np.linalg.solve(xt.T @ xt, xt.T @ np.asarray(w))
        else:
            expected = np.asarray(w)  # n > d generic points span everything
        np.testing.assert_allclose(projection, expected, atol=1e-10)
        # A projection: idempotent, and the residual is orthogonal to every input.
        np.testing.assert_allclose(theory.span_projection(x, projection), projection, atol=1e-10)
        np.testing.assert_allclose(x @ (w - projection), 0.0, atol=1e-10)


@pytest.mark.parametrize("method", ["qr", "svd"])
def test_span_projection_does_not_judge_rank_by_row_sizes(method):
    """Orthogonal rows of norms 1e3 and 1e-4 span two directions (svd gave [1, 0, 0] and qr
    called them linearly dependent: the tolerance was relative to the largest row)."""
    x = np.array([[1e3, 0.0, 0.0], [0.0, 1e-4, 0.0]], np.float32)
    projection = theory.span_projection(x, np.array([1.0, 2.0, 3.0], np.float32), method=method)
    np.testing.assert_allclose(projection, [1.0, 2.0, 0.0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["qr", "svd"])
def test_span_projection_ignores_zero_rows_also_under_vmap(method):
    d, n_max = 12, 9
    x = jax.random.normal(jax.random.key(6), (n_max, d))
    w = jax.random.normal(jax.random.key(7), (d,))
    sizes = jnp.arange(1, n_max + 1)
    masks = (jnp.arange(n_max)[None, :] < sizes[:, None]).astype(x.dtype)
    padded = jax.jit(jax.vmap(lambda m: theory.span_projection(x * m[:, None], w, method=method)))(
        masks
    )
    for i in (0, 3, n_max - 1):  # a few sizes: each direct call compiles for its own shape
        direct = theory.span_projection(x[: int(sizes[i])], w, method=method)
        np.testing.assert_allclose(padded[i], direct, atol=1e-5)
    # A zero row in the middle, not only at the end.
    middle = x.at[3].set(0.0)
    rows = np.array([0, 1, 2, 4, 5, 6, 7, 8])
    np.testing.assert_allclose(
        theory.span_projection(middle, w, method=method),
        theory.span_projection(x[rows], w, method=method),
        atol=1e-5,
    )


def test_span_projection_methods_agree_and_svd_handles_dependent_rows():
    x = jax.random.normal(jax.random.key(8), (4, 10))
    w = jax.random.normal(jax.random.key(9), (10,))
    np.testing.assert_allclose(
        theory.span_projection(x, w), theory.span_projection(x, w, method="svd"), atol=1e-5
    )
    duplicated = jnp.concatenate([x, x[:2], x[:1] + x[1:2]])
    np.testing.assert_allclose(
        theory.span_projection(duplicated, w, method="svd"),
        theory.span_projection(x, w),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="linearly dependent.*method='svd'"):
        theory.span_projection(duplicated, w)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: theory.vector_angle(jnp.ones(3), jnp.ones(4)), "same shape"),
        (lambda: theory.vector_angle(jnp.ones((2, 3)), jnp.ones(3)), "a must be"),
        (lambda: theory.transfer_risk(jnp.ones(3), jnp.ones(3), jnp.ones((5, 4))), "x_test"),
        (lambda: theory.transfer_risk(jnp.ones(3), jnp.ones(2), jnp.ones((5, 3))), "same shape"),
        (
            lambda: theory.gaussian_transfer_risk(jnp.ones(2), jnp.ones(2), covariance=jnp.eye(3)),
            "covariance must have shape",
        ),
        (
            lambda: theory.gaussian_transfer_risk(jnp.ones(2), jnp.ones(2), covariance=-jnp.eye(2)),
            "positive definite",
        ),
        (lambda: theory.boundary_angles(jnp.ones((3, 2)), jnp.zeros(2)), "w_star must not be zero"),
        (lambda: theory.boundary_angles(jnp.ones(3), jnp.ones(3)), "x must have shape"),
        (lambda: theory.angular_cdf(jnp.ones((3, 2)), jnp.ones(2), jnp.ones((2, 2))), "theta"),
        (lambda: theory.risk_bound(-1, lambda t: t), "non-negative integers"),
        (lambda: theory.risk_bound(2.5, lambda t: t), "n must hold integers"),
        (lambda: theory.risk_bound(2, lambda t: 0.5), "same shape"),
        (lambda: theory.risk_bound(2, lambda t: 2 * t), "probabilities"),
        (lambda: theory.risk_bound(2, np.array([0.1, 3.0])), r"\[0, pi/2\]"),
        (lambda: theory.risk_bound(2, lambda t: t / 2, num_thetas=1), "num_thetas"),
        (lambda: theory.span_projection(jnp.ones((3, 4)), jnp.ones(5)), "x must have shape"),
        (lambda: theory.span_projection(jnp.ones((3, 4)), jnp.ones(4), method="lu"), "method"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- sign disagreement


def test_sign_disagreement_counts_sign_changes_and_is_transfer_risks_core():
    a = jnp.array([1.0, -2.0, 0.0, 3.0])
    b = jnp.array([2.0, 1.0, -1.0, 0.5])
    assert float(kd.sign_disagreement(a, b)) == pytest.approx(0.5)  # entries 1 and 2 differ
    x = jax.random.normal(jax.random.key(0), (500, 4))
    w, w_star = jnp.array([1.0, 0.5, 0.0, -1.0]), jnp.array([1.0, 0.0, 0.3, -0.5])
    assert float(kd.sign_disagreement(x @ w, x @ w_star)) == float(kd.transfer_risk(w, w_star, x))
    with pytest.raises(ValueError, match="NaN"):
        kd.sign_disagreement(jnp.array([jnp.nan, 1.0]), b[:2])
    with pytest.raises(ValueError, match="same shape"):
        kd.sign_disagreement(a, b[:3])
    with pytest.raises(ValueError, match=r"shape \(m,\)"):
        kd.sign_disagreement(a[:, None], b[:, None])


# ----------------------------------------------------------------------------- numerical extremes


@pytest.mark.parametrize("scale", [1e20, 1e-25])
def test_angles_and_risks_do_not_overflow_or_underflow_in_float32(scale):
    # closed form: the angle between (1, 0) and (1, 0.1) is arctan(0.1), at any common scale
    a, b = np.array([1.0, 0.0], np.float32) * scale, np.array([1.0, 0.1], np.float32) * scale
    assert float(theory.vector_angle(a, b)) == pytest.approx(np.arctan(0.1), rel=1e-6)
    assert float(theory.gaussian_transfer_risk(a, b)) == pytest.approx(np.arctan(0.1) / np.pi)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w, w_star = np.array([1.0, 0.5, -0.2], np.float32), np.array([0.8, -0.1, 0.3], np.float32)
    reference = np.arcsin(np.abs(x @ w_star) / np.linalg.norm(w_star))  # float64, unit rows
    angles = theory.boundary_angles((x * scale).astype(np.float32), w_star / scale)
    np.testing.assert_allclose(angles, reference, rtol=1e-5, atol=1e-6)
    risk = float(np.mean((x @ w >= 0) != (x @ w_star >= 0)))
    assert float(theory.transfer_risk(w * scale, w_star / scale, x)) == pytest.approx(risk)
    covariance = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(
        theory.gaussian_transfer_risk(w * scale, w_star, covariance=covariance * scale),
        theory.gaussian_transfer_risk(w, w_star, covariance=covariance),
        rtol=1e-5,
    )
