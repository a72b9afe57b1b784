"""What a memory bank keeps and how well it covers normal test patches (PatchCore Fig. 5's analysis).

`bank_profile` summarises one fitted bank against one test set, from the nearest-neighbour search the
model scores with: how much of the bank is used (`bank_usage`, the paper's redundancy measure), how many
bank features come from the outer ring of patch positions (where zero padding and image borders make
patches unlike the interior; the greedy coreset, which adds the farthest feature first, tends to keep
them), how far the patches of good test images lie from their nearest bank feature (the coverage of
normal appearance: what a good image's score is made of), and on how many good images the highest patch
score lies on that ring (where the false alarms come from). `profile_of` runs it on a fitted `PatchCore`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adlib.bank.scoring import to_distance


def ring(grid: tuple[int, int]) -> np.ndarray:
    """[h * w] bool: the positions of the outermost row and column of a patch grid (row-major)."""
    h, w = grid
    mask = np.zeros((h, w), dtype=bool)
    mask[[0, -1], :] = True
    mask[:, [0, -1]] = True
    return mask.ravel()


def bank_profile(
    distances: np.ndarray,
    nearest: np.ndarray,
    labels: Sequence[int],
    grid: tuple[int, int],
    bank_size: int,
    bank_source: np.ndarray | None,
) -> dict[str, float]:
    """The profile of one bank on one test set.

    `distances`, `nearest`: [N, P] each test patch's distance to, and index of, its nearest bank
    feature (P = h * w positions of `grid`, row-major); `labels`: [N] 0 good / 1 defective;
    `bank_source`: [bank_size] the training patch each bank row copies (row i * P + p is position p
    of training image i), None for banks of built points (K-means, learned proxies).
    """
    distances, nearest = np.asarray(distances, dtype=np.float64), np.asarray(nearest)
    labels = np.asarray(labels).astype(bool)
    on_ring = ring(grid)
    if distances.shape != nearest.shape or distances.shape != (labels.size, on_ring.size):
        raise ValueError(
            f"distances {distances.shape} and nearest {nearest.shape} must both be [N, P] = "
            f"[{labels.size}, {on_ring.size}] (one row per test image, one column per grid position)"
        )
    good = distances[~labels]
    ring_share = np.nan if bank_source is None else float(on_ring[np.asarray(bank_source) % on_ring.size].mean())
    return {
        "bank_usage": len(np.unique(nearest)) / bank_size,
        "bank_on_ring": ring_share,
        "ring_positions": float(on_ring.mean()),
        "good_patch_distance": float(good.mean()) if good.size else np.nan,
        "good_peak_on_ring": float(on_ring[good.argmax(axis=1)].mean()) if good.size else np.nan,
    }


def profile_of(model, test: Sequence) -> dict[str, float]:
    """`bank_profile` of a fitted `adlib.detectors.patchcore.PatchCore` on the test samples `test`, with the model's
    own search (its distance: Euclidean, or cosine on unit vectors)."""
    embedding = model.extractor.embed(test, progress=False)
    features, squared, nearest = model._search(embedding, 1)
    n, positions, _ = features.shape
    distances = to_distance(squared, model.settings.distance).reshape(n, positions)
    source = None if model.bank_source is None else model.bank_source.cpu().numpy()
    return bank_profile(
        distances.cpu().numpy(),
        nearest.reshape(n, positions).cpu().numpy(),
        [sample.label for sample in test],
        model.grid,
        len(model.bank),
        source,
    )


def spread(profiles, column: str, by: Sequence[str] = ("sampler", "ratio")):
    """Per group of `by`: the mean of `column` over the (category, seed) units as `estimate`, and its
    smallest and largest unit as `low` / `high` (a range, not a confidence interval), for
    `adlib.companion.plotting.curves_with_intervals`."""
    grouped = profiles.groupby(list(by))[column]
    return grouped.agg(estimate="mean", low="min", high="max").reset_index()
