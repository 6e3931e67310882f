"""kdbook.theory.complexity: kernel complexity, alignment, supervision complexity, margins
and the terms of the margin bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdbook as kd

# ----------------------------------------------------------------------------- kernel complexity


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


# --------------------------------------------------------------------------- supervision complexity


def _random_kernel(key, n, features):
    phi = jax.random.normal(key, (n, features))
    return phi, phi @ phi.T


def test_adjusted_supervision_complexity_is_the_trace_formula_in_float64():
    with kd.enable_x64():
        phi, kernel = _random_kernel(jax.random.key(0), 30, 60)
        y = jax.random.normal(jax.random.key(1), (30, 4))
        k, yy = np.asarray(kernel), np.asarray(y)
        expected = np.sqrt(np.trace(k) * np.trace(yy.T @ np.linalg.inv(k) @ yy)) / 30
        got = kd.adjusted_supervision_complexity(kernel, y)
        np.testing.assert_allclose(float(got), expected, rtol=1e-10)
        # the ridge is relative to the mean eigenvalue tr(K) / n
        lam = 0.3 * np.trace(k) / 30
        ridged = np.sqrt(np.trace(k) * np.trace(yy.T @ np.linalg.inv(k + lam * np.eye(30)) @ yy))
        got = kd.adjusted_supervision_complexity(kernel, y, ridge=0.3)
        np.testing.assert_allclose(float(got), ridged / 30, rtol=1e-10)


def test_minimum_norm_fit_has_the_complexity_as_its_norm_and_gradient_descent_reaches_it():
    """||Phi^T K^-1 Y||_F^2 = tr(Y^T K^-1 Y), and gradient descent from zero converges to it."""
    with kd.enable_x64():
        phi, kernel = _random_kernel(jax.random.key(2), 20, 80)
        y = jax.random.normal(jax.random.key(3), (20, 3))
        w_star = phi.T @ jnp.linalg.solve(kernel, y)
        complexity = kd.kernel_complexity(kernel, y)
        np.testing.assert_allclose(float(jnp.linalg.norm(w_star)), float(complexity), rtol=1e-10)
        # plain gradient descent on the squared loss from W = 0, the closed form of its iterates
        eigenvalues = np.linalg.eigvalsh(np.asarray(kernel))
        eta = 1.0 / eigenvalues[-1]
        w = jax.lax.fori_loop(
            0, 3000, lambda _, w: w - eta * phi.T @ (phi @ w - y), jnp.zeros_like(w_star)
        )
        gap = abs(float(jnp.linalg.norm(w)) - float(complexity)) / float(complexity)
        assert gap < 1e-3, gap
        np.testing.assert_allclose(
            float(kd.adjusted_supervision_complexity(kernel, y)),
            float(jnp.linalg.norm(w_star) * jnp.sqrt(jnp.trace(kernel)) / 20),
            rtol=1e-10,
        )


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_adjusted_supervision_complexity_invariances(scale):
    with kd.enable_x64():
        _, kernel = _random_kernel(jax.random.key(4), 25, 40)
        y = jax.nn.one_hot(jax.random.randint(jax.random.key(5), (25,), 0, 5), 5)
        base = float(kd.adjusted_supervision_complexity(kernel, y, ridge=1e-3))
        kernel_scaled = float(kd.adjusted_supervision_complexity(scale * kernel, y, ridge=1e-3))
        targets_scaled = float(kd.adjusted_supervision_complexity(kernel, scale * y, ridge=1e-3))
        np.testing.assert_allclose(kernel_scaled, base, rtol=1e-10)
        np.testing.assert_allclose(targets_scaled, scale * base, rtol=1e-10)


def test_adjusted_supervision_complexity_is_smaller_for_targets_on_large_eigenvalues():
    with kd.enable_x64():
        _, kernel = _random_kernel(jax.random.key(6), 40, 60)
        eigenvalues, vectors = np.linalg.eigh(np.asarray(kernel))
        top, bottom = vectors[:, -1], vectors[:, 0]
        smooth = float(kd.adjusted_supervision_complexity(kernel, top))
        rough = float(kd.adjusted_supervision_complexity(kernel, bottom))
        expected = np.sqrt(eigenvalues[-1] / eigenvalues[0])
        np.testing.assert_allclose(rough / smooth, expected, rtol=1e-8)


def test_adjusted_supervision_complexity_of_an_ill_conditioned_float32_kernel():
    x = jnp.linspace(0.0, 1.0, 60)[:, None]
    kernel = jnp.exp(-((x - x.T) ** 2) / 0.5)  # smooth: eigenvalues decay below float32 eps
    y = jnp.sin(6 * x[:, 0])
    with pytest.raises(np.linalg.LinAlgError, match="ridge"):
        kd.adjusted_supervision_complexity(kernel, y)
    ridged = kd.adjusted_supervision_complexity(kernel, y, ridge=1e-4)
    assert np.isfinite(float(ridged))
    with kd.enable_x64():
        x64 = jnp.asarray(np.asarray(kernel), dtype=jnp.float64)
        reference = kd.adjusted_supervision_complexity(x64, jnp.asarray(y, jnp.float64), ridge=1e-4)
    np.testing.assert_allclose(float(ridged), float(reference), rtol=1e-2)


# ----------------------------------------------------------------------------- margins and bound


def _naive_margin(outputs, labels):
    out = []
    for row, y in zip(np.asarray(outputs), np.asarray(labels), strict=True):
        others = [row[c] for c in range(row.size) if c != y]
        out.append(row[y] - max(others))
    return np.array(out)


def test_multiclass_margin_matches_a_naive_loop():
    outputs = jax.random.normal(jax.random.key(7), (50, 6))
    labels = jax.random.randint(jax.random.key(8), (50,), 0, 6)
    got = kd.multiclass_margin(outputs, labels)
    np.testing.assert_allclose(np.asarray(got), _naive_margin(outputs, labels), rtol=1e-6)
    assert np.array_equal(np.asarray(got) > 0, np.asarray(jnp.argmax(outputs, 1) == labels))


def test_supervision_bound_terms_count_and_the_pointwise_decomposition_holds():
    key_k, key_y, key_t, key_f = jax.random.split(jax.random.key(9), 4)
    n, k = 60, 4
    _, kernel = _random_kernel(key_k, n, 90)
    labels = jax.random.randint(key_y, (n,), 0, k)
    targets = jax.nn.softmax(3 * jax.random.normal(key_t, (n, k)), axis=1)
    outputs = targets + 0.2 * jax.random.normal(key_f, (n, k))
    teacher = np.argmax(np.asarray(targets), 1)
    for gamma in (0.05, 0.1, 0.2):
        terms = kd.supervision_bound_terms(outputs, labels, targets, kernel, margin=gamma)
        margins_t = _naive_margin(outputs, teacher)
        margins_y = _naive_margin(outputs, labels)
        assert float(terms.teacher_error) == pytest.approx(np.mean(teacher != np.asarray(labels)))
        assert float(terms.margin_loss) == pytest.approx(np.mean(margins_t <= gamma))
        centred = targets - targets.mean(axis=1, keepdims=True)
        asc = kd.adjusted_supervision_complexity(kernel, centred)
        assert float(terms.complexity) == pytest.approx(k * float(asc) / gamma, rel=1e-6)
        assert float(terms.total) == pytest.approx(
            float(terms.teacher_error + terms.margin_loss + terms.complexity)
        )
        # 1[rho(x, y) <= gamma] <= 1[t != y] + 1[rho(x, t) <= gamma], example by example
        lhs = margins_y <= gamma
        rhs = (teacher != np.asarray(labels)).astype(int) + (margins_t <= gamma)
        assert np.all(lhs <= rhs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kd.adjusted_supervision_complexity(jnp.ones((3, 2)), jnp.ones(3)), "square"),
        (lambda: kd.adjusted_supervision_complexity(jnp.zeros((3, 3)), jnp.ones(3)), "trace"),
        (lambda: kd.adjusted_supervision_complexity(jnp.eye(3), jnp.ones(4)), "targets"),
        (lambda: kd.adjusted_supervision_complexity(jnp.eye(3), jnp.ones(3), ridge=-1), "ridge"),
        (lambda: kd.multiclass_margin(jnp.ones(3), jnp.zeros(3, int)), r"\(n, k\)"),
        (lambda: kd.multiclass_margin(jnp.ones((3, 1)), jnp.zeros(3, int)), "k >= 2"),
        (lambda: kd.multiclass_margin(jnp.ones((3, 2)), jnp.zeros(3)), "labels must be"),
        (lambda: kd.multiclass_margin(jnp.ones((3, 2)), jnp.array([0, 2, 1])), r"\[0, 2\)"),
        (
            lambda: kd.supervision_bound_terms(
                jnp.ones((3, 2)), jnp.zeros(3, int), jnp.ones((3, 2)), jnp.eye(3), margin=0.0
            ),
            "margin",
        ),
        (
            lambda: kd.supervision_bound_terms(
                jnp.ones((3, 2)), jnp.zeros(3, int), jnp.ones((3, 3)), jnp.eye(3), margin=0.1
            ),
            "targets must have the shape",
        ),
        (
            lambda: kd.supervision_bound_terms(
                jnp.ones((3, 2)), jnp.zeros(3, int), jnp.ones((3, 2)), jnp.eye(3), margin=0.1
            ),
            "every row of targets is constant",
        ),
    ],
)
def test_supervision_complexity_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_centring_the_targets_changes_no_margin_of_the_kernel_student():
    """Why the bound may use centred targets: the fit of the row means adds the same number to
    every class score of an input."""
    with kd.enable_x64():
        _, kernel = _random_kernel(jax.random.key(10), 40, 70)
        targets = jax.nn.softmax(2 * jax.random.normal(jax.random.key(11), (40, 5)), axis=1)
        cross = (
            jax.random.normal(jax.random.key(12), (15, 70))
            @ _random_kernel(jax.random.key(10), 40, 70)[0].T
        )
        centred = targets - targets.mean(axis=1, keepdims=True)
        full = kd.kernel_regression(kernel, targets, kernel_test_train=cross)
        less = kd.kernel_regression(kernel, centred, kernel_test_train=cross)
        labels = jnp.argmax(full, axis=1)
        np.testing.assert_allclose(
            kd.multiclass_margin(full, labels), kd.multiclass_margin(less, labels), atol=1e-10
        )
        assert kd.adjusted_supervision_complexity(kernel, centred) < (
            kd.adjusted_supervision_complexity(kernel, targets)
        )


# ----------------------------------------------------------------------------- numerical extremes


def _small_problem():
    x = np.asarray(kd.sample_sphere(6, dim=3, key=jax.random.key(7)), np.float64)
    return x @ x.T + 0.5 * np.eye(6), x[:, 0] + 0.3


@pytest.mark.parametrize("kernel_scale, target_scale", [(1e25, 1.0), (1e-25, 1.0), (1.0, 1e12)])
def test_kernel_alignment_is_scale_invariant_in_float32(kernel_scale, target_scale):
    kernel, y = _small_problem()
    reference = (y @ kernel @ y) / (np.linalg.norm(kernel) * (y @ y))  # float64 closed form
    value = kd.kernel_alignment(
        (kernel * kernel_scale).astype(np.float32), (y * target_scale).astype(np.float32)
    )
    assert float(value) == pytest.approx(reference, rel=1e-5)


def test_kernel_complexity_and_its_adjusted_form_of_extreme_scales_in_float32():
    kernel, y = _small_problem()
    reference = np.sqrt(y @ np.linalg.solve(kernel, y))  # float64
    value = kd.kernel_complexity(kernel.astype(np.float32), (y * 1e20).astype(np.float32))
    assert float(value) == pytest.approx(1e20 * reference, rel=1e-5)
    # the trace of 6 K * 1e38 overflows float32; the adjusted complexity is scale-invariant
    adjusted = np.sqrt(np.trace(kernel) * (y @ np.linalg.solve(kernel, y))) / 6
    for scale in (1e38, 1e-30):
        value = kd.adjusted_supervision_complexity((kernel * scale).astype(np.float32), y)
        assert float(value) == pytest.approx(adjusted, rel=1e-4)
