"""Tests of kdbook.kernels against independent references.

References: NumPy solves and eigendecompositions in float64, explicit gradient-descent loops,
``scipy.linalg.expm`` for gradient flow, and a float32 kernel that really breaks Cholesky.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import kdbook as kd
from kdbook.kernels import kernel_regression, kernel_solve, kernel_spectrum, linearized_dynamics


def rbf(a, b, bandwidth=1.0):
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-squared / (2 * bandwidth**2))


def problem(seed=0, n=24, m=7, k=3, dim=4, jitter=0.0):
    """An RBF kernel problem in NumPy float64: K, K_*, y, f0(X), f0(X_*)."""
    rng = np.random.default_rng(seed)
    x_train, x_test = rng.normal(size=(n, dim)), rng.normal(size=(m, dim))
    kernel = rbf(x_train, x_train) + jitter * np.eye(n)
    return (
        kernel,
        rbf(x_test, x_train),
        rng.normal(size=(n, k)),
        0.3 * rng.normal(size=(n, k)),
        0.3 * rng.normal(size=(m, k)),
    )


def gradient_descent(kernel, cross, y, f0, f0_test, learning_rate, steps):
    """Explicit GD on the linearized model: f <- f - (eta/n) K (f - y), test likewise."""
    n = kernel.shape[0]
    f, f_test, out_train, out_test = f0.copy(), f0_test.copy(), {}, {}
    for step in range(max(steps) + 1):
        if step in steps:
            out_train[step], out_test[step] = f.copy(), f_test.copy()
        residual = f - y
        f = f - learning_rate / n * kernel @ residual
        f_test = f_test - learning_rate / n * cross @ residual
    return np.stack([out_train[s] for s in steps]), np.stack([out_test[s] for s in steps])


def near_duplicate_kernel(n=40, dim=3, seed=0):
    """An RBF kernel whose inputs contain near-duplicate pairs: condition number ~1e11."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x[1::4] = x[0::4] + 1e-5 * rng.normal(size=x[0::4].shape)
    return rbf(x, x), rng.normal(size=(n, 2)), rbf(rng.normal(size=(5, dim)), x)


# ----------------------------------------------------------------------------- solves


