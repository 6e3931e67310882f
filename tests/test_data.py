"""kdbook.data: the generators' distributions, determinism and errors."""

import collections
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import kdbook as kd


@pytest.mark.parametrize("kappa", [0.25, 1.0, 3.0])
def test_sample_angular_has_the_promised_margin_distribution(kappa):
    x, y = kd.sample_angular(20_000, dim=10, kappa=kappa, key=jax.random.key(0))
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(y, (x[:, 0] > 0).astype(np.int32))
    angle = np.arcsin(np.abs(np.asarray(x[:, 0])))  # angle to the hyperplane x_1 = 0
    thetas = np.linspace(0.05, 1.5, 30)
    empirical = (angle[None, :] <= thetas[:, None]).mean(axis=1)
    # Kolmogorov-Smirnov: sup deviation of an n=20000 sample is < 1.63/sqrt(n) w.p. 0.99.
    assert np.max(np.abs(empirical - (2 * thetas / np.pi) ** kappa)) < 1.63 / np.sqrt(20_000)
    assert abs(y.mean() - 0.5) < 0.02


def test_gaussian_mixture_sampling():
    mixture = kd.make_gaussian_mixture(
        dim=3, num_classes=3, modes_per_class=2, separation=5.0, std=0.5, key=jax.random.key(1)
    )
    assert mixture.means.shape == (6, 3) and mixture.num_classes == 3
    x, y = kd.sample_gaussian_mixture(mixture, 30_000, key=jax.random.key(2))
    assert x.shape == (30_000, 3) and y.dtype == jnp.int32
    np.testing.assert_allclose(np.bincount(np.asarray(y)) / 30_000, 1 / 3, atol=0.02)
    nearest = jnp.argmin(((x[:, None] - mixture.means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(np.asarray(mixture.mode_labels[nearest] == y)) > 0.95
    # Each point sits around its nearest mode with standard deviation 0.5.
    residual = x - mixture.means[nearest]
    np.testing.assert_allclose(residual.std(axis=0), 0.5, rtol=0.05)


def test_label_flip_rate_and_flipped_labels_change_class():
    labels = jnp.zeros(50_000, dtype=jnp.int32)
    flipped = kd.flip_labels(labels, 0.2, num_classes=4, key=jax.random.key(3))
    assert abs(float(jnp.mean(flipped != 0)) - 0.2) < 0.01
    counts = np.bincount(np.asarray(flipped), minlength=4)[1:]
    np.testing.assert_allclose(counts / counts.sum(), 1 / 3, atol=0.02)
    assert np.array_equal(kd.flip_labels(labels, 0.0, num_classes=4, key=jax.random.key(3)), labels)
    assert np.all(
        np.asarray(kd.flip_labels(labels, 1.0, num_classes=4, key=jax.random.key(4))) != 0
    )


def test_hierarchical_classes_are_closer_within_a_superclass():
    mixture, superclass = kd.make_hierarchical_mixture(
        dim=20, num_superclasses=4, classes_per_superclass=5, key=jax.random.key(5)
    )
    assert mixture.means.shape == (20, 20) and superclass.shape == (20,)
    distance = np.linalg.norm(mixture.means[:, None] - mixture.means[None], axis=-1)
    same = np.asarray(superclass[:, None] == superclass[None]) & ~np.eye(20, dtype=bool)
    different = np.asarray(superclass[:, None] != superclass[None])
    assert distance[same].mean() < 0.6 * distance[different].mean()


def test_gaussian_bumps_give_balanced_classes():
    bumps = kd.make_gaussian_bumps(dim=1, num_bumps=8, key=jax.random.key(6))
    x = kd.sample_uniform(20_000, dim=1, key=jax.random.key(7))
    z = bumps.logits(x)
    assert z.shape == (20_000,) and abs(float(jnp.mean(z > 0)) - 0.5) < 0.02
    assert np.all(np.abs(np.asarray(x)) <= 1)


def test_sample_sphere_is_unit_norm_and_rotation_invariant():
    x = kd.sample_sphere(40_000, dim=3, key=jax.random.key(9))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)
    # uniform on the 2-sphere: each coordinate is uniform on [-1, 1] (Archimedes), mean 0, var 1/3
    assert np.all(np.abs(np.asarray(x.mean(axis=0))) < 0.02)
    assert np.all(np.abs(np.asarray(x.var(axis=0)) - 1 / 3) < 0.01)
    histogram, _ = np.histogram(np.asarray(x[:, 2]), bins=4, range=(-1, 1))
    assert np.all(np.abs(histogram / 40_000 - 0.25) < 0.01)
    with pytest.raises(ValueError, match="dim must be an integer"):
        kd.sample_sphere(3, dim=0, key=jax.random.key(0))


def test_digits_split_is_deterministic_disjoint_and_standardised():
    a = kd.digits_split(n_train=500, n_test=300, key=jax.random.key(8))
    b = kd.digits_split(n_train=500, n_test=300, key=jax.random.key(8))
    x_train, y_train, x_test, y_test = a
    assert x_train.shape == (500, 64) and x_test.shape == (300, 64)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    assert set(np.unique(y_train).tolist()) == set(range(10))
    rows = {tuple(np.round(r, 4)) for r in np.asarray(x_train)}
    assert sum(tuple(np.round(r, 4)) in rows for r in np.asarray(x_test)) < 5  # a few duplicates
    *_, train_index, test_index = kd.digits_split(
        n_train=500, n_test=300, return_indices=True, key=jax.random.key(8)
    )
    from sklearn.datasets import load_digits

    assert np.array_equal(load_digits().target[test_index], y_test)
    assert not set(train_index.tolist()) & set(test_index.tolist())
    c = kd.digits_split(n_train=500, n_test=300, key=jax.random.key(9))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kd.digits_split(n_train=1500, n_test=500, key=jax.random.key(0)), "n_train"),
        (lambda: kd.sample_angular(10, dim=5, kappa=0.0, key=jax.random.key(0)), "kappa"),
        (lambda: kd.sample_angular(0, dim=5, kappa=1.0, key=jax.random.key(0)), "n must be"),
        (lambda: kd.sample_angular(10, dim=1, kappa=1.0, key=jax.random.key(0)), "dim"),
        (
            lambda: kd.make_gaussian_mixture(dim=2, num_classes=1, key=jax.random.key(0)),
            "num_classes",
        ),
        (lambda: kd.make_gaussian_mixture(dim=2, std=0.0, key=jax.random.key(0)), "std"),
        (
            lambda: kd.flip_labels(jnp.zeros(3, int), 1.5, num_classes=2, key=jax.random.key(0)),
            "probability",
        ),
        (lambda: kd.make_gaussian_bumps(width=-1.0, key=jax.random.key(0)), "width"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sample_gaussian_bumps_labels_and_flips():
    bumps = kd.make_gaussian_bumps(dim=2, num_bumps=8, key=jax.random.key(0))
    x, y = kd.sample_gaussian_bumps(bumps, 4000, key=jax.random.key(1))
    assert x.shape == (4000, 2) and y.dtype == jnp.int32
    assert float(jnp.min(x)) >= -1 and float(jnp.max(x)) <= 1
    np.testing.assert_array_equal(y, (bumps.logits(x) > 0).astype(jnp.int32))
    # the same key gives the same inputs; with p the labels differ from the clean ones w.p. p
    for p in (0.1, 0.5):
        x_p, y_p = kd.sample_gaussian_bumps(bumps, 4000, key=jax.random.key(1), label_flip=p)
        np.testing.assert_array_equal(x_p, x)
        flipped = float(jnp.mean(y_p != y))
        assert abs(flipped - p) < 5 * np.sqrt(p * (1 - p) / 4000)
    _, all_flipped = kd.sample_gaussian_bumps(bumps, 100, key=jax.random.key(2), label_flip=1.0)
    x_2, y_2 = kd.sample_gaussian_bumps(bumps, 100, key=jax.random.key(2))
    np.testing.assert_array_equal(all_flipped, 1 - y_2)


@pytest.mark.parametrize("amplitude", [0.0, -1.0, float("nan"), float("inf")])
def test_gaussian_bumps_need_a_finite_positive_amplitude(amplitude):
    with pytest.raises(ValueError, match="amplitude"):
        kd.make_gaussian_bumps(amplitude=amplitude, key=jax.random.key(0))
    bumps = kd.make_gaussian_bumps(key=jax.random.key(0))
    with pytest.raises(ValueError, match="label_flip"):
        kd.sample_gaussian_bumps(bumps, 10, key=jax.random.key(0), label_flip=1.5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kd.make_gaussian_mixture(dim=2, std=np.inf, key=jax.random.key(0)), "std"),
        (lambda: kd.sample_angular(5, dim=3, kappa=np.inf, key=jax.random.key(0)), "kappa"),
    ],
)
def test_infinite_scales_are_refused(call, match):
    with pytest.raises(ValueError, match=f"{match} must be a finite number"):
        call()


