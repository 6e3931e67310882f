"""Bad input to the analysis side of kdbook (data, prune, kernels, theory): every misuse raises a
``ValueError`` whose message names the argument at fault and what is allowed.

Each case is one call on tiny NumPy inputs; almost all raise before anything is compiled. The
numerical extremes that have a right answer (scale invariance, huge ridges and times, tiny
temperatures) are tested against references in the per-module test files.
"""

import jax
import numpy as np
import optax
import pytest

import kdbook as kd
from kdbook import prune
from kdbook import theory as th

NAN, INF = float("nan"), float("inf")
KEY = jax.random.key(0)


def _nan(a, index=0, value=np.nan):
    a = np.array(a, dtype=np.float32)
    a.flat[index] = value
    return a


def _inf(a):
    return _nan(a, value=np.inf)


# A small positive definite kernel on 4 points, targets, a cross kernel and test diagonal.
X4 = np.array([[1.0, 0.0, 0.2], [0.3, 1.0, 0.0], [0.0, 0.4, 1.0], [0.5, 0.5, 0.5]], np.float32)
K = X4 @ X4.T + 0.5 * np.eye(4, dtype=np.float32)
Y = np.array([1.0, -1.0, 0.5, 0.0], np.float32)
CROSS, DIAG = K[:2], np.diag(K)[:2].copy()
W, WS = np.array([1.0, 0.5, -0.2], np.float32), np.array([0.8, -0.1, 0.3], np.float32)
ANGLES = np.array([0.1, 0.5, 1.0, 1.4])
OUT = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 0.9]], np.float32)
LAB = np.array([0, 1, 0, 1])
PROBS = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]], np.float32)
TREE = {"w": np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4), "b": np.ones(4, np.float32)}
MASK = {"w": np.ones((2, 4), bool), "b": np.ones(4, bool)}
MIXTURE = kd.GaussianMixture(np.zeros((2, 3), np.float32), np.arange(2), 1.0)
BUMPS = kd.GaussianBumps(np.zeros((2, 1), np.float32), np.ones(2, np.float32), 0.3, 1.0, 0.0)
GROUPS = np.array([0, 0, 1, 1])
SIGNS = np.array([-1.0, 2.0, 0.5], np.float32), np.array([1, 1, 0])


def _hierarchy(**kwargs):
    arguments = dict(key=KEY, dim=3, num_superclasses=2, classes_per_superclass=2) | kwargs
    return kd.make_hierarchical_mixture(**arguments)


def _dynamics(**kwargs):
    return kd.linearized_dynamics(K, Y, **(dict(times=[1.0], learning_rate=1.0) | kwargs))


def _pruning(**kwargs):
    arguments = dict(rounds=1, keep_per_round=0.5, progress=False) | kwargs
    train = arguments.pop("train", lambda params, mask: params)
    return prune.iterative_magnitude_pruning(train, TREE, **arguments)


KEY_MESSAGE = r"key must be a JAX PRNG key such as jax.random.key\(0\), got "