@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_kernel_solve_and_regression_match_numpy_solve(ridge):
    kernel, cross, y, _, _ = problem(jitter=1e-3)
    reference = np.linalg.solve(kernel + ridge * np.eye(len(kernel)), y)
    with kd.enable_x64():
        solution = kernel_solve(kernel, y, ridge=ridge)
        vector = kernel_solve(kernel, y[:, 0], ridge=ridge)
        predicted = kernel_regression(kernel, y, kernel_test_train=cross, ridge=ridge)
        fitted = kernel_regression(kernel, y[:, 1], ridge=ridge)
    assert solution.dtype == jnp.float64 and solution.shape == y.shape
    np.testing.assert_allclose(solution, reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(vector, reference[:, 0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(predicted, cross @ reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fitted, kernel @ reference[:, 1], rtol=1e-9, atol=1e-9)


def test_minimum_norm_regression_interpolates_the_training_targets():
    kernel, _, y, _, _ = problem()
    with kd.enable_x64():
        fitted = kernel_regression(kernel, y)
    np.testing.assert_allclose(fitted, y, atol=1e-8)


def test_ridge_shrinks_the_fit_towards_zero():
    kernel, _, y, _, _ = problem()
    norms = [
        float(jnp.linalg.norm(kernel_regression(kernel, y, ridge=ridge))) for ridge in (0.1, 1, 10)
    ]
    assert norms[0] > norms[1] > norms[2]


def test_kernel_solve_runs_under_jit():
    kernel, _, y, _, _ = problem(jitter=1e-2)
    solution = jax.jit(lambda a, b: kernel_solve(a, b, ridge=0.1))(kernel, y)
    np.testing.assert_allclose(
        solution, np.linalg.solve(kernel + 0.1 * np.eye(len(kernel)), y), rtol=1e-3, atol=1e-4
    )


# ----------------------------------------------------------------------------- spectrum


def test_kernel_spectrum_is_descending_and_reconstructs_the_kernel():
    kernel, _, _, _, _ = problem()
    with kd.enable_x64():
        eigenvalues, eigenvectors = kernel_spectrum(kernel)
    eigenvalues, eigenvectors = np.asarray(eigenvalues), np.asarray(eigenvectors)
    assert np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(eigenvalues, np.linalg.eigvalsh(kernel)[::-1], atol=1e-12)
    np.testing.assert_allclose(eigenvectors.T @ eigenvectors, np.eye(len(kernel)), atol=1e-12)
    np.testing.assert_allclose(
        eigenvectors @ np.diag(eigenvalues) @ eigenvectors.T, kernel, atol=1e-12
    )
    for i in range(len(kernel)):  # columns are eigenvectors of their eigenvalues
        np.testing.assert_allclose(
            kernel @ eigenvectors[:, i], eigenvalues[i] * eigenvectors[:, i], atol=1e-12
        )


# ----------------------------------------------------------------------------- dynamics


@pytest.mark.parametrize("stability", [0.3, 1.8])  # eta * lambda_max / n; 1.8 oscillates
def test_discrete_dynamics_match_explicit_gradient_descent(stability):
    kernel, cross, y, f0, f0_test = problem()
    n = len(kernel)
    learning_rate = stability * n / np.linalg.eigvalsh(kernel)[-1]
    steps = [0, 1, 2, 7, 40]
    reference_train, reference_test = gradient_descent(
        kernel, cross, y, f0, f0_test, learning_rate, steps
    )
    with kd.enable_x64():
        f_train, f_test = linearized_dynamics(
            kernel,
            y,
            times=steps,
            learning_rate=learning_rate,
            f0_train=f0,
            kernel_test_train=cross,
            f0_test=f0_test,
            discrete=True,
        )
    assert f_train.shape == (len(steps), n, 3) and f_test.shape == (len(steps), len(cross), 3)
    np.testing.assert_allclose(f_train, reference_train, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f_test, reference_test, rtol=1e-9, atol=1e-9)


def test_discrete_dynamics_with_a_singular_kernel_match_gradient_descent():
    # A linear kernel X X^T of rank 3 < n: K^{-1} does not exist, the dynamics still do.
    rng = np.random.default_rng(1)
    x, x_test = rng.normal(size=(12, 3)), rng.normal(size=(4, 3))
    kernel, cross, y = x @ x.T, x_test @ x.T, rng.normal(size=12)
    steps = [0, 3, 25]
    reference_train, reference_test = gradient_descent(
        kernel, cross, y, np.zeros(12), np.zeros(4), 1.0, steps
    )
    with kd.enable_x64():
        f_train, f_test = linearized_dynamics(
            kernel, y, times=steps, learning_rate=1.0, kernel_test_train=cross, discrete=True
        )
    assert f_train.shape == (3, 12) and f_test.shape == (3, 4)
    np.testing.assert_allclose(f_train, reference_train, atol=1e-9)
    np.testing.assert_allclose(f_test, reference_test, atol=1e-9)
    # In float32 the zero eigenvalues are round-off (and clipped); the result stays accurate.
    f_train32, f_test32 = linearized_dynamics(
        kernel, y, times=steps, learning_rate=1.0, kernel_test_train=cross, discrete=True
    )
    np.testing.assert_allclose(f_train32, reference_train, atol=1e-4)
    np.testing.assert_allclose(f_test32, reference_test, atol=1e-4)


def test_gradient_flow_matches_the_matrix_exponential():
    kernel, cross, y, f0, f0_test = problem()
    n, learning_rate, times = len(kernel), 0.7, [0.0, 0.5, 3.0, 40.0]
    with kd.enable_x64():
        f_train, f_test = linearized_dynamics(
            kernel,
            y,
            times=times,
            learning_rate=learning_rate,
            f0_train=f0,
            kernel_test_train=cross,
            f0_test=f0_test,
        )
    residual = y - f0
    for i, t in enumerate(times):
        decay = scipy.linalg.expm(-learning_rate * t / n * kernel)
        np.testing.assert_allclose(f_train[i], y - decay @ residual, rtol=1e-9, atol=1e-9)
        expected_test = f0_test + cross @ np.linalg.solve(kernel, residual - decay @ residual)
        np.testing.assert_allclose(f_test[i], expected_test, rtol=1e-6, atol=1e-7)


def test_gradient_flow_is_the_small_step_limit_of_gradient_descent():
    kernel, cross, y, _, _ = problem()
    steps_per_unit = 1000
    flow_train, flow_test = linearized_dynamics(
        kernel, y, times=[2.0, 5.0], learning_rate=1.0, kernel_test_train=cross
    )
    with kd.enable_x64():
        gd_train, gd_test = linearized_dynamics(
            kernel,
            y,
            times=[2 * steps_per_unit, 5 * steps_per_unit],
            learning_rate=1.0 / steps_per_unit,
            kernel_test_train=cross,
            discrete=True,
        )
    np.testing.assert_allclose(flow_train, gd_train, atol=2e-3)
    np.testing.assert_allclose(flow_test, gd_test, atol=2e-3)


def test_infinite_time_is_kernel_regression_and_the_large_time_limit():
    kernel, cross, y, f0, f0_test = problem(jitter=0.05)
    with kd.enable_x64():
        f_train, f_test = linearized_dynamics(
            kernel,
            y,
            times=[1e7, np.inf, 1.0],
            learning_rate=1.0,
            f0_train=f0,
            kernel_test_train=cross,
            f0_test=f0_test,
        )
        regression = np.asarray(kernel_regression(kernel, y - f0, kernel_test_train=cross))
        plain_train, plain_test = linearized_dynamics(
            kernel, y, times=[np.inf], learning_rate=1.0, kernel_test_train=cross
        )
        plain_regression = np.asarray(kernel_regression(kernel, y, kernel_test_train=cross))
    np.testing.assert_allclose(f_train[1], y, atol=1e-12)
    np.testing.assert_allclose(f_test[1], f0_test + regression, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f_train[0], f_train[1], atol=1e-8)
    np.testing.assert_allclose(f_test[0], f_test[1], atol=1e-8)
    assert not np.allclose(f_test[2], f_test[1], atol=1e-2)  # t = 1 is far from the limit
    np.testing.assert_allclose(plain_test[0], plain_regression, rtol=1e-12)
    np.testing.assert_array_equal(plain_train[0], y)


def test_residual_decays_along_each_eigendirection_at_its_own_rate():
    kernel, _, y, _, _ = problem()
    n, learning_rate, times = len(kernel), 2.0, np.array([0.0, 1.0, 10.0, 100.0])
    with kd.enable_x64():
        eigenvalues, eigenvectors = kernel_spectrum(kernel)
        f_train, _ = linearized_dynamics(kernel, y[:, 0], times=times, learning_rate=learning_rate)
    components = (y[:, 0][None, :] - np.asarray(f_train)) @ np.asarray(eigenvectors)  # (T, n)
    expected = np.exp(-learning_rate * times[:, None] * np.asarray(eigenvalues)[None, :] / n)
    np.testing.assert_allclose(components, expected * components[0][None, :], atol=1e-10)
    # Top directions are learned first: at t = 100 the top residual is gone, the last is not.
    assert abs(components[3, 0]) < 1e-6 * abs(components[0, 0])
    assert abs(components[3, -1]) > 0.5 * abs(components[0, -1])


def test_vector_targets_give_vector_outputs_and_no_test_without_test_kernel():
    kernel, _, y, _, _ = problem()
    f_train, f_test = linearized_dynamics(kernel, y[:, 0], times=[0, 1], learning_rate=1.0)
    assert f_train.shape == (2, len(kernel)) and f_test is None
    np.testing.assert_allclose(f_train[0], np.zeros(len(kernel)))


# ----------------------------------------------------------------------------- reliability


def test_near_duplicate_inputs_really_break_float32_cholesky():
    kernel, _, _ = near_duplicate_kernel()
    factor, _ = jax.scipy.linalg.cho_factor(jnp.asarray(kernel, jnp.float32))
    assert not np.isfinite(np.asarray(factor)).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda kernel, y, cross: kernel_solve(kernel, y),
        lambda kernel, y, cross: kernel_regression(kernel, y, kernel_test_train=cross),
        lambda kernel, y, cross: linearized_dynamics(
            kernel, y, times=[np.inf], learning_rate=1.0, kernel_test_train=cross
        ),
        lambda kernel, y, cross: linearized_dynamics(kernel, y, times=[np.inf], learning_rate=1.0),
    ],
    ids=["kernel_solve", "kernel_regression", "dynamics", "dynamics_train_only"],
)
def test_an_ill_conditioned_float32_kernel_raises_instead_of_returning_nan(call):
    kernel, y, cross = near_duplicate_kernel()
    with pytest.raises(np.linalg.LinAlgError, match="ridge") as error:
        call(kernel, y, cross)
    message = str(error.value)
    assert "float64" in message and "float32" in message and "(40, 40)" in message
    assert isinstance(error.value, ValueError)


def test_a_ridge_or_float64_fixes_the_ill_conditioned_kernel():
    kernel, y, cross = near_duplicate_kernel()
    ridge = 1e-6 * np.mean(np.diag(kernel))
    assert np.isfinite(np.asarray(kernel_solve(kernel, y, ridge=ridge))).all()
    assert np.isfinite(
        np.asarray(kernel_regression(kernel, y, kernel_test_train=cross, ridge=ridge))
    ).all()
    with kd.enable_x64():
        solution = kernel_solve(kernel, y)
        f_train, f_test = linearized_dynamics(
            kernel, y, times=[np.inf], learning_rate=1.0, kernel_test_train=cross
        )
    assert solution.dtype == jnp.float64
    solution = np.asarray(solution)  # backward stable: the residual is round-off of K x
    residual = np.linalg.norm(kernel @ solution - y)
    assert residual < 1e-12 * np.linalg.norm(kernel, 2) * np.linalg.norm(solution)
    assert np.isfinite(np.asarray(f_test)).all()


def test_finite_time_dynamics_of_the_ill_conditioned_kernel_stay_finite_in_float32():
    kernel, y, cross = near_duplicate_kernel()
    f_train, f_test = linearized_dynamics(
        kernel, y, times=[0, 10, 1e4], learning_rate=1.0, kernel_test_train=cross
    )
    with kd.enable_x64():
        reference_train, reference_test = linearized_dynamics(
            kernel, y, times=[0, 10, 1e4], learning_rate=1.0, kernel_test_train=cross
        )
    # float32 eigenvectors of the near-null cluster (eigenvalues below eps32 * lambda_max) are
    # only determined as a subspace, and the LAPACK build decides them: the largest deviation was
    # below 1e-3 on one machine and 1.3e-3 on another, for outputs of size ~1
    np.testing.assert_allclose(f_train, reference_train, atol=5e-3)
    np.testing.assert_allclose(f_test, reference_test, atol=5e-3)


def test_a_kernel_with_a_negative_eigenvalue_is_rejected():
    kernel = np.diag([1.0, -1.0])
    with pytest.raises(np.linalg.LinAlgError, match="not numerically positive definite"):
        kernel_solve(kernel, np.ones(2))
    with pytest.raises(np.linalg.LinAlgError, match="not numerically positive definite"):
        linearized_dynamics(kernel, np.ones(2), times=[np.inf], learning_rate=1.0)
    with pytest.raises(np.linalg.LinAlgError, match="not positive semi-definite"):
        linearized_dynamics(kernel, np.ones(2), times=[1.0], learning_rate=1.0)


# ----------------------------------------------------------------------------- bad input

KERNEL, CROSS, Y = np.eye(3) + 0.1, np.ones((2, 3)), np.ones(3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kernel_solve(np.ones((3, 4)), Y), r"kernel must be a square.*\(3, 4\)"),
        (lambda: kernel_solve(np.ones(3), Y), r"kernel must be a square.*\(3,\)"),
        (lambda: kernel_solve(KERNEL, np.ones(4)), r"targets must have shape \(3,\)"),
        (lambda: kernel_solve(KERNEL, np.ones((3, 2, 1))), "targets must have shape"),
        (lambda: kernel_solve(KERNEL, Y, ridge=-1.0), "ridge must be >= 0, got -1.0"),
        (lambda: kernel_solve(np.triu(KERNEL), Y), "kernel must be symmetric"),
        (lambda: kernel_solve(KERNEL * np.nan, Y), "kernel contains non-finite"),
        (lambda: kernel_solve(KERNEL, Y * np.inf), "targets contains .*(NaN|non-finite)"),
        (lambda: kernel_spectrum(np.ones((2, 3))), "kernel must be a square"),
        (lambda: kernel_regression(KERNEL, np.ones(2)), r"targets must have shape \(3,\)"),
        (
            lambda: kernel_regression(KERNEL, Y, kernel_test_train=np.ones((2, 4))),
            r"kernel_test_train.*\(m, 3\)",
        ),
        (
            lambda: kernel_regression(KERNEL, Y, kernel_test_train=np.ones(3)),
            "kernel_test_train must have shape",
        ),
        (lambda: kernel_regression(KERNEL, Y, ridge=-0.5), "ridge must be >= 0"),
        (
            lambda: linearized_dynamics(np.ones((3, 2)), Y, times=[1], learning_rate=1.0),
            "kernel must be a square",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[1.0, -2.0], learning_rate=1.0),
            "times must be >= 0",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[np.nan], learning_rate=1.0),
            "times must be >= 0",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[[1.0]], learning_rate=1.0),
            "times must be a non-empty 1-D",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[], learning_rate=1.0),
            "times must be a non-empty 1-D",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[1], learning_rate=0.0),
            "learning_rate must be > 0, got 0.0",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[1], learning_rate=-1.0),
            "learning_rate must be > 0",
        ),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[1.5], learning_rate=1.0, discrete=True),
            "must be integers",
        ),
        (
            lambda: linearized_dynamics(
                KERNEL, Y, times=[1], learning_rate=1.0, f0_train=np.ones((3, 1))
            ),
            r"f0_train must have shape \(3,\)",
        ),
        (
            lambda: linearized_dynamics(
                KERNEL, Y, times=[1], learning_rate=1.0, kernel_test_train=np.ones((2, 2))
            ),
            "kernel_test_train must have shape",
        ),
        (
            lambda: linearized_dynamics(
                KERNEL,
                Y,
                times=[1],
                learning_rate=1.0,
                kernel_test_train=CROSS,
                f0_test=np.ones(3),
            ),
            r"f0_test must have shape \(2,\)",
        ),
        (
            lambda: linearized_dynamics(
                KERNEL, Y, times=[1], learning_rate=1.0, f0_test=np.ones(2)
            ),
            "f0_test was given without kernel_test_train",
        ),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_kernel_functions_take_kernel_and_targets_positionally_and_the_rest_by_keyword():
    for name, call in [
        ("kernel_regression", lambda: kernel_regression(KERNEL, Y, KERNEL)),
        ("kernel_solve", lambda: kernel_solve(KERNEL, Y, 0.1)),
        ("linearized_dynamics", lambda: linearized_dynamics(KERNEL, Y, [1.0], 1.0)),
        ("kernel_complexity", lambda: kd.kernel_complexity(KERNEL, Y, 0.1)),
    ]:
        with pytest.raises(TypeError, match="positional"):
            call()
        assert list(inspect.signature(getattr(kd, name)).parameters)[:2] == ["kernel", "targets"]


