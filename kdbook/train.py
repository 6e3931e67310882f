"""Training: one jitted training loop for any ``apply(params, x)`` and any Optax optimizer.

* :func:`fit` is the loop a reader watches: progress bar, a history of metrics, evaluation every
  ``k`` steps, in-memory checkpoints and early stopping.
* :func:`train_scan` runs the *same* update steps inside ``jax.lax.scan``, with no Python side
  effects, so a whole training run can be ``jax.vmap``-ed over seeds or hyperparameters.
* :func:`distill` trains a student on a teacher's logits with :func:`kdbook.losses.kd_loss`
  (offline distillation: the teacher is trained first and held fixed).
* :func:`online_distill` trains a student on a *sequence* of teacher checkpoints recorded during
  the teacher's training, following a schedule (Harutyunyan et al., 2023).
* :func:`codistill` trains two models together, each distilling from the other's current outputs
  (deep mutual learning, Zhang et al., 2018; codistillation, Anil et al., 2018).

A loss is a function ``loss(outputs, *targets) -> scalar`` where ``outputs = apply(params, x)`` and
``data = (x, *targets)``. Full-batch training needs no key; minibatches are drawn by shuffling the
data once per epoch with ``fold_in(key, epoch)`` (the last incomplete batch is dropped), so the
same key, data and settings give the same result, bit for bit, on one machine.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from kdbook._checks import (
    as_array,
    as_float_array,
    check_bool,
    check_callable,
    check_finite,
    is_concrete,
)
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_key as _check_key
from kdbook._checks import real_array as _real_array
from kdbook.functional import Apply, Params, as_pytree, output_shape, row_outputs
from kdbook.losses import kd_loss

__all__ = ["FitResult", "codistill", "distill", "fit", "online_distill", "train_scan"]

Loss = Callable[..., jax.Array]


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        params: the trained parameters (the best ones seen, when early stopping monitors a metric).
        history: ``"step"`` and ``"loss"`` (training loss before each update), ``"eval_step"`` and
            one array per metric returned by ``eval_fn``; all NumPy arrays.
        checkpoints: ``{step: params}`` for each requested checkpoint step reached (the parameters
            after ``step`` updates; step 0 is the initialisation).
        best_step: with early stopping, the step of the best monitored value; else ``None``.
    """

    params: Params
    history: dict[str, np.ndarray]
    checkpoints: dict[int, Params]
    best_step: int | None


def _check_data(data: Sequence[jax.Array], batch_size: int | None, key) -> tuple[tuple, int]:
    """``data`` as a tuple of arrays, checked, and its number of examples."""
    if not isinstance(data, tuple | list) or len(data) == 0:
        got = f"an array of shape {jnp.shape(data)}" if hasattr(data, "shape") else repr(data)
        raise ValueError(
            f"data must be a non-empty tuple (x, *targets) of arrays, got {got[:80]}; for "
            "inputs alone pass (x,)"
        )
    data = tuple(as_array(f"data[{i}]", a) for i, a in enumerate(data))
    sizes = {int(jnp.shape(a)[0]) if jnp.ndim(a) else -1 for a in data}
    if len(sizes) != 1 or -1 in sizes:
        shapes = [jnp.shape(a) for a in data]
        raise ValueError(
            f"every array in data must have the same leading (example) dimension, "
            f"got shapes {shapes}"
        )
    (n,) = sizes
    if n == 0:
        raise ValueError("data is empty: it needs at least one example")
    for i, a in enumerate(data):
        check_finite(f"data[{i}]", a)
    _check_int("batch_size", batch_size, allow_none=True)
    if batch_size is not None:
        if batch_size > n:
            raise ValueError(
                f"batch_size={batch_size} is larger than the data ({n} examples); "
                "use batch_size=None for full-batch training"
            )
        if key is None:
            raise ValueError("minibatch training (batch_size set) needs a PRNG key: pass key=...")
    if key is not None:
        _check_key("key", key)
    return data, n


def _check_optimizer(name: str, optimizer) -> None:
    if not isinstance(optimizer, optax.GradientTransformation) and not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise ValueError(
            f"{name} must be an Optax gradient transformation such as optax.sgd(0.1), got "
            f"{optimizer!r}"[:200]
        )


def _preflight(apply: Apply, params: Params, data: tuple, loss: Loss) -> None:
    """Before training, trace ``apply`` on ``x`` and evaluate ``loss`` once outside ``jit``.

    A compiled step skips the value checks of a loss (labels in ``[0, k)``, teacher logits that
    match the outputs), since its arguments are traced; here the loss is traced with the real,
    concrete targets (only the outputs are abstract), so they run, and nothing is computed. A
    network that cannot take ``x`` fails here with a message naming ``x``.
    """
    check_callable("apply", apply, what="apply(params, x) -> outputs")
    check_callable("loss", loss, what="loss(outputs, *targets) -> scalar")
    if not is_concrete(*jax.tree_util.tree_leaves(data)):  # under vmap: nothing concrete to check
        return
    outputs = output_shape(apply, params, data[0], name="x (data[0])")
    targets = data[1:]  # closed over, so concrete inside the trace: the value checks run
    value = jax.eval_shape(lambda out: loss(out, *targets), outputs)
    if not isinstance(value, jax.ShapeDtypeStruct) or value.shape != ():
        raise ValueError(
            f"loss(outputs, *targets) must return a scalar (the mean over the batch), got {value}"
        )


