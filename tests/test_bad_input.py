"""Bad input to the models, pytree helpers, NTKs, linearization, losses and training loops.

Every case asserts the exception type and that the message names the argument at fault, with
what is allowed. (Kernels, theory, data and pruning: test_bad_input_analysis.py.) Most cases fail
before anything is compiled, so the whole table runs in seconds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import kdbook as kd

X = jnp.ones((4, 3))
Y = jnp.array([0, 1, 0, 1])
LOGITS = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
NAN = jnp.array(np.nan, jnp.float32)


def _mlp(width=8, out=2):
    return kd.functionalize(kd.MLP(3, depth=1, width=width, out_features=out, rngs=nnx.Rngs(0)))


APPLY, PARAMS = _mlp()
_, OTHER_PARAMS = _mlp(width=16)
APPLY_3, PARAMS_3 = _mlp(out=3)
_, LINEAR_PARAMS = kd.functionalize(kd.Linear(3, out_features=2))
KD = dict(soft_ratio=0.5, temperature=2.0)
FIT = dict(loss=kd.cross_entropy, optimizer=optax.sgd(0.1), steps=2, progress=False)


def _fit(**changes):
    options = {**FIT, **changes}
    data = options.pop("data", (X, Y))
    apply = options.pop("apply", APPLY)
    params = options.pop("params", PARAMS)
    return kd.fit(apply, params, data, **options)


def _metrics(params):
    return {"loss": kd.cross_entropy(APPLY(params, X), Y)}


CASES = {
    # ------------------------------------------------------------------ models
    "MLP x of another width": (
        lambda: APPLY(PARAMS, jnp.ones((4, 5))),
        r"x must have shape \(n, 3\)",
    ),
    "MLP jitted, x of another width": (
        lambda: jax.jit(APPLY)(PARAMS, jnp.ones((4, 5))),
        r"x must have shape \(n, 3\)",
    ),
    "MLP 1-D x": (lambda: APPLY(PARAMS, jnp.ones(3)), r"x must have shape \(n, 3\)"),
    "Dense h of another width": (
        lambda: kd.Dense(3, 2, rngs=nnx.Rngs(0))(jnp.ones((4, 5))),
        r"h must have shape \(n, 3\)",
    ),
    "Dense 1-D h": (lambda: kd.Dense(3, 2, rngs=nnx.Rngs(0))(jnp.ones(3)), "h must have shape"),
    "Dense rngs=None": (lambda: kd.Dense(3, 2, rngs=None), "rngs must be NNX random streams"),
    "Dense w_std=True": (lambda: kd.Dense(3, 2, w_std=True, rngs=nnx.Rngs(0)), "w_std must be a"),
    "Dense w_std=inf": (lambda: kd.Dense(3, 2, w_std=np.inf, rngs=nnx.Rngs(0)), "w_std must be"),
    "MLP width=True": (
        lambda: kd.MLP(3, depth=1, width=True, out_features=1, rngs=nnx.Rngs(0)),
        "width must be an integer",
    ),
    "MLP depth=1.0": (
        lambda: kd.MLP(3, depth=1.0, width=4, out_features=1, rngs=nnx.Rngs(0)),
        "depth must be an integer",
    ),
    "TwoLayerNet antisymmetric='no'": (
        lambda: kd.TwoLayerNet(3, width=4, antisymmetric="no", rngs=nnx.Rngs(0)),
        "antisymmetric must be True or False",
    ),
    "TwoLayerNet rngs=None": (lambda: kd.TwoLayerNet(3, width=4, rngs=None), "rngs must be"),
    "TwoLayerNet x of another width": (
        lambda: kd.TwoLayerNet(3, width=4, rngs=nnx.Rngs(0))(jnp.ones((2, 4))),
        r"x must have shape \(n, 3\)",
    ),
    "Linear x of another width": (
        lambda: kd.Linear(3)(jnp.ones((2, 4))),
        r"x must have shape \(n, 3\)",
    ),
    "Linear init_scale=nan": (lambda: kd.Linear(3, init_scale=np.nan), "init_scale must be"),
    "end_to_end of an MLP": (lambda: kd.end_to_end(PARAMS), "Linear or DeepLinear"),
    "end_to_end(None)": (lambda: kd.end_to_end(None), "params must be the parameters"),
    "end_to_end(array)": (lambda: kd.end_to_end(jnp.ones((3, 1))), "params must be the parameters"),
    "end_to_end weights that do not chain": (
        lambda: kd.end_to_end(
            {"layers": {0: {"weight": jnp.ones((3, 4))}, 1: {"weight": jnp.ones((5, 2))}}}
        ),
        "do not chain",
    ),
    "params of another width": (lambda: APPLY(OTHER_PARAMS, X), "params do not fit MLP"),
    "params=None": (lambda: APPLY(None, X), "params do not fit MLP"),
    # ------------------------------------------------------------------ pytree helpers
    "tree_inner NaN": (lambda: kd.tree_inner({"a": X}, {"a": X * NAN}), r"b\['a'\] contains"),
    "tree_norm NaN": (lambda: kd.tree_norm({"a": X * NAN}), r"a\['a'\] contains"),
    "tree_angle NaN": (lambda: kd.tree_angle({"a": X}, {"a": X * NAN}), r"b\['a'\] contains"),
    "tree_difference NaN": (
        lambda: kd.tree_difference({"a": X * NAN}, {"a": X}),
        r"a\['a'\] contains",
    ),
    "tree_add of other shapes": (lambda: kd.tree_add({"a": X}, {"a": X[0]}), "different shapes"),
    "tree_scale None": (lambda: kd.tree_scale({"a": X}, None), "scale must be a number"),
    "tree_scale 'x'": (lambda: kd.tree_scale({"a": X}, "x"), "scale must be a number"),
    "tree_scale nan": (lambda: kd.tree_scale({"a": X}, np.nan), "scale must be a finite"),
    "tree_scale vector": (lambda: kd.tree_scale({"a": X}, jnp.ones(4)), "scale must be a single"),
    "tree_scale overflow": (
        lambda: kd.tree_scale({"a": jnp.full(2, 1e30)}, 1e30),
        "tree_scale overflows float32",
    ),
    "tree_add overflow": (
        lambda: kd.tree_add({"a": jnp.full(2, 3e38)}, {"a": jnp.full(2, 3e38)}),
        "tree_add overflows float32",
    ),
    "tree_difference overflow": (
        lambda: kd.tree_difference({"a": jnp.full(2, 3e38)}, {"a": jnp.full(2, -3e38)}),
        "tree_difference overflows float32",
    ),
    "tree_norm string leaf": (
        lambda: kd.tree_norm({"a": np.array(["x"])}),
        r"a\['a'\] must be an array of real numbers",
    ),
    "tree_stack dict": (lambda: kd.tree_stack({"a": X}), "trees must be a non-empty list"),
    "tree_stack []": (lambda: kd.tree_stack([]), "trees must be a non-empty list"),
    # ------------------------------------------------------------------ NTKs
    "empirical_ntk apply=None": (lambda: kd.empirical_ntk(None, PARAMS, X), "apply must be a"),
    "empirical_ntk 0-d outputs": (
        lambda: kd.empirical_ntk(lambda p, x: APPLY(p, x).sum(), PARAMS, X),
        "one row per input",
    ),
    "empirical_ntk x1 of another width": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, jnp.ones((4, 5))),
        r"apply\(params, x1\) fails on x1 .*x must have shape \(n, 3\)",
    ),
    "empirical_ntk jitted apply, x1 of another width": (
        lambda: kd.empirical_ntk(jax.jit(APPLY), PARAMS, jnp.ones((4, 5)), method="jacobian"),
        r"fails on x1 of shape \(4, 5\)",
    ),
    "empirical_ntk x2 of another width": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, X, jnp.ones((2, 5))),
        r"x2 must have shape \(n2, 3\)",
    ),
    "empirical_ntk x1 NaN": (lambda: kd.empirical_ntk(APPLY, PARAMS, X * NAN), "x1 contains"),
    "empirical_ntk x2 NaN": (lambda: kd.empirical_ntk(APPLY, PARAMS, X, X * NAN), "x2 contains"),
    "empirical_ntk strings": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, np.array([["a"] * 3])),
        "x1 must be an array of real numbers",
    ),
    "empirical_ntk trace='no'": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, X, trace="no"),
        "trace must be True or False",
    ),
    "empirical_ntk shard=1": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, X, shard=1, batch_size=2),
        "shard must be True or False",
    ),
    "empirical_ntk batch_size=True": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, X, batch_size=True),
        "batch_size must be an integer",
    ),
    "empirical_ntk params=None": (
        lambda: kd.empirical_ntk(APPLY, None, X),
        "params holds no arrays .*got None",
    ),
    "empirical_ntk params of another width": (
        lambda: kd.empirical_ntk(APPLY, OTHER_PARAMS, X),
        "params do not fit",
    ),
    "empirical_ntk method": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, X, method="exact"),
        "method must be one of",
    ),
    "empirical_ntk integer params (ntvp)": (
        lambda: kd.empirical_ntk(lambda w, x: x @ w, jnp.ones(3, int), X, method="ntvp"),
        "params must be a floating array, got dtype int",
    ),
    "empirical_ntk bool params leaf": (
        lambda: kd.empirical_ntk(lambda p, x: x @ p["w"], {"w": jnp.ones(3, bool)}, X),
        r"params\['w'\] must be a floating array, got dtype bool",
    ),
    "empirical_ntk outputs with an extra row": (
        lambda: kd.empirical_ntk(lambda w, x: jnp.concatenate([x @ w, jnp.zeros(1)]), X[0], X),
        r"one row per input; on x1 of 4 rows it returned .*\(5,\)",
    ),
    "infinite_kernels w_std=inf": (
        lambda: kd.infinite_kernels(X, depth=1, w_std=np.inf),
        "w_std must be a finite",
    ),
    "infinite_kernels w_std=1e20": (
        lambda: kd.infinite_kernels(X, depth=1, w_std=1e20),
        "w_std=1e.20 is too large",
    ),
    "infinite_kernels w_std=1e200": (
        lambda: kd.infinite_kernels(X, depth=1, w_std=1e200),
        "w_std=1e.200 is too large",
    ),
    "infinite_kernels b_std=nan": (
        lambda: kd.infinite_kernels(X, depth=1, b_std=np.nan),
        "b_std must be",
    ),
    "infinite_kernels x NaN": (lambda: kd.infinite_kernels(X * NAN, depth=1), "x1 contains"),
    "infinite_kernels depth=np.float64": (
        lambda: kd.infinite_kernels(X, depth=np.float64(1)),
        "depth must be an integer",
    ),
    "infinite_kernels overflow": (
        lambda: kd.infinite_kernels(1e20 * X, depth=1),
        "overflows float32",
    ),
    "two_layer_ntk x NaN": (lambda: kd.two_layer_ntk(X * NAN), "x1 contains"),
    "two_layer_ntk overflow": (lambda: kd.two_layer_ntk(1e20 * X), "overflows float32"),
    # ------------------------------------------------------------------ linearization
    "linearize apply=None": (lambda: kd.linearize(None, PARAMS), "apply must be a"),
    "linearize params0=None": (lambda: kd.linearize(APPLY, None), "params0 must be a pytree"),
    "linearized model, params of another width": (
        lambda: kd.linearize(APPLY, PARAMS)(OTHER_PARAMS, X),
        "params must have the structure and shapes of params0",
    ),
    "linearize integer params0": (
        lambda: kd.linearize(lambda w, x: x @ w, jnp.ones(3, int)),
        "params0 must be a floating array",
    ),
    "min_norm_params integer params0": (
        lambda: kd.min_norm_params(lambda w, x: x @ w, jnp.ones(3, int), X, jnp.zeros(4)),
        "params0 must be a floating array",
    ),
    "min_norm_params outputs with an extra row": (
        lambda: kd.min_norm_params(
            lambda w, x: jnp.concatenate([x @ w, jnp.zeros(1)]), X[0], X, jnp.zeros(5)
        ),
        "apply.* one row per input",
    ),
    "min_norm_params apply=None": (
        lambda: kd.min_norm_params(None, PARAMS, X, jnp.zeros((4, 2))),
        "apply must be a",
    ),
    "min_norm_params x NaN": (
        lambda: kd.min_norm_params(APPLY, PARAMS, X * NAN, jnp.zeros((4, 2))),
        "x contains",
    ),
    "min_norm_params 0-d outputs": (
        lambda: kd.min_norm_params(lambda p, x: APPLY(p, x).sum(), PARAMS, X, jnp.zeros(())),
        "one array of outputs",
    ),
    "min_norm_params x of another width": (
        lambda: kd.min_norm_params(APPLY, PARAMS, jnp.ones((4, 5)), jnp.zeros((4, 2))),
        r"fails on x of shape \(4, 5\)",
    ),
    # ------------------------------------------------------------------ losses
    "kd_loss logits near the float32 limit (was NaN)": (
        lambda: kd.kd_loss(
            jnp.array([[3e38, -3e38]]),
            jnp.array([[-3e38, 3e38]]),
            jnp.array([0]),
            soft_ratio=0.5,
            temperature=1.0,
        ),
        "kd_loss of these logits at this temperature overflows float32",
    ),
    "kd_loss sigmoid logits near the float32 limit (was NaN)": (
        lambda: kd.kd_loss(
            jnp.array([3e38]),
            jnp.array([-3e38]),
            jnp.array([0]),
            soft_ratio=0.5,
            temperature=1.0,
            form="sigmoid",
        ),
        "kd_loss of these logits at this temperature overflows float32",
    ),
    "kd_logit_gradient logits 1e34 at T=1e-5 (was NaN)": (
        lambda: kd.kd_logit_gradient(
            jnp.array([[1e34, 0.0]]),
            jnp.array([[0.0, 1e34]]),
            jnp.array([0]),
            soft_ratio=0.5,
            temperature=1e-5,
        ),
        "kd_logit_gradient of these logits at this temperature overflows float32",
    ),
    "cross_entropy logits near the float32 limit (was inf)": (
        lambda: kd.cross_entropy(jnp.array([[3e38, -3e38]]), jnp.array([1])),
        "cross_entropy of these logits overflows float32",
    ),
    "kd_loss temperature=inf": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=np.inf),
        "temperature must be a finite",
    ),
    "kd_loss temperature=1e20 (T^2 overflows float32)": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e20),
        r"temperature=1e\+20 is outside what float32",
    ),
    "kd_loss temperature=1e-50 (0 in float32)": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e-50),
        "temperature=1e-50 is outside what float32",
    ),
    "kd_loss temperature=True": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=True),
        "temperature must be a number",
    ),
    "kd_loss temperature of length 2": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=jnp.ones(2)),
        "temperature must be a single number",
    ),
    "kd_loss soft_ratio=True": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=True, temperature=2.0),
        "soft_ratio must be a number",
    ),
    "kd_loss soft_ratio of length 2": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=jnp.ones(2), temperature=2.0),
        "soft_ratio must be a single number",
    ),
    "kd_loss soft_ratio=1.5": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=1.5, temperature=2.0),
        r"soft_ratio must lie in \[0, 1\]",
    ),
    "kd_loss student NaN": (
        lambda: kd.kd_loss(LOGITS * NAN, LOGITS, Y, **KD),
        "student_logits contains",
    ),
    "kd_loss teacher NaN": (
        lambda: kd.kd_loss(LOGITS, LOGITS * NAN, Y, **KD),
        "teacher_logits contains",
    ),
    "kd_loss labels out of range": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y + 5, **KD),
        r"labels must lie in \[0, 2\]",
    ),
    "kd_loss float labels": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y * 1.0, **KD),
        "labels must be integer",
    ),
    "kd_loss shapes differ": (
        lambda: kd.kd_loss(LOGITS, LOGITS[:, :2], Y, **KD),
        "must have the same shape",
    ),
    "kd_logit_gradient temperature=1e39": (
        lambda: kd.kd_logit_gradient(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e39),
        "is outside what float32",
    ),
    "kd_gradient_decomposition temperature=1e-50": (
        lambda: kd.kd_gradient_decomposition(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e-50),
        "is outside what float32",
    ),
    "kd_gradient_decomposition student NaN": (
        lambda: kd.kd_gradient_decomposition(LOGITS * NAN, LOGITS, Y, **KD),
        "student_logits contains",
    ),
    "partial_teacher_logits temperature=1e39": (
        lambda: kd.partial_teacher_logits(LOGITS, Y, temperature=1e39),
        "is outside what float32",
    ),
    "partial_teacher_logits teacher NaN": (
        lambda: kd.partial_teacher_logits(LOGITS * NAN, Y),
        "teacher_logits contains",
    ),
    "partial_teacher_logits top_k=True": (
        lambda: kd.partial_teacher_logits(LOGITS, Y, top_k=True),
        "top_k must be an integer",
    ),
    "soft_targets temperature=1e-50": (
        lambda: kd.soft_targets(LOGITS, temperature=1e-50),
        "is outside what float32",
    ),
    "soft_targets temperature=True": (
        lambda: kd.soft_targets(LOGITS, temperature=True),
        "temperature must be a number",
    ),
    "soft_targets NaN": (lambda: kd.soft_targets(LOGITS * NAN), "logits contains"),
    "smooth_labels num_classes=0": (lambda: kd.smooth_labels(Y, 0), "num_classes must be"),
    "smooth_labels num_classes=1": (lambda: kd.smooth_labels(Y * 0, 1), "num_classes must be"),
    "smooth_labels num_classes=2.5": (lambda: kd.smooth_labels(Y, 2.5), "num_classes must be"),
    "smooth_labels num_classes=True": (lambda: kd.smooth_labels(Y, True), "num_classes must be"),
    "smooth_labels 2-D labels": (
        lambda: kd.smooth_labels(jnp.zeros((2, 2), int), 3),
        r"labels must have shape \(n,\)",
    ),
    "smooth_labels label_smoothing=1": (
        lambda: kd.smooth_labels(Y, 3, label_smoothing=1.0),
        r"label_smoothing must lie in \[0, 1\)",
    ),
    "cross_entropy NaN": (lambda: kd.cross_entropy(LOGITS * NAN, Y), "logits contains"),
    "cross_entropy string logits": (
        lambda: kd.cross_entropy(np.array([["a", "b"]]), Y[:1]),
        "logits must be an array of real numbers",
    ),
    "accuracy NaN": (lambda: kd.accuracy(LOGITS * NAN, Y), "logits contains"),
    "accuracy sigmoid NaN": (
        lambda: kd.accuracy(LOGITS[:, 0] * NAN, Y, form="sigmoid"),
        "logits contains",
    ),
    "logit_matching_loss NaN": (
        lambda: kd.logit_matching_loss(LOGITS, LOGITS * NAN),
        "teacher_logits contains",
    ),
    "squared_loss NaN": (lambda: kd.squared_loss(X[:, 0] * NAN, X[:, 0]), "outputs contains"),
    "squared_loss targets inf": (
        lambda: kd.squared_loss(X[:, 0], X[:, 0] * jnp.inf),
        "targets contains",
    ),
    "squared_loss shapes differ": (lambda: kd.squared_loss(X, X[:, 0]), "the same shape"),
    # ------------------------------------------------------------------ training
    "fit data=x (an array)": (lambda: _fit(data=X), r"data must be a non-empty tuple"),
    "fit labels out of range": (lambda: _fit(data=(X, Y + 5)), r"labels must lie in \[0, 1\]"),
    "fit float labels": (lambda: _fit(data=(X, Y * 1.0)), "labels must be integer"),
    "fit data NaN": (lambda: _fit(data=(X * NAN, Y)), r"data\[0\] contains"),
    "fit x of another width": (
        lambda: _fit(data=(jnp.ones((4, 5)), Y)),
        r"apply\(params, x \(data\[0\]\)\) fails .*x must have shape \(n, 3\)",
    ),
    "fit params of another width": (lambda: _fit(params=OTHER_PARAMS), "params do not fit"),
    "fit optimizer=None": (lambda: _fit(optimizer=None), "optimizer must be an Optax"),
    "fit loss=None": (lambda: _fit(loss=None), "loss must be a function"),
    "fit loss returning a vector": (
        lambda: _fit(loss=lambda out, y: out[:, 0] - y),
        "loss.* must return a scalar",
    ),
    "fit patience=2.5": (
        lambda: _fit(eval_fn=_metrics, eval_every=1, patience=2.5, monitor="loss"),
        "patience must be an integer",
    ),
    "fit patience=True": (
        lambda: _fit(eval_fn=_metrics, eval_every=1, patience=True, monitor="loss"),
        "patience must be an integer",
    ),
    "fit patience without eval_every": (
        lambda: _fit(eval_fn=_metrics, patience=2, monitor="loss"),
        "patience needs eval_fn and eval_every",
    ),
    "fit patience without monitor": (
        lambda: _fit(eval_fn=_metrics, eval_every=1, patience=2),
        "needs both patience and monitor",
    ),
    "fit eval_every=True": (
        lambda: _fit(eval_fn=_metrics, eval_every=True),
        "eval_every must be an integer",
    ),
    "fit eval_every=0": (lambda: _fit(eval_fn=_metrics, eval_every=0), "eval_every must be"),
    "fit eval_every without eval_fn": (lambda: _fit(eval_every=1), "eval_every needs eval_fn"),
    "fit eval_fn returning a float": (
        lambda: _fit(eval_fn=lambda p: 1.0, eval_every=1),
        "eval_fn must return a dict of scalar metrics",
    ),
    "fit eval_fn returning a vector metric": (
        lambda: _fit(eval_fn=lambda p: {"v": jnp.ones(2)}, eval_every=1),
        "eval_fn must return a dict of scalar metrics",
    ),
    "fit checkpoint_steps=5": (lambda: _fit(checkpoint_steps=5), "checkpoint_steps must be a list"),
    "fit checkpoint_steps=[1.5]": (
        lambda: _fit(checkpoint_steps=[1.5]),
        "checkpoint_steps must be an integer",
    ),
    "fit checkpoint_steps=[True]": (
        lambda: _fit(checkpoint_steps=[True]),
        "checkpoint_steps must be an integer",
    ),
    "fit checkpoint_steps beyond steps": (
        lambda: _fit(checkpoint_steps=[3]),
        r"checkpoint_steps must lie in \[0, steps=2\]",
    ),
    "fit batch_size=True": (
        lambda: _fit(batch_size=True, key=jax.random.key(0)),
        "batch_size must be an integer",
    ),
    "fit batch_size without key": (lambda: _fit(batch_size=2), "needs a PRNG key"),
    "fit steps=2.0": (lambda: _fit(steps=2.0), "steps must be an integer"),
    "fit minimize='no'": (lambda: _fit(minimize="no"), "minimize must be True or False"),
    "fit progress=0": (lambda: _fit(progress=0), "progress must be True or False, got 0"),
    "online_distill progress=None": (
        lambda: kd.online_distill(
            APPLY, PARAMS, X, LOGITS[None, :, :2], Y, **KD, **{**_no_loss(FIT), "progress": None}
        ),
        "progress must be True or False",
    ),
    "fit key=0": (
        lambda: _fit(batch_size=2, key=0),
        r"key must be a JAX PRNG key such as jax.random.key\(0\), got int 0",
    ),
    "fit split keys": (
        lambda: _fit(batch_size=2, key=jax.random.split(jax.random.key(0))),
        r"key must be a single JAX PRNG key .* of shape \(2,\)",
    ),
    "train_scan key=0": (
        lambda: kd.train_scan(
            APPLY, PARAMS, (X, Y), loss=kd.cross_entropy, optimizer=optax.sgd(0.1), steps=1, key=0
        ),
        "key must be a JAX PRNG key",
    ),
    "train_scan optimizer=None": (
        lambda: kd.train_scan(
            APPLY, PARAMS, (X, Y), loss=kd.cross_entropy, optimizer=None, steps=1
        ),
        "optimizer must be an Optax",
    ),
    "train_scan opt_state of another optimizer": (
        lambda: kd.train_scan(
            APPLY,
            PARAMS,
            (X, Y),
            loss=kd.cross_entropy,
            optimizer=optax.sgd(0.1),
            steps=1,
            opt_state=optax.adam(0.1).init(PARAMS),
        ),
        "opt_state must be a state of this optimizer",
    ),
    "smooth_labels label out of range": (lambda: kd.smooth_labels(Y + 2, 3), r"labels must lie"),
    "Dense w_std=1e39 (its square overflows)": (
        lambda: kd.Dense(3, 2, w_std=1e39, rngs=nnx.Rngs(0)),
        "w_std=1e.39 is too large",
    ),
    "Linear init_scale=1e39": (lambda: kd.Linear(3, init_scale=1e39), "init_scale=1e.39 is too"),
    "MLP x NaN": (lambda: APPLY(PARAMS, X * NAN), "x contains"),
    "tree_inner overflow": (
        lambda: kd.tree_inner({"a": jnp.full(2, 1e20)}, {"a": jnp.full(2, 1e20)}),
        "tree_inner overflows float32",
    ),
    "squared_loss overflow": (
        lambda: kd.squared_loss(jnp.array([1e20]), jnp.array([0.0])),
        "squared_loss overflows float32",
    ),
    "logit_matching_loss overflow": (
        lambda: kd.logit_matching_loss(LOGITS * 1e20, LOGITS),
        "logit_matching_loss overflows",
    ),
    "train_scan labels out of range": (
        lambda: kd.train_scan(
            APPLY, PARAMS, (X, Y + 5), loss=kd.cross_entropy, optimizer=optax.sgd(0.1), steps=1
        ),
        r"labels must lie in \[0, 1\]",
    ),
    "distill labels out of range": (
        lambda: kd.distill(APPLY, PARAMS, X, LOGITS[:, :2], Y + 5, **KD, **_no_loss(FIT)),
        r"labels must lie in \[0, 1\]",
    ),
    "distill teacher NaN": (
        lambda: kd.distill(APPLY, PARAMS, X, LOGITS[:, :2] * NAN, Y, **KD, **_no_loss(FIT)),
        "teacher_logits contains",
    ),
    "distill teacher of another shape": (
        lambda: kd.distill(APPLY, PARAMS, X, LOGITS, Y, **KD, **_no_loss(FIT)),
        "must have the same shape",
    ),
    "online_distill x=None": (
        lambda: kd.online_distill(
            APPLY, PARAMS, None, LOGITS[None, :, :2], Y, **KD, **_no_loss(FIT)
        ),
        "x must be an array of numbers",
    ),
    "online_distill teacher NaN": (
        lambda: kd.online_distill(
            APPLY, PARAMS, X, LOGITS[None, :, :2] * NAN, Y, **KD, **_no_loss(FIT)
        ),
        "teacher_logits contains",
    ),
    "online_distill labels out of range": (
        lambda: kd.online_distill(
            APPLY, PARAMS, X, LOGITS[None, :, :2], Y + 5, **KD, **_no_loss(FIT)
        ),
        r"labels must lie in \[0, 1\]",
    ),
    "codistill optimizer (sgd, None)": (
        lambda: kd.codistill(
            APPLY,
            PARAMS,
            APPLY,
            PARAMS,
            X,
            Y,
            **KD,
            **{**_no_loss(FIT), "optimizer": (optax.sgd(0.1), None)},
        ),
        r"optimizer\[1\] must be an Optax",
    ),
    "codistill apply_b of other outputs": (
        lambda: kd.codistill(APPLY, PARAMS, APPLY_3, PARAMS_3, X, Y, **KD, **_no_loss(FIT)),
        r"apply_a and apply_b must return outputs of the same shape .* \(4, 2\) and \(4, 3\)",
    ),
    "codistill apply_b=None": (
        lambda: kd.codistill(APPLY, PARAMS, None, PARAMS, X, Y, **KD, **_no_loss(FIT)),
        r"apply_b must be a function apply_b\(params, x\)",
    ),
    "codistill params_b of another model": (
        lambda: kd.codistill(APPLY, PARAMS, APPLY, OTHER_PARAMS, X, Y, **KD, **_no_loss(FIT)),
        r"apply_b\(params_b, x\) fails",
    ),
    "fit apply=None": (lambda: _fit(apply=None), r"apply must be a function apply\(params, x\)"),
    "distill labels=None with a hard-label term": (
        lambda: kd.distill(APPLY, PARAMS, X, LOGITS[:, :2], None, **KD, **_no_loss(FIT)),
        "labels=None is allowed only with soft_ratio=1",
    ),
    "online_distill labels=None with a hard-label term": (
        lambda: kd.online_distill(
            APPLY, PARAMS, X, LOGITS[None, :, :2], None, **KD, **_no_loss(FIT)
        ),
        "labels=None is allowed only with soft_ratio=1",
    ),
    "online_distill schedule of bools": (
        lambda: kd.online_distill(
            APPLY, PARAMS, X, LOGITS[None, :, :2], Y, **KD, **_no_loss(FIT), schedule=[True, 0]
        ),
        "schedule must hold numbers",
    ),
    "fit eval_fn metric a string": (
        lambda: _fit(eval_fn=lambda p: {"v": "0.5"}, eval_every=1),
        "eval_fn must return a dict of real-number metrics",
    ),
    "train_scan opt_state for other params": (
        lambda: kd.train_scan(
            APPLY,
            PARAMS,
            (X, Y),
            loss=kd.cross_entropy,
            optimizer=optax.adam(0.1),
            steps=1,
            opt_state=optax.adam(0.1).init(OTHER_PARAMS),
        ),
        r"opt_state must be a state of this optimizer for these params: at opt_state\[0\]\.mu",
    ),
    "end_to_end ragged nested lists": (
        lambda: kd.end_to_end({"weight": [[1.0, 2.0], [3.0]]}),
        r"params\['weight'\] must be an array of numbers",
    ),
    "end_to_end a 1-D weight": (
        lambda: kd.end_to_end({"weight": [1.0, 2.0]}),
        r"params\['weight'\] must be a 2-D weight matrix",
    ),
    "end_to_end string weights": (
        lambda: kd.end_to_end({"layers": {0: {"weight": [["a"]]}}}),
        r"params\['layers'\]\[0\]\['weight'\] must be an array of real numbers",
    ),
    "cross_entropy labels beyond int32": (
        lambda: kd.cross_entropy(LOGITS[:2], np.array([2**32, 1])),
        r"labels hold values in \[1, 4294967296\], beyond int32",
    ),
    "kd_loss labels None": (
        lambda: kd.kd_loss(LOGITS, LOGITS, None, **KD),
        "labels must be an array of integer class labels, got None",
    ),
    "accuracy string labels": (
        lambda: kd.accuracy(LOGITS, np.array(["0", "1", "0", "1"])),
        "labels must be integer class indices, got dtype <U1",
    ),
    "kd_loss temperature '2' (a string)": (
        lambda: kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature="2"),
        "temperature must be a number, got the string '2'",
    ),
    "smooth_labels label_smoothing complex": (
        lambda: kd.smooth_labels(Y, 2, label_smoothing=0.1j),
        "label_smoothing must be a real number, got the complex",
    ),
    "partial_teacher_logits differences overflow": (
        lambda: kd.partial_teacher_logits(jnp.array([[3e38, -3e38, 0.0]]), jnp.array([1])),
        "partial_teacher_logits overflows float32",
    ),
    "MLP complex x": (lambda: APPLY(PARAMS, X * 1j), "x must be an array of real numbers"),
    "Linear string x": (
        lambda: kd.Linear(3)(np.array([["a", "b", "c"]])),
        "x must be an array of real numbers",
    ),
    "fit string targets": (
        lambda: _fit(data=([[1.0, 2.0, 3.0]], ["a"])),
        r"data\[1\] must be an array of real numbers",
    ),
    "empirical_ntk (n, k, 1) outputs": (
        lambda: kd.empirical_ntk(lambda p, x: APPLY(p, x)[:, :, None], PARAMS, X),
        r"must return one array of outputs, \(n,\) or \(n, k\)",
    ),
    "empirical_ntk integer outputs": (
        lambda: kd.empirical_ntk(lambda p, x: APPLY(p, x).astype(jnp.int32), PARAMS, X),
        "must return real floating outputs",
    ),
    "empirical_ntk x of 0 features": (
        lambda: kd.empirical_ntk(APPLY, PARAMS, jnp.ones((4, 0))),
        "x1 must have d >= 1 features",
    ),
    "tree_stack string leaves": (
        lambda: kd.tree_stack([{"a": "x"}, {"a": "y"}]),
        r"trees\[0\]\['a'\] must be an array of real numbers",
    ),
    "tree_norm overflows float16": (
        lambda: kd.tree_norm({"a": np.array([60000, 60000], np.float16)}),
        "tree_norm overflows float16",
    ),
    "fit labels beyond int32": (
        lambda: _fit(data=(X, np.array([2**32 + 1, 1, 0, 1]))),
        r"data\[1\] hold values in \[0, 4294967297\], beyond int32",
    ),
    "codistill labels out of range": (
        lambda: kd.codistill(APPLY, PARAMS, APPLY, PARAMS, X, Y + 5, **KD, **_no_loss(FIT)),
        r"labels must lie in \[0, 1\]",
    ),
}


def _no_loss(options):
    return {name: value for name, value in options.items() if name != "loss"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clear_error(case):
    call, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_misspelt_options_of_the_distillers_name_them():
    teacher, pair = LOGITS[:, :2], (APPLY, PARAMS, APPLY, PARAMS)
    calls = {
        "distill": lambda **o: kd.distill(APPLY, PARAMS, X, teacher, Y, **KD, **o),
        "online_distill": lambda **o: kd.online_distill(
            APPLY, PARAMS, X, teacher[None], Y, **KD, **o
        ),
        "codistill": lambda **o: kd.codistill(*pair, X, Y, **KD, **o),
    }
    for name, call in calls.items():
        for option in ("batchsize", "loss"):
            with pytest.raises(TypeError, match=rf"^{name}\(\) got .* keyword argument '{option}'"):
                call(**_no_loss(FIT), **{option: 1})


def test_the_checks_run_outside_jit_and_stay_silent_inside():
    """Value checks need concrete values: traced under jit they are skipped, never wrong."""
    loss = jax.jit(lambda s, t, y: kd.kd_loss(s, t, y, **KD))
    assert np.isfinite(float(loss(LOGITS, LOGITS, Y)))
    assert np.isnan(float(loss(LOGITS * NAN, LOGITS, Y)))  # traced: no check, as documented


def test_a_nan_metric_under_early_stopping_raises_instead_of_stopping_silently():
    with pytest.raises(FloatingPointError, match="monitor='v' is nan at step 0"):
        _fit(eval_fn=lambda p: {"v": np.nan}, eval_every=1, patience=1, monitor="v")


def test_labels_none_at_soft_ratio_one_is_distillation_on_an_unlabelled_transfer_set():
    teacher, options = LOGITS[:, :2], {**_no_loss(FIT), "soft_ratio": 1.0, "temperature": 2.0}
    unlabelled = kd.distill(APPLY, PARAMS, X, teacher, None, **options)
    labelled = kd.distill(APPLY, PARAMS, X, teacher, Y, **options)  # unused at soft_ratio=1
    np.testing.assert_array_equal(unlabelled.history["loss"], labelled.history["loss"])
    online = kd.online_distill(APPLY, PARAMS, X, teacher[None], None, **options)
    np.testing.assert_array_equal(online.history["loss"], labelled.history["loss"])


def test_soft_targets_and_partial_teachers_at_tiny_temperatures_reach_their_limits():
    # z / T overflows float32 (1e40); the limits are one-hot targets and finite logits
    np.testing.assert_array_equal(kd.soft_targets([[1e30, 0.0]], temperature=1e-10), [[1, 0]])
    partial = kd.partial_teacher_logits(
        jnp.array([[1e30, 0.0, 0.0]]), jnp.array([1]), temperature=1e-10
    )
    # T log p_T: the true class keeps z - max z; the two wrong classes share p = (1 + 0) / 2
    np.testing.assert_allclose(
        partial, [[-1e-10 * np.log(2), -1e30, -1e-10 * np.log(2)]], rtol=1e-6
    )
    # at moderate temperatures the shifted form is the textbook one: T log p_T, the wrong
    # classes outside the top_k sharing their mean probability
    z = np.asarray(LOGITS, np.float64)
    wrong = np.ones_like(z, bool)
    wrong[np.arange(4), np.asarray(Y)] = False
    for t in (0.5, 3.0):
        log_p = z / t - np.log(np.exp(z / t).sum(1, keepdims=True))
        np.testing.assert_allclose(
            kd.partial_teacher_logits(LOGITS, Y, top_k=2, temperature=t), t * log_p, rtol=1e-5
        )
        shared = np.log(np.where(wrong, np.exp(log_p), 0).sum(1, keepdims=True) / 2)
        expected = np.where(wrong, t * shared, t * log_p)  # top_k=0: both wrong classes share
        np.testing.assert_allclose(
            kd.partial_teacher_logits(LOGITS, Y, top_k=0, temperature=t), expected, rtol=1e-5
        )


def test_angles_of_subnormal_vectors_are_those_of_the_vectors():
    """XLA on CPU flushes numbers below 1.2e-38 (float32) to zero; the angle functions rescale
    concrete input in NumPy first, so tiny vectors keep their direction."""
    tiny = np.array([1e-40, 1e-40], np.float32), np.array([1e-40, 1e-41], np.float32)
    reference = np.arccos(1.1 / np.sqrt(2 * 1.01))  # the same vectors scaled by 1e40
    np.testing.assert_allclose(kd.theory.vector_angle(*tiny), reference, rtol=1e-4)
    np.testing.assert_allclose(kd.tree_angle({"a": tiny[0]}, {"a": tiny[1]}), reference, rtol=1e-4)


def test_valid_edge_cases_still_work():
    """What the checks must not refuse: integer inputs are converted, tiny and huge but
    representable values are kept, NumPy integers are integers."""
    # Python numbers and lists are pytrees too (scalar leaves)
    assert float(kd.tree_inner({"w": 1.0}, {"w": 2.0})) == 2.0
    np.testing.assert_allclose(kd.tree_add([1.0, 2.0], [3.0, 4.0]), [4.0, 6.0])
    np.testing.assert_allclose(kd.tree_angle([1.0, 0.0], [0.0, 1.0]), np.pi / 2, rtol=1e-6)
    np.testing.assert_allclose(kd.tree_stack([{"a": 1.0}, {"a": 2.0}])["a"], [1.0, 2.0])
    ints = np.arange(12).reshape(4, 3)
    ntvp = kd.empirical_ntk(APPLY, PARAMS, ints, method="ntvp")
    jacobian = kd.empirical_ntk(APPLY, PARAMS, ints.astype(np.float32), method="jacobian")
    np.testing.assert_allclose(ntvp, jacobian, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kd.squared_loss(np.array([100000]), np.array([0])), 5e9, rtol=1e-6)
    # the squares overflow float32 (4e38), the loss does not: 2e38
    np.testing.assert_allclose(
        kd.squared_loss(jnp.array([2e19]), jnp.array([0.0])), 2e38, rtol=1e-6
    )
    np.testing.assert_allclose(
        kd.logit_matching_loss(jnp.array([[2e19, -2e19]]), jnp.zeros((1, 2))), 2e38, rtol=1e-6
    )
    # a common shift of every logit changes nothing, also when the row mean would overflow
    assert float(kd.logit_matching_loss(jnp.array([[3e38, 3e38]]), jnp.zeros((1, 2)))) == 0.0
    bf16 = LOGITS.astype(jnp.bfloat16)  # a floating dtype, as on TPUs
    np.testing.assert_allclose(
        kd.cross_entropy(bf16, Y), kd.cross_entropy(bf16.astype(jnp.float32), Y), rtol=1e-2
    )
    # half precision passes the checks and keeps its dtype's answers
    half = jnp.array([200.0, 0.0], jnp.float16)
    np.testing.assert_allclose(kd.squared_loss(half, jnp.zeros(2, jnp.float16)), 1e4, rtol=1e-3)
    np.testing.assert_allclose(
        kd.fit_power_law(jnp.array([1.0, 2, 4], jnp.bfloat16), [1, 0.5, 0.25]), (-1, 1), rtol=1e-6
    )
    scores = {"w": jnp.arange(6.0).reshape(2, 3).astype(jnp.bfloat16)}
    np.testing.assert_array_equal(kd.prune.magnitude_mask(scores, 0.5)["w"], [[0, 0, 0], [1, 1, 1]])
    keys = kd.tree_stack([{"k": jax.random.key(0)}, {"k": jax.random.key(1)}])["k"]
    assert keys.shape == (2,)
    # integer inputs (token ids) reach the model unconverted, as in fit
    embed = kd.functionalize(nnx.Embed(5, 2, rngs=nnx.Rngs(0)))
    ids = jnp.array([0, 1, 4, 2])
    pair = (lambda p, x: embed[0](p, x), embed[1]) * 2
    kd.codistill(*pair, ids, Y, **KD, **_no_loss(FIT))
    mlp = kd.MLP(3, depth=1, width=4, out_features=2, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(mlp([[1.0, 2.0, 3.0]]), mlp(jnp.array([[1.0, 2.0, 3.0]])))
    listed = _fit(data=(np.asarray(X).tolist(), np.asarray(Y).tolist()))  # lists are arrays
    np.testing.assert_array_equal(listed.history["loss"], _fit().history["loss"])
    shape_array = kd.CNN(np.array([4, 4, 1]), channels=(2,), out_features=3, rngs=nnx.Rngs(0))
    assert shape_array.image_shape == (4, 4, 1)
    np.testing.assert_allclose(kd.cross_entropy(np.zeros((2, 4), int), Y[:2]), np.log(4), rtol=1e-6)
    smoothed = kd.smooth_labels(np.array([0, 2]), np.int64(3), label_smoothing=0.3)
    np.testing.assert_allclose(smoothed.sum(1), 1.0, rtol=1e-6)
    kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e18)
    kd.kd_loss(LOGITS, LOGITS, Y, soft_ratio=0.5, temperature=1e-18)
    result = _fit(
        steps=np.int64(2), eval_fn=_metrics, eval_every=np.int64(1), checkpoint_steps=[np.int64(1)]
    )
    assert list(result.checkpoints) == [1]
    cnn = kd.CNN((4, 4, 1), channels=(2,), out_features=3, rngs=nnx.Rngs(0))
    ones = cnn(jnp.ones((2, 16)))  # integer and float64 inputs are converted as by MLP
    np.testing.assert_allclose(cnn(jnp.ones((2, 16), jnp.int32)), ones, rtol=1e-6)
    with kd.enable_x64():
        np.testing.assert_allclose(cnn(np.ones((2, 16))), ones, rtol=1e-5)
    options = {**KD, **_no_loss(FIT), "steps": 0}  # no update, as fit(steps=0)
    result = kd.online_distill(APPLY, PARAMS, X, LOGITS[None, :, :2], Y, **options)
    assert result.params is PARAMS and result.history["checkpoint"].size == 0
    big_ints = {"w": jnp.array([100000, 100000])}  # int32: the inner product wrapped around
    np.testing.assert_allclose(kd.tree_inner(big_ints, big_ints), 2e10, rtol=1e-6)
    np.testing.assert_allclose(kd.tree_norm(big_ints), np.sqrt(2) * 1e5, rtol=1e-6)
    np.testing.assert_allclose(kd.tree_add(big_ints, big_ints)["w"], 2e5, rtol=1e-6)
    tiny = {"a": jnp.array([1e-30, 1e-30])}
    np.testing.assert_allclose(kd.tree_norm(tiny), np.sqrt(2) * 1e-30, rtol=1e-6)
    huge = {"a": jnp.array([1e20, 1e20])}
    np.testing.assert_allclose(kd.tree_norm(huge), np.sqrt(2) * 1e20, rtol=1e-6)
    angle = kd.tree_angle({"a": jnp.array([1e20, 0.0])}, {"a": jnp.array([1e20, 1e19])})
    np.testing.assert_allclose(angle, np.arctan(0.1), rtol=1e-5)
    angle = kd.tree_angle({"a": jnp.array([1e-25, 0.0])}, {"a": jnp.array([1e-25, 1e-26])})
    np.testing.assert_allclose(angle, np.arctan(0.1), rtol=1e-5)


def test_erf_kernel_is_finite_and_accurate_for_large_inputs_in_float32():
    """Inputs of norm 1e4: the erf derivative's determinant no longer cancels to inf."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 4))
    x = 1e4 * x / np.linalg.norm(x, axis=1, keepdims=True)
    far = rng.normal(size=(3, 4))
    far = 1e4 * far / np.linalg.norm(far, axis=1, keepdims=True)
    for x2 in (None, far):
        single = kd.infinite_kernels(
            x.astype(np.float32),
            None if x2 is None else x2.astype(np.float32),
            depth=2,
            activation="erf",
        )
        with kd.enable_x64():
            double = kd.infinite_kernels(x, x2, depth=2, activation="erf")
        for a, b in zip(single, double, strict=True):
            assert np.all(np.isfinite(np.asarray(a)))
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3)


