"""kdbook.theory.rates: the power-law exponent and the data inefficiency, against exact power
laws."""

import numpy as np
import pytest

import kdbook as kd

# ----------------------------------------------------------------------------- fit_power_law


def test_fit_power_law_recovers_an_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    slope, constant = kd.fit_power_law(x, 3.0 * x**-0.5)
    assert slope == pytest.approx(-0.5) and constant == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        kd.fit_power_law(x, -x)
    with pytest.raises(ValueError, match="same length"):
        kd.fit_power_law(x, x[:3])


# ----------------------------------------------------------------------------- data inefficiency


def test_data_inefficiency_of_power_laws_and_saturation():
    sizes = np.array([10, 20, 40, 80, 160])
    mid, values = kd.data_inefficiency(sizes, 3.0 * sizes**0.75)
    np.testing.assert_allclose(values, 0.75, rtol=1e-12)
    np.testing.assert_allclose(mid, np.sqrt(sizes[1:] * sizes[:-1]))
    # a norm that saturates, 1 - 1/n: the log-derivative is 1/(n - 1), measured by differences
    _, saturating = kd.data_inefficiency(sizes, 1.0 - 1.0 / sizes)
    assert np.all(np.diff(saturating) < 0) and saturating[-1] < 0.01
    # draws are averaged in log space: two power laws with exponents 0.5 and 1 give 0.75
    draws = np.stack([sizes**0.5, 2.0 * sizes**1.0])
    np.testing.assert_allclose(kd.data_inefficiency(sizes, draws)[1], 0.75, rtol=1e-12)
    # consecutive sizes: n (log|w_{n+1}| - log|w_n|), up to the midpoint correction
    norms = np.array([1.0, 1.01])
    value = kd.data_inefficiency(np.array([100, 101]), norms)[1][0]
    assert value == pytest.approx(100 * np.log(1.01), rel=1e-2)


@pytest.mark.parametrize(
    "sizes, norms, match",
    [
        (np.array([10]), np.array([1.0]), "at least 2"),
        (np.array([10.0, 20.0]), np.array([1.0, 2.0]), "integers"),
        (np.array([20, 10]), np.array([1.0, 2.0]), "increasing"),
        (np.array([0, 10]), np.array([1.0, 2.0]), "increasing"),
        (np.array([10, 20]), np.array([1.0, 2.0, 3.0]), "shape"),
        (np.array([10, 20]), np.array([1.0, 0.0]), "positive"),
        (np.array([10, 20]), np.array([1.0, np.nan]), "positive"),
    ],
)
def test_data_inefficiency_bad_input(sizes, norms, match):
    with pytest.raises(ValueError, match=match):
        kd.data_inefficiency(sizes, norms)
