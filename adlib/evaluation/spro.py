"""sPRO, MVTec LOCO AD's saturated per-region overlap, and the area under its FPR-sPRO curve (AU-sPRO).

Why: LOCO's logical anomalies (a missing part, an extra one) have no natural pixel extent: a detector
that lights up part of the place where a part is missing has found it. sPRO therefore counts a defect
as fully found once a set number of its pixels (its *saturation area*) is above the threshold.

The definition, as read in MVTec's public evaluation code for LOCO (2022, MVTec Software GmbH):
``evaluate_experiment.py``, ``src/metrics.py`` and ``src/aggregation.py`` in the copy vendored by the
M-3LAB/open-iad repository under ``metric/mvtec_loco/``; ``src/image.py`` in an unmodified copy the code
index held without naming its repository (its twin in PlatDrake2875/autovi_evaluation_code, MVTec's AutoVI
evaluation code, agrees on everything used here); ``src/util.py`` (the trapezoid) in that AutoVI copy:

* Regions. An anomalous image's ground truth is a folder of PNGs, one per defect ("channel"); each
  holds 0 and one defect id (its ``pixel_value``), looked up in the category's ``defects_config.json``
  for the defect's name and saturation threshold (a float in (0, 1] when relative, an integer number of
  pixels otherwise). Regions are not split into connected components. Good images have no ground truth.
* Saturation area of a region: ``floor(threshold * area)`` when ``relative_saturation`` is true (a
  fraction of the region's own area), else ``min(threshold, area)`` (an absolute pixel count).
  (`adlib.data.loco.saturation_area`; regions are read with `adlib.data.loco.read_regions`.)
* At a threshold t a pixel is positive when its score is > t. sPRO of a region =
  ``min(TP / saturation_area, 1)`` with TP its positive pixels; the curve's y is the mean of sPRO over
  all regions of all anomalous images in the evaluated set (each defect counts once, not each image).
* FPR = false-positive pixels / all defect-free pixels, summed over every image in the set: the good
  test images *and* the defect-free pixels of the anomalous images (a pixel inside any region of its
  image is never a negative).
* Sets: AU-sPRO is reported per test folder, each with the good images added (``logical_anomalies``
  + ``good``, ``structural_anomalies`` + ``good``), and their mean. Pass the maps and regions of such a set.
  (The code also has a per-defect-kind variant: the images holding that kind plus the good ones for the
  FPR, only that kind's regions for sPRO; filter the regions the same way for it.)
* Area: trapezoid rule on the (FPR, sPRO) points in order of decreasing threshold, cut at ``max_fpr``
  with sPRO linearly interpolated there, divided by ``max_fpr`` (so 1.0 is perfect). The code computes
  it for ``max_fpr`` in (0.01, 0.05, 0.1, 0.3, 1.0); the default 0.05 here is the limit LOCO's paper
  reports, a choice the code itself does not show.
* Thresholds: the code starts from 50 thresholds (max score + eps, 48 equal-count quantiles of the
  scores, an unseeded random subsample of them beyond 10 million scores, min score - eps) and inserts
  thresholds between neighbouring curve points more than 0.01 apart (Euclidean, in (sPRO, FPR)), for at
  most 10 rounds. Here the curve is evaluated at *every* distinct score: the exact curve that this
  refinement approaches, so values agree with the official tool to about its resolution, not to the
  last digit.
* Image level (for completeness; not computed here): the image score is the map's maximum, and the
  AUROC is taken for good vs logical and good vs structural images separately.
* Missing parts: nothing special in the code. The dataset's annotation marks the place where the
  missing part should be (LOCO's paper; not visible in the code), and the saturation threshold says how
  much of it must be found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adlib.data.loco import Region

DEFAULT_MAX_FPR = 0.05


@dataclass(frozen=True)
class SproCurve:
    """Points of the FPR-sPRO curve, from (0, 0) at an infinite threshold down to `thresholds[-1]`."""

    fpr: np.ndarray
    spro: np.ndarray
    thresholds: np.ndarray  # the threshold of each point (+inf first); a pixel is positive when score >= it


def _check(maps: Sequence[np.ndarray], regions: Sequence[Sequence[Region]]) -> list[np.ndarray]:
    """The maps as float64 arrays, after checking them against their regions (errors say what to fix)."""
    if len(maps) != len(regions):
        raise ValueError(
            f"got {len(maps)} anomaly maps but {len(regions)} region lists: give one (possibly empty) "
            "list of regions per map, in the same order"
        )
    arrays = []
    for i, (score, image_regions) in enumerate(zip(maps, regions)):
        score = np.asarray(score, dtype=np.float64)
        if score.ndim != 2:
            raise ValueError(f"anomaly map {i} has shape {score.shape}: give one 2-D map per image")
        if not np.isfinite(score).all():
            raise ValueError(f"anomaly map {i} holds NaN or infinite scores: fix the detector's output first")
        for region in image_regions:
            if not isinstance(region, Region):
                raise TypeError(f"the regions of image {i} must be adlib.data.loco.Region, got {type(region)}")
            if region.mask.shape != score.shape:
                raise ValueError(
                    f"a region of image {i} ({region.defect!r}) has shape {region.mask.shape} but its map "
                    f"{score.shape}: read regions with the maps' Preprocessing"
                )
        arrays.append(score)
    if not any(len(r) for r in regions):
        raise ValueError("no defect region in these images (all good?): sPRO is undefined without defects")
    return arrays


def spro_curve(maps: Sequence[np.ndarray], regions: Sequence[Sequence[Region]], max_fpr: float = 1.0) -> SproCurve:
    """The exact FPR-sPRO curve over a set of images (module docstring), one point per distinct score,
    stopped at the first point with FPR >= max_fpr (all points for 1.0)."""
    arrays = _check(maps, regions)
    defect_free = [
        ~np.logical_or.reduce([r.mask for r in image_regions] + [np.zeros(a.shape, bool)])
        for a, image_regions in zip(arrays, regions)
    ]
    negatives = np.sort(np.concatenate([a[free] for a, free in zip(arrays, defect_free)]))
    if negatives.size == 0:
        raise ValueError("every pixel of these images is a defect: the FPR is undefined without defect-free pixels")
    distinct = np.unique(np.concatenate([a.ravel() for a in arrays]))[::-1]
    fp = negatives.size - np.searchsorted(negatives, distinct, side="left")
    fpr = fp / negatives.size
    if max_fpr < 1.0:
        stop = int(np.searchsorted(fpr, max_fpr, side="left"))  # fpr is non-decreasing
        distinct, fpr = distinct[: stop + 1], fpr[: stop + 1]
    total = np.zeros(distinct.size)
    count = 0
    for a, image_regions in zip(arrays, regions):
        for region in image_regions:
            inside = np.sort(a[region.mask])
            tp = inside.size - np.searchsorted(inside, distinct, side="left")
            total += np.minimum(tp / region.saturation, 1.0)
            count += 1
    return SproCurve(
        fpr=np.concatenate([[0.0], fpr]),
        spro=np.concatenate([[0.0], total / count]),
        thresholds=np.concatenate([[np.inf], distinct]),
    )


def area_to(fpr: np.ndarray, y: np.ndarray, max_fpr: float) -> float:
    """Trapezoid area under (fpr, y) from fpr = 0 to max_fpr, y interpolated linearly at max_fpr, divided
    by max_fpr. `fpr` must be non-decreasing, start at 0 and reach max_fpr."""
    fpr, y = np.asarray(fpr, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if fpr[0] != 0 or fpr[-1] < max_fpr or np.any(np.diff(fpr) < 0):
        raise ValueError("area_to needs FPRs that start at 0, never decrease and reach max_fpr")
    keep = fpr <= max_fpr
    x, v = fpr[keep], y[keep]
    area = float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(x)))
    if x[-1] < max_fpr:  # the last segment, cut at max_fpr
        nxt = keep.sum()
        y_cut = v[-1] + (y[nxt] - v[-1]) * (max_fpr - x[-1]) / (fpr[nxt] - x[-1])
        area += 0.5 * (v[-1] + y_cut) * (max_fpr - x[-1])
    return area / max_fpr


def _check_max_fpr(max_fpr: float) -> float:
    if isinstance(max_fpr, bool) or not isinstance(max_fpr, (int, float)) or not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr={max_fpr!r}: the integration limit must be in (0, 1] (LOCO reports 0.05)")
    return float(max_fpr)


def au_spro(maps: Sequence[np.ndarray], regions: Sequence[Sequence[Region]], max_fpr: float = DEFAULT_MAX_FPR) -> float:
    """AU-sPRO of a set of images up to FPR = max_fpr, normalised to [0, 1] (module docstring).

    maps: one 2-D anomaly map per image; regions: per image its defects (`adlib.data.loco.read_regions`),
    () for a good image. For LOCO's numbers, pass the good test images with each anomaly folder."""
    limit = _check_max_fpr(max_fpr)
    curve = spro_curve(maps, regions, max_fpr=limit)
    return area_to(curve.fpr, curve.spro, limit)


