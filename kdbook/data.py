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

import os
import pickle
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kdbook._checks import as_float_array as _as_float_array
from kdbook._checks import as_labels as _as_labels
from kdbook._checks import check_bool as _check_bool
from kdbook._checks import check_finite as _check_finite
from kdbook._checks import check_int as _check_int
from kdbook._checks import check_key as _check_key
from kdbook._checks import check_no_overflow as _check_no_overflow
from kdbook._checks import check_nonnegative as _check_nonnegative
from kdbook._checks import check_positive as _check_positive
from kdbook._checks import check_unit_interval as _check_unit_interval
from kdbook._checks import is_concrete as _is_concrete

__all__ = [
    "CIFAR10_URL",
    "load_cifar10",
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


def _check_representable(name: str, value, what: str, dtype=None) -> None:
    """A concrete scale ``value`` must not exceed the largest number of ``dtype`` (default: the
    default float dtype), checked before anything is computed with it."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    if _is_concrete(value) and float(value) > float(np.finfo(dtype).max):
        _check_no_overflow(jnp.full((), np.inf, dtype), what, scale=(name, value))


def _scale(name: str, value, array: jax.Array, what: str) -> jax.Array:
    """``value * array`` for a finite scale ``value``, checked not to overflow ``array``'s dtype
    (the check of the product needs concrete values)."""
    _check_representable(name, value, what, array.dtype)
    product = value * array
    _check_no_overflow(product, what, scale=(name, value))
    return product


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
        separation: scale of the centres, ``> 0``.
        std: standard deviation of each mode, ``> 0``.

    Raises:
        ValueError: for a ``key`` that is not a JAX PRNG key, sizes that are not positive
            integers (``num_classes >= 2``), a ``separation`` or ``std`` that is not a finite
            positive number, or a ``separation`` so large that the centres overflow the dtype.
    """
    _check_key("key", key)
    _check_int("dim", dim)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("modes_per_class", modes_per_class)
    _check_positive("separation", separation)
    _check_positive("std", std)
    _check_representable("separation", separation, "the centres")
    modes = num_classes * modes_per_class
    means = _scale("separation", separation, jax.random.normal(key, (modes, dim)), "the centres")
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
    r"""Classes grouped in superclasses: class ``c`` of superclass ``s`` has mean ``a U_s + b V_c``.

    ``U_s`` and ``V_c`` are random unit vectors, ``a = superclass_scale``, ``b = class_scale``, so
    classes of one superclass are closer to each other than to the rest: the structure a teacher's
    soft targets reveal at high temperature.

    Args:
        key: PRNG key for the directions.
        dim: input dimension.
        num_superclasses: number of superclasses.
        classes_per_superclass: classes in each superclass.
        superclass_scale: :math:`a \ge 0`, the distance of the superclass centres from 0.
        class_scale: :math:`b \ge 0`, the distance of a class mean from its superclass centre.
        std: standard deviation of each class, ``> 0``.

    Returns:
        ``(mixture, superclass_of_class)``: a one-mode-per-class :class:`GaussianMixture` with
        ``num_superclasses * classes_per_superclass`` classes, and the ``(classes,)`` superclass
        index of each class.

    Raises:
        ValueError: for a ``key`` that is not a JAX PRNG key, sizes that are not positive
            integers or make fewer than 2 classes, scales that are not finite and ``>= 0``, a
            ``std`` that is not finite and positive, or scales so large that the means overflow.
    """
    _check_key("key", key)
    _check_int("dim", dim)
    _check_int("num_superclasses", num_superclasses)
    _check_int("classes_per_superclass", classes_per_superclass)
    _check_nonnegative("superclass_scale", superclass_scale)
    _check_nonnegative("class_scale", class_scale)
    _check_positive("std", std)
    _check_representable("superclass_scale", superclass_scale, "the means")
    _check_representable("class_scale", class_scale, "the means")
    num_classes = num_superclasses * classes_per_superclass
    if num_classes < 2:
        raise ValueError(
            "num_superclasses * classes_per_superclass must be >= 2 (the hierarchy needs at "
            f"least 2 classes), got {num_superclasses} * {classes_per_superclass}"
        )
    ku, kv = jax.random.split(key)

    def unit(k, n):
        v = jax.random.normal(k, (n, dim))
        return v / jnp.linalg.norm(v, axis=1, keepdims=True)

    superclass = jnp.repeat(jnp.arange(num_superclasses), classes_per_superclass)
    means = _scale("superclass_scale", superclass_scale, unit(ku, num_superclasses), "the means")
    means = means[superclass] + _scale(
        "class_scale", class_scale, unit(kv, num_classes), "the means"
    )
    _check_no_overflow(
        means, "the means", scale=("superclass_scale + class_scale", superclass_scale + class_scale)
    )
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

    Raises:
        ValueError: for a ``mixture`` that is not a :class:`GaussianMixture`, with means that
            are not a finite ``(modes, dim)`` array, ``mode_labels`` that are not ``(modes,)``
            integers ``>= 0``, or a ``std`` that is not finite and positive; an ``n`` that is
            not a positive integer, a ``label_flip`` outside ``[0, 1]``, a ``key`` that is not a
            JAX PRNG key, or (concrete values) samples that overflow the dtype.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(
            "mixture must be a GaussianMixture (from make_gaussian_mixture), got "
            f"{type(mixture).__name__}"
        )
    means = _as_float_array("mixture.means", mixture.means)
    mode_labels = _as_labels("mixture.mode_labels", mixture.mode_labels)
    if means.ndim != 2 or mode_labels.shape != means.shape[:1]:
        raise ValueError(
            f"mixture must have means (modes, dim) and mode_labels (modes,), one class per mode, "
            f"got shapes {means.shape} and {mode_labels.shape}"
        )
    if means.shape[0] == 0:
        raise ValueError("mixture must have at least one mode, got means of shape (0, dim)")
    if _is_concrete(mode_labels) and int(mode_labels.min()) < 0:
        raise ValueError("mixture.mode_labels must be class indices >= 0, one per mode")
    _check_finite("mixture.means", means)
    _check_positive("mixture.std", mixture.std)
    _check_int("n", n)
    _check_key("key", key)
    _check_unit_interval("label_flip", label_flip)
    _check_representable("mixture.std", mixture.std, "the samples")
    k_mode, k_noise, k_flip = jax.random.split(key, 3)
    modes = jax.random.randint(k_mode, (n,), 0, means.shape[0])
    noise = jax.random.normal(k_noise, (n, means.shape[1]))
    x = means[modes] + _scale("mixture.std", mixture.std, noise, "the samples")
    y = mode_labels[modes].astype(jnp.int32)
    if label_flip > 0:
        y = flip_labels(y, label_flip, num_classes=mixture.num_classes, key=k_flip)
    return x, y


def flip_labels(
    labels: jax.Array, probability: float, *, key: jax.Array, num_classes: int
) -> jax.Array:
    """Replace each label, with the given probability, by a different class chosen uniformly.

    Args:
        labels: integer classes in ``[0, num_classes)``, any shape.
        probability: the probability in ``[0, 1]`` that a label is replaced.
        key: PRNG key.
        num_classes: the number of classes, ``>= 2``.

    Returns:
        An array shaped like ``labels``, of its dtype.

    Raises:
        ValueError: for labels that are not integers or (concrete values) lie outside
            ``[0, num_classes)``, a ``probability`` outside ``[0, 1]``, a ``num_classes`` that is
            not an integer ``>= 2`` or has classes beyond the labels' dtype (e.g. ``uint8`` holds
            at most 256), or a ``key`` that is not a JAX PRNG key.
    """
    _check_unit_interval("probability", probability)
    _check_int("num_classes", num_classes, minimum=2)
    _check_key("key", key)
    labels = _as_labels("labels", labels)
    largest = int(jnp.iinfo(labels.dtype).max)
    if num_classes - 1 > largest:
        raise ValueError(
            f"num_classes={num_classes} does not fit labels of dtype {labels.dtype} (classes up "
            f"to {largest}): pass labels of a wider integer dtype"
        )
    if _is_concrete(labels) and labels.size:
        low, high = int(jnp.min(labels)), int(jnp.max(labels))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels must lie in [0, {num_classes}) (num_classes={num_classes}), got values "
                f"in [{low}, {high}]"
            )
    k_which, k_shift = jax.random.split(key)
    flip = jax.random.bernoulli(k_which, probability, labels.shape)
    shift = jax.random.randint(k_shift, labels.shape, 1, num_classes)
    # in int32: label + shift < 2 num_classes would wrap around in a narrow dtype such as uint8
    flipped = (labels.astype(jnp.int32) + shift) % num_classes
    return jnp.where(flip, flipped, labels).astype(labels.dtype)


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

    Raises:
        ValueError: for an ``n`` or ``dim`` that is not an integer (``n >= 1``, ``dim >= 2``), a
            ``kappa`` that is not finite and positive, or a ``key`` that is not a JAX PRNG key.
    """
    _check_key("key", key)
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
        """Teacher logits ``(n,)`` at inputs ``x`` of shape ``(n, dim)``.

        Raises:
            ValueError: for an ``x`` that is not an ``(n, dim)`` array of real numbers, or (for
                concrete input) holds NaN or infinite values.
        """
        x = _as_float_array("x", x)
        dim = self.centers.shape[1]
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(
                f"x must have shape (n, {dim}): n inputs of the bumps' dimension {dim}, got "
                f"shape {x.shape}"
            )
        _check_finite("x", x)
        sq = jnp.sum((x[:, None, :] - self.centers[None]) ** 2, axis=-1)
        bumps = jnp.exp(-sq / (2.0 * self.width**2)) @ self.signs
        return self.amplitude * (bumps - self.offset)


def make_gaussian_bumps(
    *, key: jax.Array, dim: int = 1, num_bumps: int = 8, width: float = 0.3, amplitude: float = 4.0
) -> GaussianBumps:
    """A random :class:`GaussianBumps` function (``dim=1`` gives the book's 1-D example).

    Args:
        key: PRNG key for the centres, signs and the offset's reference sample.
        dim: input dimension.
        num_bumps: number of bumps.
        width: the bumps' width :math:`w > 0`.
        amplitude: the logits' scale :math:`A > 0`.

    Raises:
        ValueError: for a ``key`` that is not a JAX PRNG key, a ``dim`` or ``num_bumps`` that is
            not a positive integer, a ``width`` or ``amplitude`` that is not finite and positive,
            a ``width`` so small that its square underflows the dtype, or an ``amplitude`` so
            large that the logits could overflow the dtype.
    """
    _check_key("key", key)
    _check_int("dim", dim)
    _check_int("num_bumps", num_bumps)
    _check_positive("width", width)
    _check_positive("amplitude", amplitude)
    dtype = jnp.result_type(float)
    smallest = float(np.sqrt(np.finfo(dtype).tiny / 2))  # 2 w^2 must be a normal number
    if float(width) < smallest:
        raise ValueError(
            f"width must be >= {smallest:.3g} in {dtype} (2 * width**2 would underflow to zero "
            f"and make the logits NaN), got {width!r}"
        )
    # |bumps - offset| <= 2 num_bumps (a sum of num_bumps terms in [-1, 1], minus its median):
    # below this amplitude the logits cannot overflow.
    largest = float(np.finfo(jnp.result_type(float)).max) / (2 * num_bumps)
    if float(amplitude) > largest:
        raise ValueError(
            f"amplitude must be <= {largest:.3g} for {num_bumps} bumps in "
            f"{jnp.result_type(float)} (the logits amplitude * (bumps - offset) could overflow), "
            f"got {amplitude!r}"
        )
    k_c, k_s, k_ref = jax.random.split(key, 3)
    centers = jax.random.uniform(k_c, (num_bumps, dim), minval=-1.0, maxval=1.0)
    signs = jnp.where(jax.random.bernoulli(k_s, 0.5, (num_bumps,)), 1.0, -1.0)
    # The offset is the median of the unscaled bumps (amplitude 1): no amplitude can make it
    # overflow or divide by zero.
    unshifted = GaussianBumps(centers, signs, float(width), 1.0, 0.0)
    reference = sample_uniform(20_000, dim=dim, key=k_ref)
    offset = float(jnp.median(unshifted.logits(reference)))
    return unshifted._replace(amplitude=float(amplitude), offset=offset)


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

    Raises:
        ValueError: for ``bumps`` that are not a :class:`GaussianBumps`, an ``n`` that is not a
            positive integer, a ``label_flip`` outside ``[0, 1]``, or a ``key`` that is not a JAX
            PRNG key.
    """
    if not isinstance(bumps, GaussianBumps):
        raise ValueError(
            f"bumps must be a GaussianBumps (from make_gaussian_bumps), got {type(bumps).__name__}"
        )
    _check_key("key", key)
    _check_int("n", n)
    _check_unit_interval("label_flip", label_flip)
    k_x, k_flip = jax.random.split(key)
    x = sample_uniform(n, key=k_x, dim=bumps.centers.shape[1])
    y = (bumps.logits(x) > 0).astype(jnp.int32)
    if label_flip > 0:
        y = flip_labels(y, label_flip, num_classes=2, key=k_flip)
    return x, y


def sample_uniform(n: int, *, key: jax.Array, dim: int) -> jax.Array:
    """``n`` inputs uniform on ``[-1, 1]^dim``, shape ``(n, dim)``.

    Raises:
        ValueError: for an ``n`` or ``dim`` that is not a positive integer, or a ``key`` that is
            not a JAX PRNG key.
    """
    _check_key("key", key)
    _check_int("n", n)
    _check_int("dim", dim)
    return jax.random.uniform(key, (n, dim), minval=-1.0, maxval=1.0)


def sample_sphere(n: int, *, key: jax.Array, dim: int) -> jax.Array:
    r"""``n`` inputs uniform on the unit sphere of ``R^dim``, shape ``(n, dim)``.

    The inputs of the two-layer analyses of Du et al. (2019) and Arora et al. (2019), who assume
    :math:`\lVert x \rVert = 1`: normalised standard Gaussian vectors.

    Raises:
        ValueError: for an ``n`` or ``dim`` that is not a positive integer, or a ``key`` that is
            not a JAX PRNG key.
    """
    _check_key("key", key)
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

    Raises:
        ValueError: for a ``key`` that is not a JAX PRNG key, sizes that are not positive
            integers or add up to more than 1797, or a ``return_indices`` that is not a bool.
    """
    _check_key("key", key)
    _check_int("n_train", n_train)
    _check_int("n_test", n_test)
    _check_bool("return_indices", return_indices)
    from sklearn.datasets import load_digits

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


# ----------------------------------------------------------------------------- CIFAR-10

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles the CIFAR-10 batches (dicts of bytes, lists and NumPy arrays) and nothing
    else: a pickle can run code, so any other object in the file is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes an array's bytes at pickle protocol 2
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")


def _cifar10_integers(path: Path, what: str, array: np.ndarray, high: int, dtype) -> np.ndarray:
    """``array`` as ``dtype`` after checking it holds integers in ``[0, high]`` (a plain cast
    would truncate fractions and wrap values out of range)."""
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if array.dtype == np.bool_ or not numeric:
        raise ValueError(f"{path}: {what} must be integers, got dtype {array.dtype}")
    if array.size:
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise ValueError(f"{path}: {what} must be integers, got non-integer values")
        if array.min() < 0 or array.max() > high:
            raise ValueError(
                f"{path}: {what} must lie in [0, {high}], got [{array.min()}, {array.max()}]"
            )
    return array.astype(dtype)


def _cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file: ``(10000, 3072)`` uint8 images (channel-first) and labels."""
    try:
        with path.open("rb") as file:
            batch = _ArraysOnly(file, encoding="bytes").load()
        images, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as err:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err}); download the "
            f"archive again from {CIFAR10_URL}"
        ) from None
    if images.ndim != 2 or images.shape[1] != 3072 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: images of shape {images.shape} and labels of "
            f"shape {labels.shape}, expected (n, 3072) and (n,)"
        )
    images = _cifar10_integers(path, "pixel values", images, 255, np.uint8)
    return images, _cifar10_integers(path, "labels", labels, 9, np.int64)


