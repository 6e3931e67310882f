"""kdbook.train: optima, determinism, fit == train_scan, checkpoints, early stopping, errors."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import kdbook as kd


def linear_apply(params, x):
    return x @ params["w"] + params["b"]


def mse(outputs, targets):
    return jnp.mean((outputs - targets) ** 2)


def _kd_written_out(z, teacher_logits, labels, rho, temperature):
    """(1 - rho) CE + rho T^2 KL, written with jax.nn (independent of kdbook.losses)."""
    hard = -jnp.take_along_axis(jax.nn.log_softmax(z), labels[:, None], axis=1)[:, 0]
    p_t = jax.nn.softmax(teacher_logits / temperature)
    kl = jnp.sum(p_t * (jnp.log(p_t) - jax.nn.log_softmax(z / temperature)), axis=1)
    return jnp.mean((1 - rho) * hard + rho * temperature**2 * kl)


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=40)).astype(np.float32)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    return jnp.asarray(x), jnp.asarray(y), params


def test_gradient_descent_reaches_the_least_squares_solution(regression):
    x, y, params = regression
    result = kd.fit(
        linear_apply, params, (x, y), loss=mse, optimizer=optax.sgd(0.1), steps=2000, progress=False
    )
    design = np.concatenate([np.asarray(x), np.ones((40, 1))], axis=1)
    solution = np.linalg.lstsq(design, np.asarray(y), rcond=None)[0]
    np.testing.assert_allclose(result.params["w"], solution[:3], atol=1e-4)
    np.testing.assert_allclose(result.params["b"], solution[3], atol=1e-4)
    assert result.history["loss"].shape == (2000,)
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_logistic_regression_reaches_the_stationary_point():
    """Optimum of a strongly convex problem: L2-regularised logistic regression, gradient ~ 0."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(60, 2)), dtype=jnp.float32)
    y = jnp.asarray((rng.random(60) < 0.5).astype(np.int32))
    apply = lambda p, x: x @ p  # noqa: E731

    def loss(z, y):
        return kd.cross_entropy(z, y, form="sigmoid")

    tx = optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.5))
    result = kd.fit(
        apply, jnp.zeros(2), (x, y), loss=loss, optimizer=tx, steps=3000, progress=False
    )
    grad = jax.grad(lambda p: loss(apply(p, x), y) + 0.05 * jnp.sum(p**2))(result.params)
    assert float(jnp.linalg.norm(grad)) < 1e-5


def test_same_key_same_result_bit_for_bit(regression):
    x, y, params = regression
    run = partial(
        kd.fit,
        linear_apply,
        params,
        (x, y),
        loss=mse,
        optimizer=optax.adam(0.05),
        steps=50,
        batch_size=8,
        progress=False,
    )
    a, b = run(key=jax.random.key(3)), run(key=jax.random.key(3))
    c = run(key=jax.random.key(4))
    assert np.array_equal(a.params["w"], b.params["w"])
    assert np.array_equal(a.history["loss"], b.history["loss"])
    assert not np.array_equal(a.params["w"], c.params["w"])


def test_minibatches_visit_every_example_once_per_epoch():
    x = jnp.arange(12.0)[:, None]
    seen = []

    def loss(outputs, index):
        jax.debug.callback(lambda i: seen.append(np.asarray(i)), index)
        return jnp.sum(outputs) * 0.0

    apply = lambda p, x: x[:, 0] * p  # noqa: E731
    kd.fit(
        apply,
        jnp.ones(()),
        (x, jnp.arange(12)),
        loss=loss,
        optimizer=optax.sgd(0.1),
        steps=8,
        batch_size=5,
        key=jax.random.key(0),
        progress=False,
    )
    epochs = [np.concatenate(seen[:2]), np.concatenate(seen[2:4])]  # 2 batches of 5 per epoch
    for epoch in epochs:
        assert len(set(epoch.tolist())) == 10
    assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize("batch_size", [None, 8])
