"""Compact per-image pixel statistics of one evaluation, from which pixel AUROC and PRO of any multiset
of its test images (a bootstrap resample) are computed for all resamples at once.

One evaluation (a method on a test set) keeps, over one fixed set of score thresholds (bin edges):
per image the histogram of its normal (defect-free) pixels' scores, and per connected defect region
(8-connected components of each mask, as `adlib.evaluation.metrics.pro`) its histogram and its image. A resample
is given as image-count weights W [R, N] (how often each image is drawn); every metric is then a few
matrix products W @ histograms and cumulative sums over bins, for all R rows together. No maps are
needed after `from_maps`.

Bin edges (`from_maps(bins=B)`): when the maps hold at most B distinct scores, every distinct score
is an edge, and both metrics equal `adlib.evaluation.metrics`' exactly (up to float rounding). Otherwise
B/2 edges are quantiles of the normal pixels' scores and B/2 quantiles of the defect pixels' scores
(nearest rank: actual scores), merged, so that a bin holds at most about 2 / B of the normal and of
the defect pixels (more only where many pixels tie). For the full test set, pixel AUROC's error bound
(below) is then at most about 1 / B and PRO's about max dFPR / (2 fpr_limit). B = 2000 by default
(the bounds and actual errors on the benchmark's maps, and the entries' size: benchmarks/NOTES.md). The
result store keeps uint16 normal histograms and the region histograms' non-zero entries.

What is exact and what is not. A bin is treated like a group of tied scores: its pixels cross a
threshold together, and the ROC / PRO curve runs straight between the points at consecutive edges.
Those points are exact (the counts at or above an edge are the histograms' sums), so the binned
curve is the exact curve with each bin's stretch replaced by a straight line. The exact curve
inside a bin is monotone between the same two end points, so per bin the area differs by at most
half the bin's rectangle, dFPR x dY / 2 (the whole rectangle for the bin cut at `fpr_limit`).
`binning_error(metric, W)` returns that bound for every resample: pixel AUROC is within
sum_b dFPR_b dTPR_b / 2 (the within-bin defect-normal pairs counted one half instead of their true
order), PRO within sum over the bins below fpr_limit of dFPR_b dPRO_b / (2 fpr_limit) (plus the cut
bin's half rectangle).

Definitions mirrored from `adlib.evaluation.metrics` (as `adlib.evaluation.evaluate.evaluate` calls them):
- pixel AUROC over all pixels of all images (`anomalous_only=False`), ties one half;
- PRO with `anomalous_only=True`: the normal pixels (FPR) only from images that have a defect;
  PRO(t) = mean over all regions of all (drawn) images of the region's share of pixels >= t (an image
  drawn k times contributes its regions k times); curve from (0, 0) to (1, 1), cut by linear
  interpolation at FPR = fpr_limit, trapezoid area / fpr_limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from adlib.evaluation.metrics import _pixel_inputs, host_array  # the metrics' own input checks and messages

DEFAULT_BINS = 2000
PIXEL_METRICS = ("pixel_auroc", "pro")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def bin_edges(normal_scores: np.ndarray, defect_scores: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Ascending thresholds: every distinct score if there are at most `bins`, else bins // 2 nearest-rank
    quantiles of each of the normal and the defect scores, merged (module docstring)."""
    ordered = [np.sort(np.ravel(values)) for values in (normal_scores, defect_scores)]
    distinct = [values[np.append(True, values[1:] != values[:-1])] for values in ordered]
    if sum(values.size for values in distinct) <= bins:
        return np.union1d(*distinct).astype(np.float64)
    picked = [values[np.round(np.linspace(0, values.size - 1, bins // 2)).astype(np.int64)] for values in ordered]
    return np.unique(np.concatenate(picked)).astype(np.float64)


def _histograms(values: np.ndarray, groups: np.ndarray, n_groups: int, edges: np.ndarray) -> np.ndarray:
    """[n_groups, len(edges) + 1] counts: bin j holds edges[j-1] <= value < edges[j] (bin 0: below all).

    Each group's values are sorted and the edges looked up in them (E lookups per group, not a lookup per
    value: numpy's vectorised sort is several times faster than a binary search for each of 12 M pixels);
    the count below edge j is the insertion point of edges[j] on the left."""
    if values.dtype != np.float64 and not np.array_equal(edges.astype(values.dtype).astype(np.float64), edges):
        values = values.astype(np.float64)  # edges that are not all values of this dtype: compare in float64
    keys = edges.astype(values.dtype)
    groups = groups.astype(np.int64)
    if np.any(groups[1:] < groups[:-1]):  # the normal pixels come grouped by image; a defect's pixels do not
        order = np.argsort(groups, kind="stable")
        values, groups = values[order], groups[order]
    bounds = np.searchsorted(groups, np.arange(n_groups + 1), side="left")
    counts = np.empty((n_groups, edges.size + 1), dtype=np.int32)
    for group in range(n_groups):
        ordered = np.sort(values[bounds[group] : bounds[group + 1]])
        below = np.searchsorted(ordered, keys, side="left")
        counts[group] = np.diff(below, prepend=0, append=ordered.size)
    return counts


def _as_weights(weights: object, n_images: int) -> np.ndarray:
    """Validated image-count weights as float64 [R, N]."""
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != n_images:
        raise ValueError(
            f"weights must be [R, {n_images}] (per resample, how often each of the evaluation's {n_images} test "
            f"images is drawn, in the evaluation's order); got shape {np.shape(weights)}"
        )
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("weights must be finite counts >= 0 (how often each image is drawn)")
    return array


@dataclass(frozen=True, eq=False)
class PixelStats:
    """One evaluation's pixel histograms over fixed thresholds (build with `from_maps`).

    `edges` [E] ascending thresholds (bin j holds edges[j-1] <= score < edges[j], E + 1 bins);
    `normal` [N, E + 1] per image, its normal pixels' counts; `regions` [K, E + 1] per defect region,
    its pixels' counts; `region_image` [K] the region's image; `images` the images' identities in the
    evaluation's order (paths, or 0..N-1).
    """

    edges: np.ndarray
    normal: np.ndarray
    regions: np.ndarray
    region_image: np.ndarray
    images: tuple

    def __post_init__(self) -> None:
        n, bins = len(self.images), self.edges.size + 1
        if self.normal.shape != (n, bins) or self.regions.ndim != 2 or self.regions.shape[1] != bins:
            raise ValueError(
                f"PixelStats: normal {self.normal.shape} and regions {self.regions.shape} must have "
                f"{bins} bins ({self.edges.size} edges) and normal one row per image ({n} images)"
            )
        if self.region_image.shape != (self.regions.shape[0],) or (
            self.region_image.size and not (0 <= self.region_image.min() and self.region_image.max() < n)
        ):
            raise ValueError("PixelStats: region_image needs one image index in [0, N) per region")
        if self.regions.shape[0] == 0:
            raise ValueError("PixelStats needs defect pixels, but every mask is empty: include anomalous images")

    @classmethod
    def from_maps(
        cls, masks: object, maps: object, images: Sequence | None = None, bins: int = DEFAULT_BINS
    ) -> PixelStats:
        """The statistics of masks (bool [N, H, W]) and anomaly maps ([N, H, W]), images in the
        evaluation's test order; `images` names them (default 0..N-1)."""
        masks_array, maps_array = _pixel_inputs(masks, maps)
        n = masks_array.shape[0]
        if images is None:
            images = tuple(range(n))
        elif len(images) != n:
            raise ValueError(f"images names {len(images)} images but masks and maps hold {n}: pass one name per map")
        if not isinstance(bins, (int, np.integer)) or bins < 2:
            raise ValueError(f"bins must be an integer >= 2 (default {DEFAULT_BINS}); got {bins!r}")
        if not masks_array.any():
            raise ValueError("PixelStats needs defect pixels, but every mask is empty: include anomalous images")
        if masks_array.all():
            raise ValueError("PixelStats needs normal pixels, but every mask covers its whole image")
        image_of = np.broadcast_to(np.arange(n)[:, None, None], masks_array.shape)
        labelled = np.zeros(masks_array.shape, dtype=np.int32)
        region_image, offset = [], 0
        for i, mask in enumerate(masks_array):
            if mask.any():
                ids, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
                labelled[i] = np.where(mask, ids + offset, 0)
                region_image += [i] * count
                offset += count
        normal_scores, defect_scores = maps_array[~masks_array], maps_array[masks_array]
        edges = bin_edges(normal_scores, defect_scores, bins)
        normal = _histograms(normal_scores, image_of[~masks_array], n, edges)
        regions = _histograms(defect_scores, labelled[masks_array] - 1, offset, edges)
        return cls(edges, normal, regions, np.asarray(region_image, dtype=np.int64), tuple(images))

    @property
    def n_images(self) -> int:
        return len(self.images)

    # ----------------------------------------------------------------- curves per resample
    # Curves are read with the threshold falling: column j is "score >= edges[j - 1]" (j = E + 1 ... 0),
    # kept as arrays over j ascending, so x (a share at or above the threshold) falls along axis 1.

    def _pro_counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per resample and bin, the normal pixels of defective images and the region-weighted defect pixels."""
        defective = np.zeros(self.n_images, dtype=bool)
        defective[self.region_image] = True
        sizes = self.regions.sum(axis=1).astype(np.float64)
        region_weights = weights[:, self.region_image] / sizes  # a drawn region counts once per draw
        return weights[:, defective] @ self.normal[defective], region_weights @ self.regions

    def pixel_auroc(self, weights: object) -> np.ndarray:
        """[R] pixel AUROC of each resample (rows of image-count weights [R, N]); ties in a bin count one half:
        sum over bins of defect(b) * (normal below b + normal(b) / 2) / (defect total * normal total)."""
        weights = _as_weights(weights, self.n_images)
        values = []
        for rows in _blocks(weights):
            normal, defect = rows @ self.normal, rows[:, self.region_image] @ self.regions
            below = np.cumsum(normal, axis=1) - normal / 2
            totals = _totals(normal) * _totals(defect)
            values.append((defect * below).sum(axis=1) / totals)
        return np.concatenate(values)

    def pro(self, weights: object, fpr_limit: float = 0.3) -> np.ndarray:
        """[R] PRO up to `fpr_limit` of each resample, as `adlib.evaluation.metrics.pro(..., anomalous_only=True)`."""
        _check_limit(fpr_limit)
        weights = _as_weights(weights, self.n_images)
        values = []
        for rows in _blocks(weights):
            fpr, overlap = (_at_or_above(counts) for counts in self._pro_counts(rows))
            values.append(_area_below(fpr, overlap, fpr_limit) / fpr_limit)
        return np.concatenate(values)

    def metric(self, metric: str, weights: object) -> np.ndarray:
        """`pixel_auroc(weights)` or `pro(weights)` by name."""
        if metric == "pixel_auroc":
            return self.pixel_auroc(weights)
        if metric == "pro":
            return self.pro(weights)
        raise ValueError(f"PixelStats computes {list(PIXEL_METRICS)}; got {metric!r}")

    def binning_error(self, metric: str, weights: object, fpr_limit: float = 0.3) -> np.ndarray:
        """[R] a bound on |binned - exact| of `metric` for each resample (module docstring)."""
        weights = _as_weights(weights, self.n_images)
        if metric == "pixel_auroc":
            shares = [
                counts / _totals(counts)[:, None]
                for counts in (weights @ self.normal, weights[:, self.region_image] @ self.regions)
            ]
            return (shares[0] * shares[1]).sum(axis=1) / 2
        if metric != "pro":
            raise ValueError(f"PixelStats computes {list(PIXEL_METRICS)}; got {metric!r}")
        _check_limit(fpr_limit)
        fpr, overlap = (_at_or_above(counts) for counts in self._pro_counts(weights))
        rectangles = (fpr[:, :-1] - fpr[:, 1:]) * (overlap[:, :-1] - overlap[:, 1:])
        below = fpr[:, :-1] <= fpr_limit  # the bin's whole stretch lies below the limit
        cut = (fpr[:, 1:] < fpr_limit) & ~below
        return ((rectangles * below).sum(axis=1) / 2 + (rectangles * cut).sum(axis=1)) / fpr_limit

    # ----------------------------------------------------------------- storage

    def to_dict(self) -> dict[str, object]:
        """Plain arrays and a list, for the result store: counts in the narrowest integer type that holds
        them, region histograms as their non-zero entries (a region's pixels fill few bins)."""
        region_rows, region_bins = np.nonzero(self.regions)
        return {
            "edges": self.edges,
            "normal": _narrow(self.normal),
            "region_rows": region_rows.astype(np.int32),
            "region_bins": region_bins.astype(np.int32),
            "region_counts": _narrow(self.regions[region_rows, region_bins]),
            "region_image": self.region_image,
            "images": list(self.images),
        }

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> PixelStats:
        """The statistics `to_dict` gave (arrays may be numpy arrays or torch tensors)."""
        array = {name: host_array(values[name]) for name in values if name != "images"}
        regions = np.zeros((array["region_image"].size, array["edges"].size + 1), dtype=np.int32)
        regions[array["region_rows"], array["region_bins"]] = array["region_counts"]
        return cls(
            array["edges"].astype(np.float64),
            array["normal"].astype(np.int32),
            regions,
            array["region_image"].astype(np.int64),
            tuple(values["images"]),
        )


def _narrow(counts: np.ndarray) -> np.ndarray:
    """Non-negative counts as uint16 when they fit (a 224 x 224 image has 50 176 pixels), else int32."""
    return counts.astype(np.uint16 if counts.size == 0 or counts.max() <= np.iinfo(np.uint16).max else np.int32)


def _blocks(weights: np.ndarray, rows: int = 256) -> list[np.ndarray]:
    """The weights in blocks of rows, so that the [rows, bins] temporaries stay small."""
    return [weights[start : start + rows] for start in range(0, weights.shape[0], rows)]


def _totals(counts: np.ndarray) -> np.ndarray:
    """[R] row sums of per-bin counts, which must be positive."""
    totals = counts.sum(axis=1)
    if (totals <= 0).any():
        raise ValueError(
            "a resample holds no pixels of one kind (normal or defect): every row of weights "
            "must draw at least one defective image (and the images must have normal pixels)"
        )
    return totals


def _at_or_above(counts: np.ndarray) -> np.ndarray:
    """[R, bins] counts -> [R, bins + 1] shares of the counts in bins >= j, for j = 0 ... bins: 1 ... 0."""
    below = np.cumsum(counts, axis=1) / _totals(counts)[:, None]
    return np.concatenate([np.ones((counts.shape[0], 1)), 1.0 - below], axis=1)


def _area_below(x: np.ndarray, y: np.ndarray, x_max: float) -> np.ndarray:
    """Per row, the trapezoidal area under the polyline through (x, y) (x falling along axis 1) for
    x <= x_max, cut by linear interpolation at x_max, as `adlib.evaluation.metrics._area_up_to` (all rows at once;
    only the columns where some row is below x_max are computed)."""
    first = int(np.argmax(x.min(axis=0) < x_max)) if (x.min(axis=0) < x_max).any() else x.shape[1]
    start = max(first - 1, 0)  # the segment that crosses x_max in some row starts here
    x, y = x[:, start:], y[:, start:]
    high_x, low_x, high_y, low_y = x[:, :-1], x[:, 1:], y[:, :-1], y[:, 1:]
    width = high_x - low_x
    slope = np.divide(high_y - low_y, width, out=np.zeros_like(width), where=width > 0)
    cut_x = np.minimum(high_x, x_max)
    cut_y = low_y + slope * (cut_x - low_x)
    return (np.maximum(cut_x - low_x, 0.0) * (low_y + cut_y) / 2).sum(axis=1)


def _check_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit={fpr_limit}: choose a false-positive rate in (0, 1], e.g. 0.3")
