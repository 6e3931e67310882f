"""kdbook.theory: transfer risks, data geometry, the risk bound and span projections.

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


# ----------------------------------------------------------------------------- fit_power_law


def test_fit_power_law_recovers_an_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    slope, constant = kd.fit_power_law(x, 3.0 * x**-0.5)
    assert slope == pytest.approx(-0.5) and constant == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        kd.fit_power_law(x, -x)
    with pytest.raises(ValueError, match="same length"):
        kd.fit_power_law(x, x[:3])


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
def test_span_projection_ignores_zero_rows_also_under_vmap(method):
    d, n_max = 12, 9
    x = jax.random.normal(jax.random.key(6), (n_max, d))
    w = jax.random.normal(jax.random.key(7), (d,))
    sizes = jnp.arange(1, n_max + 1)
    masks = (jnp.arange(n_max)[None, :] < sizes[:, None]).astype(x.dtype)
    padded = jax.jit(jax.vmap(lambda m: theory.span_projection(x * m[:, None], w, method=method)))(
        masks
    )
    for i, n in enumerate(sizes):
        direct = theory.span_projection(x[: int(n)], w, method=method)
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
        (lambda: theory.risk_bound(2.5, lambda t: t), "non-negative integers"),
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


def test_kernel_complexity_is_the_spectral_sum_and_the_rkhs_norm_of_the_interpolant():
    with kd.enable_x64():
        x = jax.random.normal(jax.random.key(0), (30, 4), dtype=jnp.float64)
        kernel = kd.two_layer_ntk(x)
        y = jnp.sin(3 * x[:, 0]) + x[:, 1]
        eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(kernel))
        spectral = np.sqrt(np.sum((eigenvectors.T @ np.asarray(y)) ** 2 / eigenvalues))
        assert abs(float(kd.kernel_complexity(kernel, y)) - spectral) < 1e-9 * spectral
        # RKHS norm of f = K alpha with K alpha = y is sqrt(alpha' K alpha)
        alpha = np.linalg.solve(np.asarray(kernel), np.asarray(y))
        rkhs = np.sqrt(alpha @ np.asarray(kernel) @ alpha)
        assert abs(float(kd.kernel_complexity(kernel, y)) - rkhs) < 1e-8 * rkhs
        two = jnp.stack([y, 2 * y], axis=1)
        assert np.isclose(kd.kernel_complexity(kernel, two), np.sqrt(5) * spectral, rtol=1e-10)
        ridged = kd.kernel_complexity(kernel, y, ridge=1.0)
        assert ridged < kd.kernel_complexity(kernel, y)


def test_kernel_complexity_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="rhs|targets"):
        kd.kernel_complexity(jnp.eye(3), jnp.ones(4))


def test_kernel_alignment_is_the_frobenius_cosine_and_its_spectral_form():
    x = jax.random.normal(jax.random.key(1), (25, 4))
    kernel = kd.two_layer_ntk(x)
    y = jnp.sign(x[:, 0])
    naive = float(np.sum(np.asarray(kernel) * np.outer(y, y)))
    naive /= np.linalg.norm(np.asarray(kernel)) * np.linalg.norm(np.outer(y, y))
    assert np.isclose(kd.kernel_alignment(kernel, y), naive, rtol=1e-5)
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(kernel, np.float64))
    spectral = np.sum(eigenvalues * (eigenvectors.T @ np.asarray(y)) ** 2)
    spectral /= np.sqrt(np.sum(eigenvalues**2)) * float(y @ y)
    assert np.isclose(kd.kernel_alignment(kernel, y), spectral, rtol=1e-5)
    # 1 exactly for K = c y y^T, invariant to scaling, below 1 otherwise
    assert np.isclose(kd.kernel_alignment(3.0 * jnp.outer(y, y), -2.0 * y), 1.0, rtol=1e-6)
    assert np.isclose(kd.kernel_alignment(5 * kernel, 0.1 * y), kd.kernel_alignment(kernel, y))
    assert 0 < kd.kernel_alignment(kernel, y) < 1


@pytest.mark.parametrize(
    "kernel, targets, match",
    [
        (jnp.ones((3, 4)), jnp.ones(3), "kernel must be"),
        (jnp.eye(3), jnp.ones(4), "targets must have n=3"),
        (jnp.zeros((3, 3)), jnp.ones(3), "non-zero"),
        (jnp.eye(3), jnp.zeros(3), "non-zero"),
    ],
)
def test_kernel_alignment_rejects_bad_input(kernel, targets, match):
    with pytest.raises(ValueError, match=match):
        kd.kernel_alignment(kernel, targets)


# ----------------------------------------------------------------------------- effective logits


def _hinton_reference(z_t, y, rho, temperature):
    """Root of the hinton stationarity equation by scipy's brentq (an independent solver)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    def g(z):
        soft = expit(z / temperature) - expit(z_t / temperature)
        return (1 - rho) * (expit(z) - y) + rho * temperature * soft

    return brentq(g, -200.0, 200.0, xtol=1e-13, rtol=1e-14)