def test_gaussian_bumps_offset_does_not_depend_on_the_amplitude():
    # the offset is the median of the unscaled bumps, so the amplitude only scales the logits,
    # up to the largest one whose logits stay finite in float32 (no overflow, no division by 0)
    x = kd.sample_uniform(50, dim=2, key=jax.random.key(1))
    base = kd.make_gaussian_bumps(dim=2, num_bumps=8, amplitude=1.0, key=jax.random.key(0))
    for amplitude in (3.0, 1e-30, 2e37):
        bumps = kd.make_gaussian_bumps(
            dim=2, num_bumps=8, amplitude=amplitude, key=jax.random.key(0)
        )
        assert bumps.offset == base.offset
        logits = bumps.logits(x)
        assert np.all(np.isfinite(logits))
        np.testing.assert_allclose(logits / amplitude, base.logits(x), rtol=1e-6, atol=1e-6)


def test_flip_labels_accepts_lists_and_numpy_integers_and_keeps_the_range():
    flipped = kd.flip_labels([0, 1, 2, 2], 1.0, num_classes=np.int64(3), key=jax.random.key(0))
    assert flipped.shape == (4,) and np.all(np.asarray(flipped) != np.array([0, 1, 2, 2]))
    assert set(np.asarray(flipped).tolist()) <= {0, 1, 2}
    # uint8 labels near the top: label + shift must not wrap around mod 256 before mod 256 classes
    flipped = kd.flip_labels(
        np.full(64, 250, np.uint8), 1.0, num_classes=256, key=jax.random.key(1)
    )
    assert flipped.dtype == np.uint8 and np.all(np.asarray(flipped) != 250)
    flipped = kd.flip_labels(
        np.full(64, 199, np.uint8), 1.0, num_classes=200, key=jax.random.key(2)
    )
    assert np.asarray(flipped).max() < 200 and np.all(np.asarray(flipped) != 199)


