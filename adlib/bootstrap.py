"""The resampling core of `adlib.evidence`: stratified bootstrap draws and image AUROC of every resample at once."""

from __future__ import annotations

import numpy as np


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
    indices = np.atleast_2d(indices)
    n_resamples, n = indices.shape[0], labels.size
    offsets = (np.arange(n_resamples) * n)[:, None]
    counts = np.bincount((indices + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)
    counts = counts.astype(np.float64)
    defective, good = scores[labels], scores[~labels]
    wins = (defective[:, None] > good[None, :]) + 0.5 * (defective[:, None] == good[None, :])
    c_defective, c_good = counts[:, labels], counts[:, ~labels]
    pairs = c_defective.sum(axis=1) * c_good.sum(axis=1)
    return ((c_defective @ wins) * c_good).sum(axis=1) / pairs