@pytest.mark.parametrize("rho", [0.05, 0.3, 0.5, 0.8, 0.97])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0, 10.0])
def test_effective_logits_hinton_against_brentq(rho, temperature):
    # |z_t| / T <= 12: beyond that the reference's sigmoid differences cancel in float64
    z_t = np.linspace(-6.0, 6.0, 13) * min(1.0, temperature)
    with kd.enable_x64():
        for label in (0, 1):
            labels = np.full(z_t.shape, label)
            got = np.asarray(
                kd.effective_logits(z_t, labels, soft_ratio=rho, temperature=temperature)
            )
            expected = [_hinton_reference(z, label, rho, temperature) for z in z_t]
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_effective_logits_are_stationary_points_of_kd_loss(rho, temperature):
    with kd.enable_x64():
        z_t = jnp.linspace(-6.0, 6.0, 25)
        labels = (jax.random.uniform(jax.random.key(0), (25,)) < 0.5).astype(jnp.int32)
        for convention in ("hinton", "shared"):
            z = kd.effective_logits(
                z_t, labels, soft_ratio=rho, temperature=temperature, convention=convention
            )
            # the derivative of kd_loss itself (autodiff), not the closed-form gradient
            gradient = jax.grad(
                lambda s, c=convention: kd.kd_loss(
                    s,
                    z_t,
                    labels,
                    soft_ratio=rho,
                    temperature=temperature,
                    form="sigmoid",
                    convention=c,
                )
            )(z)
            assert float(jnp.max(jnp.abs(gradient))) < 1e-12


def test_effective_logits_shared_closed_form_and_conventions_at_t1():
    with kd.enable_x64():
        z_t = np.linspace(-5, 5, 21)
        labels = (z_t > 0).astype(int)
        rho, temperature = 0.3, 2.5
        q = rho / (1 + np.exp(-z_t / temperature)) + (1 - rho) * labels
        expected = temperature * np.log(q / (1 - q))
        got = kd.effective_logits(
            z_t, labels, soft_ratio=rho, temperature=temperature, convention="shared"
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        hinton = kd.effective_logits(z_t, labels, soft_ratio=rho)
        shared = kd.effective_logits(z_t, labels, soft_ratio=rho, convention="shared")
        np.testing.assert_allclose(hinton, shared, rtol=1e-12, atol=1e-12)


def test_effective_logits_edges_symmetry_and_monotonicity():
    z_t = jnp.linspace(-10.0, 10.0, 201)
    ones = jnp.ones(201, jnp.int32)
    for convention in ("hinton", "shared"):
        same = kd.effective_logits(
            z_t, ones, soft_ratio=1.0, temperature=3.0, convention=convention
        )
        assert np.array_equal(np.asarray(same), np.asarray(z_t))  # exactly the teacher
        hard = kd.effective_logits(z_t, ones, soft_ratio=0.0, convention=convention)
        assert np.all(np.isposinf(np.asarray(hard)))
        hard0 = kd.effective_logits(z_t, 0 * ones, soft_ratio=0.0, convention=convention)
        assert np.all(np.isneginf(np.asarray(hard0)))
        z = kd.effective_logits(z_t, ones, soft_ratio=0.4, temperature=2.0, convention=convention)
        assert np.all(np.diff(np.asarray(z)) > 0) and np.all(np.asarray(z) > np.asarray(z_t))
        mirrored = kd.effective_logits(
            -z_t, 0 * ones, soft_ratio=0.4, temperature=2.0, convention=convention
        )
        np.testing.assert_allclose(mirrored, -z, rtol=1e-6)


def test_effective_logits_of_confident_teachers_approach_the_t1_asymptote():
    # at T = 1 and large z_t: (1 - rho) e^-z = rho (e^-z_t - e^-z), so z = z_t - log(rho)
    with kd.enable_x64():
        z_t = np.array([40.0, 80.0, 300.0])
        for rho in (0.1, 0.5, 0.9):
            got = kd.effective_logits(z_t, np.ones(3, int), soft_ratio=rho)
            np.testing.assert_allclose(got, z_t - np.log(rho), rtol=1e-12)


def test_effective_logits_stay_accurate_for_confident_teachers_in_float32():
    # both sigmoids round to 1 in float32 here; the log-space sign test still finds the root
    z_t = jnp.array([20.0, 40.0, 80.0])
    got = kd.effective_logits(z_t, jnp.ones(3, jnp.int32), soft_ratio=0.5, temperature=1.0)
    with kd.enable_x64():
        expected = kd.effective_logits(
            np.asarray(z_t, np.float64), np.ones(3, int), soft_ratio=0.5, temperature=1.0
        )
    assert got.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_effective_logits_under_jit_and_vmap_over_the_soft_ratio():
    z_t, labels = jnp.array([-1.0, 0.5, 2.0]), jnp.array([1, 0, 1])
    rhos = jnp.array([0.2, 0.5, 0.9])
    batched = jax.jit(
        jax.vmap(lambda r: kd.effective_logits(z_t, labels, soft_ratio=r, temperature=2.0))
    )(rhos)
    for row, rho in zip(batched, rhos, strict=True):
        single = kd.effective_logits(z_t, labels, soft_ratio=float(rho), temperature=2.0)
        np.testing.assert_allclose(row, single, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=jnp.array([0, 2])), "labels must be 0 or 1"),
        (dict(labels=jnp.array([0.0, 1.0])), "labels must be integers"),
        (dict(labels=jnp.array([0, 1, 1])), "labels must have the shape"),
        (dict(teacher_logits=jnp.array([jnp.nan, 1.0])), "teacher_logits"),
        (dict(soft_ratio=1.5), "soft_ratio"),
        (dict(soft_ratio=float("nan")), "soft_ratio"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(convention="tang"), "convention"),
    ],
)
def test_effective_logits_bad_input(kwargs, match):
    arguments = dict(
        teacher_logits=jnp.array([0.5, -1.0]), labels=jnp.array([1, 0]), soft_ratio=0.5
    )
    arguments.update(kwargs)
    teacher, labels = arguments.pop("teacher_logits"), arguments.pop("labels")
    with pytest.raises(ValueError, match=match):
        kd.effective_logits(teacher, labels, **arguments)


