"""The papers' evaluation metrics: image AUROC, pixel AUROC, PRO (AUPRO up to FPR 0.3) and the
F1-optimal image threshold with its misclassification counts.

Everything is exact and sort-based (no per-threshold loops, no sampled thresholds), so the numbers do
not depend on a grid of thresholds; tests/test_metrics.py checks them against scikit-learn and against
slow, obvious loops. Inputs are numpy arrays (torch tensors are copied to the host first); outputs are
Python floats or a small frozen dataclass.

Ties follow the ROC convention everywhere: pixels or images with equal scores cross a threshold
together, and a curve goes in a straight line between the points on either side of such a group
(so a tie between a normal and an anomalous sample counts one half in an AUROC).

Memory and speed: the pixel metrics keep the maps' dtype (float32 maps halve the memory of float64
ones and sort faster) and copy only the normal pixels' scores, sorted in place (measured time and
memory on MVTec AD-size inputs: benchmarks/NOTES.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# --------------------------------------------------------------------------- input checks


def host_array(values: object) -> np.ndarray:
    """A numpy view of `values`; torch tensors are detached and copied to the host (half and bfloat16
    as float32: numpy has no bfloat16, and sorts float16 slowly). The one conversion every metric
    module uses, so that tensors and arrays score alike everywhere."""
    if type(values).__module__.startswith("torch"):
        tensor = values.detach().cpu()  # type: ignore[attr-defined]
        if str(tensor.dtype) in ("torch.bfloat16", "torch.float16"):
            tensor = tensor.float()
        values = tensor.numpy()
    return np.asarray(values)


def _as_array(values: object, name: str) -> np.ndarray:
    """`host_array(values)`, which must hold real numbers."""
    array = host_array(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {array.dtype}")
    return array


def _check_scores(scores: np.ndarray, name: str) -> None:
    """Reject NaN scores: they cannot be ranked, and silently dropping them would flatter a method."""
    if scores.dtype.kind == "f":
        nan = np.isnan(scores)
        if nan.any():
            first = tuple(int(i) for i in np.unravel_index(int(np.argmax(nan)), scores.shape))
            raise ValueError(
                f"{name} contains {int(nan.sum())} NaN value(s) (first at index {first}); "
                "fix or drop them before computing the metric"
            )


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a bool array, if it holds only 0/1 (or False/True)."""
    if values.dtype == bool:
        return values
    if not ((values == 0) | (values == 1)).all():
        found = np.unique(values)
        shown = ", ".join(str(v) for v in found[:6]) + (", ..." if found.size > 6 else "")
        raise ValueError(
            f"{name} must be binary (0 = normal, 1 = anomalous); got values {{{shown}}}: "
            "threshold them first, e.g. (x > 0.5)"
        )
    return values.astype(bool)