@dataclass(frozen=True)
class SproCounts:
    """Per image, at fixed thresholds, the sums AU-sPRO is made of, so that any multiset of the images (a
    bootstrap resample, as counts per image) gets its AU-sPRO from weighted sums instead of a new curve.

    At threshold t (a pixel is positive when its score >= t, as `spro_curve`): `false_positives[i, t]` the
    defect-free positive pixels of image i, `overlap[i, t]` the sum over image i's regions of
    min(TP / saturation, 1); `negatives[i]` its defect-free pixels, `regions[i]` its number of regions."""

    thresholds: np.ndarray  # [T], decreasing, +inf first, the smallest score last (FPR 1)
    false_positives: np.ndarray  # [N, T]
    overlap: np.ndarray  # [N, T]
    negatives: np.ndarray  # [N]
    regions: np.ndarray  # [N]

    def au_spro(self, weights: np.ndarray, max_fpr: float = DEFAULT_MAX_FPR) -> np.ndarray:
        """AU-sPRO for each row of `weights` ([R, N] or [N]: how often each image is in the set), up to max_fpr."""
        limit = _check_max_fpr(max_fpr)
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if w.shape[1] != self.negatives.size:
            raise ValueError(f"weights give {w.shape[1]} images, the counts hold {self.negatives.size}")
        n_regions, n_negatives = w @ self.regions, w @ self.negatives
        if np.any(n_regions == 0) or np.any(n_negatives == 0):
            raise ValueError("a weighted set without defect regions or defect-free pixels: AU-sPRO is undefined")
        fpr = (w @ self.false_positives) / n_negatives[:, None]
        spro = (w @ self.overlap) / n_regions[:, None]
        return np.array([area_to(f, s, limit) for f, s in zip(fpr, spro)])


