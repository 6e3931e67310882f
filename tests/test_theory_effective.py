"""kdbook.theory.effective: effective logits and correction thresholds, against an independent
root finder."""

import decimal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdbook as kd

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


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.3])
def test_correction_threshold_is_accurate_at_any_temperature(rho):
    """Against 160-digit decimal arithmetic from T = 1 to 1e100: the ratio form cancelled to
    log(1) = 0 for T >= 1e17 (and -1.9984 at 1e15) where the limit is -2 (1 - rho) / rho."""
    with decimal.localcontext() as context:
        context.prec = 160  # the ratio differs from 1 by ~1/T: 100 digits cancel at T = 1e100
        for t in np.logspace(0, 100, 41):
            got = kd.correction_threshold(soft_ratio=rho, temperature=float(t))
            if rho * t <= 1 - rho:  # every wrong logit corrected
                assert got == -np.inf
                continue
            r, big = decimal.Decimal(rho), decimal.Decimal(float(t))
            exact = big * ((r * (big + 1) - 1) / (r * (big - 1) + 1)).ln()
            assert got == pytest.approx(float(exact), rel=1e-13), t
    limit = kd.correction_threshold(soft_ratio=rho, temperature=1e300)
    assert limit == pytest.approx(-2 * (1 - rho) / rho, rel=1e-15)


def test_effective_logits_at_tiny_temperatures_match_the_asymptotic_root():
    # For T -> 0 and label 1, G(z) = (1 - rho)(s(z) - 1) + rho T (s(z/T) - s(z_t/T)) has the root
    # z = z_t/T + log((1 - rho)/(rho T)) for a correct teacher (z_t > 0; it used to be capped at
    # 2^64 by the bracket) and z = -logit(rho T/(1 - rho)) for a wrong one (z_t < 0).
    rho, teacher = 0.3, np.array([2.0, -1.0])
    for temperature in (1e-20, 1e-30):
        z = kd.effective_logits(teacher, np.ones(2, int), soft_ratio=rho, temperature=temperature)
        expected = [
            2.0 / temperature + np.log((1 - rho) / (rho * temperature)),
            np.log((1 - rho) / (rho * temperature) - 1),
        ]
        np.testing.assert_allclose(z, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="effective logits overflow float32"):
        kd.effective_logits(np.array([1e10]), np.ones(1, int), soft_ratio=rho, temperature=1e-30)