@pytest.mark.parametrize("times", [[5], [np.inf], [3, np.inf]])
def test_an_unstable_discrete_step_size_is_rejected(times):
    n, largest = 3, float(np.linalg.eigvalsh(KERNEL)[-1])
    stable = linearized_dynamics(
        KERNEL, Y, times=times, learning_rate=1.9 * n / largest, discrete=True
    )
    assert np.isfinite(np.asarray(stable[0])).all()
    with pytest.raises(ValueError, match=r"learning_rate=.* diverge.*2n/lambda_max = 4\.615"):
        linearized_dynamics(KERNEL, Y, times=times, learning_rate=2.05 * n / largest, discrete=True)


def test_traced_times_are_rejected():
    with pytest.raises(TypeError, match="times must be concrete"):
        jax.jit(lambda t: linearized_dynamics(KERNEL, Y, times=t, learning_rate=1.0)[0])(
            jnp.ones(2)
        )


# ----------------------------------------------------------------------------- kernel features


def _feature_problem(seed=0, n=12, m=5, p=40):
    """A kernel with known finite features: K = F F^T for random features F (p > n)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n + m, p))
    kernel = features @ features.T
    return features, kernel[:n, :n], kernel[n:, :n], np.diag(kernel)[n:]


def test_kernel_features_reproduce_the_kernel_and_test_norms():
    _, kernel, cross, diagonal = _feature_problem()
    with kd.enable_x64():
        train, test = kd.kernel_features(kernel, kernel_test_train=cross, test_diagonal=diagonal)
        np.testing.assert_allclose(train @ train.T, kernel, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(test @ train.T, cross, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(jnp.sum(test**2, axis=1), diagonal, rtol=1e-10)
        assert np.all(np.asarray(train[:, -1]) == 0)


def test_kernel_features_turn_kernel_models_into_linear_models_with_the_rkhs_geometry():
    features, kernel, cross, diagonal = _feature_problem(seed=1)
    n = kernel.shape[0]
    rng = np.random.default_rng(2)
    c1, c2 = rng.normal(size=n), rng.normal(size=n)
    with kd.enable_x64():
        train, test = kd.kernel_features(kernel, kernel_test_train=cross, test_diagonal=diagonal)
        w1, w2 = train.T @ c1, train.T @ c2
        # predictions of the kernel model sum_i c_i k(., x_i) are inner products with w = L^T c
        np.testing.assert_allclose(test @ w1, cross @ c1, rtol=1e-10)
        # the angle between weight vectors is the angle between the explicit feature-space
        # weights F^T c of the finite feature map
        explicit = float(kd.vector_angle(features[:n].T @ c1, features[:n].T @ c2))
        assert float(kd.vector_angle(w1, w2)) == pytest.approx(explicit, rel=1e-10)
        # and the boundary angle of a test input is the explicit features' angle
        direction = features[:n].T @ c1
        expected = kd.boundary_angles(features[n:], direction)
        np.testing.assert_allclose(kd.boundary_angles(test, w1), expected, rtol=1e-8)


def test_kernel_features_with_a_ridge_and_training_only():
    _, kernel, _, _ = _feature_problem(seed=3, n=30, p=10)  # rank 10 < 30: singular
    with kd.enable_x64():
        train, test = kd.kernel_features(kernel, ridge=0.5)
        assert test is None
        np.testing.assert_allclose(train @ train.T, kernel + 0.5 * np.eye(30), rtol=1e-10)
        y = np.random.default_rng(4).normal(size=30)
        # the minimum-norm interpolant in these features is kernel ridge regression
        weights = train.T @ np.linalg.solve(np.asarray(train @ train.T), y)
        np.testing.assert_allclose(
            train[:, :-1] @ weights[:-1] - 0.5 * kd.kernel_solve(kernel, y, ridge=0.5),
            kd.kernel_regression(kernel, y, ridge=0.5),
            rtol=1e-8,
            atol=1e-8,
        )


def test_kernel_features_bad_input():
    _, kernel, cross, diagonal = _feature_problem(seed=5)
    with kd.enable_x64():
        with pytest.raises(ValueError, match="go together"):
            kd.kernel_features(kernel, kernel_test_train=cross)
        with pytest.raises(ValueError, match="test_diagonal must have shape"):
            kd.kernel_features(kernel, kernel_test_train=cross, test_diagonal=diagonal[:2])
        with pytest.raises(ValueError, match="not positive semi-definite"):
            kd.kernel_features(kernel, kernel_test_train=cross, test_diagonal=0.01 * diagonal)
        with pytest.raises(ValueError, match="kernel_test_train contains .*(NaN|non-finite)"):
            kd.kernel_features(kernel, kernel_test_train=cross * np.nan, test_diagonal=diagonal)
        with pytest.raises(ValueError, match="ridge"):
            kd.kernel_features(kernel, ridge=-1.0)
        with pytest.raises(np.linalg.LinAlgError, match="ridge="):
            kd.kernel_features(-kernel)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kernel_solve(KERNEL, Y, ridge=np.inf), "ridge must be a finite number >= 0"),
        (lambda: kernel_regression(KERNEL, Y, ridge=np.inf), "ridge must be a finite number"),
        (
            lambda: linearized_dynamics(KERNEL, Y, times=[1.0], learning_rate=np.inf),
            "learning_rate must be a finite number > 0",
        ),
        (lambda: kd.kernel_features(KERNEL, ridge=np.inf), "ridge must be a finite number"),
    ],
)
def test_infinite_hyperparameters_are_refused_not_turned_into_nan(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- numerical extremes


@pytest.mark.parametrize("ridge", [1e36, 1e38, 1e39, 1e300])
def test_a_ridge_near_or_beyond_float32_overflow_gives_the_float64_solution(ridge):
    # a kernel of scale 1e30 with a ridge beyond it: the system is rescaled by a power of two
    kernel, _, y, _, _ = problem(n=6, k=1, jitter=0.05)
    kernel, y = kernel * 1e30, y[:, 0] * 1e20
    reference = np.linalg.solve(kernel + ridge * np.eye(6), y)  # float64
    solution = kernel_solve(kernel.astype(np.float32), y.astype(np.float32), ridge=ridge)
    tolerance = 1e-6 * np.max(np.abs(reference)) + 1e-37  # float32 has no 1e-280: 0
    np.testing.assert_allclose(solution, reference, rtol=0, atol=tolerance)
    if ridge < 1e300:  # sqrt(1e300) overflows float32: only then are the features inf
        train, _ = kd.kernel_features(kernel.astype(np.float32), ridge=ridge)
        factor = np.linalg.cholesky(kernel + ridge * np.eye(6))
        np.testing.assert_allclose(train[:, :6], factor, rtol=1e-5, atol=1e-6 * factor.max())


def test_huge_times_and_learning_rates_reach_the_limit_in_float32():
    kernel, cross, y, _, _ = problem(n=6, m=2, k=1, jitter=0.05)
    kernel, cross, y = (a.astype(np.float32) for a in (kernel, cross, y[:, 0]))
    limit_train, limit_test = linearized_dynamics(
        kernel, y, times=[np.inf], learning_rate=1.0, kernel_test_train=cross
    )
    # eta t / n beyond float32's range, and times whose (1 - e^{-x})/x would underflow
    for times, learning_rate in (([1e38, 1e40], 1.0), ([1.0, 1e10], 1e300)):
        f_train, f_test = linearized_dynamics(
            kernel, y, times=times, learning_rate=learning_rate, kernel_test_train=cross
        )
        np.testing.assert_allclose(f_train, np.broadcast_to(limit_train, f_train.shape), atol=1e-5)
        np.testing.assert_allclose(f_test, np.broadcast_to(limit_test, f_test.shape), atol=1e-5)
    # a zero kernel does not move, whatever the (discrete) step
    f_train, _ = linearized_dynamics(
        np.zeros((3, 3)), np.ones(3), times=[5], learning_rate=1e300, discrete=True
    )
    np.testing.assert_array_equal(f_train, 0.0)
