"""The resampling core of `adlib.evidence.verdicts`: stratified bootstrap draws and a metric of every resample at once.

A resample is a row of positions into one unit's test images (with repeats); `count_weights` turns rows
into how often each image is drawn, from which image AUROC (`resampled_image_auroc`, exact) and pixel
AUROC / PRO (`resampled_pixel_metric`, from an evaluation's `adlib.evaluation.pixel_stats.PixelStats`, within its
binning error) of all resamples follow in a few matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adlib.evaluation.pixel_stats import PixelStats


def stratified_indices(labels: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[n_resamples, n] positions into the images (labels bool [n]): the good ones drawn from the good
    images (first columns), then the defective from the defective, with replacement."""
    labels = np.asarray(labels, dtype=bool)
    good, defective = np.flatnonzero(~labels), np.flatnonzero(labels)
    drawn_good = good[rng.integers(0, good.size, size=(n_resamples, good.size))]
    drawn_defective = defective[rng.integers(0, defective.size, size=(n_resamples, defective.size))]
    return np.concatenate([drawn_good, drawn_defective], axis=1)


def resampled_image_auroc(labels: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Image AUROC of every resample (row of `indices`, positions into labels/scores) at once, exact.

    A resample counts each image as often as it is drawn, so its AUROC is
    sum_ij c_i c_j w_ij / (sum_i c_i * sum_j c_j) over defective i and good j, with c the draw counts and
    w_ij = 1 if score_i > score_j, 1/2 if equal, else 0: one matrix product for all resamples.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    counts = count_weights(indices, labels.size)
    defective, good = scores[labels], scores[~labels]
    wins = (defective[:, None] > good[None, :]) + 0.5 * (defective[:, None] == good[None, :])
    c_defective, c_good = counts[:, labels], counts[:, ~labels]
    pairs = c_defective.sum(axis=1) * c_good.sum(axis=1)
    return ((c_defective @ wins) * c_good).sum(axis=1) / pairs


def count_weights(indices: np.ndarray, n: int) -> np.ndarray:
    """[R, n] float64: how often each of n images is drawn in each row of `indices` [R, k] (positions)."""
    indices = np.atleast_2d(indices)
    rows = indices.shape[0]
    counts = np.bincount((indices + (np.arange(rows) * n)[:, None]).ravel(), minlength=rows * n)
    return counts.reshape(rows, n).astype(np.float64)


def resampled_pixel_metric(metric: str, stats: PixelStats, images: Sequence, indices: np.ndarray) -> np.ndarray:
    """Pixel AUROC or PRO (`metric`) of every resample: `indices` [R, k] are positions into `images` (a
    unit's images in any order, e.g. sorted), which are mapped by name to the evaluation's order in `stats`."""
    where = {image: i for i, image in enumerate(stats.images)}
    missing = [image for image in images if image not in where]
    if missing:
        raise ValueError(
            f"{len(missing)} images are not in the evaluation's pixel statistics (e.g. {missing[0]!r}): "
            "the per-image table and pixel_stats must come from the same run_grid"
        )
    in_order = np.array([where[image] for image in images], dtype=np.int64)[np.atleast_2d(indices)]
    return stats.metric(metric, count_weights(in_order, stats.n_images))
