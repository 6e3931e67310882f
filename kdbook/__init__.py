"""kdbook: knowledge distillation in the kernel regime.

The library behind the executable textbook *Knowledge Distillation in the Kernel Regime*. Every
model becomes a pure function ``apply(params, x)``; the NTK, linearization, pruning and theory code
work on that contract and on pytrees.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
