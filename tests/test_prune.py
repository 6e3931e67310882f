"""kdbook.prune: masks against naive references, exact counts, masked training, IMP, errors.

References: magnitude masks from a Python ``sorted`` list of ``(-|w|, position)`` pairs, counts
from hand-made masks, neuron pruning against a two-layer network summed by hand over the kept
neurons, and rewinding against ``apply_mask`` of the saved weights.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import kdbook as kd
from kdbook import prune
from kdbook.functional import functionalize, tree_difference


def hand_tree(seed=0):
    """Two weight matrices, a 3-tensor and two vectors, with distinct random magnitudes."""
    rng = np.random.default_rng(seed)
    return {
        "a": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "bias": jnp.ones(4)},
        "b": {"kernel": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)},
        "c": jnp.asarray(rng.normal(size=(2, 2, 3)), jnp.float32),
        "d": jnp.asarray(rng.normal(size=(6,)), jnp.float32),
    }


def reference_mask(tree, keep, scope, selected=None, mask=None):
    """Naive magnitude mask: sort candidates by (-|w|, position) with Python's sorted."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [np.asarray(leaf, dtype=np.float64) for leaf in leaves]
    if selected is None:
        selected = [a.ndim >= 2 for a in arrays]
    current = (
        [np.ones(a.shape, bool) for a in arrays]
        if mask is None
        else [np.asarray(m) for m in jax.tree.leaves(mask)]
    )
    out = [c.copy() for c in current]
    groups = [[i for i, s in enumerate(selected) if s]]
    if scope == "layer":
        groups = [[i] for i in groups[0]]
    for group in groups:
        entries, position = [], 0
        for i in group:
            for j, value in enumerate(arrays[i].ravel().tolist()):
                if current[i].ravel()[j]:
                    entries.append((-abs(value), position, i, j))
                position += 1
        k = max(1, round(keep * len(entries)))
        for i in group:
            out[i] = np.zeros(arrays[i].shape, bool)
        for _, _, i, j in sorted(entries)[:k]:
            out[i].reshape(-1)[j] = True
    return jax.tree.unflatten(treedef, out)


def assert_trees_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(la, lb, strict=True):
        assert np.asarray(u).dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def n_prunable(tree):
    return sum(leaf.size for leaf in jax.tree.leaves(tree) if leaf.ndim >= 2)


def mlp(seed=0, activation="relu"):
    model = kd.MLP(
        3, depth=2, width=6, out_features=2, activation=activation, b_std=1.0, rngs=nnx.Rngs(seed)
    )
    return functionalize(model)


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32, 3)), jnp.float32)
    y = jnp.asarray(np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1), jnp.float32)
    return x, y


def mse(outputs, targets):
    return jnp.mean((outputs - targets) ** 2)


# ----------------------------------------------------------------------------- magnitude masks


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("keep", [1.0, 0.75, 0.5, 0.3, 0.07, 1e-6])
def test_magnitude_mask_matches_a_sorted_reference_with_exact_counts(scope, keep):
    tree = hand_tree()
    mask = prune.magnitude_mask(tree, keep, scope=scope)
    assert_trees_equal(mask, reference_mask(tree, keep, scope))
    kept = [int(np.sum(m)) for m in jax.tree.leaves(mask)]
    sizes = [leaf.size for leaf in jax.tree.leaves(tree)]
    # leaves in jax.tree order: a.bias, a.kernel, b.kernel, c, d
    assert kept[0] == 4 and kept[4] == 6, "vectors are not prunable by default"
    if scope == "global":
        assert sum(kept[1:4]) == max(1, round(keep * 44))
    else:
        assert kept[1:4] == [max(1, round(keep * n)) for n in sizes[1:4]]
    assert prune.count(mask, prunable_only=True)[1] == n_prunable(tree) == 44


def test_magnitude_mask_breaks_ties_by_position_without_keeping_extra_entries():
    tree = {"w": jnp.asarray([[3.0, 2.0, -2.0], [2.0, 1.0, 2.0]]), "v": jnp.full((2, 2), 2.0)}
    # global candidates in order v (4 x 2.0), then w; keep 0.4 of 10 -> 4: the 3 and three 2s
    mask = prune.magnitude_mask(tree, 0.4)
    np.testing.assert_array_equal(mask["w"], [[True, False, False], [False, False, False]])
    np.testing.assert_array_equal(mask["v"], [[True, True], [True, False]])
    assert_trees_equal(mask, reference_mask(tree, 0.4, "global"))
    constant = {"w": jnp.ones((5, 7))}
    for keep in [0.1, 0.5, 0.9, 1e-3]:
        kept = prune.count(prune.magnitude_mask(constant, keep))[0]
        assert kept == max(1, round(keep * 35))
    layer = prune.magnitude_mask(tree, 0.5, scope="layer")
    np.testing.assert_array_equal(layer["w"], [[True, True, True], [False, False, False]])
    np.testing.assert_array_equal(layer["v"], [[True, True], [False, False]])