def _write_cifar10(folder, n_per_batch=4, seed=0):
    """A small CIFAR-10 in the official format: six pickled dicts of bytes keys (protocol 2)."""

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n_per_batch)],
        }
        with (folder / name).open("wb") as file:
            pickle.dump(batch, file, protocol=2)
        batches[name] = batch
    return batches


def test_load_cifar10_reads_the_official_batches(tmp_path):
    batches = _write_cifar10(tmp_path / "cifar-10-batches-py")
    x, y, x_test, y_test = kd.load_cifar10(tmp_path)  # the parent folder works too
    assert x.shape == (20, 3072) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    assert x_test.shape == (4, 3072) and y_test.shape == (4,)
    raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(y, labels)
    # channel-first rows become (height, width, channel), standardised per channel
    hwc = raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255
    mean, std = hwc.reshape(-1, 3).mean(0), hwc.reshape(-1, 3).std(0)
    np.testing.assert_allclose(x, ((hwc - mean) / std).reshape(20, 3072), rtol=1e-5, atol=1e-5)
    assert abs(float(x[0, 1]) - (hwc[0, 0, 0, 1] - mean[1]) / std[1]) < 1e-5  # green of pixel 0
    first = kd.load_cifar10(tmp_path / "cifar-10-batches-py", n_train=6, n_test=2)
    np.testing.assert_array_equal(first[1], labels[:6])
    assert first[0].shape == (6, 3072) and first[2].shape == (2, 3072)
    model = kd.CNN((32, 32, 3), channels=(2, 2), out_features=10, rngs=nnx.Rngs(0))
    assert model(x[:2]).shape == (2, 10)


def test_load_cifar10_clear_errors(tmp_path):

    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        kd.load_cifar10(tmp_path / "nowhere")
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing: data_batch_3"):
        kd.load_cifar10(folder)
    _write_cifar10(folder)
    (folder / "data_batch_2").write_bytes(b"\x80\x02truncated")
    with pytest.raises(ValueError, match="data_batch_2 is not a CIFAR-10 python batch"):
        kd.load_cifar10(folder)
    _write_cifar10(folder)
    with (folder / "test_batch").open("wb") as file:  # a class that is not arrays or bytes
        pickle.dump({b"data": collections.Counter(), b"labels": []}, file)
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python batch"):
        kd.load_cifar10(folder)
    _write_cifar10(folder)
    with (folder / "data_batch_1").open("wb") as file:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, file)
    with pytest.raises(ValueError, match=r"expected \(n, 3072\)"):
        kd.load_cifar10(folder)
    for data, labels, message in (  # truncated labels or wrapped pixels would load silently
        (np.zeros((2, 3072), np.uint8), [0.5, 1], "data_batch_1: labels must be integers"),
        (np.zeros((2, 3072), np.uint8), [0, 10], r"data_batch_1: labels must lie in \[0, 9\]"),
        (np.full((2, 3072), 1000), [0, 1], r"data_batch_1: pixel values must lie in \[0, 255\]"),
        (np.full((2, 3072), 0.5), [0, 1], "data_batch_1: pixel values must be integers"),
    ):
        with (folder / "data_batch_1").open("wb") as file:
            pickle.dump({b"data": data, b"labels": labels}, file)
        with pytest.raises(ValueError, match=message):
            kd.load_cifar10(folder)
    _write_cifar10(folder)
    with pytest.raises(ValueError, match="n_train must be <= 20"):
        kd.load_cifar10(folder, n_train=21)
    with pytest.raises(ValueError, match="n_test must be an integer"):
        kd.load_cifar10(folder, n_test=True)
