"""Reference loops timed against adlib's code in one run, as ratios (a part of `anomalib_vs_adlib.py`):

- greedy coreset: the loop written as the official code is (`adlib.bank.reference.official_greedy_coreset`)
  vs `adlib.bank.sampling.ApproximateGreedyCoreset`, via `coreset_search.coreset_rows`, run in full (no
  extrapolation) on a moderate bank so that it fits the time budget;
- patch aggregation: the official-style step-by-step aggregation (`adlib.features.reference.official_patch_features`)
  vs `adlib.features.patches.locally_aware_features`, via `features.aggregation_rows`;
- SoftPatch LOF: scikit-learn's `LocalOutlierFactor`, one fit per patch position, vs the batched torch
  LOF of `adlib.bank.denoise.outlier_scores(..., "lof")`, on the same (already projected) features; also
  checks that both drop the same patches at tau = 0.15 and correlates their scores;
- K-means bank (KC): adlib's `kmeans` (faiss and torch backends) vs scikit-learn's `KMeans` and faiss's
  `Kmeans` on the same points, k and Lloyd steps: time ratios and each clustering's inertia;
- exact kNN search of one test image: `torch.cdist` + `topk` vs adlib's `NearestNeighbours` backends
  (torch matrix product, faiss `IndexFlatL2`), via `coreset_search.search_rows`.

Rows are tidy: benchmark, side, quantity, value, unit, repeats.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from common import median_seconds
from coreset_search import PATCHES_PER_IMAGE, coreset_rows, loop_and_floor, search_rows
from features import aggregation_rows

from adlib.bank.denoise import denoise, outlier_scores
from adlib.bank.sampling import coreset_size
from adlib.bank.search import NearestNeighbours

Row = dict[str, object]


def row(benchmark: str, side: str, quantity: str, value: object, unit: str, repeats: int) -> Row:
    return {
        "benchmark": benchmark,
        "side": side,
        "quantity": quantity,
        "value": value,
        "unit": unit,
        "repeats": repeats,
    }


def coreset_loop_rows(images: int, repeats: int) -> list[Row]:
    """Seconds of adlib's greedy coreset and of the official-style loop on images x 784 random 1024-d
    patches -> 10 %, each the median of `repeats` full runs."""
    bank = torch.randn(images * PATCHES_PER_IMAGE, 1024, generator=torch.Generator().manual_seed(0))
    picks = coreset_size(len(bank), 0.1)
    runs = [coreset_rows(bank, 0.1, reference_picks=picks, round_picks=picks, rounds=1) for _ in range(repeats)]
    adlib, loop, floor, official = (statistics.median(rows[i]["seconds"] for rows, _ in runs) for i in range(4))
    loop_over_floor = statistics.median(ratio for _, ratio in runs)
    name = f"reference: greedy coreset {len(bank)} x 1024 -> {picks}"
    return [
        row(name, "adlib", "time", adlib, "s", repeats),
        row(name, "adlib greedy loop only (select of all picks less a select of one)", "time", loop, "s", repeats),
        row(name, "streaming floor (one bare pass per pick)", "time", floor, "s", repeats),
        row(name, "official-style", "time", official, "s", repeats),
        row(name, "official-style / adlib", "ratio", official / adlib, "x", repeats),
        row(name, "adlib greedy loop / streaming floor (bank in cache)", "ratio", loop_over_floor, "x", repeats),
    ]


def coreset_floor_rows(images: int, rounds: int) -> list[Row]:
    """adlib's greedy loop per pick against one bare streaming pass, on a bank of the full training sets'
    size (images x 784 random 1024-d patches, projected: larger than the caches, so the floor is the
    memory bandwidth it names); alternating rounds of 1000 picks (`coreset_search.loop_and_floor`)."""
    bank = torch.randn(images * PATCHES_PER_IMAGE, 1024, generator=torch.Generator().manual_seed(0))
    picks = min(coreset_size(len(bank), 0.1), 1000)
    loop, floor, ratio = loop_and_floor(bank, picks, rounds)
    name = f"reference: greedy coreset loop vs streaming floor, {len(bank)} x 1024, rounds of {picks} picks"
    return [
        row(name, "adlib greedy loop", "time per pick", loop * 1e3, "ms", rounds),
        row(name, "streaming floor (one bare pass per pick)", "time per pick", floor * 1e3, "ms", rounds),
        row(name, "adlib greedy loop / streaming floor", "ratio", ratio, "x", rounds),
    ]


def aggregation_loop_rows(backbone: str, repeats: int) -> list[Row]:
    """ms per image of the backbone forward and of both aggregations (batch 8, 224 px, random init)."""
    times = {r["step"]: r["ms per image"] for r in aggregation_rows(backbone, batch=8, repeats=repeats)}
    name = f"reference: patch aggregation ({backbone}, batch 8)"
    adlib, official = times["aggregation (adlib)"], times["aggregation (official-style reference)"]
    return [
        row(name, "backbone forward to layer3", "time per image", times["backbone forward to layer3"], "ms", repeats),
        row(name, "adlib", "time per image", adlib, "ms", repeats),
        row(name, "official-style", "time per image", official, "ms", repeats),
        row(name, "official-style / adlib", "ratio", official / adlib, "x", repeats),
    ]


def _grouped_features(images: int, positions: int, dim: int, seed: int) -> torch.Tensor:
    """[images, positions, dim] Gaussian features with 2 % of the patches shifted far away (the noise
    LOF should find), float64 so that both implementations see exactly the same numbers."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(images, positions, dim, generator=generator, dtype=torch.float64)
    outliers = torch.rand(images, positions, generator=generator) < 0.02
    features[outliers] += 4.0
    return features


