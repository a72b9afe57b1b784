"""Grey-value distributions of normal images: do they differ from image to image, or only inside an image?

KC (Sec. 1.3, Fig. 2) argues that brightness, shape, camera and object state make the pixel
distribution of normal images differ from image to image, so that normal data is a mixture of
Gaussians. This module measures that on a 0-1 grey scale, g = 0.299 R + 0.587 G + 0.114 B:

- between images: W1(i, j), the Wasserstein-1 distance between the grey-value distributions of two
  images i != j of a category (how far, on the 0-1 scale, one histogram must move to become the
  other; for equal pixel counts the mean |sorted(g_i) - sorted(g_j)|);
- within an image: s_i, the mean absolute deviation of its grey values from their median (= W1
  between the image's distribution and a point mass: how spread out one image is by itself);
- the floor: W1 between two random halves of one image's pixels (what W1 reads when nothing differs).

The ratio mean W1(i, j) / mean s_i says whether images differ as much as pixels inside one image do
(>= 1: each image is its own mode, as KC says) or much less (the modes are inside every image).
`spread_table` gives it per category with a bootstrap interval over images, and the mean over categories;
`ratio_verdict` judges KC's claim (ratio >= 1) over the categories, `summary_line` says the mean row in words.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from adlib.evidence.intervals import interval_verdict
from adlib.evidence.verdicts import Verdict, percentile_interval

LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 weights: grey value from RGB, both on a 0-1 scale."""


def grey_images(rgb: np.ndarray) -> np.ndarray:
    """[n, 3, H, W] RGB in [0, 1] -> [n, H, W] grey values in [0, 1]."""
    grey = np.tensordot(LUMA, np.asarray(rgb, dtype=np.float64), axes=([0], [1]))
    if grey.min() < -1e-6 or grey.max() > 1 + 1e-6:
        raise ValueError(
            f"grey values lie in [{grey.min():.3f}, {grey.max():.3f}]: pass RGB in [0, 1] (read without normalisation)"
        )
    return np.clip(grey, 0.0, 1.0)


def pairwise_w1(greys: np.ndarray) -> np.ndarray:
    """[n, n] Wasserstein-1 distances between the grey-value distributions of n equally sized images."""
    ordered = np.sort(np.asarray(greys, dtype=np.float64).reshape(len(greys), -1), axis=1)
    distances = np.zeros((len(ordered), len(ordered)))
    for i in range(len(ordered) - 1):  # one row at a time: n x n x pixels would not fit in memory
        distances[i, i + 1 :] = np.abs(ordered[i + 1 :] - ordered[i]).mean(axis=1)
    return distances + distances.T


def within_spread(greys: np.ndarray) -> np.ndarray:
    """[n] mean absolute deviation of each image's grey values from their median."""
    flat = np.asarray(greys).reshape(len(greys), -1)
    return np.abs(flat - np.median(flat, axis=1, keepdims=True)).mean(axis=1)


def split_half_w1(greys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n] W1 between two random halves of each image's pixels: the reading when nothing differs."""
    flat = np.asarray(greys).reshape(len(greys), -1)
    half = flat.shape[1] // 2
    out = []
    for values in flat:
        shuffled = rng.permutation(values)
        out.append(np.abs(np.sort(shuffled[:half]) - np.sort(shuffled[half : 2 * half])).mean())
    return np.array(out)


def _between(distances: np.ndarray, drawn: np.ndarray) -> float:
    """Mean W1 over pairs of drawn images that are different images."""
    block = distances[np.ix_(drawn, drawn)]
    different = drawn[:, None] != drawn[None, :]
    return float(block[different].mean())


def spread_table(
    greys: Mapping[str, np.ndarray], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Per category (and the mean over categories): between-image W1, within-image spread, their ratio
    with a percentile interval, and the split-half floor.

    The interval resamples each category's images with replacement (one `numpy.random.default_rng(seed)`,
    categories in sorted order, the floor's shuffles first); the mean row averages the categories'
    statistics resample by resample. Columns: category, images, between, within, floor, ratio,
    ratio_low, ratio_high (all but images and the ratios on the 0-1 grey scale).
    """
    rng = np.random.default_rng(seed)
    rows, curves = [], {"between": [], "within": [], "floor": [], "ratio": []}
    for category in sorted(greys):
        images = np.asarray(greys[category])
        if len(images) < 2:
            raise ValueError(f"{category}: {len(images)} image; between-image distances need at least 2")
        distances, spread = pairwise_w1(images), within_spread(images)
        floor = float(split_half_w1(images, rng).mean())
        n = len(images)
        draws = [np.arange(n)] + [rng.integers(0, n, n) for _ in range(n_resamples)]
        draws = [d for d in draws if len(set(d.tolist())) > 1]
        between = np.array([_between(distances, d) for d in draws])
        within = np.array([spread[d].mean() for d in draws])
        ratio = between / within
        for name, series in (("between", between), ("within", within), ("ratio", ratio)):
            curves[name].append(series[: n_resamples + 1])
        curves["floor"].append(np.full(len(ratio), floor)[: n_resamples + 1])
        low, high = percentile_interval(ratio[1:], level)
        rows.append(
            {
                "category": category,
                "images": n,
                "between": between[0],
                "within": within[0],
                "floor": floor,
                "ratio": ratio[0],
                "ratio_low": low,
                "ratio_high": high,
            }
        )
    length = min(len(series) for series in curves["ratio"])
    mean = {name: np.mean([series[:length] for series in values], axis=0) for name, values in curves.items()}
    low, high = percentile_interval(mean["ratio"][1:], level)
    rows.append(
        {
            "category": "mean",
            "images": sum(len(g) for g in greys.values()),
            "between": mean["between"][0],
            "within": mean["within"][0],
            "floor": mean["floor"][0],
            "ratio": mean["ratio"][0],
            "ratio_low": low,
            "ratio_high": high,
        }
    )
    return pd.DataFrame(rows)


def ratio_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """KC's claim read as "images differ from each other at least as much as the pixels of one image do": the
    mean of `spread_table`'s per-category ratios lies above 1, judged by `adlib.evidence.intervals.interval_verdict` with
    the categories as the replicates (a Student t interval over them; n = categories x good training images)."""
    per = table[table.category != "mean"]
    images = (
        per["images"].min()
        if per["images"].min() == per["images"].max()
        else (f"{per['images'].min()}-{per['images'].max()}")
    )
    return interval_verdict(
        "KC Fig. 2: normal images differ at least as much as the pixels inside one image",
        "between-image W1 / within-image spread, mean over categories",
        per["ratio"].to_numpy(),
        "above",
        1.0,
        replicates="categories",
        detail=f"{images} good training images",
        level=level,
    )


def summary_line(table: pd.DataFrame, level: float = 0.95) -> str:
    """`spread_table`'s mean row in words: the ratio with its bootstrap interval over images, the between-image
    W1 against the split-half floor, and the within-image spread (0-1 grey scale)."""
    mean = table.set_index("category").loc["mean"]
    return (
        f"Mean between-image W1 / within-image spread {mean['ratio']:.2f}, {level * 100:g} % bootstrap interval "
        f"over images [{mean['ratio_low']:.2f}, {mean['ratio_high']:.2f}]; mean between-image W1 "
        f"{mean['between']:.3f} ({mean['between'] / mean['floor']:.0f} x the split-half floor "
        f"{mean['floor']:.4f}), mean within-image spread {mean['within']:.3f} (0-1 grey scale)."
    )
