"""kdbook.losses against closed forms, naive NumPy implementations and Optax."""

import decimal
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import kdbook as kd


def _logits(seed, n=7, k=5, scale=3.0):
    rng = np.random.default_rng(seed)
    return (
        scale * rng.normal(size=(n, k)),
        scale * rng.normal(size=(n, k)),
        rng.integers(0, k, size=n),
    )


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _naive_kd(zs, zt, y, rho, T, convention, eps=0.0, soft_term="kl"):
    """Term-by-term NumPy reference (softmax form)."""
    k = zs.shape[1]
    target = (1 - eps) * np.eye(k)[y] + eps / k
    th = 1.0 if convention == "hinton" else T
    c = T**2 if convention == "hinton" else 1.0
    hard = -(target * np.log(_softmax(zs / th))).sum(-1)
    pt, ps = _softmax(zt / T), _softmax(zs / T)
    soft = (pt * (np.log(pt) - np.log(ps))).sum(-1)
    if soft_term == "ce":
        soft = -(pt * np.log(ps)).sum(-1)
    return np.mean((1 - rho) * hard + rho * c * soft)


@pytest.mark.parametrize("convention", ["hinton", "shared"])
@pytest.mark.parametrize("soft_term", ["kl", "ce"])
def test_kd_loss_matches_naive_reference(convention, soft_term):
    zs, zt, y = _logits(0)
    with kd.enable_x64():
        got = kd.kd_loss(
            zs,
            zt,
            y,
            soft_ratio=0.7,
            temperature=3.0,
            convention=convention,
            soft_term=soft_term,
            label_smoothing=0.1,
        )
        want = _naive_kd(zs, zt, y, 0.7, 3.0, convention, eps=0.1, soft_term=soft_term)
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("form", ["softmax", "sigmoid"])
@pytest.mark.parametrize("convention", ["hinton", "shared"])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_autodiff_gradient_equals_closed_form(form, convention, temperature):
    zs, zt, y = _logits(1)
    if form == "sigmoid":
        zs, zt, y = zs[:, 0], zt[:, 0], (y % 2)
    options = dict(
        soft_ratio=0.6,
        temperature=temperature,
        form=form,
        convention=convention,
        label_smoothing=0.05,
    )
    with kd.enable_x64():
        autodiff = jax.grad(lambda z: kd.kd_loss(z, zt, y, **options))(jnp.asarray(zs))
        closed = kd.kd_logit_gradient(zs, zt, y, **options)
        np.testing.assert_allclose(autodiff, closed, rtol=1e-10, atol=1e-14)


def test_teacher_logits_get_no_gradient():
    zs, zt, y = _logits(2)
    grad = jax.grad(lambda t: kd.kd_loss(zs, t, y, soft_ratio=1.0, temperature=2.0))(zt)
    assert np.all(np.asarray(grad) == 0)


@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_soft_ratio_zero_is_cross_entropy(temperature):
    zs, zt, y = _logits(3)
    with kd.enable_x64():
        loss = kd.kd_loss(zs, zt, y, soft_ratio=0.0, temperature=temperature)
        np.testing.assert_allclose(loss, kd.cross_entropy(zs, y), rtol=1e-12)
        shared = kd.kd_loss(zs, zt, y, soft_ratio=0.0, temperature=temperature, convention="shared")
        np.testing.assert_allclose(shared, kd.cross_entropy(zs / temperature, y), rtol=1e-12)


def test_soft_ratio_one_is_the_soft_target_loss_and_ignores_labels():
    zs, zt, y = _logits(4)
    with kd.enable_x64():
        a = kd.kd_loss(zs, zt, y, soft_ratio=1.0, temperature=2.0)
        b = kd.kd_loss(zs, zt, (y + 1) % 5, soft_ratio=1.0, temperature=2.0)
        pt, ps = _softmax(zt / 2), _softmax(zs / 2)
        want = 4.0 * np.mean((pt * np.log(pt / ps)).sum(-1))
        np.testing.assert_allclose(a, want, rtol=1e-12)
        assert float(a) == float(b)


