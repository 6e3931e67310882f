r"""The theory's quantities: rates, risks and the other numbers the chapters' claims are about.

Linear distillation (the setting of Phuong & Lampert, 2019): a linear teacher :math:`w^*` and a
linear student :math:`w` classify :math:`x` by the sign of :math:`w^\top x`. This module computes
the student's **transfer risk** (its disagreement with the teacher) by Monte Carlo
(:func:`transfer_risk`) or exactly for Gaussian inputs (:func:`gaussian_transfer_risk`); the data
geometry, i.e. the angles of inputs to the teacher's decision boundary and their distribution
:math:`p(\theta)` (:func:`boundary_angles`, :func:`angular_cdf`); the risk bound
:math:`\min_\theta [p(\theta) + p(\pi/2 - \theta)^n]` (:func:`risk_bound`); and the projection
of a vector on the span of a transfer set (:func:`span_projection`), which is what gradient
descent on soft labels converges to from zero.

Wide networks (the setting of Ji & Zhu, 2020): the **effective logits** a wide student fits
when it is trained to convergence on the KD loss (:func:`effective_logits`), the teacher logits
that hard labels correct (:func:`correction_threshold`), the disagreement in sign of two sets of
logits (:func:`sign_disagreement`, the transfer risk of a nonlinear student), and the **data
inefficiency**, the log-derivative of a weight change's norm in the number of samples
(:func:`data_inefficiency`).

Kernel regime: the complexity :math:`\sqrt{y^\top K^{-1} y}` of targets under a kernel
(:func:`kernel_complexity`), the quantity in the generalisation bound of Arora et al. (2019) for
wide two-layer networks, and the kernel-target alignment of Cristianini et al. (2002)
(:func:`kernel_alignment`). Supervision complexity (Harutyunyan et al., 2023): the same norm made
invariant to the kernel's scale (:func:`adjusted_supervision_complexity`), the multiclass margin
(:func:`multiclass_margin`) and the terms of a margin bound for a student of teacher targets
(:func:`supervision_bound_terms`).

Class geometry (the setting of Tang et al., 2020): how much more alike the vectors of classes in
one group (a superclass) are than those of different groups (:func:`group_similarity`), for class
weight vectors or for a teacher's probabilities.

The functions live in submodules by concept (``risk``, ``effective``, ``rates``, ``complexity``,
``geometry``); import them from here.
"""

from kdbook.theory.complexity import (
    BoundTerms,
    adjusted_supervision_complexity,
    kernel_alignment,
    kernel_complexity,
    multiclass_margin,
    supervision_bound_terms,
)
from kdbook.theory.effective import correction_threshold, effective_logits
from kdbook.theory.geometry import GroupSimilarity, group_similarity
from kdbook.theory.rates import data_inefficiency, fit_power_law
from kdbook.theory.risk import (
    angular_cdf,
    boundary_angles,
    gaussian_transfer_risk,
    risk_bound,
    sign_disagreement,
    span_projection,
    transfer_risk,
    vector_angle,
)

__all__ = [
    "BoundTerms",
    "GroupSimilarity",
    "adjusted_supervision_complexity",
    "angular_cdf",
    "boundary_angles",
    "correction_threshold",
    "data_inefficiency",
    "effective_logits",
    "fit_power_law",
    "gaussian_transfer_risk",
    "group_similarity",
    "kernel_alignment",
    "kernel_complexity",
    "multiclass_margin",
    "risk_bound",
    "sign_disagreement",
    "span_projection",
    "supervision_bound_terms",
    "transfer_risk",
    "vector_angle",
]

# The public names are documented (and cross-referenced) as kdbook.theory.<name>.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
