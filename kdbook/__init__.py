"""kdbook: knowledge distillation in the kernel regime.

The library behind the executable textbook *Knowledge Distillation in the Kernel Regime*. Every
model becomes a pure function ``apply(params, x)`` (:func:`kdbook.functional.functionalize`); the
NTK, linearization, pruning and theory code work on that contract and on pytrees. Every function
that draws random numbers takes its PRNG key as the keyword-only argument ``key=`` (samplers too:
``kd.sample_sphere(100, dim=3, key=key)``), whether the key is required or optional.

Modules: :mod:`kdbook.models` (Flax NNX networks), :mod:`kdbook.functional` (the contract and
pytree helpers), :mod:`kdbook.ntk` (empirical and infinite-width NTKs), :mod:`kdbook.kernels`
(kernel regression and closed-form dynamics), :mod:`kdbook.linearize` (Taylor models),
:mod:`kdbook.losses` (KD objective), :mod:`kdbook.train` (training loops), :mod:`kdbook.data`
(synthetic tasks, digits, CIFAR-10 from a local folder), :mod:`kdbook.theory` (the theory's
quantities), :mod:`kdbook.prune` (masks, masked training, lottery tickets),
:mod:`kdbook.plotting` (house style), :mod:`kdbook.precision` (the 64-bit switch,
:func:`~kdbook.precision.enable_x64`).
"""

from kdbook import plotting, prune
from kdbook.data import (
    GaussianBumps,
    GaussianMixture,
    digits_split,
    flip_labels,
    load_cifar10,
    make_gaussian_bumps,
    make_gaussian_mixture,
    make_hierarchical_mixture,
    sample_angular,
    sample_gaussian_bumps,
    sample_gaussian_mixture,
    sample_sphere,
    sample_uniform,
)
from kdbook.functional import (
    functionalize,
    tree_add,
    tree_angle,
    tree_difference,
    tree_inner,
    tree_norm,
    tree_scale,
    tree_size,
    tree_stack,
)
from kdbook.kernels import (
    kernel_features,
    kernel_regression,
    kernel_solve,
    kernel_spectrum,
    linearized_dynamics,
)
from kdbook.linearize import linearize, min_norm_params
from kdbook.losses import (
    GradientDecomposition,
    accuracy,
    cross_entropy,
    kd_gradient_decomposition,
    kd_logit_gradient,
    kd_loss,
    logit_matching_loss,
    partial_teacher_logits,
    smooth_labels,
    soft_targets,
    squared_loss,
)
from kdbook.models import CNN, MLP, DeepLinear, Dense, Linear, TwoLayerNet, end_to_end
from kdbook.ntk import InfiniteKernels, empirical_ntk, infinite_kernels, two_layer_ntk
from kdbook.precision import enable_x64
from kdbook.theory import (
    BoundTerms,
    GroupSimilarity,
    adjusted_supervision_complexity,
    angular_cdf,
    boundary_angles,
    correction_threshold,
    data_inefficiency,
    effective_logits,
    fit_power_law,
    gaussian_transfer_risk,
    group_similarity,
    kernel_alignment,
    kernel_complexity,
    multiclass_margin,
    risk_bound,
    sign_disagreement,
    span_projection,
    supervision_bound_terms,
    transfer_risk,
    vector_angle,
)
from kdbook.train import FitResult, codistill, distill, fit, online_distill, train_scan

__version__ = "0.1.0"

__all__ = [
    "CNN",
    "MLP",
    "DeepLinear",
    "Linear",
    "angular_cdf",
    "boundary_angles",
    "correction_threshold",
    "data_inefficiency",
    "effective_logits",
    "end_to_end",
    "gaussian_transfer_risk",
    "group_similarity",
    "risk_bound",
    "sign_disagreement",
    "span_projection",
    "transfer_risk",
    "vector_angle",
    "Dense",
    "FitResult",
    "GaussianBumps",
    "GaussianMixture",
    "GradientDecomposition",
    "GroupSimilarity",
    "InfiniteKernels",
    "BoundTerms",
    "adjusted_supervision_complexity",
    "multiclass_margin",
    "supervision_bound_terms",
    "codistill",
    "online_distill",
    "TwoLayerNet",
    "__version__",
    "accuracy",
    "cross_entropy",
    "digits_split",
    "distill",
    "empirical_ntk",
    "enable_x64",
    "fit",
    "fit_power_law",
    "flip_labels",
    "load_cifar10",
    "functionalize",
    "infinite_kernels",
    "kd_gradient_decomposition",
    "kd_logit_gradient",
    "kd_loss",
    "kernel_alignment",
    "kernel_complexity",
    "kernel_features",
    "kernel_regression",
    "kernel_solve",
    "kernel_spectrum",
    "linearize",
    "linearized_dynamics",
    "logit_matching_loss",
    "partial_teacher_logits",
    "make_gaussian_bumps",
    "make_gaussian_mixture",
    "make_hierarchical_mixture",
    "min_norm_params",
    "plotting",
    "prune",
    "sample_angular",
    "sample_gaussian_bumps",
    "sample_gaussian_mixture",
    "sample_sphere",
    "sample_uniform",
    "smooth_labels",
    "soft_targets",
    "squared_loss",
    "train_scan",
    "tree_add",
    "tree_angle",
    "tree_difference",
    "tree_inner",
    "tree_norm",
    "tree_scale",
    "tree_size",
    "tree_stack",
    "two_layer_ntk",
]