def test_kl_is_zero_when_student_equals_teacher_and_ce_exceeds_it_by_the_entropy():
    _, zt, y = _logits(5)
    with kd.enable_x64():
        kl = kd.kd_loss(zt, zt, y, soft_ratio=1.0, temperature=3.0, soft_term="kl")
        ce = kd.kd_loss(zt, zt, y, soft_ratio=1.0, temperature=3.0, soft_term="ce")
        pt = _softmax(zt / 3)
        entropy = -np.mean((pt * np.log(pt)).sum(-1))
        assert abs(float(kl)) < 1e-12
        np.testing.assert_allclose(ce, 9.0 * entropy, rtol=1e-12)


def test_sigmoid_form_matches_a_two_class_softmax():
    """A binary logit z is the two-class softmax with logits (0, z)."""
    zs, zt, y = _logits(6)
    zs, zt, y = zs[:, 0], zt[:, 0], y % 2
    two = lambda z: np.stack([np.zeros_like(z), z], axis=1)  # noqa: E731
    with kd.enable_x64():
        for convention in ["hinton", "shared"]:
            options = dict(
                soft_ratio=0.4, temperature=2.5, convention=convention, label_smoothing=0.1
            )
            binary = kd.kd_loss(zs[:, None], zt[:, None], y, form="sigmoid", **options)
            softmax = kd.kd_loss(two(zs), two(zt), y, form="softmax", **options)
            np.testing.assert_allclose(binary, softmax, rtol=1e-12)


def test_cross_entropy_matches_optax():
    zs, _, y = _logits(7)
    want = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(zs), jnp.asarray(y)).mean()
    np.testing.assert_allclose(kd.cross_entropy(zs, y), want, rtol=1e-6)
    smooth = optax.smooth_labels(jax.nn.one_hot(y, 5), 0.2)
    want = optax.softmax_cross_entropy(jnp.asarray(zs), smooth).mean()
    np.testing.assert_allclose(kd.cross_entropy(zs, y, label_smoothing=0.2), want, rtol=1e-6)
    binary = jnp.asarray(zs[:, 0], jnp.float32)
    want = optax.sigmoid_binary_cross_entropy(binary, jnp.asarray(y % 2, jnp.float32)).mean()
    np.testing.assert_allclose(kd.cross_entropy(binary, y % 2, form="sigmoid"), want, rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_soft_terms_match_optax(temperature):
    """The soft terms against Optax's cross-entropy and KL, in float32, to 1e-6."""
    zs, zt, y = (jnp.asarray(a) for a in _logits(12))
    zs, zt = zs.astype(jnp.float32), zt.astype(jnp.float32)
    teacher = jax.nn.softmax(zt / temperature)
    options = dict(soft_ratio=1.0, temperature=temperature, convention="shared")
    ce = kd.kd_loss(zs, zt, y, soft_term="ce", **options)
    want_ce = optax.softmax_cross_entropy(zs / temperature, teacher).mean()
    np.testing.assert_allclose(ce, want_ce, rtol=1e-6, atol=1e-6)
    kl = kd.kd_loss(zs, zt, y, soft_term="kl", **options)
    want_kl = optax.kl_divergence(jax.nn.log_softmax(zs / temperature), teacher).mean()
    np.testing.assert_allclose(kl, want_kl, rtol=1e-6, atol=1e-6)
    # the sigmoid form is the two-class case
    two = lambda z: jnp.stack([jnp.zeros_like(z), z], axis=1)  # noqa: E731
    binary = kd.kd_loss(zs[:, 0], zt[:, 0], y % 2, form="sigmoid", soft_term="kl", **options)
    want_binary = optax.kl_divergence(
        jax.nn.log_softmax(two(zs[:, 0]) / temperature), jax.nn.softmax(two(zt[:, 0]) / temperature)
    ).mean()
    np.testing.assert_allclose(binary, want_binary, rtol=1e-6, atol=1e-6)


def _float64_kl_rows(zs, zt, temperature):
    """KL(p_T(zt) || p_T(zs)) per row in float64 NumPy, from the float32 logits."""
    a, b = (np.asarray(z, np.float64) / temperature for z in (zs, zt))
    log_ps = (
        a - np.log(np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True)) - a.max(1)[:, None]
    )
    log_pt = (
        b - np.log(np.exp(b - b.max(1, keepdims=True)).sum(1, keepdims=True)) - b.max(1)[:, None]
    )
    return (np.exp(log_pt) * (log_pt - log_ps)).sum(1)