def _make_step(
    apply: Apply,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    n: int,
    batch_size: int | None,
    mesh: Mesh | None = None,
):
    """The pure update ``(params, opt_state, step, key, data) -> (params, opt_state, loss)``.

    With a ``mesh`` (data-parallel training) each minibatch is split over the mesh's devices
    along its examples and the new parameters are replicated: the compiler then averages the
    per-device gradients (an all-reduce) inside the one compiled step.
    """

    def batch_at(step, key, data):
        if batch_size is None:
            return data
        per_epoch = n // batch_size
        order = jax.random.permutation(jax.random.fold_in(key, step // per_epoch), n)
        index = jax.lax.dynamic_slice_in_dim(order, (step % per_epoch) * batch_size, batch_size)
        batch = tuple(jnp.take(a, index, axis=0) for a in data)
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, _example_sharding(mesh))
        return batch

    def objective(params, batch):
        return loss(apply(params, batch[0]), *batch[1:])

    def step(params, opt_state, step, key, data):
        value, grads = jax.value_and_grad(objective)(params, batch_at(step, key, data))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if mesh is not None:
            replicated = NamedSharding(mesh, PartitionSpec())
            params, opt_state = jax.lax.with_sharding_constraint((params, opt_state), replicated)
        return params, opt_state, value

    return step


def _data_mesh() -> Mesh:
    """All of ``jax.devices()`` as one axis, ``"examples"``, for data-parallel training."""
    return Mesh(np.asarray(jax.devices()), ("examples",))


def _example_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays split along their first (example) axis over the mesh."""
    return NamedSharding(mesh, PartitionSpec("examples"))


class _Static:
    """A loss or optimizer as a static ``jax.jit`` argument, equal to another when it computes the
    same thing: ``functools.partial`` objects with equal functions and (hashable) arguments are
    equal, anything else is compared by identity. So ``fit`` compiles once per computation, not
    once per call (``distill`` builds a new ``partial(kd_loss, ...)`` at every call)."""

    def __init__(self, value):
        self.value = value
        key = value
        if isinstance(value, partial):
            key = (value.func, value.args, tuple(sorted(value.keywords.items())))
            try:
                hash(key)
            except TypeError:  # an array among the arguments: fall back to identity
                key = value
        self.key = key

    def __eq__(self, other):
        if not isinstance(other, _Static):
            return NotImplemented
        if self.key is self.value or other.key is other.value:
            return self.value is other.value
        return self.key == other.key

    def __hash__(self):
        return id(self.value) if self.key is self.value else hash(self.key)


@partial(jax.jit, static_argnames=("loss", "optimizer", "n", "batch_size", "mesh"))
def _jitted_step(
    apply, params, opt_state, step, key, data, *, loss, optimizer, n, batch_size, mesh
):
    """One update of :func:`fit`, compiled once per (model structure, loss, optimizer, shapes)."""
    update = _make_step(apply, loss.value, optimizer.value, n, batch_size, mesh)
    return update(params, opt_state, step, key, data)


def train_scan(
    apply: Apply,
    params: Params,
    data: Sequence[jax.Array],
    *,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    steps: int,
    opt_state: optax.OptState | None = None,
    key: jax.Array | None = None,
    batch_size: int | None = None,
) -> tuple[Params, jax.Array, optax.OptState]:
    """Run ``steps`` updates inside ``jax.lax.scan``: jittable and ``vmap``-able.

    The updates are exactly those of :func:`fit` with the same arguments. Use it to train many
    models at once, e.g. ``jax.vmap(lambda rho: train_scan(..., loss=partial(kd_loss,
    soft_ratio=rho, ...))[0])(rhos)``.

    To train in chunks, pass the returned optimizer state back in: ``k`` steps from
    ``(params, opt_state)`` and ``k`` more from the result are the same run as ``2 k`` steps
    (Adam's moments and step count, momentum, schedules continue). Without ``opt_state`` the
    optimizer starts afresh (``optimizer.init(params)``), which changes nothing for plain
    ``optax.sgd`` but restarts any stateful optimizer. The minibatch order depends on ``key`` and
    the step number within this call, so chunks of minibatch training repeat the same order
    unless each chunk gets its own key.

    Args:
        apply: ``apply(params, x) -> outputs``.
        params: initial parameters (any pytree).
        data: ``(x, *targets)``, arrays sharing the leading dimension ``n``.
        loss: ``loss(outputs, *targets) -> scalar``.
        optimizer: an Optax gradient transformation.
        steps: number of updates.
        opt_state: the optimizer's state to continue from (as returned by an earlier call), or
            ``None`` for ``optimizer.init(params)``.
        key: PRNG key for minibatch order (required when ``batch_size`` is set).
        batch_size: minibatch size, or ``None`` for full-batch.

    Returns:
        ``(params, losses, opt_state)``: the final parameters, the ``(steps,)`` training losses
        (each before its update) and the final optimizer state.

    Raises:
        ValueError: as :func:`fit` (the loss's checks run when ``data`` is concrete, not under
            ``jax.vmap``), and for an ``opt_state`` that is not a state of ``optimizer`` for
            ``params`` (another structure, or leaves of other shapes or dtypes).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> apply = lambda w, x: x @ w
        >>> x, y = jnp.eye(3), jnp.array([1.0, -2.0, 0.5])
        >>> from kdbook.losses import squared_loss
        >>> options = dict(loss=squared_loss, optimizer=optax.adam(0.1), steps=5)
        >>> w, losses, state = train_scan(apply, jnp.zeros(3), (x, y), **options)
        >>> w, more, state = train_scan(apply, w, (x, y), opt_state=state, **options)
        >>> losses.shape
        (5,)
    """
    data, n = _check_data(data, batch_size, key)
    _check_int("steps", steps, minimum=0)
    _preflight(apply, params, data, loss)
    step = _make_step(apply, loss, optimizer, n, batch_size)
    key = jax.random.key(0) if key is None else key
    _check_optimizer("optimizer", optimizer)
    if opt_state is not None:
        expected = jax.eval_shape(optimizer.init, params)
        if jax.tree.structure(opt_state) != jax.tree.structure(expected):
            raise ValueError(
                "opt_state must be a state of this optimizer for these params (as returned by "
                "an earlier train_scan with the same optimizer), got a state of another structure"
            )
        for (path, leaf), want in zip(
            jax.tree_util.tree_leaves_with_path(opt_state), jax.tree.leaves(expected), strict=True
        ):
            got = (np.shape(leaf), jnp.result_type(leaf))
            if got != (want.shape, want.dtype):
                raise ValueError(
                    f"opt_state must be a state of this optimizer for these params: at "
                    f"opt_state{jax.tree_util.keystr(path)} it holds shape {got[0]} and dtype "
                    f"{got[1]}, the optimizer's state for params has {want.shape} and {want.dtype}"
                )
    opt_state = optimizer.init(params) if opt_state is None else opt_state

    def body(carry, i):
        params, opt_state = carry
        params, opt_state, value = step(params, opt_state, i, key, data)
        return (params, opt_state), value

    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), jnp.arange(steps))
    return params, losses, opt_state


def fit(
    apply: Apply,
    params: Params,
    data: Sequence[jax.Array],
    *,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    steps: int,
    key: jax.Array | None = None,
    batch_size: int | None = None,
    eval_fn: Callable[[Params], dict] | None = None,
    eval_every: int | None = None,
    checkpoint_steps: Iterable[int] = (),
    patience: int | None = None,
    monitor: str | None = None,
    minimize: bool = True,
    progress: bool = True,
    desc: str = "training",
    data_parallel: bool = False,
) -> FitResult:
    """Train ``params`` of ``apply`` on ``data`` with an Optax optimizer.

    Args:
        apply: ``apply(params, x) -> outputs``; for an NNX model use
            :func:`kdbook.functional.functionalize`.
        params: initial parameters.
        data: ``(x, *targets)``, arrays sharing the leading dimension ``n``.
        loss: ``loss(outputs, *targets) -> scalar``.
        optimizer: an Optax gradient transformation, e.g. ``optax.sgd(1.0)``.
        steps: maximum number of updates.
        key: PRNG key for minibatch order (required when ``batch_size`` is set).
        batch_size: minibatch size, or ``None`` for full-batch gradient descent.
        eval_fn: ``eval_fn(params) -> {name: scalar}``, called at step 0, every ``eval_every``
            updates and at the end.
        eval_every: evaluation period in updates (default: only at the start and the end).
        checkpoint_steps: steps at which to keep a copy of the parameters in memory.
        patience: stop after this many evaluations without improvement of ``monitor``, and
            return the best parameters seen.
        monitor: the ``eval_fn`` metric early stopping watches.
        minimize: whether a smaller ``monitor`` is better.
        progress: show a progress bar (tqdm).
        desc: the progress bar's label.
        data_parallel: train on all of ``jax.devices()`` at once: every (mini)batch is split
            over the devices along its examples (``jax.sharding``), the parameters and the
            optimizer state are replicated, and the compiler averages the gradients. The
            updates are those of one device, up to float round-off (the gradient is summed in
            another order). The batch (``n`` for full-batch training, else ``batch_size``) must
            be a multiple of the number of devices. With one device this changes nothing.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: before any update, for: ``data`` not a tuple of arrays sharing their first
            dimension, or holding NaN or inf; ``apply`` that cannot take ``x`` (its message
            names ``x``); a loss that is not a scalar or whose own checks fail on the targets
            (e.g. :func:`kdbook.losses.kd_loss`'s labels outside ``[0, k)``: the loss is traced
            once with the real targets); an ``optimizer`` that is not an Optax transformation;
            integer options (``steps``, ``batch_size``, ``eval_every``, ``patience``,
            ``checkpoint_steps``) that are not integers (bools are refused) or out of range;
            bool options (``minimize``, ``progress``, ``data_parallel``) that are not ``True`` or
            ``False``;
            ``batch_size`` without ``key``; a ``key`` that is not one JAX PRNG key (an integer
            seed, or an array of split keys); ``patience`` without ``monitor``, ``eval_fn`` and
            ``eval_every``; ``eval_fn`` that does not return a dict of real scalars.
        FloatingPointError: if the training loss becomes NaN or infinite (lower the learning
            rate), or the metric early stopping monitors does.
    """
    data, n = _check_data(data, batch_size, key)
    return _loop(
        apply,
        params,
        lambda s: data,
        n,
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        key=key,
        batch_size=batch_size,
        eval_fn=eval_fn,
        eval_every=eval_every,
        checkpoint_steps=checkpoint_steps,
        patience=patience,
        monitor=monitor,
        minimize=minimize,
        progress=progress,
        desc=desc,
        data_parallel=data_parallel,
    )


def _loop(
    apply: Apply,
    params: Params,
    data_at: Callable[[int], tuple],
    n: int,
    *,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    steps: int,
    key: jax.Array | None = None,
    batch_size: int | None = None,
    eval_fn: Callable[[Params], dict] | None = None,
    eval_every: int | None = None,
    checkpoint_steps: Iterable[int] = (),
    patience: int | None = None,
    monitor: str | None = None,
    minimize: bool = True,
    progress: bool = True,
    desc: str = "training",
    data_parallel: bool = False,
) -> FitResult:
    """:func:`fit`'s loop, with the data of update ``s`` given by ``data_at(s)`` (arrays of fixed
    shapes, so the step compiles once): :func:`online_distill` changes the teacher's logits."""
    _check_int("steps", steps, minimum=0)
    _check_optimizer("optimizer", optimizer)
    if isinstance(checkpoint_steps, int | np.integer) or not isinstance(checkpoint_steps, Iterable):
        raise ValueError(
            f"checkpoint_steps must be a list of integer steps, got {checkpoint_steps!r}"
        )
    checkpoint_steps = list(checkpoint_steps)
    for s in checkpoint_steps:
        _check_int("checkpoint_steps", s, minimum=0)
    checkpoint_steps = sorted({int(s) for s in checkpoint_steps})
    if checkpoint_steps and not checkpoint_steps[-1] <= steps:
        raise ValueError(f"checkpoint_steps must lie in [0, steps={steps}], got {checkpoint_steps}")
    _check_int("eval_every", eval_every, allow_none=True)
    if eval_every is not None and eval_fn is None:
        raise ValueError("eval_every needs eval_fn (the metrics to compute every eval_every steps)")
    if eval_fn is not None:
        check_callable("eval_fn", eval_fn, what="eval_fn(params) -> {name: scalar}")
    if (patience is None) != (monitor is None):
        raise ValueError("early stopping needs both patience and monitor (a key of eval_fn's dict)")
    _check_int("patience", patience, allow_none=True)
    if patience is not None and (eval_fn is None or eval_every is None):
        raise ValueError(
            f"patience needs eval_fn and eval_every (early stopping counts evaluations), got "
            f"eval_every={eval_every!r}"
        )

    check_bool("minimize", minimize)
    check_bool("progress", progress)
    _preflight(apply, params, data_at(0), loss)
    check_bool("data_parallel", data_parallel)
    mesh = None
    if data_parallel:
        mesh = _data_mesh()
        devices, per_step = mesh.size, n if batch_size is None else batch_size
        if per_step % devices:
            what = "n" if batch_size is None else "batch_size"
            raise ValueError(
                f"data_parallel=True splits each batch over the {devices} devices: {what}="
                f"{per_step} must be a multiple of {devices}"
            )
        data_at = _placed_on(mesh, data_at)
        params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
    step_fn = partial(
        _jitted_step,
        as_pytree(apply),
        loss=_Static(loss),
        optimizer=_Static(optimizer),
        n=n,
        batch_size=batch_size,
        mesh=mesh,
    )
    key = jax.random.key(0) if key is None else key
    opt_state = optimizer.init(params)
    history: dict[str, list] = {"loss": [], "eval_step": []}
    checkpoints: dict[int, Params] = {}
    best = (None, None, None)  # (value, step, params)
    waited = 0

    def evaluate(s: int) -> bool:
        """Record metrics at step s; return True when early stopping says stop."""
        nonlocal best, waited
        metrics = eval_fn(params)
        if not isinstance(metrics, Mapping) or any(np.ndim(v) != 0 for v in metrics.values()):
            raise ValueError(
                f"eval_fn must return a dict of scalar metrics {{name: value}}, got {metrics!r}"[
                    :200
                ]
            )
        not_real = f"eval_fn must return a dict of real-number metrics, got {metrics!r}"[:200]
        if any(isinstance(v, str | bytes) for v in metrics.values()):  # float("0.5") reads them
            raise ValueError(not_real)
        try:
            metrics = {name: float(v) for name, v in metrics.items()}
        except (TypeError, ValueError):
            raise ValueError(not_real) from None
        history["eval_step"].append(s)
        for name, value in metrics.items():
            history.setdefault(name, []).append(value)
        if monitor is None:
            return False
        if monitor not in metrics:
            raise ValueError(f"monitor={monitor!r} is not among eval_fn's metrics {list(metrics)}")
        value = metrics[monitor] if minimize else -metrics[monitor]
        if not np.isfinite(value):
            raise FloatingPointError(
                f"eval_fn's metric monitor={monitor!r} is {metrics[monitor]} at step {s}: early "
                "stopping cannot compare it (check eval_fn, or lower the learning rate)"
            )
        if best[0] is None or value < best[0]:
            best, waited = (value, s, params), 0
        else:
            waited += 1
        return waited >= patience

    def check_finite(upto: int) -> None:
        recent = np.asarray(jax.device_get(history["loss"][-upto:]), dtype=float)
        if not np.all(np.isfinite(recent)):
            first = len(history["loss"]) - upto + int(np.argmin(np.isfinite(recent)))
            raise FloatingPointError(
                f"the training loss became {recent[~np.isfinite(recent)][0]} "
                f"at step {first}: lower the learning rate or check the data"
            )

    stop = eval_fn is not None and evaluate(0)
    if 0 in checkpoint_steps:
        checkpoints[0] = params
    unchecked = 0
    with tqdm(total=steps, desc=desc, disable=not progress, leave=False) as bar:
        s = 0
        while s < steps and not stop:
            params, opt_state, value = step_fn(params, opt_state, s, key, data_at(s))
            history["loss"].append(value)
            s, unchecked = s + 1, unchecked + 1
            if s in checkpoint_steps:
                checkpoints[s] = params
            at_eval = eval_every is not None and s % eval_every == 0
            if at_eval or unchecked >= 200 or s == steps:
                check_finite(unchecked)
                unchecked = 0
                bar.set_postfix(loss=f"{float(value):.4g}", refresh=False)
            if at_eval:
                stop = evaluate(s)
            bar.update(1)
    check_finite(unchecked)
    if eval_fn is not None and (not history["eval_step"] or history["eval_step"][-1] != s):
        evaluate(s)
    if monitor is not None and best[2] is not None:
        params = best[2]

    out = {name: np.asarray(values) for name, values in history.items() if name != "loss"}
    # device_get, not jnp.stack: stacking N scalars compiles a new N-way concatenate for each N.
    out["loss"] = np.asarray(jax.device_get(history["loss"]))
    out["step"] = np.arange(len(history["loss"]))
    return FitResult(params, out, checkpoints, best[1] if monitor is not None else None)


def _placed_on(mesh: Mesh, data_at: Callable[[int], tuple]) -> Callable[[int], tuple]:
    """``data_at`` with its arrays split over the mesh along their examples, each array moved
    once (the data of :func:`fit`, each checkpoint of :func:`online_distill`), not every step."""
    placed: dict[int, tuple] = {}  # id -> (array, its sharded copy): the array stays alive

    def put(a):
        if id(a) not in placed:
            placed[id(a)] = (a, jax.device_put(a, _example_sharding(mesh)))
        return placed[id(a)][1]

    return lambda s: tuple(put(a) for a in data_at(s))


def _check_fit_options(caller: str, options: Mapping) -> None:
    """The ``**fit_options`` of ``caller`` must be options of :func:`fit` that ``caller`` does
    not set itself (else Python's error would name ``fit`` or ``_loop``, not ``caller``)."""
    allowed = [
        name
        for name, parameter in inspect.signature(fit).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY and name not in ("loss", "optimizer", "steps")
    ]
    unknown = [name for name in options if name not in allowed]
    if unknown:
        raise TypeError(
            f"{caller}() got an unexpected keyword argument {unknown[0]!r}; besides its own "
            f"arguments it takes fit's options {', '.join(allowed)}"
        )


def _kd_objective(soft_ratio, temperature, form, convention, label_smoothing) -> Loss:
    """``kd_loss`` with these options, as a loss ``(outputs, teacher_logits, labels)``: equal
    options give equal objects, so :func:`fit` compiles once for them."""
    return partial(
        kd_loss,
        soft_ratio=soft_ratio,
        temperature=temperature,
        form=form,
        convention=convention,
        label_smoothing=label_smoothing,
    )


def _labels_or_unused(labels, soft_ratio, x) -> jax.Array:
    """``labels``, or for ``labels=None`` at ``soft_ratio=1`` (the hard-label term has weight 0)
    zeros standing in for the unused labels."""
    if labels is not None:
        return labels
    if not (is_concrete(soft_ratio) and np.ndim(soft_ratio) == 0 and soft_ratio == 1):
        raise ValueError(
            f"labels=None is allowed only with soft_ratio=1 (no hard-label term), got "
            f"soft_ratio={soft_ratio!r}: pass the (n,) ground-truth labels"
        )
    return jnp.zeros(_num_examples(x), jnp.int32)


def _num_examples(x) -> int:
    """The length of ``x``'s leading (example) axis; a scalar ``x`` is refused."""
    if np.ndim(x) == 0:
        raise ValueError(f"x must be an (n, ...) array of inputs, got {x!r}"[:200])
    return np.shape(x)[0]


def distill(
    apply: Apply,
    params: Params,
    x: jax.Array,
    teacher_logits: jax.Array,
    labels: jax.Array,
    *,
    soft_ratio: float,
    temperature: float,
    optimizer: optax.GradientTransformation,
    steps: int,
    form: str = "softmax",
    convention: str = "hinton",
    label_smoothing: float = 0.0,
    **fit_options,
) -> FitResult:
    """Train a student on a teacher's logits with the KD loss (:func:`kdbook.losses.kd_loss`).

    Args:
        apply, params: the student.
        x: ``(n, d)`` transfer-set inputs.
        teacher_logits: the teacher's logits on ``x`` (computed once, held fixed).
        labels: ``(n,)`` ground-truth labels; unused when ``soft_ratio=1``, where ``None`` is
            allowed (distillation on an unlabelled transfer set).
        soft_ratio, temperature, form, convention, label_smoothing: see ``kd_loss``.
        optimizer, steps: as in :func:`fit`.
        **fit_options: any other option of :func:`fit` (``key``, ``batch_size``, ``eval_fn``...).

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: for ``teacher_logits`` with NaN or inf, ``labels=None`` with a
            ``soft_ratio`` other than 1, and as :func:`fit` and :func:`kdbook.losses.kd_loss`
            (labels, shapes, ``soft_ratio``, ``temperature``).
        TypeError: for a keyword that is not an option of :func:`fit` (or that ``distill`` sets
            itself, ``loss``); the message names ``distill``.
    """
    _check_fit_options("distill", fit_options)
    check_finite("teacher_logits", teacher_logits)
    labels = _labels_or_unused(labels, soft_ratio, x)
    loss = _kd_objective(soft_ratio, temperature, form, convention, label_smoothing)
    return fit(
        apply,
        params,
        (x, jax.lax.stop_gradient(teacher_logits), labels),
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        **fit_options,
    )


def _even_schedule(steps: int, num_checkpoints: int) -> np.ndarray:
    """Checkpoint ``i`` for student updates ``[i steps / m, (i + 1) steps / m)``."""
    return np.minimum(np.arange(steps) * num_checkpoints // max(steps, 1), num_checkpoints - 1)


def online_distill(
    apply: Apply,
    params: Params,
    x: jax.Array,
    teacher_logits: jax.Array,
    labels: jax.Array,
    *,
    soft_ratio: float,
    temperature: float,
    optimizer: optax.GradientTransformation,
    steps: int,
    schedule: Sequence[int] | np.ndarray | None = None,
    form: str = "softmax",
    convention: str = "hinton",
    label_smoothing: float = 0.0,
    **fit_options,
) -> FitResult:
    r"""Distil from a *sequence* of teacher checkpoints: the student follows the teacher's training.

    ``teacher_logits[i]`` holds the logits on ``x`` of the teacher's ``i``-th checkpoint, in the
    order of the teacher's training (e.g. from :func:`fit`'s ``checkpoint_steps``). At update
    ``s`` the student takes one step of :func:`kdbook.losses.kd_loss` against checkpoint
    ``schedule[s]``, so its targets grow more complex as it learns. This is the online
    distillation of Harutyunyan et al. (2023), who motivate it by supervision complexity
    (:func:`kdbook.theory.adjusted_supervision_complexity`). The default schedule gives each
    checkpoint an equal share of the student's updates, in order (update ``s`` uses checkpoint
    ``min(s * m // steps, m - 1)``): with one checkpoint per teacher epoch and
    a student trained as many epochs, epoch ``e`` of the student sees the teacher of epoch ``e``.
    The paper's exact schedule could not be checked.

    The updates are :func:`fit`'s, compiled once (the checkpoints' logits are arguments of the
    compiled step, not constants), so offline distillation from the last checkpoint
    (:func:`distill` with ``teacher_logits[-1]``) and online distillation compare like for like.
    Unlike :func:`codistill`, the teacher is trained first and does not learn from the student.

    Args:
        apply, params: the student.
        x: ``(n, d)`` transfer-set inputs.
        teacher_logits: ``(m, n)`` or ``(m, n, k)``: the logits of ``m`` teacher checkpoints
            on ``x``.
        labels: ``(n,)`` ground-truth labels; unused when ``soft_ratio=1``, where ``None`` is
            allowed.
        soft_ratio, temperature, form, convention, label_smoothing: see ``kd_loss``.
        optimizer, steps: as in :func:`fit`.
        schedule: ``(steps,)`` integers in ``[0, m)``: the checkpoint of each update. Default:
            the even schedule above.
        **fit_options: any other option of :func:`fit` (``key``, ``batch_size``, ``eval_fn``,
            ``checkpoint_steps``...).

    Returns:
        A :class:`FitResult`; ``history["checkpoint"]`` is the checkpoint of each update taken.

    Raises:
        ValueError: for shapes that do not match, ``teacher_logits`` with NaN or inf,
            ``labels=None`` with a ``soft_ratio`` other than 1, or a schedule that is not
            integers, of the wrong length or outside ``[0, m)``; and as :func:`fit` and
            :func:`kdbook.losses.kd_loss`.
        TypeError: for a keyword that is not an option of :func:`fit` (or that
            ``online_distill`` sets itself, ``loss``); the message names ``online_distill``.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> x = jnp.eye(3)
        >>> path = jnp.stack([jnp.zeros((3, 2)), jnp.array([[2.0, 0], [0, 2], [2, 0]])])
        >>> result = online_distill(lambda w, x: x @ w, jnp.zeros((3, 2)), x, path,
        ...                         jnp.array([0, 1, 0]), soft_ratio=1.0, temperature=2.0,
        ...                         optimizer=optax.sgd(0.5), steps=4, progress=False)
        >>> result.history["checkpoint"].tolist()
        [0, 0, 1, 1]
    """
    _check_fit_options("online_distill", fit_options)
    teacher = as_float_array("teacher_logits", teacher_logits)
    check_finite("teacher_logits", teacher)
    x = as_array("x", x)
    if teacher.ndim not in (2, 3) or teacher.shape[0] < 1 or teacher.shape[1] != x.shape[0]:
        raise ValueError(
            f"teacher_logits must have shape (m, n) or (m, n, k): the logits of m >= 1 "
            f"checkpoints on the n={x.shape[0]} inputs of x, got shape {teacher.shape}"
        )
    labels = _labels_or_unused(labels, soft_ratio, x)
    _check_int("steps", steps, minimum=0)
    m = teacher.shape[0]
    if schedule is None:
        schedule = _even_schedule(steps, m)
    schedule = _real_array("schedule", schedule, integer=True)
    if schedule.shape != (steps,):
        raise ValueError(
            f"schedule must be ({steps},) integers, the checkpoint of each update, got shape "
            f"{schedule.shape}"
        )
    if steps and not (0 <= schedule.min() and schedule.max() < m):
        raise ValueError(
            f"schedule must index the m={m} checkpoints, [0, {m}), got values in "
            f"[{schedule.min()}, {schedule.max()}]"
        )
    checkpoints = [jax.lax.stop_gradient(teacher[i]) for i in range(m)]
    data = (x, checkpoints[0], labels)
    (x, _, labels), n = _check_data(data, fit_options.get("batch_size"), fit_options.get("key"))
    loss = _kd_objective(soft_ratio, temperature, form, convention, label_smoothing)
    result = _loop(
        apply,
        params,
        lambda s: (x, checkpoints[schedule[s] if s < steps else 0], labels),  # s=0 preflights
        n,
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        **fit_options,
    )
    result.history["checkpoint"] = schedule[: result.history["step"].size]
    return result


def _mutual_kd_loss(outputs, labels, **kd_options):
    """Each model's KD loss against the other's current outputs, held fixed, summed."""
    a, b = outputs
    a_fixed, b_fixed = jax.lax.stop_gradient(a), jax.lax.stop_gradient(b)
    return kd_loss(a, b_fixed, labels, **kd_options) + kd_loss(b, a_fixed, labels, **kd_options)


@lru_cache(maxsize=32)
def _pair_optimizer(for_a, for_b) -> optax.GradientTransformation:
    """One transformation of a pair of parameters, each updated by its own optimizer (the same
    pair gives the same object, so :func:`fit` compiles once for it)."""

    def init(params):
        return for_a.init(params[0]), for_b.init(params[1])

    def update(grads, state, params=None):
        pa, pb = (None, None) if params is None else params
        ua, sa = for_a.update(grads[0], state[0], pa)
        ub, sb = for_b.update(grads[1], state[1], pb)
        return (ua, ub), (sa, sb)

    return optax.GradientTransformation(init, update)


def _pair_apply(apply_a, apply_b, params, x):
    return apply_a(params[0], x), apply_b(params[1], x)


def codistill(
    apply_a: Apply,
    params_a: Params,
    apply_b: Apply,
    params_b: Params,
    x: jax.Array,
    labels: jax.Array,
    *,
    soft_ratio: float,
    temperature: float,
    optimizer: optax.GradientTransformation
    | tuple[optax.GradientTransformation, optax.GradientTransformation],
    steps: int,
    form: str = "softmax",
    convention: str = "hinton",
    label_smoothing: float = 0.0,
    **fit_options,
) -> FitResult:
    r"""Co-distillation: two models train together, each distilling from the other's outputs.

    One jitted update of both models minimises

    .. math:: \mathcal L_{\mathrm{KD}}(z^a, \operatorname{sg}(z^b), y) +
        \mathcal L_{\mathrm{KD}}(z^b, \operatorname{sg}(z^a), y),

    with :func:`kdbook.losses.kd_loss` and :math:`\operatorname{sg}` the stop-gradient: each
    model's hard-label loss plus, with weight ``soft_ratio``, its distance to the other's current
    soft labels. This is deep mutual learning (Zhang et al., 2018) and codistillation (Anil et al.,
    2018), what most practitioners call online distillation. It differs from
    :func:`online_distill`, where the teacher trains first, on labels alone, and the student follows
    its recorded checkpoints. With ``soft_ratio=0`` the two models do not interact and the run is
    two independent :func:`fit` runs on the hard-label loss (for an optimizer that treats
    parameters elementwise, such as SGD or Adam).

    Args:
        apply_a, params_a, apply_b, params_b: the two models (any architectures with the same
            output shape).
        x: ``(n, d)`` inputs.
        labels: ``(n,)`` ground-truth labels.
        soft_ratio, temperature, form, convention, label_smoothing: see ``kd_loss``.
        optimizer: one Optax transformation for both models, or a pair ``(for_a, for_b)``
            (e.g. a larger learning rate for a small model).
        steps: number of joint updates.
        **fit_options: any other option of :func:`fit`; ``eval_fn`` receives the pair
            ``(params_a, params_b)``.

    Returns:
        A :class:`FitResult` whose ``params`` are the pair ``(params_a, params_b)`` and whose
        ``history["loss"]`` is the summed loss.

    Raises:
        ValueError: for an ``optimizer`` that is neither an Optax transformation nor a pair of
            them, an ``apply_a`` or ``apply_b`` that is not callable or cannot take ``x``, outputs
            of the two models of different shapes, and as :func:`fit` and
            :func:`kdbook.losses.kd_loss`.
        TypeError: for a keyword that is not an option of :func:`fit` (or that ``codistill``
            sets itself, ``loss``); the message names ``codistill``.
    """
    _check_fit_options("codistill", fit_options)
    pair = jax.tree_util.Partial(
        _pair_apply, as_pytree(apply_a, name="apply_a"), as_pytree(apply_b, name="apply_b")
    )
    x = as_array("x", x)
    _num_examples(x)
    outputs_a, outputs_b = (
        row_outputs(apply, params, x, apply_name=f"apply_{m}", params_name=f"params_{m}")
        for m, apply, params in (("a", apply_a, params_a), ("b", apply_b, params_b))
    )
    if outputs_a.shape != outputs_b.shape:
        raise ValueError(
            f"apply_a and apply_b must return outputs of the same shape (each model distils "
            f"from the other's), got {outputs_a.shape} and {outputs_b.shape}"
        )
    if isinstance(optimizer, tuple) and not isinstance(optimizer, optax.GradientTransformation):
        if len(optimizer) != 2:
            raise ValueError(
                f"optimizer must be one Optax transformation or a pair (for_a, for_b), got a "
                f"tuple of {len(optimizer)}"
            )
        _check_optimizer("optimizer[0]", optimizer[0])
        _check_optimizer("optimizer[1]", optimizer[1])
        optimizer = _pair_optimizer(*optimizer)
    loss = partial(
        _mutual_kd_loss,
        soft_ratio=soft_ratio,
        temperature=temperature,
        form=form,
        convention=convention,
        label_smoothing=label_smoothing,
    )
    return fit(
        pair,
        (params_a, params_b),
        (x, labels),
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        **fit_options,
    )
