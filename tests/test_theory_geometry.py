"""kdbook.theory.geometry: within- vs between-group similarity, against a naive double loop."""

import jax.numpy as jnp
import numpy as np
import pytest

import kdbook as kd

# ----------------------------------------------------------------------------- class geometry


def _naive_group_similarity(vectors, groups, centre):
    v = np.asarray(vectors, dtype=float)
    if centre:
        v = v - v.mean(axis=1, keepdims=True)
    k = v.shape[0]
    within, between = [], []
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            c = v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])
            (within if groups[a] == groups[b] else between).append(c)
    return np.mean(within), np.mean(between)


@pytest.mark.parametrize("measure", ["cosine", "correlation"])
def test_group_similarity_matches_a_naive_double_loop(measure):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(9, 5))
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    with kd.enable_x64():
        result = kd.group_similarity(jnp.asarray(vectors), groups, measure=measure)
        within, between = _naive_group_similarity(vectors, groups, measure == "correlation")
        np.testing.assert_allclose(float(result.within), within, rtol=1e-12)
        np.testing.assert_allclose(float(result.between), between, rtol=1e-12)
        np.testing.assert_allclose(float(result.gap), within - between, rtol=1e-12)
        np.testing.assert_allclose(np.diag(np.asarray(result.matrix)), 1.0, rtol=1e-12)
    if measure == "correlation":
        np.testing.assert_allclose(np.asarray(result.matrix), np.corrcoef(vectors), atol=1e-6)


def test_group_similarity_sees_planted_blocks_and_not_shuffled_ones():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(4, 30))
    groups = np.repeat(np.arange(4), 5)
    vectors = centres[groups] + 0.3 * rng.normal(size=(20, 30))
    assert float(kd.group_similarity(vectors, groups).gap) > 0.5
    shuffled = kd.group_similarity(vectors, rng.permutation(groups))
    assert abs(float(shuffled.gap)) < 0.2


@pytest.mark.parametrize(
    "vectors, groups, measure, match",
    [
        (np.ones((3, 2)), np.array([0, 0, 1]), "angle", "measure"),
        (np.ones(3), np.array([0, 0, 1]), "cosine", "vectors must have shape"),
        (np.ones((3, 2)), np.array([0, 1]), "cosine", "groups must be"),
        (np.ones((3, 2)), np.array([0.0, 0.0, 1.0]), "cosine", "groups must be"),
        (np.ones((3, 2)), np.array([0, 1, 2]), "cosine", "group with two rows"),
        (np.ones((3, 2)), np.array([0, 0, 0]), "cosine", "at least two groups"),
        (
            np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]),
            np.array([0, 0, 1]),
            "cosine",
            "row 1 of vectors is zero",
        ),
        (
            np.array([[1.0, 2.0], [3.0, 3.0], [0.0, 1.0]]),
            np.array([0, 0, 1]),
            "correlation",
            "row 1 of vectors is constant",
        ),
    ],
)
def test_group_similarity_rejects_bad_input(vectors, groups, measure, match):
    with pytest.raises(ValueError, match=match):
        kd.group_similarity(vectors, groups, measure=measure)


@pytest.mark.parametrize("measure", ["cosine", "correlation"])
@pytest.mark.parametrize("scale", [1e20, 1e-25])
def test_group_similarity_is_scale_invariant_in_float32(measure, scale):
    vectors = np.array([[1.0, 0.2, 0.1], [1.0, 0.0, 0.3], [0.0, 1.0, 0.2], [0.2, 1.0, 0.0]])
    groups = np.array([0, 0, 1, 1])
    within, between = _naive_group_similarity(vectors, groups, measure == "correlation")
    result = kd.group_similarity((vectors * scale).astype(np.float32), groups, measure=measure)
    np.testing.assert_allclose([result.within, result.between], [within, between], rtol=1e-5)
    np.testing.assert_allclose(np.diag(result.matrix), 1.0, rtol=1e-6)