@pytest.mark.parametrize("delta", [1e-2, 1e-3])
def test_tiny_kl_stays_non_negative_and_precise_in_float32(delta):
    """Student ~ teacher: KL ~ delta^2, below float32's resolution of CE and H, both O(1)."""
    rng = np.random.default_rng(13)
    zt = 3.0 * rng.normal(size=(256, 10))
    zs = zt + delta * rng.normal(size=zt.shape)
    zt32, zs32 = jnp.asarray(zt, jnp.float32), jnp.asarray(zs, jnp.float32)
    y = jnp.zeros(256, jnp.int32)
    temperature = 2.0
    reference = _float64_kl_rows(zs32, zt32, temperature)
    rows = np.asarray(kd.losses._kl_rows(zs32, zt32, temperature, "softmax"), np.float64)
    assert np.all(rows >= 0)
    np.testing.assert_allclose(rows, reference, rtol=1e-4)
    options = dict(soft_ratio=1.0, temperature=temperature, convention="shared")
    kl = kd.kd_loss(zs32, zt32, y, soft_term="kl", **options)
    assert kl.dtype == jnp.float32 and float(kl) >= 0
    np.testing.assert_allclose(float(kl), reference.mean(), rtol=1e-5)
    # what the cross-entropy minus the entropy gives: round-off of O(1) numbers, not the KL
    ce = kd.kd_loss(zs32, zt32, y, soft_term="ce", **options)
    teacher = jax.nn.softmax(zt32 / temperature)
    entropy = -jnp.mean(jnp.sum(teacher * jnp.log(teacher), axis=1))
    assert abs(float(ce - entropy) - reference.mean()) > 100 * abs(float(kl) - reference.mean())


def _decimal_soft_reference(zs, zt, temperature, digits=60):
    """T^2 KL(p_T(zt) || p_T(zs)) per row and T (p_T(zs) - p_T(zt)), to 60 digits.

    Exact decimal arithmetic from the float32 logits: an independent reference that, unlike a
    float64 one, stays exact at T = 1e8, where the two distributions agree to about 1e-8.
    """
    with decimal.localcontext() as context:
        context.prec = digits
        T = decimal.Decimal(float(temperature))
        kls, gaps = [], []
        for row_s, row_t in zip(np.asarray(zs), np.asarray(zt), strict=True):
            a = [decimal.Decimal(float(v)) / T for v in row_s]
            b = [decimal.Decimal(float(v)) / T for v in row_t]
            za, zb = sum(x.exp() for x in a), sum(x.exp() for x in b)
            ps = [x.exp() / za for x in a]
            pt = [x.exp() / zb for x in b]
            kls.append(
                float(T * T * sum(q * (q.ln() - p.ln()) for p, q in zip(ps, pt, strict=True)))
            )
            gaps.append([float(T * (p - q)) for p, q in zip(ps, pt, strict=True)])
    return np.array(kls), np.array(gaps)


