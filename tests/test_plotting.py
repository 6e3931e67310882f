"""kdbook.plotting: the heatmap's checks."""

import numpy as np
import pytest

import kdbook as kd


def test_heatmap_checks_its_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    kd.plotting.heatmap(
        ax, np.zeros((2, 3)), row_labels=[1, 2], col_labels=[1, 2, 3], row_title="r", col_title="c"
    )
    with pytest.raises(ValueError, match="labels"):
        kd.plotting.heatmap(
            ax, np.zeros((2, 3)), row_labels=[1], col_labels=[1, 2, 3], row_title="r", col_title="c"
        )
    plt.close(fig)