def test_magnitude_mask_on_nnx_params_and_movement_scores():
    _, params = mlp()
    _, other = mlp(seed=1)
    movement = tree_difference(other, params)
    for scores in [params, movement]:
        mask = prune.magnitude_mask(scores, 0.3)
        assert jax.tree.structure(mask) == jax.tree.structure(params)
        leaves = jax.tree.leaves(scores)
        selected = [leaf.ndim >= 2 for leaf in leaves]
        reference = reference_mask(jax.tree.leaves(scores), 0.3, "global", selected)
        for got, want in zip(jax.tree.leaves(mask), reference, strict=True):
            np.testing.assert_array_equal(got, want)
    # the weights that moved most are the ones kept
    mask = prune.magnitude_mask(movement, 0.3)
    kernel = lambda tree: np.asarray(tree["layers"][1]["kernel"][...])  # noqa: E731
    moved = np.abs(kernel(movement))
    assert moved[kernel(mask)].min() >= moved[~kernel(mask)].max()


def test_prunable_selection_rules():
    tree = hand_tree()
    flags = prune.prunable(tree)
    assert flags == {
        "a": {"kernel": True, "bias": False},
        "b": {"kernel": True},
        "c": True,
        "d": False,
    }
    # a pytree of bools: only a.kernel and the vector d
    custom = {"a": {"kernel": True, "bias": False}, "b": {"kernel": False}, "c": False, "d": True}
    mask = prune.magnitude_mask(tree, 0.5, prunable=custom)
    assert prune.count(mask) == (4 + 20 + 12 + 9, 54)  # 9 of the 18 entries of a.kernel and d
    assert_trees_equal(mask, reference_mask(tree, 0.5, "global", [False, True, False, False, True]))
    # a callable on (path, leaf): kernels only
    by_name = lambda path, leaf: "kernel" in jax.tree_util.keystr(path)  # noqa: E731
    mask = prune.magnitude_mask(tree, 0.25, scope="layer", prunable=by_name)
    assert_trees_equal(mask, reference_mask(tree, 0.25, "layer", [False, True, True, False, False]))
    assert np.all(mask["c"])
    # nnx params: kernels are prunable, biases are not
    _, params = mlp()
    flags = jax.tree.leaves(prune.prunable(params))
    assert flags == [False, True] * 3
    with pytest.raises(ValueError, match="no leaf is prunable"):
        prune.magnitude_mask({"b": jnp.ones(3)}, 0.5)
    with pytest.raises(ValueError, match="no leaf is prunable"):
        prune.random_mask(tree, 0.5, prunable=lambda path, leaf: False, key=jax.random.key(0))
    with pytest.raises(ValueError, match="bool"):
        prune.magnitude_mask(tree, 0.5, prunable=lambda path, leaf: leaf)


# ----------------------------------------------------------------------------- accounting


def test_count_density_and_sparsity_are_exact_on_a_hand_made_mask():
    mask = {
        "w": jnp.asarray([[True, False], [False, False]]),
        "b": jnp.asarray([True, True, False]),
        "t": jnp.asarray(np.arange(24).reshape(2, 3, 4) % 3 == 0),
    }
    assert prune.count(mask) == (1 + 2 + 8, 4 + 3 + 24)
    assert prune.density(mask) == 11 / 31
    assert prune.sparsity(mask) == 20 / 31
    assert prune.count(mask, prunable_only=True) == (9, 28)
    assert prune.density(mask, prunable_only=True) == 9 / 28
    only_w = {"w": True, "b": False, "t": False}
    assert prune.count(mask, prunable_only=True, prunable=only_w) == (1, 4)
    assert prune.sparsity(mask, prunable_only=True, prunable=only_w) == 0.75
    assert isinstance(prune.count(mask)[0], int) and isinstance(prune.density(mask), float)
    with pytest.raises(ValueError, match="prunable_only"):
        prune.count(mask, prunable=only_w)


# ----------------------------------------------------------------------------- composition


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_two_rounds_of_half_keep_a_quarter_of_the_prunable_entries(scope):
    tree = {"w": jnp.asarray(np.random.default_rng(1).normal(size=(8, 8))), "b": jnp.ones(8)}
    first = prune.magnitude_mask(tree, 0.5, scope=scope)
    # the weights changed (as after training): pruned entries are now the largest
    trained = {"w": jnp.where(first["w"], tree["w"], 100.0), "b": tree["b"]}
    second = prune.magnitude_mask(trained, 0.5, scope=scope, mask=first)
    assert prune.count(first, prunable_only=True) == (32, 64)
    assert prune.count(second, prunable_only=True) == (16, 64)
    assert prune.density(second, prunable_only=True) == 0.25
    assert not np.any(np.asarray(second["w"]) & ~np.asarray(first["w"])), "not a subset"
    assert_trees_equal(second, reference_mask(trained, 0.5, scope, mask=first))
    assert_trees_equal(prune.magnitude_mask(trained, 1.0, mask=first), first)


def test_mask_composition_with_odd_counts_and_pruned_non_prunable_leaves():
    tree = hand_tree(3)
    counts = [44]
    mask = None
    for _ in range(4):
        mask = prune.magnitude_mask(tree, 0.6, mask=mask)
        counts.append(max(1, round(0.6 * counts[-1])))
        assert prune.count(mask, prunable_only=True) == (counts[-1], 44)
    assert counts[1:] == [26, 16, 10, 6]
    # an entry of a non-prunable leaf pruned by hand stays pruned
    edited = {**mask, "d": mask["d"].at[2].set(False)}
    again = prune.magnitude_mask(tree, 0.5, mask=edited)
    np.testing.assert_array_equal(again["d"], edited["d"])
    assert prune.count(again, prunable_only=True) == (3, 44)