@pytest.mark.parametrize("form", ["softmax", "sigmoid"])
def test_kd_loss_and_gradient_stay_accurate_up_to_huge_temperatures(form):
    """T^2 KL and its gradient T (p^s - p^t) in float32 against exact decimals, T = 1 ... 1e8.

    As T grows the two distributions approach uniform and agree to O(1/T): computed as
    differences of probabilities, both lose all their digits in float32 by T ~ 1e7.
    """
    zs, zt, y = (np.asarray(a, np.float32) for a in _logits(21))
    y = y.astype(np.int32)
    if form == "sigmoid":
        zs, zt, y = zs[:, 0], zt[:, 0], y % 2
        two = lambda z: np.stack([np.zeros_like(z), z], axis=1)  # noqa: E731
        ref_s, ref_t = two(zs), two(zt)
    else:
        ref_s, ref_t = zs, zt
    for temperature in [1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]:
        kl, gap = _decimal_soft_reference(ref_s, ref_t, temperature)
        if form == "sigmoid":
            gap = gap[:, 1]
        options = dict(soft_ratio=1.0, temperature=temperature, form=form)
        loss = kd.kd_loss(zs, zt, y, **options)
        np.testing.assert_allclose(float(loss), kl.mean(), rtol=2e-5, err_msg=f"T={temperature}")
        grad = jax.grad(lambda z: kd.kd_loss(z, zt, y, **options))(jnp.asarray(zs))  # noqa: B023
        closed = kd.kd_logit_gradient(zs, zt, y, **options)
        scale = np.abs(gap).max() / len(zs)
        for g in (grad, closed):
            np.testing.assert_allclose(g, gap / len(zs), atol=1e-5 * scale, rtol=1e-4)
        if form == "softmax":  # the re-weighting's true-class weight w = rho T (r_s - r_t) / r_s1
            weight = kd.kd_gradient_decomposition(
                zs, zt, y, soft_ratio=1.0, temperature=temperature
            )
            rows = np.arange(len(y))
            r_s1 = 1.0 - _softmax(zs.astype(np.float64))[rows, y]
            want = -gap[rows, y] / r_s1
            np.testing.assert_allclose(weight.weight, want, rtol=1e-4, atol=1e-5)


def test_kl_and_ce_soft_terms_have_the_same_gradient_bit_for_bit():
    """The KL's value is computed on its own; its gradient is the cross-entropy's, unchanged."""
    zs, zt, y = (jnp.asarray(a, jnp.float32) for a in _logits(14))
    y = y.astype(jnp.int32)

    def gradient(student, teacher, labels, **options):
        return jax.grad(lambda z: kd.kd_loss(z, teacher, labels, **options))(student)

    for form, student, teacher, labels in [
        ("softmax", zs, zt, y),
        ("sigmoid", zs[:, 0], zt[:, 0], y % 2),
    ]:
        for convention in ["hinton", "shared"]:
            options = dict(soft_ratio=0.7, temperature=3.0, form=form, convention=convention)
            kl = gradient(student, teacher, labels, soft_term="kl", **options)
            ce = gradient(student, teacher, labels, soft_term="ce", **options)
            np.testing.assert_array_equal(kl, ce)