def sklearn_lof(features: torch.Tensor, k: int) -> torch.Tensor:
    """[N, P, D] -> [N, P]: `-LocalOutlierFactor(n_neighbors=k).fit(X_p).negative_outlier_factor_` per
    position p, the way a per-position loop over scikit-learn is written."""
    from sklearn.neighbors import LocalOutlierFactor

    array = features.numpy()
    scores = np.empty(array.shape[:2])
    for position in range(array.shape[1]):
        lof = LocalOutlierFactor(n_neighbors=k).fit(array[:, position])
        scores[:, position] = -lof.negative_outlier_factor_
    return torch.from_numpy(scores)


def lof_rows(images: int, positions: int, dim: int, k: int, repeats: int) -> list[Row]:
    """Time of both LOFs on the same features, and how far apart their scores and dropped patches are."""
    features = _grouped_features(images, positions, dim, seed=0)
    batched = outlier_scores(features, "lof", lof_k=k, projection_dim=None)
    reference = sklearn_lof(features, k)
    relative = ((batched - reference).abs() / reference.abs()).max().item()
    correlation = float(np.corrcoef(batched.flatten().numpy(), reference.flatten().numpy())[0, 1])
    dropped_batched = ~denoise(batched, "lof", 0.15).keep
    dropped_reference = ~denoise(reference, "lof", 0.15).keep
    differ = int((dropped_batched != dropped_reference).sum())
    single = features.float()  # timed in float32, the features' dtype in a real run
    adlib = median_seconds(lambda: outlier_scores(single, "lof", lof_k=k, projection_dim=None), repeats)
    official = median_seconds(lambda: sklearn_lof(single, k), repeats)
    name = f"reference: SoftPatch LOF, k = {k}, {images} images x {positions} positions x {dim} dims"
    return [
        row(name, "adlib (batched torch)", "time", adlib, "s", repeats),
        row(name, "scikit-learn per position", "time", official, "s", repeats),
        row(name, "scikit-learn / adlib", "ratio", official / adlib, "x", repeats),
        row(name, "agreement (float64)", "max relative score difference", relative, "", 1),
        row(name, "agreement (float64)", "Pearson correlation of the scores", correlation, "", 1),
        row(
            name,
            "agreement (float64)",
            "patches dropped at tau = 0.15 by one and not the other",
            differ,
            f"of {int(dropped_reference.sum())} dropped",
            1,
        ),
    ]


