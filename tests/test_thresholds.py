"""adlib.evidence.thresholds: each unit's F1-optimal working point and outcomes, against a brute-force loop."""

import numpy as np
import pandas as pd
import pytest

from adlib.evidence.thresholds import predicted, working_points


def table(rng):
    rows = []
    for category in ("a", "b"):
        for method in ("M1", "M2"):
            labels = rng.integers(0, 2, size=15)
            labels[:2] = [0, 1]
            scores = rng.integers(0, 6, size=15) + labels  # ties on purpose
            rows += [
                {"category": category, "method": method, "seed": 0, "image": i, "label": int(label), "score": float(s)}
                for i, (label, s) in enumerate(zip(labels, scores))
            ]
    return pd.DataFrame(rows)


def brute(labels, scores):
    best = None
    for t in sorted(set(scores), reverse=True):  # highest threshold first: ties keep it
        flagged = scores >= t
        tp, fp = int((flagged & (labels == 1)).sum()), int((flagged & (labels == 0)).sum())
        fn = int(labels.sum()) - tp
        f1 = 2 * tp / (2 * tp + fp + fn)
        if best is None or f1 > best[1] + 1e-12:
            best = (t, f1, fp, fn)
    return best


def test_working_points_and_outcomes_match_a_brute_force_loop():
    images = table(np.random.default_rng(0))
    points = working_points(images)
    assert len(points) == 4
    outcomes = predicted(images, points)
    for _, point in points.iterrows():
        unit = images[(images.category == point.category) & (images.method == point.method)]
        labels, scores = unit.label.to_numpy(), unit.score.to_numpy()
        threshold, f1, fp, fn = brute(labels, scores)
        assert (point.threshold, point.false_positives, point.false_negatives) == (threshold, fp, fn)
        assert point.f1 == pytest.approx(f1) and point.misclassified == fp + fn
        assert point.false_positives_at_full_recall == sum(s >= scores[labels == 1].min() for s in scores[labels == 0])
        mine = outcomes[(outcomes.category == point.category) & (outcomes.method == point.method)]
        assert (mine.outcome == "FP").sum() == fp and (mine.outcome == "FN").sum() == fn
        assert ((mine.outcome == "TP") | (mine.outcome == "FP")).sum() == (scores >= threshold).sum()


def test_missing_columns_and_units_are_named():
    images = table(np.random.default_rng(1))
    with pytest.raises(ValueError, match="lacks"):
        working_points(images.drop(columns="score"))
    points = working_points(images[images.category == "a"])
    with pytest.raises(ValueError, match="threshold"):
        predicted(images, points)