def test_smooth_labels_and_soft_targets_are_distributions():
    zs, _, y = _logits(8)
    smoothed = kd.smooth_labels(y, 5, label_smoothing=0.3)
    np.testing.assert_allclose(smoothed.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(smoothed.max(-1), 0.7 + 0.3 / 5, rtol=1e-6)
    for temperature in [0.5, 1.0, 8.0]:
        p = kd.soft_targets(zs, temperature=temperature)
        np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    # Higher temperature, higher entropy.
    entropy = [
        float(-(p * jnp.log(p)).sum(-1).mean())
        for p in (kd.soft_targets(zs, temperature=t) for t in [1.0, 2.0, 4.0, 8.0])
    ]
    assert entropy == sorted(entropy)


@pytest.mark.parametrize("form", ["softmax", "sigmoid"])
def test_large_temperature_gradient_approaches_logit_matching(form):
    """T^2-scaled soft gradients -> logit-matching gradient, with error O(1/T)."""
    zs, zt, y = _logits(9, scale=1.0)
    if form == "sigmoid":
        zs, zt, y = zs[:, 0], zt[:, 0], y % 2
    with kd.enable_x64():
        target = jax.grad(lambda z: kd.logit_matching_loss(z, zt, form=form))(jnp.asarray(zs))
        temperatures = np.array([4.0, 16.0, 64.0, 256.0])
        errors = []
        for t in temperatures:
            g = kd.kd_logit_gradient(zs, zt, y, soft_ratio=1.0, temperature=t, form=form)
            errors.append(float(jnp.linalg.norm(g - target) / jnp.linalg.norm(target)))
        slope = np.polyfit(np.log(temperatures), np.log(errors), 1)[0]
        assert errors[-1] < 1e-2 and all(np.diff(errors) < 0), errors
        assert -2.2 < slope < -0.8, slope  # at least first order in 1/T


def test_accuracy():
    logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert float(kd.accuracy(logits, jnp.array([0, 1, 1]))) == pytest.approx(2 / 3)
    assert float(kd.accuracy(jnp.array([1.0, -2.0]), jnp.array([1, 1]), form="sigmoid")) == 0.5


def test_traced_hyperparameters_are_accepted_under_vmap():
    zs, zt, y = _logits(10)
    loss = jax.vmap(lambda r, t: kd.kd_loss(zs, zt, y, soft_ratio=r, temperature=t))
    ratios, temperatures = [0.0, 0.5, 1.0], [1.0, 2.0, 4.0]
    values = loss(jnp.array(ratios), jnp.array(temperatures))
    expected = [
        kd.kd_loss(zs, zt, y, soft_ratio=r, temperature=t)
        for r, t in zip(ratios, temperatures, strict=True)
    ]  # Python floats, not traced
    np.testing.assert_allclose(values, expected, rtol=1e-5)


ZS, ZT, Y = (jnp.asarray(a) for a in _logits(11))
KD = partial(kd.kd_loss, ZS, ZT, Y)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: KD(soft_ratio=1.5, temperature=1.0), "soft_ratio must lie in \\[0, 1\\]"),
        (lambda: KD(soft_ratio=-0.1, temperature=1.0), "soft_ratio"),
        (lambda: KD(soft_ratio=0.5, temperature=0.0), "temperature must be > 0"),
        (lambda: KD(soft_ratio=0.5, temperature=-2.0), "temperature"),
        (lambda: KD(soft_ratio=0.5, temperature=1.0, label_smoothing=1.0), "label_smoothing"),
        (lambda: KD(soft_ratio=0.5, temperature=1.0, form="relu"), "form must be one of"),
        (lambda: KD(soft_ratio=0.5, temperature=1.0, convention="x"), "convention"),
        (lambda: KD(soft_ratio=0.5, temperature=1.0, soft_term="mse"), "soft_term"),
        (lambda: kd.kd_loss(ZS, ZT[:, :3], Y, soft_ratio=0.5, temperature=1.0), "same shape"),
        (lambda: kd.kd_loss(ZS, ZT, Y[:3], soft_ratio=0.5, temperature=1.0), "labels must have"),
        (lambda: kd.kd_loss(ZS, ZT, Y + 5, soft_ratio=0.5, temperature=1.0), "labels must lie"),
        (lambda: kd.kd_loss(ZS, ZT, Y - 10, soft_ratio=0.5, temperature=1.0), "labels must lie"),
        (lambda: kd.kd_loss(ZS, ZT, Y * 1.0, soft_ratio=0.5, temperature=1.0), "integer"),
        (lambda: kd.kd_loss(ZS[:0], ZT[:0], Y[:0], soft_ratio=0.5, temperature=1.0), "empty"),
        (lambda: kd.kd_loss(ZS[:, 0], ZT[:, 0], Y, soft_ratio=0.5, temperature=1.0), "(n, k)"),
        (lambda: kd.cross_entropy(ZS, Y, form="sigmoid"), "one logit"),
        (lambda: kd.cross_entropy(ZS[:, 0], Y, form="sigmoid"), "labels must lie in \\[0, 1\\]"),
        (lambda: kd.soft_targets(ZS, temperature=0.0), "temperature"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- squared loss


def test_squared_loss_is_half_the_mean_squared_error_per_example():
    rng = np.random.default_rng(4)
    outputs, targets = rng.normal(size=(2, 9, 3))
    # closed form: (1 / 2n) sum_i |f_i - y_i|^2, summed over the k outputs
    expected = ((outputs - targets) ** 2).sum() / (2 * 9)
    np.testing.assert_allclose(kd.squared_loss(outputs, targets), expected, rtol=1e-6)
    np.testing.assert_allclose(
        kd.squared_loss(outputs[:, 0], targets[:, 0]),
        ((outputs[:, 0] - targets[:, 0]) ** 2).sum() / (2 * 9),
        rtol=1e-6,
    )
    # one output: optax.l2_loss averaged over examples
    np.testing.assert_allclose(
        kd.squared_loss(outputs[:, 0], targets[:, 0]),
        optax.l2_loss(outputs[:, 0], targets[:, 0]).mean(),
        rtol=1e-6,
    )
    assert float(kd.squared_loss(jnp.array([1.0, 2.0]), jnp.zeros(2))) == 1.25


def test_squared_loss_gradient_is_the_step_linearized_dynamics_assumes():
    """One gradient step on a linear model f(x) = x w moves the outputs by -(eta/n) K r."""
    rng = np.random.default_rng(5)
    x, y = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=6))
    w = jnp.asarray(rng.normal(size=4))
    eta = 0.3
    grad = jax.grad(lambda w: kd.squared_loss(x @ w, y))(w)
    moved = x @ (w - eta * grad) - x @ w
    kernel = x @ x.T
    np.testing.assert_allclose(moved, -eta / 6 * kernel @ (x @ w - y), rtol=1e-5, atol=1e-6)
    f_train, _ = kd.linearized_dynamics(
        kernel, y, times=[1], learning_rate=eta, f0_train=x @ w, discrete=True
    )
    np.testing.assert_allclose(f_train[0], x @ (w - eta * grad), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "outputs, targets",
    [
        (jnp.ones((4, 1)), jnp.ones(4)),  # would broadcast to (4, 4)
        (jnp.ones(4), jnp.ones(5)),
        (jnp.ones(()), jnp.ones(())),
        (jnp.ones((0, 2)), jnp.ones((0, 2))),
    ],
)
def test_squared_loss_rejects_shapes_that_differ_or_are_empty(outputs, targets):
    with pytest.raises(ValueError, match="outputs"):
        kd.squared_loss(outputs, targets)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=float("inf")), "temperature must be a finite number > 0"),
        (dict(temperature=np.array([2.0, 3.0])), "temperature must be a single number"),
        (dict(soft_ratio=np.array([0.5, 0.5])), "soft_ratio must be a single number"),
    ],
)
def test_kd_hyperparameters_must_be_finite_single_numbers(kwargs, match):
    options = dict(soft_ratio=0.5, temperature=2.0) | kwargs
    student, teacher = jnp.zeros((3, 4)), jnp.ones((3, 4))
    with pytest.raises(ValueError, match=match):
        kd.kd_loss(student, teacher, jnp.array([0, 1, 2]), **options)
    with pytest.raises(ValueError, match=match):
        kd.kd_logit_gradient(student, teacher, jnp.array([0, 1, 2]), **options)