# ----------------------------------------------------------------------------- random masks


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_random_mask_counts_equal_magnitude_mask_counts(scope):
    tree = hand_tree()
    for keep in [1.0, 0.5, 0.33, 0.01]:
        random = prune.random_mask(tree, keep, scope=scope, key=jax.random.key(3))
        magnitude = prune.magnitude_mask(tree, keep, scope=scope)
        assert jax.tree.structure(random) == jax.tree.structure(tree)
        per_leaf = lambda m: [int(np.sum(x)) for x in jax.tree.leaves(m)]  # noqa: E731
        if scope == "layer":
            assert per_leaf(random) == per_leaf(magnitude)
        assert prune.count(random) == prune.count(magnitude)
        assert np.all(random["a"]["bias"]) and np.all(random["d"])


def test_random_mask_keys_and_uniformity():
    params = {"w": jnp.zeros((4, 5)), "v": jnp.zeros((2, 2))}
    key = jax.random.key(0)
    assert_trees_equal(
        prune.random_mask(params, 0.3, key=key), prune.random_mask(params, 0.3, key=key)
    )
    different = prune.random_mask(params, 0.3, key=jax.random.key(1))
    assert not np.array_equal(different["w"], prune.random_mask(params, 0.3, key=key)["w"])
    # legacy uint32 keys work too
    assert prune.count(prune.random_mask(params, 0.3, key=jax.random.PRNGKey(0))) == (6 + 1, 24)
    trials = 200
    for scope in ["layer", "global"]:
        kept = np.zeros(24)
        for i in range(trials):
            mask = prune.random_mask(params, 0.25, scope=scope, key=jax.random.fold_in(key, i))
            kept += np.concatenate([np.ravel(m) for m in jax.tree.leaves(mask)])
        frequency = kept / trials
        # per entry: binomial(200, 1/4) / 200, standard deviation 0.031; 5 sigma
        expected = np.full(24, 6 / 24) if scope == "global" else np.r_[[1 / 4] * 4, [5 / 20] * 20]
        np.testing.assert_allclose(frequency, expected, atol=0.15)
        assert frequency.std() < 0.06


# ----------------------------------------------------------------------------- neuron masks


def test_neuron_mask_keeps_the_columns_of_largest_norm():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 10)) * np.arange(1, 11)[rng.permutation(10)]
    tree = {"hidden": {"kernel": jnp.asarray(kernel, jnp.float32)}, "bias": jnp.ones(10)}
    for keep in [1.0, 0.5, 0.25, 0.01]:
        mask = prune.neuron_mask(tree, keep)
        columns = np.asarray(mask["hidden"]["kernel"])
        assert np.all(columns == columns[:1]), "whole columns are kept or dropped"
        norms = [math.sqrt(sum(v * v for v in kernel[:, r])) for r in range(10)]
        expected = sorted(range(10), key=lambda r: -norms[r])[: max(1, round(keep * 10))]
        assert set(np.flatnonzero(columns[0])) == set(expected)
        assert np.all(mask["bias"])
    rows = np.asarray(prune.neuron_mask(tree, 0.34, axis=0)["hidden"]["kernel"])
    assert np.all(rows == rows[:, :1]) and rows[:, 0].sum() == 1
    assert rows[np.argmax(np.linalg.norm(kernel, axis=1)), 0]


def test_random_whole_units_come_from_random_mask_with_unit_groups():
    tree = {"k": jnp.zeros((4, 12)), "b": jnp.zeros(12)}
    groups = prune.unit_groups(tree)
    np.testing.assert_array_equal(groups["k"], np.broadcast_to(np.arange(12), (4, 12)))
    masks = [
        np.asarray(prune.random_mask(tree, 0.5, key=jax.random.key(i), groups=groups)["k"])
        for i in range(6)
    ]
    for i, mask in enumerate(masks):
        assert np.all(mask == mask[:1]) and mask[0].sum() == 6
        # one random permutation of the 12 units of leaf 0 ("b" is not prunable, "k" is leaf 1)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(i), 1), 12))
        assert set(np.flatnonzero(mask[0])) == set(order[:6].tolist())
    assert len({tuple(mask[0]) for mask in masks}) > 1
    again = prune.random_mask(tree, 0.5, key=jax.random.key(0), groups=groups)
    np.testing.assert_array_equal(again["k"], masks[0])
    assert np.all(np.asarray(again["b"]))
    rows = prune.random_mask(
        tree, 0.5, key=jax.random.key(1), groups=prune.unit_groups(tree, axis=0)
    )["k"]
    rows = np.asarray(rows)
    assert np.all(rows == rows[:, :1]) and rows[:, 0].sum() == 2


def test_unit_groups_rank_units_like_neuron_mask():
    rng = np.random.default_rng(3)
    tree = {"k": jnp.asarray(rng.normal(size=(5, 9)), jnp.float32), "b": jnp.ones(9)}
    for axis in [-1, 0]:
        for keep in [0.2, 0.5, 0.9]:
            by_units = prune.magnitude_mask(
                tree, keep, scope="layer", groups=prune.unit_groups(tree, axis=axis)
            )
            assert_trees_equal(by_units, prune.neuron_mask(tree, keep, axis=axis))
    with pytest.raises(ValueError, match="axis"):
        prune.unit_groups(tree, axis=2)
    with pytest.raises(ValueError, match="axis must be an integer"):
        prune.unit_groups(tree, axis=0.5)
    with pytest.raises(TypeError, match="key"):  # random units: random_mask, not neuron_mask
        prune.neuron_mask(tree, 0.5, key=jax.random.key(0))


