"""Toy 2-D point sets for PC Fig. 3 / KC Fig. 4: how well a memory-bank sampler covers the data it thins.

Two data sets in the unit square (`mixture_points`: Gaussian clusters whose weights halve from one to
the next, plus uniform outliers; `uniform_points`), `coverage` of a kept set (each point's distance to
its nearest kept point: the worst-covered point and the typical one; on the mixture also the clusters
left without a kept point and the kept points spent on outliers), and `seed_verdict`, the three-valued
verdict on "sampler A covers better than B" from the paired per-seed differences with a t interval.

Why a t interval over seeds: each seed draws new data and new sampler choices, so the seeds are the
independent replicates (there are no test images to resample here); with n seeds, the paired
differences d_1..d_n give mean(d) +- t_{n-1, 0.975} * sd(d) / sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STATUSES = ("holds", "does not hold", "inconclusive")
SIDES = ("below", "above")


def mixture_points(
    seed: int, n_points: int, n_clusters: int, cluster_std: float, outliers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points [n_points, 2] of `n_clusters` round Gaussian clusters (weights halving from one to the next;
    centres at least 6 std apart in [0.1, 0.9]^2) plus `outliers` uniform points, and each point's cluster
    (-1 for an outlier). The seed decides everything (centres, counts, points)."""
    if not 0 <= outliers < n_points:
        raise ValueError(f"outliers={outliers}: keep between 0 and n_points - 1 = {n_points - 1}")
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    for _ in range(10_000):
        candidate = rng.uniform(0.1, 0.9, size=2)
        if all(np.linalg.norm(candidate - c) > 6 * cluster_std for c in centres):
            centres.append(candidate)
        if len(centres) == n_clusters:
            break
    else:
        raise ValueError(f"n_clusters={n_clusters} clusters of cluster_std={cluster_std} do not fit apart in the "
                         "unit square: use fewer clusters or a smaller cluster_std")
    weights = 0.5 ** np.arange(n_clusters)
    counts = rng.multinomial(n_points - outliers, weights / weights.sum())
    points = [rng.normal(centre, cluster_std, size=(count, 2)) for centre, count in zip(centres, counts)]
    points.append(rng.uniform(0, 1, size=(outliers, 2)))
    labels = np.concatenate([np.full(count, k) for k, count in enumerate(counts)] + [np.full(outliers, -1)])
    return np.concatenate(points), labels


def uniform_points(seed: int, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Points [n_points, 2] drawn uniformly from the unit square, all labelled 0 (one 'cluster')."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n_points, 2)), np.zeros(n_points, dtype=int)


def coverage(points: np.ndarray, labels: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """How well `kept` [n, 2] covers `points` [N, 2] (cluster `labels` [N], -1 = outlier).

    max_distance / mean_distance: the largest / mean distance of a point to its nearest kept point.
    clusters_missed: clusters (labels >= 0) that own no kept point, a kept point belonging to the cluster
    of its nearest data point (so K-means centroids, which are no data points, count too);
    outliers_kept: kept points whose nearest data point is an outlier.
    """
    points, kept, labels = np.asarray(points, float), np.asarray(kept, float), np.asarray(labels)
    distances = np.linalg.norm(points[:, None, :] - kept[None, :, :], axis=2)  # [N, n]
    owners = labels[distances.argmin(axis=0)]
    clusters = set(labels[labels >= 0].tolist())
    return {"max_distance": float(distances.min(axis=1).max()), "mean_distance": float(distances.min(axis=1).mean()),
            "clusters_missed": float(len(clusters - set(owners.tolist()))),
            "outliers_kept": float((owners == -1).sum())}


@dataclass(frozen=True)
class SeedVerdict:
    """"a's metric is below (above) b's", judged on paired per-seed differences a - b.

    estimate: the mean difference; [low, high]: its `level` t interval over the seeds; paper: the paper's
    number for the same difference when it prints one (PC Fig. 3 and KC Fig. 4 print none: None).
    """

    statement: str
    metric: str
    a: str
    b: str
    side: str
    status: str
    estimate: float
    low: float
    high: float
    n_seeds: int
    n_points: int
    level: float = 0.95
    paper: float | None = None

    def sample(self) -> str:
        """n in words, e.g. '5 seeds x 2000 points'."""
        return f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''} x {self.n_points} points"

    def caption(self) -> str:
        """The bold verdict line, e.g. '**holds** (n = 5 seeds x 2000 points): greedy below random in max
        distance by -0.365, 95 % t interval [-0.410, -0.320]'."""
        line = (f"**{self.status}** (n = {self.sample()}): {self.statement}: {self.a} - {self.b} "
                f"{self.metric.replace('_', ' ')} {self.estimate:+.3f}, {self.level * 100:g} % t interval over "
                f"seeds [{self.low:+.3f}, {self.high:+.3f}]")
        return line if self.paper is None else f"{line}; paper: {self.paper:+.3f}"


def seed_verdict(
    statement: str,
    metric: str,
    a: str,
    b: str,
    values_a: Sequence[float],
    values_b: Sequence[float],
    side: str,
    n_points: int,
    level: float = 0.95,
) -> SeedVerdict:
    """The verdict on "a's `metric` is `side` ("below" / "above") b's" from per-seed values (paired by seed).

    holds when the t interval of the mean difference lies entirely on the claimed side of 0, does not hold
    when entirely on the other side, else inconclusive (also when every seed gives the same difference
    of 0, and with a single seed, which has no interval).
    """
    from scipy import stats

    if side not in SIDES:
        raise ValueError(f"side={side!r}: choose one of {list(SIDES)}")
    differences = np.asarray(values_a, float) - np.asarray(values_b, float)
    if differences.ndim != 1 or differences.size != len(values_b) or differences.size == 0:
        raise ValueError(f"give one value per seed for both samplers; got {len(values_a)} and {len(values_b)}")
    n = differences.size
    estimate = float(differences.mean())
    if n < 2:
        low, high = -math.inf, math.inf
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * differences.std(ddof=1) / math.sqrt(n))
        low, high = estimate - half, estimate + half
    sign = 1.0 if side == "above" else -1.0
    lower, upper = sorted((sign * low, sign * high))
    status = "holds" if lower > 0 else "does not hold" if upper < 0 else "inconclusive"
    return SeedVerdict(statement, metric, a, b, side, status, estimate, low, high, n, n_points, level)