# ----------------------------------------------------------------------------- Tang et al. (2020)


@pytest.mark.parametrize("convention", ["hinton", "shared"])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_gradient_decomposition_reassembles_the_autodiff_gradient(convention, rho, temperature):
    zs, zt, y = _logits(11, n=9, k=6)
    with kd.enable_x64():
        zs, zt, y = jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y)
        options = dict(soft_ratio=rho, temperature=temperature, convention=convention)
        grad = jax.grad(lambda z: kd.kd_loss(z, zt, y, **options))(zs) * zs.shape[0]
        weight, dark = kd.kd_gradient_decomposition(zs, zt, y, **options)
        hard = np.asarray(_softmax(np.asarray(zs))) - np.eye(6)[np.asarray(y)]
        rebuilt = np.asarray(weight)[:, None] * hard + np.asarray(dark)
        np.testing.assert_allclose(rebuilt, np.asarray(grad), rtol=0, atol=1e-13)
        # the dark-knowledge term lives on the wrong classes only: the weight alone gives the
        # true-class gradient
        assert np.all(np.asarray(dark)[np.arange(9), np.asarray(y)] == 0)
        true_grad = np.asarray(grad)[np.arange(9), np.asarray(y)]
        np.testing.assert_allclose(
            np.asarray(weight) * hard[np.arange(9), np.asarray(y)],
            true_grad,
            rtol=1e-12,
            atol=1e-15,
        )