def test_fit_and_train_scan_take_the_same_steps(regression, batch_size):
    x, y, params = regression
    options = dict(
        loss=mse, optimizer=optax.adam(0.05), steps=60, batch_size=batch_size, key=jax.random.key(7)
    )
    result = kd.fit(linear_apply, params, (x, y), progress=False, **options)
    scanned, losses, _ = kd.train_scan(linear_apply, params, (x, y), **options)
    np.testing.assert_allclose(result.params["w"], scanned["w"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-6, atol=1e-6)


def test_train_scan_resumes_from_the_optimizer_state(regression):
    """Two chunks of k Adam steps, the state passed through, are one run of 2k steps."""
    x, y, params = regression
    options = dict(loss=mse, optimizer=optax.adam(0.05))
    whole, whole_losses, whole_state = kd.train_scan(
        linear_apply, params, (x, y), steps=40, **options
    )
    half, first_losses, state = kd.train_scan(linear_apply, params, (x, y), steps=20, **options)
    resumed, second_losses, resumed_state = kd.train_scan(
        linear_apply, half, (x, y), steps=20, opt_state=state, **options
    )
    np.testing.assert_allclose(resumed["w"], whole["w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.concatenate([first_losses, second_losses]), whole_losses, rtol=1e-6, atol=1e-7
    )
    for a, b in zip(jax.tree.leaves(resumed_state), jax.tree.leaves(whole_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # without the state, Adam restarts (moments and bias correction from zero): another run
    restarted, _, _ = kd.train_scan(linear_apply, half, (x, y), steps=20, **options)
    assert not np.allclose(restarted["w"], whole["w"], rtol=1e-3, atol=1e-4)


def test_train_scan_vmaps_over_hyperparameters(regression):
    x, y, params = regression

    def final_loss(lr):
        tx = optax.sgd(lr)
        _, losses, _ = kd.train_scan(linear_apply, params, (x, y), loss=mse, optimizer=tx, steps=30)
        return losses[-1]

    batched = jax.jit(jax.vmap(final_loss))(jnp.array([0.01, 0.1]))
    single = [final_loss(0.01), final_loss(0.1)]
    np.testing.assert_allclose(batched, single, rtol=1e-5)
    assert batched[1] < batched[0]


def test_checkpoints_hold_the_parameters_after_that_many_steps(regression):
    x, y, params = regression
    run = partial(
        kd.fit, linear_apply, params, (x, y), loss=mse, optimizer=optax.sgd(0.05), progress=False
    )
    result = run(steps=30, checkpoint_steps=[0, 10, 30])
    assert sorted(result.checkpoints) == [0, 10, 30]
    assert np.array_equal(result.checkpoints[0]["w"], params["w"])
    assert np.array_equal(result.checkpoints[10]["w"], run(steps=10).params["w"])
    assert np.array_equal(result.checkpoints[30]["w"], result.params["w"])


def test_evaluation_history(regression):
    x, y, params = regression
    result = kd.fit(
        linear_apply,
        params,
        (x, y),
        loss=mse,
        optimizer=optax.sgd(0.05),
        steps=25,
        eval_fn=lambda p: {"w0": p["w"][0]},
        eval_every=10,
        progress=False,
    )
    assert result.history["eval_step"].tolist() == [0, 10, 20, 25]
    assert result.history["w0"][0] == 0.0 and result.history["w0"].shape == (4,)


def test_early_stopping_returns_the_best_parameters():
    """Training pulls w from 0 to 1; the monitored distance to 0.5 is smallest mid-way."""
    loss = lambda w: (w - 1.0) ** 2  # noqa: E731
    apply = lambda p, x: p  # noqa: E731
    result = kd.fit(
        apply,
        jnp.array(0.0),
        (jnp.zeros(1),),
        loss=loss,
        optimizer=optax.sgd(0.05),
        steps=1000,
        eval_fn=lambda p: {"gap": jnp.abs(p - 0.5)},
        eval_every=1,
        patience=3,
        monitor="gap",
        progress=False,
    )
    # w_s = 1 - 0.9^s is nearest 0.5 at s = 7 (0.522); three worse evaluations later it stops.
    assert result.best_step == 7
    np.testing.assert_allclose(result.params, 1 - 0.9**7, rtol=1e-5)
    assert len(result.history["loss"]) == 10


def test_a_diverging_loss_raises():
    loss = lambda w: jnp.sum(w**2)  # noqa: E731
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        kd.fit(
            lambda p, x: p,
            jnp.ones(2),
            (jnp.zeros(1),),
            loss=loss,
            optimizer=optax.sgd(1e3),
            steps=300,
            progress=False,
        )


def test_distill_is_fit_with_the_kd_loss_and_trains_an_nnx_model():
    key = jax.random.key(0)
    x = jax.random.normal(key, (32, 4))
    teacher_logits = 3.0 * jax.random.normal(jax.random.key(1), (32, 3))
    labels = jnp.argmax(teacher_logits, axis=1)
    apply, params = kd.functionalize(
        kd.MLP(4, depth=1, width=256, out_features=3, b_std=0.1, rngs=nnx.Rngs(2))
    )
    options = dict(soft_ratio=1.0, temperature=2.0)
    result = kd.distill(
        apply,
        params,
        x,
        teacher_logits,
        labels,
        optimizer=optax.adam(3e-2),
        steps=500,
        progress=False,
        **options,
    )
    reference = kd.fit(
        apply,
        params,
        (x, teacher_logits, labels),
        loss=partial(kd.kd_loss, **options),
        optimizer=optax.adam(3e-2),
        steps=500,
        progress=False,
    )
    assert np.array_equal(result.history["loss"], reference.history["loss"])
    # With soft_ratio=1 the KL term is zero at a perfect match: the student must get close.
    assert result.history["loss"][-1] < 0.01 * result.history["loss"][0]


def test_one_distill_step_is_a_gradient_step_on_the_kd_objective_written_out():
    """Against an independent reference: the objective written out with jax.nn, differentiated by
    jax.grad, and one SGD step taken by hand."""
    x = jax.random.normal(jax.random.key(0), (16, 4))
    teacher_logits = 2.0 * jax.random.normal(jax.random.key(1), (16, 3))
    labels = jax.random.randint(jax.random.key(2), (16,), 0, 3)
    apply, params = kd.functionalize(kd.MLP(4, depth=1, width=64, out_features=3, rngs=nnx.Rngs(3)))
    rho, temperature, lr = 0.7, 3.0, 0.5

    def objective(p):  # (1 - rho) CE(y, softmax(z_s)) + rho T^2 KL(p_T(z_t) || p_T(z_s))
        return _kd_written_out(apply(p, x), teacher_logits, labels, rho, temperature)

    grads = jax.grad(objective)(params)
    expected = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    result = kd.distill(
        apply,
        params,
        x,
        teacher_logits,
        labels,
        soft_ratio=rho,
        temperature=temperature,
        optimizer=optax.sgd(lr),
        steps=1,
        progress=False,
    )
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.history["loss"][0], objective(params), rtol=1e-5)


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(data=()), "non-empty tuple"),
        (dict(data=(jnp.zeros((0, 3)), jnp.zeros(0))), "data is empty"),
        (dict(data=(jnp.zeros((4, 3)), jnp.zeros(5))), "same leading"),
        (dict(batch_size=100, key=jax.random.key(0)), "larger than the data"),
        (dict(batch_size=0, key=jax.random.key(0)), "batch_size must be an integer >= 1 or None"),
        (dict(batch_size=4), "needs a PRNG key"),
        (dict(steps=-1), "steps must be an integer >= 0"),
        (dict(checkpoint_steps=[50]), "checkpoint_steps"),
        (dict(patience=3), "both patience and monitor"),
        (dict(eval_every=5), "needs eval_fn"),
        # Early stopping counts evaluations: without eval_every there are only two of them.
        (
            dict(patience=2, monitor="loss", eval_fn=lambda p: {"loss": 0.0}),
            "needs eval_fn and eval_every",
        ),
        (
            dict(patience=2.5, monitor="loss", eval_fn=lambda p: {"loss": 0.0}, eval_every=1),
            "patience must be an integer >= 1 or None, got 2.5",
        ),
        (
            dict(patience=True, monitor="loss", eval_fn=lambda p: {"loss": 0.0}, eval_every=1),
            "patience must be an integer >= 1 or None, got True",
        ),
    ],
)
def test_bad_options_raise_clear_errors(regression, options, match):
    x, y, params = regression
    kwargs = dict(data=(x, y), loss=mse, optimizer=optax.sgd(0.1), steps=10, progress=False)
    kwargs.update(options)
    with pytest.raises(ValueError, match=match):
        kd.fit(linear_apply, params, **kwargs)