def test_pruning_neurons_of_a_two_layer_net_removes_them():
    m = 8
    model = kd.TwoLayerNet(3, width=m, rngs=nnx.Rngs(0))
    apply, params = functionalize(model)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    w = np.asarray(params["hidden"]["kernel"][...], dtype=np.float64)
    a = np.asarray(model.output_weights[...], dtype=np.float64)[:, 0]
    for keep in [0.75, 0.5, 0.125]:
        mask = prune.neuron_mask(params, keep)
        kept = np.flatnonzero(np.asarray(mask["hidden"]["kernel"][...])[0])
        assert len(kept) == round(keep * m)
        by_hand = np.array(
            [
                sum(a[r] * max(0.0, float(w[:, r] @ xi)) for r in kept) / math.sqrt(m)
                for xi in np.asarray(x)
            ]
        )
        np.testing.assert_allclose(
            apply(prune.apply_mask(params, mask), x)[:, 0], by_hand, rtol=1e-5, atol=1e-6
        )
    # a plain-dict mask (as built from a score array) fits the nnx params, in training too
    scores = {"hidden": {"kernel": jnp.broadcast_to(jnp.arange(m, dtype=jnp.float32), (3, m))}}
    mask = prune.neuron_mask(scores, 0.5)
    pruned = prune.apply_mask(params, mask)
    assert jax.tree.structure(pruned) == jax.tree.structure(params)
    assert np.all(np.asarray(pruned["hidden"]["kernel"][...])[:, : m // 2] == 0)
    trained, _, _ = kd.train_scan(
        apply,
        pruned,
        (x, jnp.ones((5, 1))),
        loss=mse,
        steps=5,
        optimizer=prune.masked_optimizer(optax.sgd(0.5, momentum=0.9), mask),
    )
    kernel = np.asarray(trained["hidden"]["kernel"][...])
    assert np.all(kernel[:, : m // 2] == 0)
    assert not np.array_equal(kernel, np.asarray(pruned["hidden"]["kernel"][...]))


# ----------------------------------------------------------------------------- apply_mask


def test_apply_mask_zeroes_exactly_and_keeps_dtypes():
    tree = {
        "w": jnp.asarray([[1.5, -2.0], [3.0, -0.5]], jnp.float32),
        "h": jnp.asarray([[1.0, 2.0, 3.0]], jnp.bfloat16),
        "i": jnp.asarray([[1, 2], [3, 4]], jnp.int32),
    }
    mask = {
        "w": np.array([[True, False], [False, True]]),
        "h": jnp.asarray([[False, True, False]]),
        "i": jnp.ones((2, 2), bool),
    }
    out = prune.apply_mask(tree, mask)
    np.testing.assert_array_equal(out["w"], [[1.5, 0.0], [0.0, -0.5]])
    np.testing.assert_array_equal(np.asarray(out["h"], np.float32), [[0.0, 2.0, 0.0]])
    np.testing.assert_array_equal(out["i"], tree["i"])
    assert [u.dtype for u in jax.tree.leaves(out)] == [jnp.bfloat16, jnp.int32, jnp.float32]
    jitted = jax.jit(prune.apply_mask)(tree, mask)
    assert_trees_equal(jitted, out)


# ----------------------------------------------------------------------------- masked training


@pytest.mark.parametrize(
    ("optimizer", "loop"),
    [
        (optax.adamw(0.05, weight_decay=0.1), "fit"),
        (optax.sgd(0.05, momentum=0.9), "train_scan"),
        (optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)), "fit"),
    ],
    ids=["adamw-fit", "sgd-momentum-train_scan", "clipped-adam-fit"],
)
def test_masked_training_keeps_pruned_weights_exactly_zero(optimizer, loop, regression):
    apply, params = mlp(activation="tanh")  # no dead units: every kept weight has a gradient
    mask = prune.magnitude_mask(params, 0.3)
    start = prune.apply_mask(params, mask)
    options = dict(loss=mse, optimizer=prune.masked_optimizer(optimizer, mask), steps=60)
    if loop == "fit":
        result = kd.fit(apply, start, regression, progress=False, **options)
        trained, losses = result.params, result.history["loss"]
    else:
        trained, losses, _ = kd.train_scan(apply, start, regression, **options)
    assert float(losses[-1]) < 0.8 * float(losses[0])
    # kept weights with a gradient at the start all move (units cut off by the mask have none)
    grads = jax.grad(lambda p: mse(apply(p, regression[0]), regression[1]))(start)
    live = [
        np.asarray(kept) & (np.asarray(g) != 0)
        for kept, g in zip(jax.tree.leaves(mask), jax.tree.leaves(grads), strict=True)
    ]
    assert np.concatenate([x.ravel() for x in live]).mean() > 0.2
    for leaf, kept, init, alive in zip(
        jax.tree.leaves(trained), jax.tree.leaves(mask), jax.tree.leaves(start), live, strict=True
    ):
        leaf, kept, init = np.asarray(leaf), np.asarray(kept), np.asarray(init)
        assert np.all(leaf[~kept] == 0), "a pruned weight moved away from zero"
        assert np.all(leaf[alive] != init[alive]), "a kept weight did not train"
    # the loss pulls on pruned weights (their gradients are not zero): the mask is what holds them
    pulled = [
        np.asarray(g)[~np.asarray(kept)]
        for kept, g in zip(jax.tree.leaves(mask), jax.tree.leaves(grads), strict=True)
    ]
    assert np.mean(np.concatenate(pulled) != 0) > 0.5


def test_masked_optimizer_drops_nan_updates_at_pruned_entries():
    mask = {"w": jnp.asarray([[True, False], [False, True]])}
    params = {"w": jnp.asarray([[1.0, 0.0], [0.0, 2.0]])}
    grads = {"w": jnp.asarray([[0.5, jnp.nan], [jnp.inf, -1.0]])}
    tx = prune.masked_optimizer(optax.sgd(0.5), mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], [[-0.25, 0.0], [0.0, 0.5]])
    # gradients of pruned entries are dropped before the optimizer: a global-norm clip sees the
    # sparse network's gradient (norm sqrt(1.25) here, not NaN)
    tx = prune.masked_optimizer(optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(1.0)), mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    norm = math.hypot(0.5, 1.0)
    np.testing.assert_allclose(updates["w"], [[-0.25 / norm, 0.0], [0.0, 0.5 / norm]], rtol=1e-6)
    with pytest.raises(ValueError, match="different shapes"):
        tx.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match="boolean"):
        prune.masked_optimizer(optax.sgd(0.1), {"w": jnp.ones((2, 2))})