def test_erf_kernel_refuses_what_float32_cannot_resolve():
    """The same input in x1 and x2 at norm 1e4: float32's cosine is 1 - 1e-7 instead of 1, which
    moves the derivative's determinant from 1e8 to ~5e8 (an NTK entry 60% off); float64 is
    exact enough, and the refusal says how to get it."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 4))
    x = 1e4 * x / np.linalg.norm(x, axis=1, keepdims=True)
    with pytest.raises(ValueError, match="float32 cannot resolve the angle.*enable_x64"):
        kd.infinite_kernels(
            x.astype(np.float32), x[:3].astype(np.float32), depth=2, activation="erf"
        )
    with kd.enable_x64():
        cross = kd.infinite_kernels(x, x[:3], depth=2, activation="erf")
        gram = kd.infinite_kernels(x, depth=2, activation="erf")
    for a, b in zip(cross, gram, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[:, :3], rtol=1e-6)
    small = x.astype(np.float32) / 100  # |x|^2 / d = 2500: resolvable in float32
    kernels = kd.infinite_kernels(small, small[:3], depth=2, activation="erf")
    with kd.enable_x64():
        exact = kd.infinite_kernels(x / 100, x[:3] / 100, depth=2, activation="erf")
    for a, b in zip(kernels, exact, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3)


@pytest.mark.parametrize("activation, b_std", [("relu", 0.0), ("relu", 0.5), ("erf", 0.0)])
def test_infinite_kernels_of_tiny_and_huge_inputs_match_float64(activation, b_std):
    """Rows of norm 1e-23 and 1e15 in float32: their squares under/overflow, their kernels do
    not (the probe: ReLU nngp 0 and ntk 1.25e-9 instead of 2.5e-9 and 5e-9)."""
    x1, x2 = np.array([[1e-23, 0.0], [1e-23, 2e-23]]), np.array([[1e15, 0.0], [0.0, 3e14]])
    single = kd.infinite_kernels(
        x1.astype(np.float32), x2.astype(np.float32), depth=2, activation=activation, b_std=b_std
    )
    with kd.enable_x64():
        double = kd.infinite_kernels(x1, x2, depth=2, activation=activation, b_std=b_std)
    for a, b in zip(single, double, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(np.abs(b).max()))
    depth1 = kd.infinite_kernels(x1[:1].astype(np.float32), x2[:1].astype(np.float32), depth=1)
    np.testing.assert_allclose(depth1, [[[2.5e-9]], [[5e-9]]], rtol=1e-5)


def test_two_layer_ntk_of_tiny_and_huge_inputs_is_exact():
    """x.x' (pi - theta) / (2 pi) = 0.5 for [1e20, 0] and [1e-20, 0] (was 0.25: the norms'
    squares overflowed and underflowed), and 5e-26 for [1e-25, 0] and [1, 0] (was 2.5e-26)."""
    np.testing.assert_allclose(kd.two_layer_ntk([[1e20, 0.0]], [[1e-20, 0.0]]), [[0.5]], rtol=1e-6)
    np.testing.assert_allclose(kd.two_layer_ntk([[1e-25, 0.0]], [[1.0, 0.0]]), [[5e-26]], rtol=1e-6)
    x1, x2 = np.array([[1e-25, 3e-25], [2e-25, -1e-25]]), np.array([[2e15, 5e14], [1e17, 3e17]])
    with kd.enable_x64():
        double = np.asarray(kd.two_layer_ntk(x1, x2))
    single = kd.two_layer_ntk(x1.astype(np.float32), x2.astype(np.float32))
    np.testing.assert_allclose(single, double, rtol=1e-5)