def _two_layer(seed):
    return kd.functionalize(kd.TwoLayerNet(3, width=64, rngs=nnx.Rngs(seed)))


def test_a_new_model_of_the_same_structure_does_not_recompile(count_compiles):
    """fit compiles once per (structure, loss, optimizer, shapes): another TwoLayerNet, with other
    weights and other fixed output signs, reuses the compiled step and still trains itself."""
    x = jax.random.normal(jax.random.key(0), (16, 3))
    y = jnp.sin(x[:, :1])
    options = dict(loss=mse, optimizer=optax.sgd(0.5), steps=20)
    kd.fit(*_two_layer(0), (x, y), progress=False, **options)
    kd.fit(kd.linearize(*_two_layer(0)), _two_layer(0)[1], (x, y), progress=False, **options)
    apply, params = _two_layer(1)
    linear = kd.linearize(apply, params)
    with count_compiles() as compiles:
        trained = kd.fit(apply, params, (x, y), progress=False, **options)
        trained_linear = kd.fit(linear, params, (x, y), progress=False, **options)
    assert compiles() == 0, f"{compiles()} compilations for models of a known structure"
    # Each model trains with its own weights and output signs: compare with train_scan (a
    # separate compilation of the same updates).
    for model, result in [(apply, trained), (linear, trained_linear)]:
        reference, losses, _ = kd.train_scan(model, params, (x, y), **options)
        np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-5)
        np.testing.assert_allclose(
            jax.tree.leaves(result.params)[0], jax.tree.leaves(reference)[0], rtol=1e-5
        )