def inertia(points: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances of each point to its nearest centroid (float64), the K-means objective."""
    points, centroids = points.astype(np.float64), centroids.astype(np.float64)
    squared = (points**2).sum(1, keepdims=True) - 2 * points @ centroids.T + (centroids**2).sum(1)
    return float(np.maximum(squared.min(1), 0).sum())


def kmeans_rows(points_count: int, dim: int, k: int, iterations: int, repeats: int) -> list[Row]:
    """K-means of the same [points_count, dim] float32 points (PCA-projected patch features in KC) into
    k clusters with `iterations` Lloyd steps and one initialisation: adlib's `kmeans` (faiss and torch
    backends) vs scikit-learn's `KMeans` (Lloyd, k-means++) and faiss's own `Kmeans`; time ratios and
    each clustering's inertia against scikit-learn's."""
    from sklearn.cluster import KMeans

    from adlib.bank.clustering import kmeans
    from adlib.bank.search import faiss_available

    generator = torch.Generator().manual_seed(3)
    centres = torch.randn(k, dim, generator=generator) * 3
    points = (
        centres[torch.randint(k, (points_count,), generator=generator)]
        + torch.randn(points_count, dim, generator=generator)
    ).contiguous()
    array = points.numpy()
    results: dict[str, tuple[float, float]] = {}

    def sklearn_run() -> np.ndarray:
        model = KMeans(
            n_clusters=k, init="k-means++", n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd", random_state=0
        ).fit(array)
        return model.cluster_centers_

    sides: dict[str, object] = {"scikit-learn KMeans (lloyd, k-means++)": sklearn_run}
    sides["adlib kmeans (torch)"] = lambda: kmeans(points, k, 0, iterations, "torch")[0].numpy()
    if faiss_available():
        import faiss

        def faiss_run() -> np.ndarray:
            model = faiss.Kmeans(dim, k, niter=iterations, seed=0, max_points_per_centroid=points_count)
            model.train(array)
            return model.centroids

        sides["adlib kmeans (faiss)"] = lambda: kmeans(points, k, 0, iterations, "faiss")[0].numpy()
        sides["faiss Kmeans"] = faiss_run
    for side, run in sides.items():
        held = []
        seconds = median_seconds(lambda: held.append(run()), repeats)
        results[side] = (seconds, inertia(array, held[-1]))
    name = f"reference: K-means (KC bank), {points_count} x {dim} -> {k}, {iterations} Lloyd steps"
    reference_seconds, reference_inertia = results["scikit-learn KMeans (lloyd, k-means++)"]
    rows = []
    for side, (seconds, value) in results.items():
        rows.append(row(name, side, "time", seconds, "s", repeats))
        rows.append(row(name, side, "inertia / scikit-learn's", value / reference_inertia, "", 1))
    for side in results:
        if side.startswith("adlib"):
            rows.append(
                row(name, f"scikit-learn / {side}", "ratio", reference_seconds / results[side][0], "x", repeats)
            )
            if "faiss Kmeans" in results:
                rows.append(
                    row(
                        name,
                        f"faiss Kmeans / {side}",
                        "ratio",
                        results["faiss Kmeans"][0] / results[side][0],
                        "x",
                        repeats,
                    )
                )
    return rows


def search_loop_rows(bank_rows: list[int], repeats: int) -> list[Row]:
    """ms per test image (784 queries x 1024) of exact 1-NN search for each bank size."""
    bank = torch.randn(max(bank_rows), 1024, generator=torch.Generator().manual_seed(0))
    ratios = [size / len(bank) for size in bank_rows]
    found = search_rows(bank, ratios, repeats)
    queries = torch.randn(PATCHES_PER_IMAGE, 1024, generator=torch.Generator().manual_seed(2))
    rows = []
    for size in sorted({r["bank"] for r in found}):
        memory = bank[:size].contiguous()
        cdist = median_seconds(lambda: torch.cdist(queries, memory).topk(1, dim=1, largest=False), repeats) * 1e3
        expected = NearestNeighbours(memory, backend="torch").search(queries, 1)[1]
        same = bool((torch.cdist(queries, memory).argmin(1, keepdim=True) == expected).float().mean() > 0.999)
        name = f"reference: exact 1-NN search, 784 queries x bank {size} x 1024"
        rows.append(row(name, "torch cdist + topk", "time per image", cdist, "ms", repeats))
        for r in found:
            if r["bank"] == size:
                rows.append(
                    row(
                        name,
                        f"adlib NearestNeighbours({r['backend']})",
                        "time per image",
                        r["ms per image"],
                        "ms",
                        repeats,
                    )
                )
        rows.append(row(name, "agreement", "cdist and adlib torch give the same neighbours (> 99.9 %)", same, "", 1))
    return rows


def all_rows(backbone: str, coreset_images: int, floor_images: int, search_banks: list[int], repeats: int) -> list[Row]:
    """Every reference comparison, one after the other (about a minute on two idle cores)."""
    start = time.perf_counter()
    rows = coreset_loop_rows(coreset_images, repeats)
    rows += coreset_floor_rows(floor_images, repeats)
    rows += aggregation_loop_rows(backbone, repeats)
    rows += lof_rows(images=40, positions=196, dim=128, k=6, repeats=repeats)  # 14 x 14 grid: sklearn is slow
    rows += kmeans_rows(
        points_count=coreset_images * PATCHES_PER_IMAGE,
        dim=128,
        k=coreset_size(coreset_images * PATCHES_PER_IMAGE, 0.1),
        iterations=25,
        repeats=1,
    )
    rows += search_loop_rows(search_banks, repeats)
    rows.append(row("reference loops", "all", "wall time of this part", time.perf_counter() - start, "s", 1))
    return rows
