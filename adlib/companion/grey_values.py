"""Grey-value distributions of normal images: do they differ from image to image, and is one Gaussian enough?

KC (Sec. 1.3, Fig. 2) argues that brightness, shape, camera and object state make the pixel
distribution of normal images differ from image to image, so that the images "do not belong to one
distribution" and a mixture of Gaussians describes them better than one Gaussian. This module measures
that on a 0-1 grey scale, g = 0.299 R + 0.587 G + 0.114 B:

- between images: W1(i, j), the Wasserstein-1 distance between the grey-value distributions of two
  images i != j of a category (how far, on the 0-1 scale, one histogram must move to become the
  other; for equal pixel counts the mean |sorted(g_i) - sorted(g_j)|);
- the floor: W1 between two random halves of one image's pixels (what W1 reads when nothing differs);
  `floor_verdict` judges KC's claim that images differ: between-image W1 above the floor;
- within an image: s_i, the mean absolute deviation of its grey values from their median (= W1
  between the image's distribution and a point mass: how spread out one image is by itself);
- a mixture against one Gaussian: `mixture_table` fits both to the grey values of half the images and
  scores the other half (held-out log-likelihood per pixel); `mixture_verdict` judges KC's "a mixture
  describes it better".

The ratio mean W1(i, j) / mean s_i is the companion's own yardstick, not KC's: whether images differ as much
as the pixels inside one image do (>= 1) or much less (the modes are inside every image). `spread_table`
gives it per category with a bootstrap interval over images, and the mean over categories; `ratio_verdict`
judges it over the categories, `summary_line` says the mean row in words.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from adlib.evidence.intervals import interval_verdict
from adlib.evidence.register import entry
from adlib.evidence.verdicts import Verdict, percentile_interval

LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 weights: grey value from RGB, both on a 0-1 scale."""


FLOOR_ID = "kc-fig2-images-not-one-distribution"
MIXTURE_ID = "kc-fig2-mixture-fits-better"
RATIO_ID = "companion-kc-fig2-ratio-above-1"


