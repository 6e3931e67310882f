"""The book's house style for matplotlib figures, and the plots several chapters draw.

Figures have an opaque white background so they stay readable in the site's dark mode, labelled
axes, light grids, and one colour cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["COLORS", "heatmap", "set_style"]

COLORS = ["#1f5fa8", "#d9541e", "#2a9d55", "#8e44ad", "#c0392b", "#7f8c8d", "#e6a100"]


def set_style() -> None:
    """Apply the house style to every later figure (call once, in a chapter's setup cell)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 110,
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "savefig.transparent": False,
            "axes.facecolor": "white",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=COLORS),
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.frameon": False,
            "font.size": 10,
        }
    )


def heatmap(
    ax: plt.Axes,
    values: np.ndarray,
    *,
    row_labels: Sequence,
    col_labels: Sequence,
    row_title: str,
    col_title: str,
    fmt: str = "{:.3f}",
    cmap: str = "viridis",
    colorbar_label: str | None = None,
) -> None:
    """Draw ``values`` (rows x columns) as an annotated heat map on ``ax``."""
    values = np.asarray(values)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values has shape {values.shape}, but there are {len(row_labels)} row "
            f"and {len(col_labels)} column labels"
        )
    image = ax.imshow(values, cmap=cmap, aspect="auto", origin="lower")
    ax.grid(False)
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    ax.set_xlabel(col_title)
    ax.set_ylabel(row_title)
    middle = (np.nanmax(values) + np.nanmin(values)) / 2
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            fmt.format(v),
            ha="center",
            va="center",
            fontsize=8,
            color="black" if v > middle else "white",
        )
    bar = ax.figure.colorbar(image, ax=ax)
    if colorbar_label:
        bar.set_label(colorbar_label)