def spro_counts(
    maps: Sequence[np.ndarray],
    regions: Sequence[Sequence[Region]],
    max_fpr: float = DEFAULT_MAX_FPR,
    n_thresholds: int = 2000,
) -> SproCounts:
    """`SproCounts` of a set of images. Thresholds: every distinct score when there are at most `n_thresholds`
    (then `SproCounts.au_spro` of all-ones weights equals `au_spro` exactly); otherwise quantiles of the
    defect-free scores spaced evenly in FPR from 0 to 2 x max_fpr (a resample's FPR moves a little), the
    largest and the smallest score, so the curve up to max_fpr is sampled every ~2 x max_fpr / n_thresholds."""
    limit = _check_max_fpr(max_fpr)
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, int) or n_thresholds < 3:
        raise ValueError(f"n_thresholds={n_thresholds!r}: give an integer >= 3 (default 2000)")
    arrays = _check(maps, regions)
    free = [~np.logical_or.reduce([r.mask for r in rs] + [np.zeros(a.shape, bool)]) for a, rs in zip(arrays, regions)]
    distinct = np.unique(np.concatenate([a.ravel() for a in arrays]))
    if distinct.size <= n_thresholds:
        thresholds = distinct[::-1]
    else:
        negatives = np.concatenate([a[f] for a, f in zip(arrays, free)])
        tail = np.linspace(0.0, min(1.0, 2 * limit), n_thresholds - 2)
        inner = np.quantile(negatives, 1.0 - tail) if negatives.size else np.empty(0)
        thresholds = np.unique(np.concatenate([inner, distinct[[0, -1]]]))[::-1]
    thresholds = np.concatenate([[np.inf], thresholds])

    def above(values: np.ndarray) -> np.ndarray:
        ordered = np.sort(values)
        return ordered.size - np.searchsorted(ordered, thresholds, side="left")

    false_positives = np.stack([above(a[f]) for a, f in zip(arrays, free)]).astype(np.float64)
    overlap = np.zeros((len(arrays), thresholds.size))
    for i, (a, image_regions) in enumerate(zip(arrays, regions)):
        for region in image_regions:
            overlap[i] += np.minimum(above(a[region.mask]) / region.saturation, 1.0)
    return SproCounts(
        thresholds=thresholds,
        false_positives=false_positives,
        overlap=overlap,
        negatives=np.array([f.sum() for f in free], dtype=np.float64),
        regions=np.array([len(r) for r in regions], dtype=np.float64),
    )