def entry_statement(id: str) -> str:
    """The caption label of register row `id`."""
    return entry(id).statement


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
    with a percentile interval, the split-half floor, and the gap between-image W1 - floor with its interval.

    The intervals resample each category's images with replacement (one `numpy.random.default_rng(seed)`,
    categories in sorted order, the floor's shuffles first); the mean row averages the categories'
    statistics resample by resample. Columns: category, images, between, within, floor, ratio,
    ratio_low, ratio_high, gap, gap_low, gap_high (all but images and the ratios on the 0-1 grey scale).
    """
    rng = np.random.default_rng(seed)
    rows, curves = [], {"between": [], "within": [], "floor": [], "ratio": [], "gap": []}
    for category in sorted(greys):
        images = np.asarray(greys[category])
        if len(images) < 2:
            raise ValueError(f"{category}: {len(images)} image; between-image distances need at least 2")
        distances, spread = pairwise_w1(images), within_spread(images)
        floors = split_half_w1(images, rng)
        n = len(images)
        draws = [np.arange(n)] + [rng.integers(0, n, n) for _ in range(n_resamples)]
        draws = [d for d in draws if len(set(d.tolist())) > 1][: n_resamples + 1]
        series = {
            "between": np.array([_between(distances, d) for d in draws]),
            "within": np.array([spread[d].mean() for d in draws]),
            "floor": np.array([floors[d].mean() for d in draws]),
        }
        series["ratio"] = series["between"] / series["within"]
        series["gap"] = series["between"] - series["floor"]
        for name, values in series.items():
            curves[name].append(values)
        rows.append({"category": category, "images": n, **_row(series, level)})
    length = min(len(values) for values in curves["ratio"])
    mean = {name: np.mean([values[:length] for values in runs], axis=0) for name, runs in curves.items()}
    rows.append({"category": "mean", "images": sum(len(g) for g in greys.values()), **_row(mean, level)})
    return pd.DataFrame(rows)


def _row(series: Mapping[str, np.ndarray], level: float) -> dict[str, float]:
    """The first value of each series (the images as they are) and percentile intervals of the ratio and gap."""
    row = {name: float(values[0]) for name, values in series.items()}
    for name in ("ratio", "gap"):
        row[f"{name}_low"], row[f"{name}_high"] = percentile_interval(series[name][1:], level)
    order = ("between", "within", "floor", "ratio", "ratio_low", "ratio_high", "gap", "gap_low", "gap_high")
    return {name: row[name] for name in order}


def _images_detail(per: pd.DataFrame, column: str = "images") -> str:
    """'80 good training images', or '60-80 ...' when the categories differ."""
    low, high = per[column].min(), per[column].max()
    return f"{low} good training images" if low == high else f"{low}-{high} good training images"


def floor_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """KC's claim that normal images do not share one distribution, read as "two normal images' grey-value
    distributions differ by more than sampling alone would make them": the mean over categories of
    between-image W1 - split-half floor lies above 0 (a Student t interval over the categories)."""
    per = table[table.category != "mean"]
    return interval_verdict(
        entry_statement(FLOOR_ID),
        "between-image W1 - split-half floor (0-1 grey scale), mean over categories",
        per["gap"].to_numpy(),
        "above",
        0.0,
        replicates="categories",
        detail=_images_detail(per),
        level=level,
        source=FLOOR_ID,
    )


def ratio_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """The companion's own yardstick (not KC's): "images differ from each other at least as much as the pixels
    of one image do", the mean of `spread_table`'s per-category ratios above 1, judged by
    `adlib.evidence.intervals.interval_verdict` with the categories as the replicates."""
    per = table[table.category != "mean"]
    return interval_verdict(
        entry_statement(RATIO_ID),
        "between-image W1 / within-image spread, mean over categories",
        per["ratio"].to_numpy(),
        "above",
        1.0,
        replicates="categories",
        detail=_images_detail(per),
        level=level,
        source=RATIO_ID,
    )


def held_out_loglik(
    images: np.ndarray, seed: int = 0, max_components: int = 6, fit_pixels: int = 20_000, reg_covar: float = 1e-4
) -> tuple[np.ndarray, np.ndarray, int]:
    """One Gaussian and a Gaussian mixture fitted to the grey values of the even-numbered images, scored on the
    odd-numbered ones: ([held-out images] mean log-likelihood per pixel under one Gaussian, the same under the
    mixture, the mixture's number of components).

    The fit uses `fit_pixels` grey values drawn from the fitting images (`numpy.random.default_rng(seed)`);
    the mixture's size is the one of 2..`max_components` with the lowest BIC on them (a mixture has at least
    two components). `reg_covar` (a variance) keeps a component from collapsing onto one grey level: sd 0.01,
    about 2.5 steps of an 8-bit scale.
    """
    from sklearn.mixture import GaussianMixture

    images = np.asarray(images, dtype=np.float64)
    if len(images) < 2:
        raise ValueError(f"{len(images)} image: a fit half and a held-out half need at least 2 images")
    pool = images[0::2].reshape(-1)
    rng = np.random.default_rng(seed)
    sample = rng.choice(pool, size=min(fit_pixels, pool.size), replace=False)[:, None]

    def fit(k: int) -> GaussianMixture:
        return GaussianMixture(k, reg_covar=reg_covar, random_state=seed).fit(sample)

    single = fit(1)
    mixture = min((fit(k) for k in range(2, max_components + 1)), key=lambda model: model.bic(sample))
    held = [image.reshape(-1, 1) for image in images[1::2]]
    return (
        np.array([single.score(x) for x in held]),
        np.array([mixture.score(x) for x in held]),
        int(mixture.n_components),
    )


def mixture_table(
    greys: Mapping[str, np.ndarray], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Per category (and the mean over categories): `held_out_loglik`'s mean held-out log-likelihood per pixel
    (nats) under one Gaussian and under the mixture, and the mixture's gain with a percentile interval that
    resamples the held-out images (the mean row averages the categories resample by resample). Columns:
    category, fit_images, held_out_images, components, single_loglik, mixture_loglik, loglik_gain,
    loglik_gain_low, loglik_gain_high."""
    rng = np.random.default_rng(seed)
    rows, gains = [], []
    for category in sorted(greys):
        images = np.asarray(greys[category])
        single, mixture, components = held_out_loglik(images, seed=seed)
        gain = mixture - single
        n = len(gain)
        series = np.array([gain.mean()] + [gain[rng.integers(0, n, n)].mean() for _ in range(n_resamples)])
        gains.append(series)
        low, high = percentile_interval(series[1:], level)
        rows.append(
            {
                "category": category,
                "fit_images": len(images) - n,
                "held_out_images": n,
                "components": components,
                "single_loglik": float(single.mean()),
                "mixture_loglik": float(mixture.mean()),
                "loglik_gain": float(series[0]),
                "loglik_gain_low": low,
                "loglik_gain_high": high,
            }
        )
    mean = np.mean(gains, axis=0)
    low, high = percentile_interval(mean[1:], level)
    per = pd.DataFrame(rows)
    rows.append(
        {
            "category": "mean",
            "fit_images": int(per["fit_images"].sum()),
            "held_out_images": int(per["held_out_images"].sum()),
            "components": float(per["components"].mean()),
            "single_loglik": float(per["single_loglik"].mean()),
            "mixture_loglik": float(per["mixture_loglik"].mean()),
            "loglik_gain": float(mean[0]),
            "loglik_gain_low": low,
            "loglik_gain_high": high,
        }
    )
    return pd.DataFrame(rows)


def mixture_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """KC's "a mixture of Gaussians describes it better than one Gaussian": the mean over categories of
    `mixture_table`'s held-out log-likelihood gain lies above 0 (a Student t interval over the categories)."""
    per = table[table.category != "mean"]
    low, high = per["held_out_images"].min(), per["held_out_images"].max()
    return interval_verdict(
        entry_statement(MIXTURE_ID),
        "mixture - one Gaussian, held-out log-likelihood per pixel (nats), mean over categories",
        per["loglik_gain"].to_numpy(),
        "above",
        0.0,
        replicates="categories",
        detail=f"{low if low == high else f'{low}-{high}'} held-out images",
        level=level,
        source=MIXTURE_ID,
    )


def summary_line(table: pd.DataFrame, level: float = 0.95) -> str:
    """`spread_table`'s mean row in words: the between-image W1 against the split-half floor with the gap's
    bootstrap interval over images, the within-image spread, and the companion's ratio (0-1 grey scale)."""
    mean = table.set_index("category").loc["mean"]
    return (
        f"Mean between-image W1 {mean['between']:.3f}, {mean['between'] / mean['floor']:.0f} x the split-half "
        f"floor {mean['floor']:.4f} (gap {mean['gap']:.3f}, {level * 100:g} % bootstrap interval over images "
        f"[{mean['gap_low']:.3f}, {mean['gap_high']:.3f}]); mean within-image spread {mean['within']:.3f} "
        f"(0-1 grey scale); their ratio {mean['ratio']:.2f} [{mean['ratio_low']:.2f}, {mean['ratio_high']:.2f}]."
    )