def test_distill_compiles_once_for_the_same_settings(count_compiles):
    x = jax.random.normal(jax.random.key(0), (16, 4))
    teacher = jax.random.normal(jax.random.key(1), (16, 3))
    labels = jnp.argmax(teacher, axis=1)
    optimizer = optax.adam(1e-2)

    def run(seed, temperature):
        apply, params = kd.functionalize(
            kd.MLP(4, depth=1, width=32, out_features=3, rngs=nnx.Rngs(seed))
        )
        return kd.distill(
            apply,
            params,
            x,
            teacher,
            labels,
            soft_ratio=0.5,
            temperature=temperature,
            optimizer=optimizer,
            steps=3,
            progress=False,
        )

    run(0, 2.0)
    with count_compiles() as compiles:
        run(1, 2.0)
    assert compiles() == 0
    with count_compiles() as compiles:
        run(1, 4.0)  # another temperature is another loss: one new compilation
    assert compiles() == 1


def test_a_plain_function_is_compiled_once_per_function_object(count_compiles, regression):
    x, y, params = regression
    options = dict(loss=mse, optimizer=optax.sgd(0.1), steps=3, progress=False)
    kd.fit(linear_apply, params, (x, y), **options)
    with count_compiles() as compiles:
        kd.fit(linear_apply, params, (x, y), **options)
    assert compiles() == 0
    wrapped = jax.jit(linear_apply)  # a wrapped apply is another function: it compiles, and works
    result = kd.fit(wrapped, params, (x, y), **options)
    reference = kd.fit(linear_apply, params, (x, y), **options)
    np.testing.assert_allclose(result.history["loss"], reference.history["loss"], rtol=1e-6)


# ----------------------------------------------------------------------------- online distillation


@pytest.fixture
def online_task():
    x = jax.random.normal(jax.random.key(0), (12, 4))
    path = 2.0 * jax.random.normal(jax.random.key(1), (5, 12, 3))  # 5 teacher checkpoints
    labels = jax.random.randint(jax.random.key(2), (12,), 0, 3)
    params = {"w": 0.1 * jax.random.normal(jax.random.key(3), (4, 3)), "b": jnp.zeros((1, 3))}
    return x, path, labels, params


