"""adlib.toy: the toy point sets, coverage against slow loops, and the seed-level verdict against a hand t interval."""

import math
import statistics

import numpy as np
import pytest

from adlib.toy import coverage, mixture_points, seed_verdict, uniform_points

T_975 = {1: 12.706, 2: 4.303, 4: 2.776}  # Student's t quantiles (0.975) from a printed table


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


@pytest.mark.parametrize("n", [2, 3, 5])
def test_seed_verdict_interval_is_the_t_interval_of_the_differences(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(size=n) + 1.0
    differences = [x - y for x, y in zip(a, b)]
    mean, sd = statistics.mean(differences), statistics.stdev(differences)
    half = T_975[n - 1] * sd / math.sqrt(n)
    verdict = seed_verdict("a below b", "max_distance", "A", "B", a, b, "below", 100)
    assert verdict.estimate == pytest.approx(mean)
    assert verdict.low == pytest.approx(mean - half, abs=2e-3 * sd) and verdict.high == pytest.approx(mean + half, abs=2e-3 * sd)
    assert verdict.n_seeds == n and "n = " + str(n) + " seeds x 100 points" in verdict.caption()


def test_seed_verdict_status_follows_the_side_of_zero():
    low = [0.1, 0.11, 0.12, 0.1, 0.13]
    high = [0.5, 0.52, 0.49, 0.51, 0.5]
    assert seed_verdict("s", "m", "A", "B", low, high, "below", 10).status == "holds"
    assert seed_verdict("s", "m", "A", "B", low, high, "above", 10).status == "does not hold"
    noisy = [0.5, 0.1, 0.9, 0.2, 0.6]
    assert seed_verdict("s", "m", "A", "B", noisy, high, "below", 10).status == "inconclusive"
    tie = seed_verdict("s", "m", "A", "B", [0.0, 0.0], [0.0, 0.0], "below", 10)
    assert tie.status == "inconclusive"  # every seed ties: no side
    one = seed_verdict("s", "m", "A", "B", [0.1], [0.5], "below", 10)
    assert one.status == "inconclusive" and math.isinf(one.low)
    assert one.caption().startswith("**inconclusive** (n = 1 seed x 10 points)")
    with pytest.raises(ValueError, match="side"):
        seed_verdict("s", "m", "A", "B", low, high, "lower", 10)