# ----------------------------------------------------------------------------- IMP


def recording_trainer(apply, data, steps=20):
    """A user's train(params, mask) for IMP that records what each round starts from."""
    starts = []

    @jax.jit  # one compilation for every round: the mask is an argument (traced)
    def masked_training(params, mask):
        tx = prune.masked_optimizer(optax.adam(0.02), mask)
        return kd.train_scan(apply, params, data, loss=mse, optimizer=tx, steps=steps)[0]

    def train(params, mask):
        starts.append((params, mask))
        return masked_training(params, mask)

    return train, starts


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_imp_rewinds_to_init_and_nests_masks(scope, regression):
    apply, params = mlp()
    train, starts = recording_trainer(apply, regression)
    run = prune.iterative_magnitude_pruning(
        train, params, rounds=3, keep_per_round=0.5, scope=scope, progress=scope == "global"
    )
    assert len(run.masks) == len(run.params) == len(run.densities) == len(starts) == 4
    assert_trees_equal(starts[0][0], params)
    assert all(np.all(m) for m in jax.tree.leaves(run.masks[0])) and run.densities[0] == 1.0
    sizes = [leaf.size for leaf in jax.tree.leaves(params) if leaf.ndim >= 2]
    assert sizes == [18, 36, 12]
    # what keep_per_round implies: round(0.5 * kept), over all kernels or per kernel
    expected, per_kernel = [66], [sizes]
    for _ in range(3):
        per_kernel.append([round(0.5 * n) for n in per_kernel[-1]])
        expected.append(round(0.5 * expected[-1]) if scope == "global" else sum(per_kernel[-1]))
    assert expected == [66, 33, 16, 8] and per_kernel[1:] == [[9, 18, 6], [4, 9, 3], [2, 4, 2]]
    for r in range(1, 4):
        assert_trees_equal(starts[r][0], prune.apply_mask(params, run.masks[r]))
        assert_trees_equal(starts[r][1], run.masks[r])
        previous = prune.magnitude_mask(run.params[r - 1], 0.5, scope=scope, mask=run.masks[r - 1])
        assert_trees_equal(run.masks[r], previous)
        for new, old in zip(
            jax.tree.leaves(run.masks[r]), jax.tree.leaves(run.masks[r - 1]), strict=True
        ):
            assert not np.any(np.asarray(new) & ~np.asarray(old)), "masks are not nested"
        assert prune.count(run.masks[r], prunable_only=True) == (expected[r], 66)
        if scope == "layer":
            kernels = [m for m in jax.tree.leaves(run.masks[r]) if m.ndim >= 2]
            assert [int(np.sum(m)) for m in kernels] == per_kernel[r]
        for leaf, m in zip(
            jax.tree.leaves(run.params[r]), jax.tree.leaves(run.masks[r]), strict=True
        ):
            assert np.all(np.asarray(leaf)[~np.asarray(m)] == 0), "a pruned weight was trained"
    assert run.densities == [n / 66 for n in expected]


def test_imp_rewinds_to_an_early_checkpoint(regression):
    apply, params = mlp(seed=2)
    early = kd.fit(
        apply,
        params,
        regression,
        loss=mse,
        optimizer=optax.adam(0.02),
        steps=3,
        checkpoint_steps=[3],
        progress=False,
    ).checkpoints[3]
    train, starts = recording_trainer(apply, regression, steps=10)
    run = prune.iterative_magnitude_pruning(
        train, params, rounds=2, keep_per_round=0.4, rewind_to=early, progress=False
    )
    assert_trees_equal(starts[0][0], params)
    for r in [1, 2]:
        assert_trees_equal(starts[r][0], prune.apply_mask(early, run.masks[r]))
        assert not np.array_equal(
            np.asarray(starts[r][0]["layers"][0]["bias"][...]),
            np.asarray(params["layers"][0]["bias"][...]),
        )
    assert run.densities == [1.0, 26 / 66, 10 / 66]


