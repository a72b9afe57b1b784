"""The resampling core of `adlib.evidence.verdicts`: stratified bootstrap draws and a metric of every resample at once.

A resample is a row of positions into one unit's test images (with repeats); `count_weights` turns rows
into how often each image is drawn, from which image AUROC (`resampled_image_auroc`, exact) and pixel
AUROC / PRO (`resampled_pixel_metric`, from an evaluation's `adlib.evaluation.pixel_stats.PixelStats`, within its
binning error) of all resamples follow in a few matrix products. `Resampler` is the one loop over units
that `assess` and `method_intervals` share: draw each unit's resamples once, score every method on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adlib.evaluation.pixel_stats import PixelStats
from adlib.evidence.per_image import SubsetMetric, Unit


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


class Resampler:
    """Stratified resamples of units' test images and a metric of every resample, for `assess` and `method_intervals`.

    One `numpy.random.default_rng(seed)`; a unit's `n_resamples` draws (`stratified_indices` of its labels)
    are made when its (category, images) first comes up and reused after, so every method, sweep value,
    group or seed scored on the same images sees the same resamples (the comparison is paired). Seeds that
    score the same test images share their draws: their test-set uncertainty is one, and drawing them apart
    would count one test set as several (three seeds narrowed an interval by about 1 / sqrt 3). The
    metric: pixel AUROC / PRO from `pixel_stats` (by each method's result_key) when given, else a
    `subset_metrics` callable per (category, seed, method[, sweep value]) when given, else image AUROC
    from the unit's scores.
    """

    def __init__(
        self,
        metric: str,
        n_resamples: int,
        seed: int,
        pixel_stats: Mapping[str, PixelStats] | None = None,
        subset_metrics: Mapping[tuple, SubsetMetric] | None = None,
    ) -> None:
        if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
            raise ValueError(f"n_resamples must be a positive integer (default 2000); got {n_resamples!r}")
        self.metric, self.n_resamples = metric, int(n_resamples)
        self.pixel_stats = pixel_stats if metric != "image_auroc" else None
        self.subset_metrics = subset_metrics
        self._rng = np.random.default_rng(seed)
        self._drawn: dict[tuple, np.ndarray] = {}

    def metrics(self, units: Sequence[Unit], methods: Sequence[str]) -> dict[str, np.ndarray]:
        """Per method [units, 1 + R]: each unit's metric on its test set as it is, then on each resample."""
        values: dict[str, list[np.ndarray]] = {method: [] for method in methods}
        for unit in units:
            rows = self.rows(unit)
            for method in methods:
                values[method].append(self._metric(unit, method, rows))
        return {method: np.stack(found) for method, found in values.items()}

    def rows(self, unit: Unit) -> np.ndarray:
        """[1 + R, n] positions into the unit's images: all of them in order, then each resample."""
        key = (unit.key[0], unit.images)  # not the seed: seeds on the same test images share their draws
        if key not in self._drawn:
            self._drawn[key] = stratified_indices(unit.labels, self.n_resamples, self._rng)
        return np.concatenate([np.arange(unit.labels.size)[None, :], self._drawn[key]])

    def _metric(self, unit: Unit, method: str, rows: np.ndarray) -> np.ndarray:
        """[1 + R]: `method`'s metric on each row of positions `rows` into the unit's images."""
        if self.pixel_stats is not None:
            key = unit.results[method]
            if key not in self.pixel_stats:
                raise ValueError(
                    f"pixel_stats has no entry for result_key {key[:12]}... ({method!r}, {unit.key}): pass "
                    "the pixel_stats of the run_grid that made the table (grid.pixel_stats)"
                )
            return resampled_pixel_metric(self.metric, self.pixel_stats[key], unit.images, rows)
        if self.subset_metrics is None:
            return resampled_image_auroc(unit.labels, unit.scores[method], rows)
        key = (*unit.key[:2], method, *unit.key[2:])
        if key not in self.subset_metrics:
            raise ValueError(
                f"subset_metrics has no entry {key!r}: give one callable per (category, seed, method"
                f"{', sweep value' if len(unit.key) > 2 else ''})"
            )
        function, positions = self.subset_metrics[key], unit.rows[method]
        return np.array([float(function(positions[row])) for row in rows])