CASES = {
    # ------------------------------------------------------------------------- kdbook.data
    "mixture key None": (lambda: kd.make_gaussian_mixture(key=None, dim=3), KEY_MESSAGE + "None"),
    "mixture key int": (lambda: kd.make_gaussian_mixture(key=0, dim=3), KEY_MESSAGE + "int 0"),
    "mixture dim bool": (
        lambda: kd.make_gaussian_mixture(key=KEY, dim=True),
        "dim must be an integer >= 1, got True",
    ),
    "mixture num_classes 1": (
        lambda: kd.make_gaussian_mixture(key=KEY, dim=3, num_classes=np.int64(1)),
        "num_classes must be an integer >= 2",
    ),
    "mixture separation nan": (
        lambda: kd.make_gaussian_mixture(key=KEY, dim=3, separation=NAN),
        "separation must be > 0",
    ),
    "mixture separation overflows": (
        lambda: kd.make_gaussian_mixture(key=KEY, dim=3, separation=1e39),
        "separation must be small enough that the centres are finite in float32",
    ),
    "mixture std inf": (
        lambda: kd.make_gaussian_mixture(key=KEY, dim=3, std=INF),
        "std must be a finite number > 0",
    ),
    "hierarchy key None": (lambda: _hierarchy(key=None), KEY_MESSAGE),
    "hierarchy superclass_scale negative": (
        lambda: _hierarchy(superclass_scale=-1.0),
        "superclass_scale must be >= 0, got -1.0",
    ),
    "hierarchy superclass_scale inf": (
        lambda: _hierarchy(superclass_scale=INF),
        "superclass_scale must be a finite number >= 0",
    ),
    "hierarchy class_scale nan": (
        lambda: _hierarchy(class_scale=NAN),
        "class_scale must be >= 0",
    ),
    "hierarchy std zero": (lambda: _hierarchy(std=0.0), "std must be > 0, got 0.0"),
    "hierarchy std nan": (lambda: _hierarchy(std=NAN), "std must be > 0"),
    "hierarchy scale overflows": (
        lambda: _hierarchy(superclass_scale=1e39),
        "superclass_scale must be small enough",
    ),
    "hierarchy one class": (
        lambda: _hierarchy(num_superclasses=1, classes_per_superclass=1),
        r"num_superclasses \* classes_per_superclass must be >= 2 .*got 1 \* 1",
    ),
    "hierarchy classes float": (
        lambda: _hierarchy(classes_per_superclass=2.5),
        "classes_per_superclass must be an integer",
    ),
    "sample mixture None": (
        lambda: kd.sample_gaussian_mixture(None, 4, key=KEY),
        "mixture must be a GaussianMixture .*got NoneType",
    ),
    "sample mixture key None": (
        lambda: kd.sample_gaussian_mixture(MIXTURE, 4, key=None),
        KEY_MESSAGE,
    ),
    "sample mixture std negative": (
        lambda: kd.sample_gaussian_mixture(MIXTURE._replace(std=-1.0), 4, key=KEY),
        "mixture.std must be > 0, got -1.0",
    ),
    "sample mixture means nan": (
        lambda: kd.sample_gaussian_mixture(MIXTURE._replace(means=_nan(MIXTURE.means)), 4, key=KEY),
        "mixture.means contains .*(NaN|non-finite)",
    ),
    "sample mixture std overflows": (
        lambda: kd.sample_gaussian_mixture(MIXTURE._replace(std=1e39), 4, key=KEY),
        "mixture.std must be small enough that the samples are finite",
    ),
    "sample mixture n bool": (
        lambda: kd.sample_gaussian_mixture(MIXTURE, True, key=KEY),
        "n must be an integer >= 1, got True",
    ),
    "sample mixture label_flip nan": (
        lambda: kd.sample_gaussian_mixture(MIXTURE, 4, key=KEY, label_flip=NAN),
        r"label_flip must lie in \[0, 1\]",
    ),
    "flip labels too large": (
        lambda: kd.flip_labels(np.array([0, 5]), 1.0, key=KEY, num_classes=3),
        r"labels must lie in \[0, 3\) \(num_classes=3\), got values in \[0, 5\]",
    ),
    "flip num_classes beyond uint8": (
        lambda: kd.flip_labels(np.zeros(4, np.uint8), 1.0, key=KEY, num_classes=300),
        "num_classes=300 does not fit labels of dtype uint8",
    ),
    "flip labels negative": (
        lambda: kd.flip_labels(np.array([-1, 0]), 1.0, key=KEY, num_classes=3),
        r"labels must lie in \[0, 3\)",
    ),
    "flip labels float": (
        lambda: kd.flip_labels(np.array([0.0, 1.0]), 1.0, key=KEY, num_classes=3),
        "labels must be integer class indices, got dtype float",
    ),
    "flip labels string": (
        lambda: kd.flip_labels("ab", 1.0, key=KEY, num_classes=3),
        "labels must be",
    ),
    "flip key None": (
        lambda: kd.flip_labels(np.array([0, 1]), 0.5, key=None, num_classes=2),
        KEY_MESSAGE,
    ),
    "flip num_classes bool": (
        lambda: kd.flip_labels(np.array([0, 1]), 0.5, key=KEY, num_classes=True),
        "num_classes must be an integer >= 2",
    ),
    "flip probability nan": (
        lambda: kd.flip_labels(np.array([0, 1]), NAN, key=KEY, num_classes=2),
        r"probability must lie in \[0, 1\]",
    ),
    "angular key None": (
        lambda: kd.sample_angular(4, key=None, dim=3, kappa=1.0),
        KEY_MESSAGE,
    ),
    "angular kappa nan": (
        lambda: kd.sample_angular(4, key=KEY, dim=3, kappa=NAN),
        "kappa must be > 0",
    ),
    "bumps width underflows": (
        lambda: kd.make_gaussian_bumps(key=KEY, width=1e-20),
        r"width must be >= .* \(2 \* width\*\*2 would underflow",
    ),
    "bumps key None": (lambda: kd.make_gaussian_bumps(key=None), KEY_MESSAGE),
    "bumps amplitude nan": (
        lambda: kd.make_gaussian_bumps(key=KEY, amplitude=NAN),
        "amplitude must be > 0, got nan",
    ),
    "bumps amplitude zero": (
        lambda: kd.make_gaussian_bumps(key=KEY, amplitude=0),
        "amplitude must be > 0, got 0.0",
    ),
    "bumps amplitude overflows": (
        lambda: kd.make_gaussian_bumps(key=KEY, amplitude=1e39),
        "amplitude must be <= .* for 8 bumps in float32",
    ),
    "bumps width inf": (
        lambda: kd.make_gaussian_bumps(key=KEY, width=INF),
        "width must be a finite number > 0",
    ),
    "bumps num_bumps 0": (
        lambda: kd.make_gaussian_bumps(key=KEY, num_bumps=0),
        "num_bumps must be an integer >= 1",
    ),
    "sample bumps None": (
        lambda: kd.sample_gaussian_bumps(None, 4, key=KEY),
        "bumps must be a GaussianBumps .*got NoneType",
    ),
    "sample bumps key int": (
        lambda: kd.sample_gaussian_bumps(BUMPS, 4, key=0),
        KEY_MESSAGE + "int",
    ),
    "uniform key None": (lambda: kd.sample_uniform(3, key=None, dim=2), KEY_MESSAGE),
    "uniform n numpy 0": (
        lambda: kd.sample_uniform(np.int64(0), key=KEY, dim=2),
        "n must be an integer >= 1, got .*0",
    ),
    "sphere key int": (lambda: kd.sample_sphere(3, key=0, dim=2), KEY_MESSAGE),
    "sphere split keys": (
        lambda: kd.sample_sphere(3, key=jax.random.split(KEY), dim=2),
        r"key must be a single JAX PRNG key .* of shape \(2,\)",
    ),
    "uniform legacy split keys": (
        lambda: kd.sample_uniform(3, key=jax.random.split(jax.random.PRNGKey(0)), dim=2),
        r"key must be a single JAX PRNG key .* of shape \(2,\)",
    ),
    "flip_labels split keys": (
        lambda: kd.flip_labels(np.array([0, 1]), 0.5, key=jax.random.split(KEY), num_classes=2),
        "key must be a single JAX PRNG key",
    ),
    "sphere dim float": (
        lambda: kd.sample_sphere(3, key=KEY, dim=2.0),
        "dim must be an integer >= 1, got 2.0",
    ),
    "digits key None": (lambda: kd.digits_split(key=None, n_train=10, n_test=10), KEY_MESSAGE),
    "digits return_indices string": (
        lambda: kd.digits_split(key=KEY, n_train=10, n_test=10, return_indices="no"),
        "return_indices must be True or False, got 'no'",
    ),
    "digits n_test bool": (
        lambda: kd.digits_split(key=KEY, n_train=10, n_test=True),
        "n_test must be an integer >= 1, got True",
    ),
    "mixture mode_labels shorter than means": (
        lambda: kd.sample_gaussian_mixture(MIXTURE._replace(mode_labels=np.arange(1)), 5, key=KEY),
        r"mixture must have means \(modes, dim\) and mode_labels \(modes,\)",
    ),
    "mixture 1-D means": (
        lambda: kd.sample_gaussian_mixture(MIXTURE._replace(means=np.zeros(2)), 5, key=KEY),
        r"mixture must have means \(modes, dim\)",
    ),
    "flip labels beyond int32": (
        lambda: kd.flip_labels(np.array([2**32, 1]), 0.0, key=KEY, num_classes=2),
        "labels hold values in .* beyond int32",
    ),
    "margin labels beyond int32": (
        lambda: th.multiclass_margin(OUT, np.array([2**32 + 2, 1, 0, 1])),
        "labels hold values in .* beyond int32",
    ),
    "kernel_solve ridge '0.1' (a string)": (
        lambda: kd.kernel_solve(K, Y, ridge="0.1"),
        "ridge must be a number, got the string",
    ),
    "dynamics learning_rate '0.5' (a string)": (
        lambda: _dynamics(learning_rate="0.5"),
        "learning_rate must be a number, got the string",
    ),
    "infinite_kernels w_std '1' (a string)": (
        lambda: kd.infinite_kernels(X4, depth=1, w_std="1"),
        "w_std must be a number, got the string",
    ),
    "risk_bound p a scalar": (
        lambda: th.risk_bound(5, 1.0),
        r"p must be a callable or a non-empty 1-D array of boundary angles, got shape \(\)",
    ),
    "risk_bound p returning strings": (
        lambda: th.risk_bound(5, lambda t: np.array(["a"] * t.size)),
        r"p\(theta\) must hold real numbers",
    ),
    "power law constant underflows": (
        lambda: th.fit_power_law([1e100, 1e101], [1.0, 1e200]),
        "the constant C = .* underflows float64",
    ),
    "bound terms kernel of another size": (
        lambda: th.supervision_bound_terms(OUT, LAB, PROBS, np.eye(2), margin=1.0),
        r"kernel must have shape \(4, 4\)",
    ),
    "magnitude scores complex": (
        lambda: prune.magnitude_mask({"w": TREE["w"] * 1j}, 0.5),
        "scores must be arrays of real numbers, got dtype complex",
    ),
    "bumps logits of 1-D x": (
        lambda: BUMPS.logits(np.zeros(3, np.float32)),
        r"x must have shape \(n, 1\)",
    ),
    "bumps logits of x of another width": (
        lambda: BUMPS.logits(np.zeros((3, 2), np.float32)),
        r"x must have shape \(n, 1\): n inputs of the bumps' dimension 1, got shape \(3, 2\)",
    ),
    "cifar path None": (lambda: kd.load_cifar10(None), "path must be a folder path"),
    # ------------------------------------------------------------------------- kdbook.prune
    "pruning params nan": (
        lambda: prune.iterative_magnitude_pruning(
            lambda p, m: p, {"w": _nan(TREE["w"])}, rounds=1, keep_per_round=0.5, progress=False
        ),
        r"params \(the leaf at .*\) contains .*non-finite",
    ),
    "pruning rewind_to nan": (
        lambda: _pruning(rewind_to={"w": _nan(TREE["w"]), "b": TREE["b"]}),
        r"rewind_to \(the leaf at .*\) contains .*non-finite",
    ),
    "random_mask key None": (lambda: prune.random_mask(TREE, 0.5, key=None), KEY_MESSAGE),
    "random_mask key int": (lambda: prune.random_mask(TREE, 0.5, key=0), KEY_MESSAGE + "int"),
    "random_mask keep nan": (
        lambda: prune.random_mask(TREE, NAN, key=KEY),
        r"keep must be a number in \(0, 1\]",
    ),
    "magnitude_mask keep bool": (
        lambda: prune.magnitude_mask(TREE, True),
        r"keep must be a number in \(0, 1\]",
    ),
    "neuron_mask axis bool": (
        lambda: prune.neuron_mask(TREE, 0.5, axis=True),
        "axis must be an integer, got True",
    ),
    "masked_optimizer None": (
        lambda: prune.masked_optimizer(None, MASK),
        "optimizer must be an Optax gradient transformation .*got NoneType",
    ),
    "count None": (
        lambda: prune.count(None),
        "mask must be a pytree of boolean arrays with at least one leaf, got None",
    ),
    "count empty": (lambda: prune.count({}), "mask must be a pytree .* at least one leaf"),
    "density None": (lambda: prune.density(None), "mask must be a pytree"),
    "sparsity None": (lambda: prune.sparsity(None), "mask must be a pytree"),
    "count prunable_only string": (
        lambda: prune.count(MASK, prunable_only="yes"),
        "prunable_only must be True or False",
    ),
    "pruning train None": (
        lambda: _pruning(train=None),
        r"train must be a function train\(params, mask\)",
    ),
    "pruning train returns NaN": (
        lambda: _pruning(train=lambda params, mask: {**params, "w": params["w"] * NAN}),
        r"train\(params, mask\) must return finite parameters, but in round 0 the leaf at "
        r"\['w'\] contains",
    ),
    "pruning rounds bool": (lambda: _pruning(rounds=True), "rounds must be an integer >= 1"),
    "pruning progress string": (
        lambda: _pruning(progress="no"),
        "progress must be True or False, got 'no'",
    ),
    # ------------------------------------------------------------------------- kdbook.kernels
    "solve ridge inf": (
        lambda: kd.kernel_solve(K, Y, ridge=INF),
        "ridge must be a finite number >= 0, got inf",
    ),
    "solve ridge nan": (lambda: kd.kernel_solve(K, Y, ridge=NAN), "ridge must be >= 0, got nan"),
    "solve ridge bool": (
        lambda: kd.kernel_solve(K, Y, ridge=True),
        "ridge must be a number, got the bool True",
    ),
    "solve ridge array": (
        lambda: kd.kernel_solve(K, Y, ridge=np.array([1.0, 2.0])),
        r"ridge must be a single number, got an array of shape \(2,\)",
    ),
    "solve kernel strings": (
        lambda: kd.kernel_solve(np.array([["a"]]), Y[:1]),
        "kernel must be an array of real numbers",
    ),
    "solve targets None": (
        lambda: kd.kernel_solve(K, None),
        "targets must be an array of numbers, got None",
    ),
    "solve kernel nan": (lambda: kd.kernel_solve(_nan(K), Y), "kernel contains non-finite"),
    "regression cross nan": (
        lambda: kd.kernel_regression(K, Y, kernel_test_train=_nan(CROSS)),
        "kernel_test_train contains .*(NaN|non-finite)",
    ),
    "regression predictions overflow": (
        lambda: kd.kernel_regression(np.eye(1), np.array([3e38]), kernel_test_train=[[10.0]]),
        "kernel_regression overflows float32",
    ),
    "regression ridge inf": (
        lambda: kd.kernel_regression(K, Y, ridge=INF),
        "ridge must be a finite number >= 0",
    ),
    "features diagonal nan": (
        lambda: kd.kernel_features(K, kernel_test_train=CROSS, test_diagonal=_nan(DIAG)),
        "test_diagonal contains .*(NaN|non-finite)",
    ),
    "features cross inf": (
        lambda: kd.kernel_features(K, kernel_test_train=_inf(CROSS), test_diagonal=DIAG),
        "kernel_test_train contains .*(NaN|non-finite)",
    ),
    "features ridge nan": (lambda: kd.kernel_features(K, ridge=NAN), "ridge must be >= 0"),
    "spectrum nan": (lambda: kd.kernel_spectrum(_nan(K)), "kernel contains non-finite"),
    "dynamics learning_rate inf": (
        lambda: _dynamics(learning_rate=INF),
        "learning_rate must be a finite number > 0",
    ),
    "dynamics learning_rate nan": (
        lambda: _dynamics(learning_rate=NAN),
        "learning_rate must be > 0, got nan",
    ),
    "dynamics learning_rate bool": (
        lambda: _dynamics(learning_rate=True),
        "learning_rate must be a number, got the bool True",
    ),
    "dynamics learning_rate array": (
        lambda: _dynamics(learning_rate=np.array([1.0, 2.0])),
        "learning_rate must be a single number",
    ),
    "dynamics f0_train nan": (
        lambda: _dynamics(f0_train=_nan(Y)),
        "f0_train contains .*(NaN|non-finite)",
    ),
    "dynamics cross nan": (
        lambda: _dynamics(kernel_test_train=_nan(CROSS)),
        "kernel_test_train contains .*(NaN|non-finite)",
    ),
    "dynamics f0_test nan": (
        lambda: _dynamics(kernel_test_train=CROSS, f0_test=_nan(np.zeros(2))),
        "f0_test contains .*(NaN|non-finite)",
    ),
    "dynamics targets inf": (
        lambda: kd.linearized_dynamics(K, _inf(Y), times=[1.0], learning_rate=1.0),
        "targets contains .*(NaN|non-finite)",
    ),
    "dynamics times strings": (
        lambda: _dynamics(times=["a"]),
        "times must hold real numbers, got dtype <U1",
    ),
    "dynamics times bool": (lambda: _dynamics(times=[True]), r"times must hold numbers"),
    "dynamics times complex": (lambda: _dynamics(times=[1j]), "times must hold real numbers"),
    "dynamics discrete times beyond int32": (
        lambda: _dynamics(times=[2**40], discrete=True, learning_rate=0.1),
        r"with discrete=True, times must be at most 2\*\*31 - 1 steps",
    ),
    "kernel_solve solution overflows": (
        lambda: kd.kernel_solve([[1e-20]], [1e25]),
        r"the solution of \(kernel \+ ridge I\) x = b overflows float32",
    ),
    "dynamics discrete string": (
        lambda: _dynamics(discrete="yes"),
        "discrete must be True or False, got 'yes'",
    ),
    # ------------------------------------------------------------------------- kdbook.theory
    "angle a nan": (lambda: th.vector_angle(_nan(W), WS), "a contains .*(NaN|non-finite)"),
    "angle b inf": (lambda: th.vector_angle(W, _inf(WS)), "b contains .*(NaN|non-finite)"),
    "transfer w nan": (
        lambda: th.transfer_risk(_nan(W), WS, X4),
        "^w contains .*(NaN|non-finite)",
    ),
    "transfer w inf": (
        lambda: th.transfer_risk(_inf(W), WS, X4),
        "^w contains .*(NaN|non-finite)",
    ),
    "transfer w_star nan": (
        lambda: th.transfer_risk(W, _nan(WS), X4),
        "w_star contains .*(NaN|non-finite)",
    ),
    "transfer x_test nan": (
        lambda: th.transfer_risk(W, WS, _nan(X4)),
        "x_test contains .*(NaN|non-finite)",
    ),
    "gaussian risk covariance not symmetric": (
        lambda: th.gaussian_transfer_risk(W, WS, covariance=np.triu(K[:3, :3])),
        "covariance must be symmetric",
    ),
    "gaussian risk covariance nan": (
        lambda: th.gaussian_transfer_risk(W, WS, covariance=_nan(np.eye(3))),
        "covariance contains non-finite",
    ),
    "gaussian risk w nan": (
        lambda: th.gaussian_transfer_risk(_nan(W), WS),
        "^w contains .*(NaN|non-finite)",
    ),
    "boundary x nan": (lambda: th.boundary_angles(_nan(X4), WS), "^x contains"),
    "boundary w_star nan": (lambda: th.boundary_angles(X4, _nan(WS)), "w_star contains"),
    "cdf x nan": (lambda: th.angular_cdf(_nan(X4), WS, 0.1), "^x contains"),
    "cdf theta nan": (lambda: th.angular_cdf(X4, WS, NAN), "theta contains"),
    "risk_bound angles nan": (
        lambda: th.risk_bound(5, np.append(ANGLES, np.nan)),
        "p contains .*(NaN|non-finite)",
    ),
    "risk_bound return_theta string": (
        lambda: th.risk_bound(5, ANGLES, return_theta="yes"),
        "return_theta must be True or False",
    ),
    "risk_bound num_thetas bool": (
        lambda: th.risk_bound(5, ANGLES, num_thetas=True),
        "num_thetas must be an integer >= 2",
    ),
    "span rtol nan": (
        lambda: th.span_projection(X4[:2], W, rtol=NAN),
        r"rtol must lie in \[0, 1\), got nan",
    ),
    "span rtol negative": (
        lambda: th.span_projection(X4[:2], W, rtol=-1.0),
        r"rtol must lie in \[0, 1\), got -1.0",
    ),
    "span rtol inf": (
        lambda: th.span_projection(X4[:2], W, rtol=INF, method="svd"),
        r"rtol must lie in \[0, 1\), got inf",
    ),
    "span rtol array": (
        lambda: th.span_projection(X4[:2], W, rtol=np.array([1e-6, 1e-6])),
        "rtol must be a single number",
    ),
    "span x nan": (lambda: th.span_projection(_nan(X4[:2]), W), "^x contains"),
    "span x nan svd": (lambda: th.span_projection(_nan(X4[:2]), W, method="svd"), "^x contains"),
    "span w nan": (lambda: th.span_projection(X4[:2], _nan(W)), "^w contains"),
    "effective temperature underflows": (
        lambda: th.effective_logits(*SIGNS, soft_ratio=0.5, temperature=1e-50),
        "temperature must be >= 1.18e-38 .*float32.*got 1e-50",
    ),
    "effective temperature underflows shared": (
        lambda: th.effective_logits(*SIGNS, soft_ratio=0.5, temperature=1e-50, convention="shared"),
        "temperature must be >= 1.18e-38",
    ),
    "effective temperature too large hinton": (
        lambda: th.effective_logits(*SIGNS, soft_ratio=0.5, temperature=1e35),
        "temperature must be <= 1.01e[+]31 .*convention='hinton'",
    ),
    "effective teacher nan": (
        lambda: th.effective_logits(_nan(SIGNS[0]), SIGNS[1], soft_ratio=0.5),
        "teacher_logits contains",
    ),
    "correction temperature bool": (
        lambda: th.correction_threshold(soft_ratio=0.7, temperature=True),
        "temperature must be a number, got the bool True",
    ),
    "power law x nan": (
        lambda: th.fit_power_law([1.0, NAN, 4.0], [1.0, 2.0, 3.0]),
        "x must be positive and finite",
    ),
    "power law x inf": (
        lambda: th.fit_power_law([1.0, INF, 4.0], [1.0, 2.0, 3.0]),
        "x must be positive and finite",
    ),
    "power law y nan": (
        lambda: th.fit_power_law([1.0, 2.0, 4.0], [1.0, NAN, 3.0]),
        "y must be positive and finite",
    ),
    "power law x equal": (
        lambda: th.fit_power_law([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]),
        "x must not be all equal",
    ),
    "power law strings": (
        lambda: th.fit_power_law(["a", "b"], [1.0, 2.0]),
        "x must hold real numbers",
    ),
    "power law bools": (lambda: th.fit_power_law([True, 2], [1, 2]), r"x must hold numbers"),
    "power law None": (lambda: th.fit_power_law([1, 2], None), r"y must hold numbers"),
    "inefficiency sizes bools": (
        lambda: th.data_inefficiency([True, 3], [1.0, 2.0]),
        "sizes must hold numbers",
    ),
    "risk_bound sizes bools": (
        lambda: th.risk_bound([True, 3], lambda t: 2 * t / np.pi),
        "n must hold numbers",
    ),
    "sign_disagreement strings": (
        lambda: th.sign_disagreement(["a", "b"], [1.0, 2.0]),
        "logits must be an array of real numbers",
    ),
    "sign_disagreement complex": (
        lambda: th.sign_disagreement([1.0, 2.0], [1j, 2.0]),
        "reference_logits must be an array of real numbers",
    ),
    "power law constant overflows": (
        lambda: th.fit_power_law([1e100, 1e101], [1.0, 1e-300]),
        "the constant C = .* overflows float64",
    ),
    "complexity targets nan": (
        lambda: th.kernel_complexity(K, _nan(Y)),
        "targets contains .*(NaN|non-finite)",
    ),
    "complexity ridge inf": (
        lambda: th.kernel_complexity(K, Y, ridge=INF),
        "ridge must be a finite number >= 0",
    ),
    "alignment kernel nan": (
        lambda: th.kernel_alignment(_nan(K), Y),
        "kernel contains .*(NaN|non-finite)",
    ),
    "alignment kernel inf": (
        lambda: th.kernel_alignment(_inf(K), Y),
        "kernel contains .*(NaN|non-finite)",
    ),
    "alignment targets nan": (
        lambda: th.kernel_alignment(K, _nan(Y)),
        "targets contains .*(NaN|non-finite)",
    ),
    "alignment targets zero": (
        lambda: th.kernel_alignment(K, np.zeros(4)),
        "targets must be non-zero",
    ),
    "alignment kernel zero": (
        lambda: th.kernel_alignment(np.zeros((4, 4)), Y),
        "kernel must be non-zero",
    ),
    "supervision complexity kernel nan": (
        lambda: th.adjusted_supervision_complexity(_nan(K), Y),
        "kernel contains .*(NaN|non-finite)",
    ),
    "margin outputs nan": (
        lambda: th.multiclass_margin(_nan(OUT), LAB),
        "outputs contains .*(NaN|non-finite)",
    ),
    "margin overflows": (
        lambda: th.multiclass_margin(np.array([[3e38, -3e38]], np.float32), np.array([0])),
        "multiclass_margin overflows float32",
    ),
    "bound outputs nan": (
        lambda: th.supervision_bound_terms(np.full((4, 2), NAN), LAB, PROBS, K, margin=0.1),
        "outputs contains .*(NaN|non-finite)",
    ),
    "bound targets nan": (
        lambda: th.supervision_bound_terms(OUT, LAB, _nan(PROBS), K, margin=0.1),
        "targets contains .*(NaN|non-finite)",
    ),
    "bound margin inf": (
        lambda: th.supervision_bound_terms(OUT, LAB, PROBS, K, margin=INF),
        "margin must be a finite number > 0",
    ),
    "similarity vectors nan": (
        lambda: th.group_similarity(_nan(OUT), GROUPS),
        "vectors contains .*(NaN|non-finite)",
    ),
    "similarity vectors inf": (
        lambda: th.group_similarity(_inf(OUT), GROUPS),
        "vectors contains .*(NaN|non-finite)",
    ),
    "inefficiency no draws": (
        lambda: th.data_inefficiency([1, 2], np.zeros((0, 2))),
        r"norms must hold at least one draw, got shape \(0, 2\)",
    ),
}


@pytest.mark.parametrize("call, match", list(CASES.values()), ids=list(CASES))
def test_bad_input_raises_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_spectra_of_kernels_near_the_float32_limits_match_float64():
    huge = np.array([[2e38, 1e38], [1e38, 2e38]], np.float32)
    np.testing.assert_allclose(kd.kernel_spectrum(huge)[0], [3e38, 1e38], rtol=1e-6)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    kernel = a @ a.T + np.eye(4)
    reference = np.linalg.eigvalsh(kernel)[::-1]
    for scale in (1e-30, 1e30):  # the eigenvalues of scale * K are scale * those of K
        values = kd.kernel_spectrum((scale * kernel).astype(np.float32))[0]
        np.testing.assert_allclose(values, scale * reference, rtol=1e-5)


def test_masked_optimizer_accepts_any_gradient_transformation():
    # the check looks for init and update, not a class: optax's chains and wrappers pass
    for optimizer in (optax.sgd(0.1), optax.chain(optax.clip(1.0), optax.adam(1e-3))):
        prune.masked_optimizer(optimizer, MASK).init(TREE)