def test_gradient_weight_and_dark_knowledge_closed_forms_at_temperature_one():
    zs, zt, y = _logits(12, n=8, k=5)
    rho = 0.7
    ps, pt = _softmax(zs), _softmax(zt)
    rows = np.arange(8)
    r_s, r_t = 1 - ps[rows, y], 1 - pt[rows, y]
    expected_weight = 1 - rho * r_t / r_s
    wrong = np.ones_like(ps, dtype=bool)
    wrong[rows, y] = False
    bar_s = np.where(wrong, ps, 0) / r_s[:, None]
    bar_t = np.where(wrong, pt, 0) / r_t[:, None]
    expected_dark = rho * r_t[:, None] * (bar_s - bar_t)
    with kd.enable_x64():
        for convention in ("hinton", "shared"):
            weight, dark = kd.kd_gradient_decomposition(
                jnp.asarray(zs),
                jnp.asarray(zt),
                jnp.asarray(y),
                soft_ratio=rho,
                temperature=1.0,
                convention=convention,
            )
            np.testing.assert_allclose(np.asarray(weight), expected_weight, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(dark), expected_dark, rtol=1e-10, atol=1e-15)


def test_gradient_weight_increases_with_the_teachers_true_class_logit():
    zs, zt, y = _logits(13, n=1, k=4)
    with kd.enable_x64():
        for temperature in (1.0, 4.0):
            shifts = np.linspace(-6, 6, 41)
            teachers = np.repeat(zt, shifts.size, axis=0)
            teachers[:, y[0]] += shifts
            students = np.repeat(zs, shifts.size, axis=0)
            labels = np.repeat(y, shifts.size)
            weight, _ = kd.kd_gradient_decomposition(
                jnp.asarray(students),
                jnp.asarray(teachers),
                jnp.asarray(labels),
                soft_ratio=0.6,
                temperature=temperature,
            )
            assert np.all(np.diff(np.asarray(weight)) > 0)


def test_gradient_weight_of_a_confident_student_stays_finite_in_float32():
    # 1 - p_y is computed as the other classes' probability, not as 1 minus a rounded 1
    zs = jnp.array([[40.0, 0.0, 0.0]])
    zt = jnp.array([[5.0, 0.0, 0.0]])
    weight, _ = kd.kd_gradient_decomposition(
        zs, zt, jnp.array([0]), soft_ratio=0.5, temperature=1.0
    )
    r_s, r_t = 2 * np.exp(-40.0) / (1 + 2 * np.exp(-40.0)), 2 / (np.exp(5.0) + 2)
    np.testing.assert_allclose(float(weight[0]), 1 - 0.5 * r_t / r_s, rtol=1e-4)