# ----------------------------------------------------------------------------- tied entries


def reference_group_mask(tree, groups, keep, scope, mask=None):
    """Naive grouped magnitude mask: groups scored by the L2 norm of their entries' scores,
    sorted with Python's sorted by (-norm, position of the group's first entry)."""
    leaves, treedef = jax.tree.flatten(tree)
    labels = jax.tree.leaves(groups)
    selected = [np.ndim(leaf) >= 2 for leaf in leaves]
    current = (
        [np.ones(np.shape(leaf), bool) for leaf in leaves]
        if mask is None
        else [np.asarray(m) for m in jax.tree.leaves(mask)]
    )
    out = [c.copy() for c in current]
    units = [[i for i, s in enumerate(selected) if s]]
    if scope == "layer":
        units = [[i] for i in units[0]]
    for unit in units:
        found, position = [], 0
        for i in unit:
            values = np.asarray(leaves[i], np.float64).ravel().tolist()
            names = np.asarray(labels[i]).ravel().tolist()
            kept = current[i].ravel().tolist()
            members = {}
            for j, (value, name) in enumerate(zip(values, names, strict=True)):
                if kept[j]:
                    members.setdefault(name, (position + j, []))[1].append((j, value))
            for first, entries in members.values():
                norm = math.sqrt(sum(v * v for _, v in entries))
                found.append((-norm, first, i, [j for j, _ in entries]))
            position += len(values)
        k = max(1, round(keep * len(found)))
        for i in unit:
            out[i] = np.zeros(np.shape(leaves[i]), bool)
        for _, _, i, entries in sorted(found)[:k]:
            for j in entries:
                out[i].reshape(-1)[j] = True
    return jax.tree.unflatten(treedef, out)


def grouped_tree(seed=0):
    """hand_tree with group labels: pairs of columns in a.kernel (r, r + 2), blocks of the other
    matrices and single entries of the 3-tensor."""
    tree = hand_tree(seed)
    groups = {
        "a": {"kernel": np.tile(np.arange(6).reshape(3, 2), (1, 2)), "bias": np.zeros(4, int)},
        "b": {"kernel": np.repeat(np.arange(10), 2).reshape(4, 5)},
        "c": np.arange(12).reshape(2, 2, 3),
        "d": np.zeros(6, int),
    }
    return tree, groups


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("keep", [1.0, 0.7, 0.5, 0.3, 0.05])
def test_grouped_magnitude_mask_matches_a_sorted_reference(scope, keep):
    tree, groups = grouped_tree()
    mask = prune.magnitude_mask(tree, keep, scope=scope, groups=groups)
    assert_trees_equal(mask, reference_group_mask(tree, groups, keep, scope))
    for leaf, labels in [
        (mask["a"]["kernel"], groups["a"]["kernel"]),
        (mask["b"]["kernel"], groups["b"]["kernel"]),
    ]:
        leaf = np.asarray(leaf)
        for name in np.unique(labels):
            assert len(set(leaf[labels == name].tolist())) == 1, "a group was split"
    # the count is over groups: a.kernel has 6, b.kernel 10, c 12
    kept_groups = (
        np.asarray(mask["a"]["kernel"]).sum() // 2
        + np.asarray(mask["b"]["kernel"]).sum() // 2
        + np.asarray(mask["c"]).sum()
    )
    if scope == "global":
        assert kept_groups == max(1, round(keep * 28))
    else:
        assert kept_groups == sum(max(1, round(keep * n)) for n in [6, 10, 12])
    assert np.all(mask["a"]["bias"]) and np.all(mask["d"])


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_groups_of_one_entry_give_the_ungrouped_mask(scope):
    tree = hand_tree(2)
    singletons = jax.tree.map(lambda leaf: np.arange(leaf.size).reshape(leaf.shape), tree)
    for keep in [0.9, 0.5, 0.1]:
        assert_trees_equal(
            prune.magnitude_mask(tree, keep, scope=scope, groups=singletons),
            prune.magnitude_mask(tree, keep, scope=scope),
        )
    # a group's score is the L2 norm of its entries: (3, 4) -> 5 beats (4.9, 0) but loses to
    # (6, 0), whose L1 norm (6) is below the 7 of (3, 4), and whose largest entry beats 4.9
    tree = {"w": jnp.asarray([[3.0, 4.9, 6.0], [4.0, 0.0, 0.0]])}
    columns = {"w": np.array([[0, 1, 2], [0, 1, 2]])}
    for keep, kept in [(0.34, [False, False, True]), (0.67, [True, False, True])]:
        np.testing.assert_array_equal(
            prune.magnitude_mask(tree, keep, groups=columns)["w"], [kept] * 2
        )


def test_grouped_masks_compose_and_reject_a_mask_that_splits_a_group():
    tree, groups = grouped_tree(1)
    first = prune.magnitude_mask(tree, 0.6, groups=groups)
    second = prune.magnitude_mask(tree, 0.5, groups=groups, mask=first)
    assert not np.any(np.asarray(second["b"]["kernel"]) & ~np.asarray(first["b"]["kernel"]))
    assert_trees_equal(second, reference_group_mask(tree, groups, 0.5, "global", mask=first))
    assert prune.count(first, prunable_only=True)[0] > prune.count(second, prunable_only=True)[0]
    split = {**first, "b": {"kernel": first["b"]["kernel"].at[0, 0].set(False).at[0, 1].set(True)}}
    with pytest.raises(ValueError, match="only part of group"):
        prune.magnitude_mask(tree, 0.5, groups=groups, mask=split)


