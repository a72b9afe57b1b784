"""The F1-optimal working point of every evaluation in a per-image table (PC Table 1's misclassification
counts, Figs. S1-S3): one threshold per (category, method, seed), as `adlib.evaluation.metrics.f1_optimal_threshold`
picks it from that evaluation's own test scores (the paper's protocol: the threshold is chosen on the
test set, so the counts are the fewest errors any single threshold could make, an optimistic number).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from adlib.evaluation.metrics import f1_optimal_threshold

UNIT = ("category", "method", "seed")
COLUMNS = (
    "test_images",
    "defective",
    "threshold",
    "f1",
    "precision",
    "recall",
    "false_positives",
    "false_negatives",
    "misclassified",
    "false_positives_at_full_recall",
)


def working_points(images: pd.DataFrame, by: Sequence[str] = UNIT) -> pd.DataFrame:
    """One row per group of `by` (default: each evaluation) of the per-image table `images` (columns `by`,
    label, score): the F1-optimal threshold, its F1 / precision / recall and errors, and the false
    positives at full recall (good images scoring at least the lowest-scoring defective image)."""
    missing = [column for column in (*by, "label", "score") if column not in images.columns]
    if missing:
        raise ValueError(f"the per-image table lacks {missing}; it has {list(images.columns)}")
    rows = []
    for key, unit in images.groupby(list(by), sort=False):
        labels, scores = unit["label"].to_numpy(), unit["score"].to_numpy()
        point = f1_optimal_threshold(labels, scores)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                "test_images": len(unit),
                "defective": int(labels.sum()),
                "threshold": point.threshold,
                "f1": point.f1,
                "precision": point.precision,
                "recall": point.recall,
                "false_positives": point.false_positives,
                "false_negatives": point.false_negatives,
                "misclassified": point.misclassified,
                "false_positives_at_full_recall": int((scores[labels == 0] >= scores[labels == 1].min()).sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *COLUMNS])


def predicted(images: pd.DataFrame, points: pd.DataFrame, by: Sequence[str] = UNIT) -> pd.DataFrame:
    """`images` with each image's unit `threshold` and `flagged` (score >= threshold) and `outcome`:
    'TP', 'FP' (a good image flagged), 'FN' (a defect missed) or 'TN'."""
    joined = images.merge(points[[*by, "threshold"]], on=list(by), how="left", validate="many_to_one")
    if joined["threshold"].isna().any():
        raise ValueError(
            f"points lack a threshold for some {list(by)} of images: build them with working_points(images)"
        )
    joined["flagged"] = joined["score"] >= joined["threshold"]
    outcome = {(True, 1): "TP", (True, 0): "FP", (False, 1): "FN", (False, 0): "TN"}
    joined["outcome"] = [outcome[flag, int(label)] for flag, label in zip(joined["flagged"], joined["label"])]
    return joined