@pytest.mark.parametrize("schedule", [None, [4, 0, 0, 2, 1, 3, 3, 4, 0]])
def test_online_distill_takes_each_step_against_the_scheduled_checkpoint(online_task, schedule):
    """A hand-written loop of SGD steps, each on the written-out KD objective of the checkpoint the
    schedule names, is the same run."""
    x, path, labels, params = online_task
    steps, rho, temperature, lr = 9, 0.6, 2.0, 0.3
    result = kd.online_distill(
        linear_apply,
        params,
        x,
        path,
        labels,
        soft_ratio=rho,
        temperature=temperature,
        optimizer=optax.sgd(lr),
        steps=steps,
        schedule=schedule,
        progress=False,
    )
    # the default gives the 5 checkpoints equal shares of the 9 updates, in order
    expected_schedule = [0, 0, 1, 1, 2, 2, 3, 3, 4] if schedule is None else schedule
    assert result.history["checkpoint"].tolist() == expected_schedule
    p = params
    for s in range(steps):
        objective = lambda q, s=s: _kd_written_out(  # noqa: E731
            linear_apply(q, x), path[expected_schedule[s]], labels, rho, temperature
        )
        np.testing.assert_allclose(result.history["loss"][s], objective(p), rtol=1e-5)
        p = jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(objective)(p))
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_online_distill_from_one_checkpoint_is_offline_distill_and_compiles_once(
    online_task, count_compiles
):
    x, path, labels, params = online_task
    options = dict(soft_ratio=0.5, temperature=3.0, optimizer=optax.adam(0.05), steps=7)
    offline = kd.distill(linear_apply, params, x, path[-1], labels, progress=False, **options)
    with count_compiles() as compiles:
        online = kd.online_distill(
            linear_apply, params, x, path, labels, schedule=[4] * 7, progress=False, **options
        )
        kd.online_distill(linear_apply, params, x, path, labels, progress=False, **options)
    assert compiles() == 0, "online distillation reuses the offline step's compilation"
    np.testing.assert_array_equal(online.history["loss"], offline.history["loss"])
    for got, want in zip(
        jax.tree.leaves(online.params), jax.tree.leaves(offline.params), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_online_distill_with_minibatches_and_student_checkpoints(online_task):
    x, path, labels, params = online_task
    result = kd.online_distill(
        linear_apply,
        params,
        x,
        path,
        labels,
        soft_ratio=1.0,
        temperature=2.0,
        optimizer=optax.sgd(0.1),
        steps=10,
        key=jax.random.key(0),
        batch_size=4,
        checkpoint_steps=[0, 5, 10],
        progress=False,
    )
    assert sorted(result.checkpoints) == [0, 5, 10]
    assert result.history["checkpoint"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(teacher_logits=jnp.zeros((2, 5, 3))), r"teacher_logits must have shape"),
        (dict(teacher_logits=jnp.zeros((12, 3))), r"teacher_logits must have shape"),
        (dict(schedule=[0, 1]), r"schedule must be \(4,\) integers"),
        (dict(schedule=[0.0, 1.0, 2.0, 3.0]), "schedule must hold integers"),
        (dict(schedule=[0, 1, 2, 5]), r"schedule must index the m=5 checkpoints"),
        (dict(schedule=[-1, 0, 0, 0]), r"schedule must index"),
        (dict(steps=-2), "steps must be"),
    ],
)
def test_online_distill_bad_input(online_task, options, match):
    x, path, labels, params = online_task
    kwargs = dict(teacher_logits=path, soft_ratio=0.5, temperature=2.0, steps=4)
    kwargs.update(options)
    with pytest.raises(ValueError, match=match):
        kd.online_distill(
            linear_apply,
            params,
            x,
            labels=labels,
            optimizer=optax.sgd(0.1),
            progress=False,
            **kwargs,
        )


# ----------------------------------------------------------------------------- co-distillation


def _mlp(seed, width):
    return kd.functionalize(kd.MLP(4, depth=1, width=width, out_features=3, rngs=nnx.Rngs(seed)))