def load_cifar10(
    path: str | Path, *, n_train: int | None = None, n_test: int | None = None
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """CIFAR-10 from the official python batches in a folder the reader downloaded.

    kdbook never downloads anything. To get the data, download and unpack the archive
    (163 MB)::

        curl -O https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz
        tar xzf cifar-10-python.tar.gz        # makes the folder cifar-10-batches-py

    and pass that folder (or the folder that contains it). The images are returned flattened in
    (height, width, channel) order, the layout :class:`kdbook.models.CNN` takes with
    ``image_shape=(32, 32, 3)``, and standardised per channel with the training images' mean and
    standard deviation. The batches are read with an unpickler that accepts only dicts, lists,
    bytes and NumPy arrays.

    Args:
        path: the ``cifar-10-batches-py`` folder, or a folder containing it.
        n_train: keep the first ``n_train`` of the 50,000 training images (default: all).
        n_test: keep the first ``n_test`` of the 10,000 test images (default: all).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: images ``(n, 3072)`` float32, labels ``(n,)``
        int32 in ``[0, 9]``.

    Raises:
        FileNotFoundError: if the folder or one of its six batch files is missing (the message
            says how to get them).
        ValueError: for a ``path`` that is not a ``str`` or path-like object, a file that is
            not a CIFAR-10 batch (corrupt, truncated, or holding
            other objects, labels that are not integers in ``[0, 9]``, or pixel values that are
            not integers in ``[0, 255]``; the message names the file), or sizes that are not
            positive integers within the data.
    """
    _check_int("n_train", n_train, allow_none=True)
    _check_int("n_test", n_test, allow_none=True)
    if not isinstance(path, str | os.PathLike):
        raise ValueError(
            f"path must be a folder path (str or pathlib.Path) of the CIFAR-10 python batches, "
            f"got {type(path).__name__}"
        )
    folder = Path(path).expanduser()
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    missing = [name for name in _CIFAR10_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} does not hold the CIFAR-10 python batches (missing: {', '.join(missing)}). "
            f"Download {CIFAR10_URL}, unpack it (tar xzf cifar-10-python.tar.gz) and pass the "
            "folder cifar-10-batches-py"
        )
    train = [_cifar10_batch(folder / name) for name in _CIFAR10_FILES[:5]]
    images, labels = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    test_images, test_labels = _cifar10_batch(folder / "test_batch")
    for name, size, total in (
        ("n_train", n_train, len(labels)),
        ("n_test", n_test, len(test_labels)),
    ):
        if size is not None and size > total:
            raise ValueError(f"{name} must be <= {total} (the images in {folder}), got {size}")
    images, labels = images[:n_train], labels[:n_train]
    test_images, test_labels = test_images[:n_test], test_labels[:n_test]

    def hwc(flat):  # channel-first (3, 32, 32) rows -> (32, 32, 3), flattened
        return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)

    x, x_test = hwc(images).astype(np.float32) / 255.0, hwc(test_images).astype(np.float32) / 255.0
    per_channel = x.reshape(-1, 3)
    mean, std = per_channel.mean(axis=0), per_channel.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    standardise = lambda a: ((a.reshape(-1, 3) - mean) / std).reshape(a.shape)  # noqa: E731
    return (
        jnp.asarray(standardise(x)),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(standardise(x_test)),
        jnp.asarray(test_labels, jnp.int32),
    )
