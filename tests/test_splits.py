"""split_difference against a slow loop: each split's units resampled on their own, AUROC by pair counting."""

import numpy as np
import pandas as pd
import pytest

from adlib.evidence.bootstrap import stratified_indices
from adlib.evidence.splits import split_difference


def _table(rng, categories, shift):
    rows = []
    for category in categories:
        for i in range(12):
            label = int(i >= 5)
            rows.append({"category": category, "seed": 0, "image": f"{i:02d}", "label": label,
                         "score": float(rng.normal(shift * label, 1.0))})  # fmt: skip
    return pd.DataFrame(rows)


def _slow_auroc(labels, scores):
    pos, neg = scores[labels], scores[~labels]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])


def test_split_difference_matches_a_slow_loop():
    rng = np.random.default_rng(3)
    first, second = _table(rng, ["a", "b"], 6.0), _table(rng, ["a", "b"], -1.0)
    verdict = split_difference("easier", first, second, ("structural", "logical"), n_resamples=50, seed=4)
    draw = np.random.default_rng(4)
    means = []
    for table in (first, second):
        per_unit = []
        for _, unit in table.sort_values(["category", "seed", "image"]).groupby(["category", "seed"]):
            labels, scores = unit["label"].to_numpy().astype(bool), unit["score"].to_numpy()
            rows = stratified_indices(labels, 50, draw)
            per_unit.append([_slow_auroc(labels, scores)] + [_slow_auroc(labels[r], scores[r]) for r in rows])
        means.append(np.mean(per_unit, axis=0))
    difference = means[0] - means[1]
    assert verdict.estimate == pytest.approx(difference[0])
    assert verdict.values == pytest.approx(difference[1:])
    assert (verdict.low, verdict.high) == pytest.approx(tuple(np.percentile(difference[1:], [2.5, 97.5])))
    assert verdict.status == "holds" and "structural" in verdict.finding and "2 categories" in verdict.n


def test_split_difference_refuses_a_split_without_good_images():
    rng = np.random.default_rng(0)
    table = _table(rng, ["a"], 1.0)
    with pytest.raises(ValueError, match="logical table, a seed 0: needs good and defective"):
        split_difference("x", table, table[table.label == 1], ("structural", "logical"))
    with pytest.raises(ValueError, match="lacks the columns"):
        split_difference("x", table.drop(columns="score"), table, ("structural", "logical"))
