"""The metrics against scikit-learn and against slow, obvious loops written independently here."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as skimage_label
from sklearn.metrics import roc_auc_score

from adlib.evaluation.metrics import ThresholdResult, f1_optimal_threshold, image_auroc, pixel_auroc, pro

# --------------------------------------------------------------------------- helpers


def random_masks(rng, n_images, size, n_good):
    """Masks with several blobs per defective image (some touching only diagonally) and n_good empty masks."""
    masks = np.zeros((n_images, size, size), dtype=bool)
    for mask in masks[n_good:]:
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 3, size=2)
            h, w = rng.integers(1, 4, size=2)
            mask[r : r + h, c : c + w] = True
        r, c = rng.integers(0, size - 2, size=2)  # a diagonal pair: one region under 8-connectivity
        mask[r, c] = mask[r + 1, c + 1] = True
    return masks


def random_maps(rng, masks, integer_scores):
    """Scores that are higher on defects on average; integer scores give heavy ties."""
    if integer_scores:
        return rng.integers(0, 5, size=masks.shape) + 2 * masks
    return rng.normal(size=masks.shape) + 1.5 * masks


def slow_pro(masks, maps, fpr_limit=0.3):
    """PRO by its definition: one threshold per distinct score, regions from scikit-image, FPR from masks.

    The curve starts at (0, 0) (threshold above every score) and is integrated with the trapezoid rule
    up to fpr_limit, with the last segment cut by linear interpolation, then divided by fpr_limit.
    """
    regions = []
    for mask in masks:
        labelled = skimage_label(mask, connectivity=2)
        regions.append([labelled == k for k in range(1, labelled.max() + 1)])
    normal = ~masks
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        above = maps >= t
        overlaps = [(above[i] & r).sum() / r.sum() for i in range(len(masks)) for r in regions[i]]
        points.append(((above & normal).sum() / normal.sum(), float(np.mean(overlaps))))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < fpr_limit:
                y_cut = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
                area += (fpr_limit - x0) * (y0 + y_cut) / 2
            break
    return area / fpr_limit


def brute_force_f1(labels, scores):
    """(threshold, f1, tp, fp, fn) maximising F1 over every distinct score; ties -> highest threshold."""
    best = None
    for t in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= t
        tp = int((predicted & (labels == 1)).sum())
        fp = int((predicted & (labels == 0)).sum())
        fn = int((~predicted & (labels == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn)
        if best is None or f1 > best[1]:
            best = (t, f1, tp, fp, fn)
    return best


# --------------------------------------------------------------------------- AUROC


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("integer_scores", [False, True])
def test_image_auroc_matches_sklearn(seed, integer_scores):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=60)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 4, size=60) + labels if integer_scores else rng.normal(size=60) + labels
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_image_auroc_simple_values():
    assert image_auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert image_auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert image_auroc([0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0]) == 0.5
    assert image_auroc([0, 1], [0.0, 0.0]) == 0.5


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("integer_scores", [False, True])
def test_pixel_auroc_matches_sklearn(seed, integer_scores):
    rng = np.random.default_rng(seed)
    masks = random_masks(rng, 8, 16, n_good=3)
    maps = random_maps(rng, masks, integer_scores)
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    defective = [i for i in range(len(masks)) if masks[i].any()]
    expected = roc_auc_score(masks[defective].ravel(), maps[defective].ravel())
    assert pixel_auroc(masks, maps, anomalous_only=True) == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-9)  # the flag matters


def test_pixel_auroc_accepts_torch_and_keeps_float32():
    rng = np.random.default_rng(0)
    masks = random_masks(rng, 4, 12, n_good=1)
    maps = random_maps(rng, masks, integer_scores=False).astype(np.float32)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(torch.from_numpy(masks), torch.from_numpy(maps)) == pytest.approx(expected, abs=1e-12)
    assert pixel_auroc(masks.astype(np.uint8), maps) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- PRO


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("integer_scores", [False, True])
def test_pro_matches_slow_definition(seed, integer_scores):
    rng = np.random.default_rng(seed)
    masks = random_masks(rng, 6, 12, n_good=2)
    maps = random_maps(rng, masks, integer_scores)
    assert pro(masks, maps) == pytest.approx(slow_pro(masks, maps), abs=1e-12)
    assert pro(masks, maps, fpr_limit=0.05) == pytest.approx(slow_pro(masks, maps, 0.05), abs=1e-12)
    assert pro(masks, maps, fpr_limit=1.0) == pytest.approx(slow_pro(masks, maps, 1.0), abs=1e-12)
    anomalous = pro(masks, maps, anomalous_only=True)
    assert anomalous == pytest.approx(slow_pro(masks[2:], maps[2:]), abs=1e-12)


def test_pro_weak_detector_crosses_fpr_limit_inside_a_tie():
    """Many ties spanning FPR 0.3: the cut must interpolate inside a tied group's straight segment."""
    rng = np.random.default_rng(7)
    masks = random_masks(rng, 5, 10, n_good=1)
    maps = rng.integers(0, 3, size=masks.shape) + masks * rng.integers(0, 2, size=masks.shape)
    assert pro(masks, maps) == pytest.approx(slow_pro(masks, maps), abs=1e-12)


