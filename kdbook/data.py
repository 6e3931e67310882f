"""Data: the synthetic generators the chapters use, and splits of scikit-learn's digits.

Everything takes an explicit PRNG key and returns JAX arrays. As everywhere in kdbook, the key is
a keyword-only argument, ``key=`` (``sample_sphere(100, dim=3, key=key)``, not JAX's key-first
``jax.random.normal(key, shape)``), so that a call reads the same whether the key is required, as
here, or optional, as in :func:`kdbook.train.fit`. A *task* (the mixture's means, a bump function)
is made once from one key; samples are then drawn from it with other keys, so train and test sets
come from the same distribution. Nothing is downloaded: the digits ship with
scikit-learn.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kdbook._checks import check_int as _check_int
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_unit_interval as _check_unit_interval

__all__ = [
    "GaussianBumps",
    "GaussianMixture",
    "digits_split",
    "flip_labels",
    "make_gaussian_bumps",
    "make_gaussian_mixture",
    "make_hierarchical_mixture",
    "sample_angular",
    "sample_gaussian_bumps",
    "sample_gaussian_mixture",
    "sample_sphere",
    "sample_uniform",
]


class GaussianMixture(NamedTuple):
    """A mixture of isotropic Gaussians, one or more modes per class, equally weighted.

    Attributes:
        means: ``(modes, dim)`` mode centres.
        mode_labels: ``(modes,)`` the class of each mode.
        std: standard deviation of every mode.
    """

    means: jax.Array
    mode_labels: jax.Array
    std: float

    @property
    def num_classes(self) -> int:
        return int(self.mode_labels.max()) + 1


def make_gaussian_mixture(
    *,
    key: jax.Array,
    dim: int,
    num_classes: int = 2,
    modes_per_class: int = 1,
    separation: float = 1.0,
    std: float = 1.0,
) -> GaussianMixture:
    """A random Gaussian-mixture classification task.

    Mode centres are drawn i.i.d. from ``N(0, separation**2 I)``; with several modes per class the
    classes interleave, which makes the task harder for a simple classifier.

    Args:
        key: PRNG key for the centres.
        dim: input dimension.
        num_classes: number of classes ``k >= 2``.
        modes_per_class: Gaussian modes per class.
        separation: scale of the centres.
        std: standard deviation of each mode.
    """
    _check_int("dim", dim)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("modes_per_class", modes_per_class)
    _check_positive("separation", separation)
    _check_positive("std", std)
    modes = num_classes * modes_per_class
    means = separation * jax.random.normal(key, (modes, dim))
    mode_labels = jnp.repeat(jnp.arange(num_classes), modes_per_class)
    return GaussianMixture(means, mode_labels, float(std))


def make_hierarchical_mixture(
    *,
    key: jax.Array,
    dim: int,
    num_superclasses: int,
    classes_per_superclass: int,
    superclass_scale: float = 2.0,
    class_scale: float = 1.0,
    std: float = 0.6,
) -> tuple[GaussianMixture, jax.Array]:
    """Classes grouped in superclasses: class ``c`` of superclass ``s`` has mean ``a U_s + b V_c``.

    ``U_s`` and ``V_c`` are random unit vectors, ``a = superclass_scale``, ``b = class_scale``, so
    classes of one superclass are closer to each other than to the rest: the structure a teacher's
    soft targets reveal at high temperature.

    Returns:
        ``(mixture, superclass_of_class)``: a one-mode-per-class :class:`GaussianMixture` with
        ``num_superclasses * classes_per_superclass`` classes, and the ``(classes,)`` superclass
        index of each class.
    """
    _check_int("dim", dim)
    _check_int("num_superclasses", num_superclasses)
    _check_int("classes_per_superclass", classes_per_superclass)
    num_classes = num_superclasses * classes_per_superclass
    if num_classes < 2:
        raise ValueError("the hierarchy needs at least 2 classes in total")
    ku, kv = jax.random.split(key)

    def unit(k, n):
        v = jax.random.normal(k, (n, dim))
        return v / jnp.linalg.norm(v, axis=1, keepdims=True)

    superclass = jnp.repeat(jnp.arange(num_superclasses), classes_per_superclass)
    means = superclass_scale * unit(ku, num_superclasses)[superclass]
    means = means + class_scale * unit(kv, num_classes)
    return GaussianMixture(means, jnp.arange(num_classes), float(std)), superclass


def sample_gaussian_mixture(
    mixture: GaussianMixture, n: int, *, key: jax.Array, label_flip: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """Draw ``n`` labelled points: a uniform mode, then a Gaussian sample around its mean.

    Args:
        mixture: the task, from :func:`make_gaussian_mixture`.
        n: number of points.
        key: PRNG key for this sample.
        label_flip: probability that a label is replaced by a different, uniformly chosen class.

    Returns:
        ``(x, y)`` with shapes ``(n, dim)`` and ``(n,)`` (int32).
    """
    _check_int("n", n)
    _check_unit_interval("label_flip", label_flip)
    k_mode, k_noise, k_flip = jax.random.split(key, 3)
    modes = jax.random.randint(k_mode, (n,), 0, mixture.means.shape[0])
    x = mixture.means[modes] + mixture.std * jax.random.normal(k_noise, (n, mixture.means.shape[1]))
    y = mixture.mode_labels[modes].astype(jnp.int32)
    if label_flip > 0:
        y = flip_labels(y, label_flip, num_classes=mixture.num_classes, key=k_flip)
    return x, y


def flip_labels(
    labels: jax.Array, probability: float, *, key: jax.Array, num_classes: int
) -> jax.Array:
    """Replace each label, with the given probability, by a different class chosen uniformly."""
    _check_unit_interval("probability", probability)
    _check_int("num_classes", num_classes, minimum=2)
    k_which, k_shift = jax.random.split(key)
    flip = jax.random.bernoulli(k_which, probability, labels.shape)
    shift = jax.random.randint(k_shift, labels.shape, 1, num_classes)
    return jnp.where(flip, (labels + shift) % num_classes, labels).astype(labels.dtype)


def sample_angular(
    n: int, *, key: jax.Array, dim: int, kappa: float
) -> tuple[jax.Array, jax.Array]:
    r"""Two-class data on the unit sphere with a controlled margin distribution.

    The teacher is the hyperplane with normal :math:`e_1`. Each point makes an angle
    :math:`\bar\alpha = \frac{\pi}{2} U^{1/\kappa}` (:math:`U` uniform) with that hyperplane, so the
    fraction of points within angle :math:`\theta` of the decision boundary is exactly
    :math:`p(\theta) = (2\theta/\pi)^\kappa`: a small :math:`\kappa` puts much mass near the
    boundary, a large one keeps the classes apart. The point is
    :math:`x = s \sin(\bar\alpha) e_1 + \cos(\bar\alpha) u` with a random sign :math:`s` and a
    uniform unit vector :math:`u \perp e_1`.

    Args:
        n: number of points.
        key: PRNG key.
        dim: input dimension ``>= 2``.
        kappa: geometry exponent :math:`\kappa > 0`.

    Returns:
        ``(x, y)``: ``(n, dim)`` unit vectors and ``(n,)`` labels ``y = 1[x_1 > 0]`` (int32).
    """
    _check_int("n", n)
    _check_int("dim", dim, minimum=2)
    _check_positive("kappa", kappa)
    k_angle, k_sign, k_dir = jax.random.split(key, 3)
    angle = 0.5 * jnp.pi * jax.random.uniform(k_angle, (n,)) ** (1.0 / kappa)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0)
    u = jax.random.normal(k_dir, (n, dim - 1))
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    x = jnp.concatenate([(sign * jnp.sin(angle))[:, None], jnp.cos(angle)[:, None] * u], axis=1)
    return x, (sign > 0).astype(jnp.int32)


class GaussianBumps(NamedTuple):
    r"""A smooth teacher logit on :math:`[-1, 1]^d`: a signed sum of Gaussian bumps.

    :math:`z(x) = A\,\big(\sum_j s_j \exp(-\lVert x - c_j\rVert^2 / 2w^2) - \text{offset}\big)`,
    with the offset chosen so that the two classes ``z > 0`` and ``z <= 0`` are about equally
    likely under uniform inputs. More bumps make a more complicated decision boundary.
    """

    centers: jax.Array
    signs: jax.Array
    width: float
    amplitude: float
    offset: float

    def logits(self, x: jax.Array) -> jax.Array:
        """Teacher logits ``(n,)`` at inputs ``x`` of shape ``(n, dim)``."""
        sq = jnp.sum((x[:, None, :] - self.centers[None]) ** 2, axis=-1)
        bumps = jnp.exp(-sq / (2.0 * self.width**2)) @ self.signs
        return self.amplitude * (bumps - self.offset)


def make_gaussian_bumps(
    *, key: jax.Array, dim: int = 1, num_bumps: int = 8, width: float = 0.3, amplitude: float = 4.0
) -> GaussianBumps:
    """A random :class:`GaussianBumps` function (``dim=1`` gives the book's 1-D example)."""
    _check_int("dim", dim)
    _check_int("num_bumps", num_bumps)
    _check_positive("width", width)
    _check_positive("amplitude", amplitude)
    k_c, k_s, k_ref = jax.random.split(key, 3)
    centers = jax.random.uniform(k_c, (num_bumps, dim), minval=-1.0, maxval=1.0)
    signs = jnp.where(jax.random.bernoulli(k_s, 0.5, (num_bumps,)), 1.0, -1.0)
    unshifted = GaussianBumps(centers, signs, float(width), float(amplitude), 0.0)
    reference = sample_uniform(20_000, dim=dim, key=k_ref)
    offset = float(jnp.median(unshifted.logits(reference))) / amplitude
    return unshifted._replace(offset=offset)


def sample_gaussian_bumps(
    bumps: GaussianBumps, n: int, *, key: jax.Array, label_flip: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    r"""Draw ``n`` labelled points of a bump task: uniform inputs, labels ``1[z(x) > 0]``.

    The binary counterpart of :func:`sample_gaussian_mixture` for :class:`GaussianBumps` (more
    bumps make a more complicated decision boundary). With ``label_flip`` :math:`= p` each label is
    flipped independently with probability :math:`p`; :math:`p = 1/2` makes labels independent
    of the inputs (random labels).

    Args:
        bumps: the task, from :func:`make_gaussian_bumps`.
        n: number of points.
        key: PRNG key for this sample.
        label_flip: :math:`p \in [0, 1]`.

    Returns:
        ``(x, y)``: ``(n, dim)`` inputs uniform on :math:`[-1, 1]^d` and ``(n,)`` labels in
        ``{0, 1}`` (int32). The noiseless logits are ``bumps.logits(x)``.
    """
    _check_int("n", n)
    _check_unit_interval("label_flip", label_flip)
    k_x, k_flip = jax.random.split(key)
    x = sample_uniform(n, key=k_x, dim=bumps.centers.shape[1])
    y = (bumps.logits(x) > 0).astype(jnp.int32)
    if label_flip > 0:
        y = flip_labels(y, label_flip, num_classes=2, key=k_flip)
    return x, y


def sample_uniform(n: int, *, key: jax.Array, dim: int) -> jax.Array:
    """``n`` inputs uniform on ``[-1, 1]^dim``, shape ``(n, dim)``."""
    _check_int("n", n)
    _check_int("dim", dim)
    return jax.random.uniform(key, (n, dim), minval=-1.0, maxval=1.0)


def sample_sphere(n: int, *, key: jax.Array, dim: int) -> jax.Array:
    r"""``n`` inputs uniform on the unit sphere of ``R^dim``, shape ``(n, dim)``.

    The inputs of the two-layer analyses of Du et al. (2019) and Arora et al. (2019), who assume
    :math:`\lVert x \rVert = 1`: normalised standard Gaussian vectors.
    """
    _check_int("n", n)
    _check_int("dim", dim)
    x = jax.random.normal(key, (n, dim))
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)


def digits_split(
    *, key: jax.Array, n_train: int = 1000, n_test: int = 797, return_indices: bool = False
) -> tuple[jax.Array, ...]:
    """A random train/test split of scikit-learn's 8x8 digits (1797 images, 10 classes).

    Pixels are standardised with the training set's per-pixel mean and standard deviation (pixels
    that are constant in the training set are only centred).

    Args:
        key: PRNG key for the split.
        n_train: training examples.
        n_test: test examples; ``n_train + n_test <= 1797``.
        return_indices: also return the indices of the chosen images in scikit-learn's data set
            (e.g. to show the raw images, ``sklearn.datasets.load_digits().images[index]``).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: inputs ``(n, 64)`` float32, labels ``(n,)`` int32;
        with ``return_indices``, followed by ``(train_indices, test_indices)``.
    """
    from sklearn.datasets import load_digits

    _check_int("n_train", n_train)
    _check_int("n_test", n_test)
    digits = load_digits()
    total = digits.data.shape[0]
    if n_train + n_test > total:
        raise ValueError(f"n_train + n_test must be <= {total}, got {n_train} + {n_test}")
    order = np.asarray(jax.random.permutation(key, total))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    x = digits.data.astype(np.float32)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    y = digits.target.astype(np.int32)
    split = (
        jnp.asarray(x[train]),
        jnp.asarray(y[train]),
        jnp.asarray(x[test]),
        jnp.asarray(y[test]),
    )
    return split + (train, test) if return_indices else split