def test_label_smoothing_is_distillation_from_a_uniform_teacher():
    zs, _, y = _logits(14, n=6, k=5)
    with kd.enable_x64():
        zs, y = jnp.asarray(zs), jnp.asarray(y)
        smoothed = kd.cross_entropy(zs, y, label_smoothing=0.2)
        uniform = kd.kd_loss(
            zs, jnp.zeros_like(zs), y, soft_ratio=0.2, temperature=1.0, soft_term="ce"
        )
        np.testing.assert_allclose(float(smoothed), float(uniform), rtol=1e-13)


def _naive_partial(pt, y, top_k):
    out = pt.copy()
    for i, row in enumerate(pt):
        wrong = [j for j in np.argsort(-row) if j != y[i]]
        rest = wrong[top_k:]
        if rest:
            out[i, rest] = row[rest].sum() / len(rest)
    return out


@pytest.mark.parametrize("top_k", [0, 1, 3, 5])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_partial_teacher_matches_a_naive_reference(top_k, temperature):
    _, zt, y = _logits(15, n=7, k=6)
    with kd.enable_x64():
        logits = kd.partial_teacher_logits(
            jnp.asarray(zt), jnp.asarray(y), top_k=top_k, temperature=temperature
        )
        probs = np.asarray(jax.nn.softmax(logits / temperature, axis=-1))
    expected = _naive_partial(_softmax(zt / temperature), y, top_k)
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    if top_k == 5:  # every wrong class kept: the teacher itself
        np.testing.assert_allclose(probs, _softmax(zt / temperature), rtol=1e-12)


def test_partial_teacher_keeps_a_confident_teachers_tiny_mass():
    teacher = jnp.array([[120.0, 0.0, -1.0, -2.0]])  # 1 - p_y ~ e^-120: not a float32 number
    logits = kd.partial_teacher_logits(teacher, jnp.array([0]))
    assert np.all(np.isfinite(np.asarray(logits)))
    np.testing.assert_allclose(
        float(logits[0, 0] - logits[0, 1]),
        120 + np.log(3) - np.log(1 + np.exp(-1) + np.exp(-2)),
        rtol=1e-6,
    )
    loss = kd.kd_loss(jnp.zeros((1, 4)), logits, jnp.array([0]), soft_ratio=1.0, temperature=1.0)
    assert np.isfinite(float(loss))


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: kd.partial_teacher_logits(jnp.zeros((2, 4)), jnp.array([0, 1]), top_k=4),
            "top_k must be an integer in \\[0, 3\\]",
        ),
        (
            lambda: kd.partial_teacher_logits(jnp.zeros((2, 4)), jnp.array([0, 1]), top_k=-1),
            "top_k",
        ),
        (
            lambda: kd.partial_teacher_logits(jnp.zeros((2, 4)), jnp.array([0, 1]), top_k=1.5),
            "top_k",
        ),
        (lambda: kd.partial_teacher_logits(jnp.zeros((2, 4)), jnp.array([0, 4])), "labels"),
        (
            lambda: kd.partial_teacher_logits(
                jnp.zeros((2, 4)), jnp.array([0, 1]), temperature=0.0
            ),
            "temperature",
        ),
        (lambda: kd.partial_teacher_logits(jnp.zeros(4), jnp.array([0])), "teacher_logits"),
        (
            lambda: kd.kd_gradient_decomposition(
                jnp.zeros(3), jnp.zeros(3), jnp.array([0, 1, 0]), soft_ratio=0.5, temperature=1.0
            ),
            "student_logits",
        ),
        (
            lambda: kd.kd_gradient_decomposition(
                jnp.zeros((2, 3)),
                jnp.zeros((2, 3)),
                jnp.array([0, 1]),
                soft_ratio=1.5,
                temperature=1.0,
            ),
            "soft_ratio",
        ),
    ],
)
def test_tang_helpers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