def test_grouped_random_masks_keep_whole_groups_in_exact_numbers():
    tree, groups = grouped_tree()
    for scope, expected in [("layer", [3, 5, 6]), ("global", None)]:
        masks = [
            prune.random_mask(tree, 0.5, scope=scope, groups=groups, key=jax.random.key(i))
            for i in range(8)
        ]
        for mask in masks:
            a, b, c = (
                np.asarray(mask["a"]["kernel"]),
                np.asarray(mask["b"]["kernel"]),
                np.asarray(mask["c"]),
            )
            np.testing.assert_array_equal(a[:, :2], a[:, 2:])
            assert np.all(b.ravel()[0::2] == b.ravel()[1::2])
            counts = [a.sum() // 2, b.sum() // 2, c.sum()]
            if expected:
                assert counts == expected
            else:
                assert sum(counts) == 14
        assert len({np.asarray(m["b"]["kernel"]).tobytes() for m in masks}) > 1
        assert_trees_equal(
            masks[0],
            prune.random_mask(tree, 0.5, scope=scope, groups=groups, key=jax.random.key(0)),
        )
    # without groups the random masks are as before (same draws)
    assert_trees_equal(
        prune.random_mask(tree, 0.3, key=jax.random.key(4)),
        prune.random_mask(tree, 0.3, groups=None, key=jax.random.key(4)),
    )


def test_pair_groups_keep_an_antisymmetric_two_layer_net_at_zero():
    m, d = 12, 3
    apply, params = functionalize(kd.TwoLayerNet(d, width=m, antisymmetric=True, rngs=nnx.Rngs(0)))
    groups = prune.pair_groups(params)
    labels = np.asarray(groups["hidden"]["kernel"][...])
    assert labels.shape == (d, m) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels[:, : m // 2], labels[:, m // 2 :])
    assert len(np.unique(labels)) == d * m // 2
    x = kd.sample_sphere(7, dim=d, key=jax.random.key(1))
    np.testing.assert_allclose(apply(params, x), 0.0, atol=1e-6)
    # after training the partners differ; an ungrouped magnitude mask breaks the pairs and the
    # pruned network no longer starts at zero, a grouped one keeps them
    trained = jax.tree.map(
        lambda w: w + 0.3 * jnp.concatenate([jnp.ones((d, m // 2)), -jnp.ones((d, m // 2))], 1),
        params,
    )
    for keep in [0.75, 0.5, 0.25]:
        paired = prune.magnitude_mask(trained, keep, groups=groups)
        kernel = np.asarray(paired["hidden"]["kernel"][...])
        np.testing.assert_array_equal(kernel[:, : m // 2], kernel[:, m // 2 :])
        np.testing.assert_allclose(apply(prune.apply_mask(params, paired), x), 0.0, atol=1e-6)
        random = prune.random_mask(params, keep, groups=groups, key=jax.random.key(2))
        np.testing.assert_allclose(apply(prune.apply_mask(params, random), x), 0.0, atol=1e-6)
    unpaired = prune.magnitude_mask(trained, 0.5)
    assert np.abs(np.asarray(apply(prune.apply_mask(params, unpaired), x))).max() > 1e-2
    # rows, other leaves, and errors
    tree = {"k": jnp.zeros((4, 3)), "b": jnp.zeros(5)}
    rows = prune.pair_groups(tree, axis=0)
    np.testing.assert_array_equal(rows["k"], [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(rows["b"], np.arange(5))
    with pytest.raises(ValueError, match="even"):
        prune.pair_groups(tree)
    with pytest.raises(ValueError, match="axis"):
        prune.pair_groups(tree, axis=2)


def test_imp_with_pair_groups_prunes_pairs_and_starts_every_round_at_zero():
    m, d = 16, 3
    apply, params = functionalize(kd.TwoLayerNet(d, width=m, antisymmetric=True, rngs=nnx.Rngs(3)))
    x = kd.sample_sphere(10, dim=d, key=jax.random.key(4))
    data = (x, jnp.sin(3 * x[:, :1]))
    train, starts = recording_trainer(apply, data, steps=15)
    groups = prune.pair_groups(params)
    run = prune.iterative_magnitude_pruning(
        train, params, rounds=3, keep_per_round=0.5, groups=groups, progress=False
    )
    pairs = [24, 12, 6, 3]  # round(0.5 * remaining pairs) of d * m / 2 = 24
    assert run.densities == [p / 24 for p in pairs]
    for r in range(1, 4):
        kernel = np.asarray(run.masks[r]["hidden"]["kernel"][...])
        np.testing.assert_array_equal(kernel[:, : m // 2], kernel[:, m // 2 :])
        np.testing.assert_allclose(apply(starts[r][0], x), 0.0, atol=1e-6)
        previous = prune.magnitude_mask(
            run.params[r - 1], 0.5, mask=run.masks[r - 1], groups=groups
        )
        assert_trees_equal(run.masks[r], previous)
    with pytest.raises(ValueError, match="integer"):
        prune.iterative_magnitude_pruning(
            train,
            params,
            rounds=1,
            keep_per_round=0.5,
            progress=False,
            groups=jax.tree.map(lambda g: g.astype(float), groups),
        )


def test_bad_groups_are_rejected():
    tree, groups = grouped_tree()
    with pytest.raises(ValueError, match="integer"):
        prune.magnitude_mask(tree, 0.5, groups={**groups, "c": np.zeros((2, 2, 3))})
    with pytest.raises(ValueError, match="shapes"):
        prune.magnitude_mask(tree, 0.5, groups={**groups, "c": np.zeros((2, 3), int)})
    with pytest.raises(ValueError, match="different structures"):
        prune.random_mask(tree, 0.5, groups={"a": groups["a"]}, key=jax.random.key(0))
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda g: prune.magnitude_mask(tree, 0.5, groups=g))(groups)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("keep", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5", [0.5]])
def test_bad_keep_is_rejected(keep):
    tree = hand_tree()
    with pytest.raises(ValueError, match="keep"):
        prune.magnitude_mask(tree, keep)
    with pytest.raises(ValueError, match="keep"):
        prune.random_mask(tree, keep, key=jax.random.key(0))
    with pytest.raises(ValueError, match="keep"):
        prune.neuron_mask(tree, keep)
    with pytest.raises(ValueError, match="keep_per_round"):
        prune.iterative_magnitude_pruning(lambda p, m: p, tree, rounds=1, keep_per_round=keep)


def test_mismatched_pytrees_are_rejected():
    tree = hand_tree()
    mask = prune.magnitude_mask(tree, 0.5)
    other_structure = {"a": mask["a"], "b": mask["b"], "c": mask["c"]}
    other_shape = {**mask, "c": jnp.ones((2, 3, 2), bool)}
    for bad, match in [(other_structure, "different structures"), (other_shape, "shapes")]:
        with pytest.raises(ValueError, match=match):
            prune.apply_mask(tree, bad)
        with pytest.raises(ValueError, match=match):
            prune.magnitude_mask(tree, 0.5, mask=bad)
        with pytest.raises(ValueError, match=match):
            prune.iterative_magnitude_pruning(
                lambda p, m: p, tree, rounds=1, keep_per_round=0.5, rewind_to=bad
            )
        with pytest.raises(ValueError, match=match):
            tx = prune.masked_optimizer(optax.sgd(0.1), bad)
            tx.init(tree)
    with pytest.raises(ValueError, match="train"):
        prune.iterative_magnitude_pruning(
            lambda p, m: (p, 0), tree, rounds=1, keep_per_round=0.5, progress=False
        )
    with pytest.raises(ValueError, match="different structures"):
        prune.magnitude_mask(tree, 0.5, prunable={"a": True})


def test_other_bad_arguments_are_rejected():
    tree = hand_tree()
    float_mask = jax.tree.map(lambda leaf: jnp.ones(leaf.shape), tree)
    for call in [
        lambda: prune.magnitude_mask(tree, 0.5, scope="local"),
        lambda: prune.random_mask(tree, 0.5, scope="all", key=jax.random.key(0)),
    ]:
        with pytest.raises(ValueError, match="scope"):
            call()
    for rounds in [0, -1, 1.5, True, None]:
        with pytest.raises(ValueError, match="rounds"):
            prune.iterative_magnitude_pruning(
                lambda p, m: p, tree, rounds=rounds, keep_per_round=0.5
            )
    with pytest.raises(ValueError, match="scope"):
        prune.iterative_magnitude_pruning(
            lambda p, m: p, tree, rounds=1, keep_per_round=0.5, scope="neuron"
        )
    for call in [
        lambda: prune.apply_mask(tree, float_mask),
        lambda: prune.magnitude_mask(tree, 0.5, mask=float_mask),
        lambda: prune.count(float_mask),
        lambda: prune.density(float_mask),
    ]:
        with pytest.raises(ValueError, match="boolean"):
            call()
    for axis in [2, -3]:
        with pytest.raises(ValueError, match="axis"):
            prune.neuron_mask({"k": jnp.ones((3, 4))}, 0.5, axis=axis)
    only_c = {"a": {"kernel": False, "bias": False}, "b": {"kernel": False}, "c": True, "d": False}
    # axis 2 exists only in the 3-D leaf c (2, 2, 3): keep round(1.5) = 2 of its 3 slices
    assert prune.count(prune.neuron_mask(tree, 0.5, axis=2, prunable=only_c)) == (54 - 4, 54)
    with pytest.raises(ValueError, match="NaN"):
        prune.magnitude_mask({"w": jnp.asarray([[1.0, jnp.nan]])}, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        prune.neuron_mask({"w": jnp.asarray([[1.0, jnp.nan]])}, 0.5)
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda t: prune.magnitude_mask(t, 0.5))(tree)
    with pytest.raises(ValueError, match="no entries"):
        prune.density({"w": jnp.ones((0, 3), bool)})


def test_integer_scores_are_ranked_without_overflow_of_their_magnitude():
    # |INT_MIN| overflows int32 (np.abs(-2**31) == -2**31); the ranking uses float64 magnitudes
    scores = {"w": np.array([[-(2**31), 1, 2, 3]], np.int32)}
    np.testing.assert_array_equal(prune.magnitude_mask(scores, 0.25)["w"], [[1, 0, 0, 0]])
    columns = {"w": np.array([[-128, 1], [0, 100]], np.int8)}  # column norms 128 and 100.005
    np.testing.assert_array_equal(prune.neuron_mask(columns, 0.5)["w"], [[1, 0], [1, 0]])