@pytest.mark.parametrize("convention", ["hinton", "shared"])
@pytest.mark.parametrize("rho, temperature", [(0.6, 1.0), (0.75, 2.0), (0.9, 4.0), (0.95, 0.5)])
def test_correction_threshold_is_where_the_effective_logit_changes_sign(
    convention, rho, temperature
):
    tau = kd.correction_threshold(soft_ratio=rho, temperature=temperature, convention=convention)
    assert np.isfinite(tau) and tau < 0
    with kd.enable_x64():
        z = kd.effective_logits(
            np.array([tau - 1e-7, tau + 1e-7]),
            np.ones(2, int),
            soft_ratio=rho,
            temperature=temperature,
            convention=convention,
        )
        z = np.asarray(z)
    assert z[0] < 0 < z[1]


def test_correction_threshold_closed_forms_and_edges():
    assert kd.correction_threshold(soft_ratio=0.9, convention="shared") == pytest.approx(
        np.log(0.8)
    )
    assert kd.correction_threshold(soft_ratio=0.9, temperature=3.0) == pytest.approx(
        3.0 * np.log((0.9 * 4 - 1) / (0.9 * 2 + 1))
    )
    assert kd.correction_threshold(soft_ratio=1.0, temperature=2.0) == 0.0  # nothing corrected
    # every wrong logit is corrected: shared for rho <= 1/2, hinton for rho T <= 1 - rho
    assert kd.correction_threshold(soft_ratio=0.5, convention="shared") == -np.inf
    assert kd.correction_threshold(soft_ratio=0.2, temperature=2.0) == -np.inf
    with kd.enable_x64():
        far = np.asarray(
            kd.effective_logits(np.array([-60.0]), np.ones(1, int), soft_ratio=0.2, temperature=2.0)
        )
    assert far[0] > 0
    with pytest.raises(ValueError, match="soft_ratio"):
        kd.correction_threshold(soft_ratio=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        kd.correction_threshold(soft_ratio=0.5, temperature=-1.0)


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


# ----------------------------------------------------------------------------- data inefficiency


def test_data_inefficiency_of_power_laws_and_saturation():
    sizes = np.array([10, 20, 40, 80, 160])
    mid, values = kd.data_inefficiency(sizes, 3.0 * sizes**0.75)
    np.testing.assert_allclose(values, 0.75, rtol=1e-12)
    np.testing.assert_allclose(mid, np.sqrt(sizes[1:] * sizes[:-1]))
    # a norm that saturates, 1 - 1/n: the log-derivative is 1/(n - 1), measured by differences
    _, saturating = kd.data_inefficiency(sizes, 1.0 - 1.0 / sizes)
    assert np.all(np.diff(saturating) < 0) and saturating[-1] < 0.01
    # draws are averaged in log space: two power laws with exponents 0.5 and 1 give 0.75
    draws = np.stack([sizes**0.5, 2.0 * sizes**1.0])
    np.testing.assert_allclose(kd.data_inefficiency(sizes, draws)[1], 0.75, rtol=1e-12)
    # consecutive sizes: n (log|w_{n+1}| - log|w_n|), up to the midpoint correction
    norms = np.array([1.0, 1.01])
    value = kd.data_inefficiency(np.array([100, 101]), norms)[1][0]
    assert value == pytest.approx(100 * np.log(1.01), rel=1e-2)


@pytest.mark.parametrize(
    "sizes, norms, match",
    [
        (np.array([10]), np.array([1.0]), "at least 2"),
        (np.array([10.0, 20.0]), np.array([1.0, 2.0]), "integers"),
        (np.array([20, 10]), np.array([1.0, 2.0]), "increasing"),
        (np.array([0, 10]), np.array([1.0, 2.0]), "increasing"),
        (np.array([10, 20]), np.array([1.0, 2.0, 3.0]), "shape"),
        (np.array([10, 20]), np.array([1.0, 0.0]), "positive"),
        (np.array([10, 20]), np.array([1.0, np.nan]), "positive"),
    ],
)
def test_data_inefficiency_bad_input(sizes, norms, match):
    with pytest.raises(ValueError, match=match):
        kd.data_inefficiency(sizes, norms)


# ----------------------------------------------------------------------------- class geometry


def _naive_group_similarity(vectors, groups, centre):
    v = np.asarray(vectors, dtype=float)
    if centre:
        v = v - v.mean(axis=1, keepdims=True)
    k = v.shape[0]
    within, between = [], []
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            c = v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])
            (within if groups[a] == groups[b] else between).append(c)
    return np.mean(within), np.mean(between)