def _image_inputs(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D (bool labels, scores) of equal length."""
    labels_array = _as_array(labels, "labels")
    scores_array = _as_array(scores, "scores")
    if labels_array.ndim != 1 or scores_array.ndim != 1:
        raise ValueError(
            f"labels and scores must be 1-D (one value per image); got shapes {labels_array.shape} and "
            f"{scores_array.shape}"
        )
    if labels_array.shape != scores_array.shape:
        raise ValueError(
            f"labels and scores must have the same length; got {labels_array.size} labels and "
            f"{scores_array.size} scores"
        )
    if labels_array.size == 0:
        raise ValueError("labels and scores are empty: pass at least one image")
    _check_scores(scores_array, "scores")
    return _binary(labels_array, "labels"), scores_array


def _pixel_inputs(masks: object, maps: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated (bool masks, maps) of equal shape [N, H, W]; no copy of the maps."""
    masks_array = _as_array(masks, "masks")
    maps_array = _as_array(maps, "maps")
    if masks_array.ndim != 3:
        raise ValueError(
            f"masks must be [N, H, W] (one ground-truth mask per image); got shape {masks_array.shape}: "
            "add or squeeze axes so that there is exactly one image axis"
        )
    if maps_array.shape != masks_array.shape:
        raise ValueError(
            f"maps and masks must have the same shape; got maps {maps_array.shape} and masks "
            f"{masks_array.shape}: resize the anomaly maps to the mask size"
        )
    if masks_array.size == 0:
        raise ValueError(f"masks and maps are empty (shape {masks_array.shape}): pass at least one pixel")
    _check_scores(maps_array, "maps")
    return _binary(masks_array, "masks"), maps_array


def _split_pixels(
    masks: np.ndarray, maps: np.ndarray, anomalous_only: bool, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(defect scores in C order, normal scores sorted ascending), copying only the selected scores.

    `anomalous_only` drops the normal pixels of defect-free images (defect pixels are all in
    defective images anyway), which is the same as dropping those images.
    """
    defect_scores = maps[masks]
    if defect_scores.size == 0:
        raise ValueError(f"{metric} needs defect pixels, but every mask is empty: include anomalous images")
    normal = ~masks
    if anomalous_only:
        normal &= masks.any(axis=(1, 2))[:, None, None]
    normal_scores = maps[normal]
    del normal
    if normal_scores.size == 0:
        raise ValueError(f"{metric} needs normal pixels, but every mask covers its whole image")
    normal_scores.sort()
    return defect_scores, normal_scores


# --------------------------------------------------------------------------- AUROC


def _auroc(positives: np.ndarray, negatives_sorted: np.ndarray) -> float:
    """P(positive > negative) + P(positive == negative) / 2, i.e. the trapezoidal ROC area with ties.

    Counted exactly with integers: for each distinct positive score, how many negatives lie below it
    and how many tie with it (binary searches in the sorted negatives).
    """
    values, counts = np.unique(positives, return_counts=True)
    below = np.searchsorted(negatives_sorted, values, side="left")
    not_above = np.searchsorted(negatives_sorted, values, side="right")
    twice_wins = int(np.dot(counts.astype(np.int64), (below + not_above).astype(np.int64)))
    return twice_wins / (2 * positives.size * negatives_sorted.size)


def image_auroc(labels: object, scores: object) -> float:
    """Area under the ROC curve of image scores (label 1 = anomalous, higher score = more anomalous).

    Ties count one half, as in `sklearn.metrics.roc_auc_score`.
    """
    labels_array, scores_array = _image_inputs(labels, scores)
    n_anomalous = int(labels_array.sum())
    if n_anomalous in (0, labels_array.size):
        raise ValueError(f"image_auroc needs normal and anomalous images; got only label {int(n_anomalous > 0)}")
    negatives = np.sort(scores_array[~labels_array])
    return _auroc(scores_array[labels_array], negatives)


def pixel_auroc(masks: object, maps: object, anomalous_only: bool = False) -> float:
    """AUROC over all pixels of all test images (masks bool [N, H, W], maps [N, H, W]).

    `anomalous_only=True` keeps only images whose mask has a defect (their defect-free pixels still
    count as normal). Ties count one half.
    """
    masks_array, maps_array = _pixel_inputs(masks, maps)
    defect_scores, normal_sorted = _split_pixels(masks_array, maps_array, anomalous_only, "pixel_auroc")
    return _auroc(defect_scores, normal_sorted)


# --------------------------------------------------------------------------- PRO

_EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def _region_weights(masks: np.ndarray) -> np.ndarray:
    """Per defect pixel (in the C order of masks[masks]): 1 / (|its region| * number of regions).

    Regions are the 8-connected components of each image's mask, so summing the weights of the
    defect pixels at or above a threshold gives the mean per-region overlap at that threshold.
    """
    region_ids = []
    n_regions = 0
    for mask in masks:
        if mask.any():
            labelled, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
            region_ids.append(labelled[mask] - 1 + n_regions)
            n_regions += count
    ids = np.concatenate(region_ids)
    sizes = np.bincount(ids)
    return 1.0 / (sizes[ids].astype(np.float64) * n_regions)


def _pro_curve(
    defect_scores: np.ndarray, weights: np.ndarray, normal_sorted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, PRO) vertices over all distinct thresholds, FPR non-decreasing, from (0, 0) to (1, 1).

    Lowering the threshold through one distinct defect score u first adds the normal pixels above u
    (FPR grows, PRO stays: a flat segment) and then all pixels scoring exactly u at once (a straight
    segment). So two vertices per distinct defect score describe the whole piecewise-linear curve:
    (FPR(> u), PRO(> u)) and (FPR(>= u), PRO(>= u)).
    """
    order = np.argsort(defect_scores, kind="stable")[::-1]  # descending scores
    scores_desc = defect_scores[order]
    pro_at_or_above = np.cumsum(weights[order])
    last_of_group = np.flatnonzero(np.append(scores_desc[1:] != scores_desc[:-1], True))
    values = scores_desc[last_of_group]
    pro_ge = pro_at_or_above[last_of_group]
    pro_gt = np.concatenate(([0.0], pro_ge[:-1]))
    n_normal = normal_sorted.size
    fpr_gt = (n_normal - np.searchsorted(normal_sorted, values, side="right")) / n_normal
    fpr_ge = (n_normal - np.searchsorted(normal_sorted, values, side="left")) / n_normal
    fpr = np.concatenate(([0.0], np.stack((fpr_gt, fpr_ge), axis=1).ravel(), [1.0]))
    pro_values = np.concatenate(([0.0], np.stack((pro_gt, pro_ge), axis=1).ravel(), [1.0]))
    return fpr, pro_values


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under the polyline (x non-decreasing) for x in [x[0], x_max], cut by linear
    interpolation at exactly x = x_max."""
    inside = int(np.searchsorted(x, x_max, side="right"))  # x[:inside] <= x_max < x[inside]
    area = float(np.sum(np.diff(x[:inside]) * (y[1:inside] + y[: inside - 1]) / 2))
    if inside < x.size:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_cut = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += (x_max - x0) * (y0 + y_cut) / 2
    return area


def pro(masks: object, maps: object, fpr_limit: float = 0.3, anomalous_only: bool = False) -> float:
    """Normalised area under the per-region-overlap curve up to `fpr_limit` (Bergmann et al., MVTec AD).

    Regions are the 8-connected components of each ground-truth mask. For a threshold t,
    PRO(t) = mean over all regions of all images of |region & {map >= t}| / |region|, and
    FPR(t) = |{map >= t} & normal| / |normal|, where normal pixels are the pixels outside the masks of
    all images passed (defect-free images included; `anomalous_only=True` drops those images first,
    as in PatchCore's reported PRO). The curve is evaluated exactly at every distinct score (tied pixels
    cross a threshold together; straight segments between the points), cut by linear interpolation at
    FPR = fpr_limit, integrated with the trapezoid rule and divided by fpr_limit: a perfect detector
    scores 1.0, a constant map fpr_limit / 2, and a map that ranks every defect pixel below every
    normal pixel 0.0.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit={fpr_limit}: choose a false-positive rate in (0, 1], e.g. 0.3")
    masks_array, maps_array = _pixel_inputs(masks, maps)
    defect_scores, normal_sorted = _split_pixels(masks_array, maps_array, anomalous_only, "pro")
    fpr, pro_values = _pro_curve(defect_scores, _region_weights(masks_array), normal_sorted)
    return _area_up_to(fpr, pro_values, fpr_limit) / fpr_limit


# --------------------------------------------------------------------------- F1-optimal threshold


@dataclass(frozen=True)
class ThresholdResult:
    """The image threshold that maximises F1 (anomalous when score >= threshold) and the counts at it."""

    threshold: float
    f1: float
    precision: float
    recall: float
    false_positives: int
    false_negatives: int

    @property
    def misclassified(self) -> int:
        """Images on the wrong side of the threshold (PatchCore Tab. 1's misclassification count)."""
        return self.false_positives + self.false_negatives


def f1_optimal_threshold(labels: object, scores: object) -> ThresholdResult:
    """The threshold on image scores with the highest F1, predicting anomalous when score >= threshold.

    Candidates are the distinct scores (any value between two neighbouring scores gives the same
    predictions as the upper one). Ties in F1 go to the highest threshold, i.e. the fewest images
    flagged, so the choice is deterministic.
    """
    labels_array, scores_array = _image_inputs(labels, scores)
    n_anomalous = int(labels_array.sum())
    if n_anomalous == 0:
        raise ValueError("f1_optimal_threshold needs anomalous images; got only label 0")
    order = np.argsort(scores_array, kind="stable")[::-1]
    scores_desc = scores_array[order]
    true_pos = np.cumsum(labels_array[order])
    flagged = np.arange(1, scores_desc.size + 1)
    last_of_group = np.flatnonzero(np.append(scores_desc[1:] != scores_desc[:-1], True))
    tp, flagged = true_pos[last_of_group], flagged[last_of_group]
    f1 = 2 * tp / (flagged + n_anomalous)  # exact integer ratios, so equal F1s compare equal
    best = int(np.argmax(f1))  # the first maximum = the highest threshold
    tp_best, flagged_best = int(tp[best]), int(flagged[best])
    return ThresholdResult(
        threshold=float(scores_desc[last_of_group[best]]),
        f1=float(f1[best]),
        precision=tp_best / flagged_best,
        recall=tp_best / n_anomalous,
        false_positives=flagged_best - tp_best,
        false_negatives=n_anomalous - tp_best,
    )