def test_pro_good_images_only_add_false_positives():
    rng = np.random.default_rng(3)
    masks = random_masks(rng, 4, 12, n_good=0)
    maps = random_maps(rng, masks, integer_scores=False)
    clean = np.zeros((2, 12, 12), dtype=bool)
    cold, hot = np.full((2, 12, 12), -10.0), np.full((2, 12, 12), 10.0)
    base = pro(masks, maps)
    assert pro(np.concatenate([masks, clean]), np.concatenate([maps, cold])) != base  # more normal pixels
    with_hot = pro(np.concatenate([masks, clean]), np.concatenate([maps, hot]))
    assert with_hot == pytest.approx(slow_pro(np.concatenate([masks, clean]), np.concatenate([maps, hot])))
    assert with_hot < base
    assert pro(np.concatenate([masks, clean]), np.concatenate([maps, hot]), anomalous_only=True) == base


def test_pro_diagonal_pixels_form_one_region():
    mask = np.zeros((1, 6, 6), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # one 8-connected region of 2 pixels (two under 4-connectivity)
    mask[0, 4, 4] = True  # a second region
    scores = np.zeros((1, 6, 6))
    scores[0, 0, 0] = scores[0, 4, 4] = 2.0  # found
    scores[0, 1, 1] = -1.0  # missed: below every normal pixel
    # PRO stays at (1/2 + 1) / 2 = 0.75 over the whole FPR range [0, 1); 4-connectivity would give 2/3.
    assert pro(mask, scores) == pytest.approx(0.75, abs=1e-12)
    assert ndimage.label(mask[0], structure=np.ones((3, 3)))[1] == 2


def test_pro_reference_values():
    rng = np.random.default_rng(1)
    masks = random_masks(rng, 5, 16, n_good=2)
    perfect = masks + rng.uniform(0, 0.5, size=masks.shape)
    assert pro(masks, perfect) == pytest.approx(1.0, abs=1e-12)
    assert pro(masks, -perfect) == 0.0
    assert pro(masks, np.ones(masks.shape)) == pytest.approx(0.15, abs=1e-12)  # the diagonal: 0.3 / 2
    assert pro(masks, np.ones(masks.shape), fpr_limit=1.0) == pytest.approx(0.5, abs=1e-12)


def test_pro_region_size_does_not_weigh():
    """A big found region and a small missed one average to 1/2, whatever their sizes."""
    mask = np.zeros((1, 20, 20), dtype=bool)
    mask[0, :10, :10] = True
    mask[0, 15, 15] = True
    scores = np.where(mask, 1.0, 0.0)
    scores[0, 15, 15] = -1.0
    assert pro(mask, scores) == pytest.approx(0.5, abs=1e-12)
    assert pixel_auroc(mask, scores) > 0.98


# --------------------------------------------------------------------------- F1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("integer_scores", [False, True])
def test_f1_optimal_threshold_matches_brute_force(seed, integer_scores):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=40)
    labels[0] = 1
    scores = rng.integers(0, 6, size=40) + 2 * labels if integer_scores else rng.normal(size=40) + labels
    result = f1_optimal_threshold(labels, scores)
    threshold, f1, tp, fp, fn = brute_force_f1(labels, scores)
    assert result.threshold == threshold
    assert result.f1 == pytest.approx(f1, abs=1e-12)
    assert (result.false_positives, result.false_negatives) == (fp, fn)
    assert result.precision == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert result.recall == pytest.approx(tp / (tp + fn), abs=1e-12)
    assert result.misclassified == fp + fn


def test_f1_ties_choose_the_highest_threshold():
    # Thresholds 3 and 1 both give F1 = 2/3 (1 of 2 found, no false alarm vs. both found, 2 false alarms).
    result = f1_optimal_threshold([1, 0, 1, 0], [3.0, 2.0, 1.0, 2.0])
    expected = ThresholdResult(threshold=3.0, f1=2 / 3, precision=1.0, recall=0.5, false_positives=0, false_negatives=1)
    assert result == expected


def test_f1_perfect_separation():
    result = f1_optimal_threshold(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.5, 0.7, 0.6]))
    assert (result.threshold, result.f1, result.misclassified) == (0.5, 1.0, 0)


# --------------------------------------------------------------------------- bad inputs


def test_bad_image_inputs():
    with pytest.raises(ValueError, match="got only label 1"):
        image_auroc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="got only label 0"):
        image_auroc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="labels must be binary"):
        image_auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"scores contains 1 NaN"):
        image_auroc([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match="1-D"):
        image_auroc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="empty"):
        image_auroc([], [])
    with pytest.raises(ValueError, match="scores must hold real numbers"):
        image_auroc([0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="needs anomalous images; got only label 0"):
        f1_optimal_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"scores contains"):
        f1_optimal_threshold([0, 1], [0.1, np.nan])


def test_bad_pixel_inputs():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 1, 1] = True
    maps = np.zeros((2, 4, 4))
    for metric in (pixel_auroc, pro):
        with pytest.raises(ValueError, match="same shape"):
            metric(masks, maps[:, :3])
        with pytest.raises(ValueError, match=r"masks must be \[N, H, W\]"):
            metric(masks[0], maps[0])
        with pytest.raises(ValueError, match="masks must be binary"):
            metric(masks * 0.5, maps)
        with pytest.raises(ValueError, match="maps contains 1 NaN value.*index \\(1, 2, 3\\)"):
            bad = maps.copy()
            bad[1, 2, 3] = np.nan
            metric(masks, bad)
        with pytest.raises(ValueError, match="needs defect pixels"):
            metric(np.zeros_like(masks), maps)
        with pytest.raises(ValueError, match="needs normal pixels"):
            metric(np.ones_like(masks), maps)
    with pytest.raises(ValueError, match="fpr_limit"):
        pro(masks, maps, fpr_limit=0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        pro(masks, maps, fpr_limit=1.5)