@pytest.mark.parametrize("measure", ["cosine", "correlation"])
def test_group_similarity_matches_a_naive_double_loop(measure):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(9, 5))
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    with kd.enable_x64():
        result = kd.group_similarity(jnp.asarray(vectors), groups, measure=measure)
        within, between = _naive_group_similarity(vectors, groups, measure == "correlation")
        np.testing.assert_allclose(float(result.within), within, rtol=1e-12)
        np.testing.assert_allclose(float(result.between), between, rtol=1e-12)
        np.testing.assert_allclose(float(result.gap), within - between, rtol=1e-12)
        np.testing.assert_allclose(np.diag(np.asarray(result.matrix)), 1.0, rtol=1e-12)
    if measure == "correlation":
        np.testing.assert_allclose(np.asarray(result.matrix), np.corrcoef(vectors), atol=1e-6)


def test_group_similarity_sees_planted_blocks_and_not_shuffled_ones():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(4, 30))
    groups = np.repeat(np.arange(4), 5)
    vectors = centres[groups] + 0.3 * rng.normal(size=(20, 30))
    assert float(kd.group_similarity(vectors, groups).gap) > 0.5
    shuffled = kd.group_similarity(vectors, rng.permutation(groups))
    assert abs(float(shuffled.gap)) < 0.2


@pytest.mark.parametrize(
    "vectors, groups, measure, match",
    [
        (np.ones((3, 2)), np.array([0, 0, 1]), "angle", "measure"),
        (np.ones(3), np.array([0, 0, 1]), "cosine", "vectors must have shape"),
        (np.ones((3, 2)), np.array([0, 1]), "cosine", "groups must be"),
        (np.ones((3, 2)), np.array([0.0, 0.0, 1.0]), "cosine", "groups must be"),
        (np.ones((3, 2)), np.array([0, 1, 2]), "cosine", "group with two rows"),
        (np.ones((3, 2)), np.array([0, 0, 0]), "cosine", "at least two groups"),
        (
            np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]),
            np.array([0, 0, 1]),
            "cosine",
            "row 1 of vectors is zero",
        ),
        (
            np.array([[1.0, 2.0], [3.0, 3.0], [0.0, 1.0]]),
            np.array([0, 0, 1]),
            "correlation",
            "row 1 of vectors is constant",
        ),
    ],
)
def test_group_similarity_rejects_bad_input(vectors, groups, measure, match):
    with pytest.raises(ValueError, match=match):
        kd.group_similarity(vectors, groups, measure=measure)