@pytest.mark.parametrize("pair", [False, True])
def test_codistill_without_soft_labels_is_two_independent_fits(pair):
    x = jax.random.normal(jax.random.key(0), (16, 4))
    labels = jax.random.randint(jax.random.key(1), (16,), 0, 3)
    (apply_a, params_a), (apply_b, params_b) = _mlp(0, 32), _mlp(1, 8)
    opt_a = optax.adam(0.02)
    opt_b = optax.sgd(0.1, momentum=0.9) if pair else opt_a
    joint = kd.codistill(
        apply_a,
        params_a,
        apply_b,
        params_b,
        x,
        labels,
        soft_ratio=0.0,
        temperature=2.0,
        optimizer=(opt_a, opt_b) if pair else opt_a,
        steps=15,
        progress=False,
    )
    options = dict(loss=kd.cross_entropy, steps=15, progress=False)
    alone_a = kd.fit(apply_a, params_a, (x, labels), optimizer=opt_a, **options)
    alone_b = kd.fit(apply_b, params_b, (x, labels), optimizer=opt_b, **options)
    for alone, got in [(alone_a, joint.params[0]), (alone_b, joint.params[1])]:
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(alone.params), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        joint.history["loss"], alone_a.history["loss"] + alone_b.history["loss"], rtol=1e-5
    )


def test_codistill_step_is_each_model_distilling_from_the_others_current_outputs():
    """One SGD step against the written-out objective: model a's gradient sees b's outputs as
    fixed targets and vice versa (no gradient flows through the teacher side)."""
    x = jax.random.normal(jax.random.key(2), (16, 4))
    labels = jax.random.randint(jax.random.key(3), (16,), 0, 3)
    (apply_a, params_a), (apply_b, params_b) = _mlp(2, 16), _mlp(3, 16)
    rho, temperature, lr = 0.7, 2.0, 0.5
    za, zb = apply_a(params_a, x), apply_b(params_b, x)
    grad_a = jax.grad(lambda p: _kd_written_out(apply_a(p, x), zb, labels, rho, temperature))
    grad_b = jax.grad(lambda p: _kd_written_out(apply_b(p, x), za, labels, rho, temperature))
    expected_a = jax.tree.map(lambda p, g: p - lr * g, params_a, grad_a(params_a))
    expected_b = jax.tree.map(lambda p, g: p - lr * g, params_b, grad_b(params_b))
    result = kd.codistill(
        apply_a,
        params_a,
        apply_b,
        params_b,
        x,
        labels,
        soft_ratio=rho,
        temperature=temperature,
        optimizer=optax.sgd(lr),
        steps=1,
        progress=False,
    )
    for got, want in [(result.params[0], expected_a), (result.params[1], expected_b)]:
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    total = _kd_written_out(za, zb, labels, rho, temperature) + _kd_written_out(
        zb, za, labels, rho, temperature
    )
    np.testing.assert_allclose(result.history["loss"][0], total, rtol=1e-5)


def test_codistill_compiles_once_per_pair_of_structures(count_compiles):
    x = jax.random.normal(jax.random.key(4), (16, 4))
    labels = jax.random.randint(jax.random.key(5), (16,), 0, 3)
    options = dict(soft_ratio=0.5, temperature=2.0, optimizer=optax.sgd(0.1), steps=2)
    kd.codistill(*_mlp(0, 16), *_mlp(1, 8), x, labels, progress=False, **options)
    with count_compiles() as compiles:
        kd.codistill(*_mlp(2, 16), *_mlp(3, 8), x, labels, progress=False, **options)
    assert compiles() == 0


def test_codistill_rejects_a_tuple_of_three_optimizers():
    x, labels = jnp.zeros((4, 4)), jnp.zeros(4, int)
    with pytest.raises(ValueError, match="pair"):
        kd.codistill(
            *_mlp(0, 8),
            *_mlp(1, 8),
            x,
            labels,
            soft_ratio=0.5,
            temperature=2.0,
            optimizer=(optax.sgd(0.1),) * 3,
            steps=1,
            progress=False,
        )
