"""One method's image AUROC on two test splits of the same categories, compared: e.g. logical vs structural
anomalies of a LOCO-style benchmark.

Why: `adlib.evidence.verdicts.assess` compares two *methods* on the *same* test images, paired. "Logical
anomalies are harder than structural ones" compares one method on two *different* sets of defective images
(each with the category's good test images), so it cannot be paired. Here each split's units (one per
category and seed) are resampled on their own, stratified as `assess` draws (good from good, defective from
defective), all from one `numpy.random.default_rng(seed)`: the first table's units in sorted (category, seed)
order, then the second's. The statistic is mean over units of AUROC(first) - mean over units of
AUROC(second); the interval its percentile interval over the resamples. The good images, shared by the
two splits, are drawn independently for each: this ignores the positive correlation they induce, which
makes the interval wider than a paired one would be (conservative), never narrower.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adlib.evidence.bootstrap import resampled_image_auroc, stratified_indices
from adlib.evidence.verdicts import UnitCount, Verdict, check_level, percentile_interval, sample_text


def _split_values(
    table: pd.DataFrame, name: str, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, list]:
    """[1 + R] the mean over the table's (category, seed) units of image AUROC (as it is, then resampled)."""
    missing = [c for c in ("category", "seed", "image", "label", "score") if c not in table.columns]
    if missing:
        raise ValueError(f"the {name} table lacks the columns {missing}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError(f"the {name} table is empty: give the split's test images (good and defective)")
    values, counts = [], []
    for (category, seed), unit in table.sort_values(["category", "seed", "image"]).groupby(["category", "seed"]):
        labels = unit["label"].to_numpy().astype(bool)
        if labels.all() or not labels.any():
            raise ValueError(f"{name} table, {category} seed {seed}: needs good and defective images")
        rows = np.concatenate([np.arange(labels.size)[None, :], stratified_indices(labels, n_resamples, rng)])
        values.append(resampled_image_auroc(labels, unit["score"].to_numpy(), rows))
        counts.append(UnitCount(str(category), int(seed), None, int((~labels).sum()), int(labels.sum())))
    return np.mean(values, axis=0), counts


def split_difference(
    statement: str,
    first: pd.DataFrame,
    second: pd.DataFrame,
    names: tuple[str, str],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Verdict:
    """The verdict on "image AUROC on `first` is above that on `second`" (one method's per-image rows of each
    split, columns category, seed, image, label, score), by the unpaired bootstrap of the module docstring.
    `names` name the two splits in the finding, e.g. ("structural", "logical")."""
    check_level(level)
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer (default 2000); got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    a, units_a = _split_values(first, names[0], n_resamples, rng)
    b, units_b = _split_values(second, names[1], n_resamples, rng)
    difference = a - b
    low, high = percentile_interval(difference[1:], level)
    estimate = float(difference[0])
    n = f"{names[0]}: {sample_text(units_a)}; {names[1]}: {sample_text(units_b)}"
    return Verdict(
        statement,
        f"image AUROC, {names[0]} - {names[1]}",
        f"{statement}: image AUROC {names[0]} {a[0]:.3f} - {names[1]} {b[0]:.3f} = {estimate:+.3f}",
        "above",
        0.0,
        estimate,
        low,
        high,
        level,
        n,
        basis="unpaired bootstrap of the two splits",
        metric="image_auroc",
        values=difference[1:],
    )
