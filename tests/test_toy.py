"""adlib.companion.toy: the toy point sets and their coverage against slow loops."""

import math

import numpy as np
import pytest

from adlib.companion.toy import coverage, mixture_points, uniform_points


def test_mixture_has_halving_clusters_outliers_and_is_seeded():
    points, labels = mixture_points(3, 1000, 4, 0.03, 10)
    again, _ = mixture_points(3, 1000, 4, 0.03, 10)
    assert points.shape == (1000, 2) and np.array_equal(points, again)
    assert (labels == -1).sum() == 10 and set(labels.tolist()) == {-1, 0, 1, 2, 3}
    counts = [int((labels == k).sum()) for k in range(4)]
    assert counts == sorted(counts, reverse=True)
    assert not np.array_equal(points, mixture_points(4, 1000, 4, 0.03, 10)[0])
    with pytest.raises(ValueError, match="do not fit"):
        mixture_points(0, 100, 50, 0.2, 0)
    uniform, zeros = uniform_points(0, 50)
    assert uniform.shape == (50, 2) and (zeros == 0).all() and uniform.min() >= 0 and uniform.max() <= 1


def test_coverage_matches_loops():
    rng = np.random.default_rng(0)
    points, labels = rng.uniform(size=(40, 2)), rng.integers(-1, 4, size=40)
    kept = rng.uniform(size=(5, 2))
    nearest = [min(math.dist(p, k) for k in kept) for p in points]
    owners = [labels[min(range(40), key=lambda i: math.dist(points[i], k))] for k in kept]
    result = coverage(points, labels, kept)
    assert result["max_distance"] == pytest.approx(max(nearest))
    assert result["mean_distance"] == pytest.approx(sum(nearest) / 40)
    assert result["clusters_missed"] == len({0, 1, 2, 3} & set(labels.tolist()) - set(owners))
    assert result["outliers_kept"] == sum(owner == -1 for owner in owners)
