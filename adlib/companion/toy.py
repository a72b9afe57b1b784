"""Toy 2-D point sets for PC Fig. 3 / KC Fig. 4: how well a memory-bank sampler covers the data it thins.

Two data sets in the unit square (`mixture_points`: Gaussian clusters whose weights halve from one to
the next, plus uniform outliers; `uniform_points`), `coverage` of a kept set (each point's distance to
its nearest kept point: the worst-covered point and the typical one; on the mixture also the clusters
left without a kept point and the kept points spent on outliers). Each seed draws new data and new
sampler choices, so the seeds are the independent replicates: a claim "sampler A covers better than B"
is judged on the paired per-seed differences by `adlib.evidence.intervals.interval_verdict` (a t interval over seeds).
"""

from __future__ import annotations

import numpy as np


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
        raise ValueError(
            f"n_clusters={n_clusters} clusters of cluster_std={cluster_std} do not fit apart in the "
            "unit square: use fewer clusters or a smaller cluster_std"
        )
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
    return {
        "max_distance": float(distances.min(axis=1).max()),
        "mean_distance": float(distances.min(axis=1).mean()),
        "clusters_missed": float(len(clusters - set(owners.tolist()))),
        "outliers_kept": float((owners == -1).sum()),
    }
