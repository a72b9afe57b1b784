"""Norm versus direction: which part of a patch feature tells defect patches from normal ones.

KC replaces PatchCore's Euclidean nearest-neighbour distance by a cosine score, which sees only a
feature's direction. Whether that can work depends on where the defect signal lives. For a test patch
p and its Euclidean nearest bank feature m the squared distance splits exactly,

    ||p - m||^2 = (||p|| - ||m||)^2 + 2 ||p|| ||m|| (1 - cos(p, m)),

into a *pure norm* term (zero when the two norms agree, whatever the angle) and a cross term that
still carries both norms. The *pure direction* part is 1 - cos(p, m) alone (a function of the angle
only), and the score that looks at nothing but directions is the nearest-neighbour distance of the
unit-normalised features, 1 - max_j cos(p, b_j) (= ||p/|p| - b/|b|||^2 / 2 for the nearest unit b):
KC's cosine score with top_k = 1. `nearest_parts` computes all of them per patch,
`patch_groups` labels the test patches (defect / normal) and `separation` gives each quantity's
patch-level AUROC (defect vs normal) with a bootstrap interval over test images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from adlib.bank.search import NearestNeighbours
from adlib.evidence.verdicts import Verdict, percentile_interval

QUANTITIES = {
    "euclidean": "Euclidean NN distance ‖p − m‖² (PatchCore)",
    "norm_part": "pure norm part (‖p‖ − ‖m‖)²",
    "direction_part": "pure direction part 1 − cos(p, m)",
    "cross_part": "cross term 2‖p‖‖m‖(1 − cos) (carries the norms)",
    "cosine_nn": "cosine NN distance on unit features (KC)",
    "norm": "feature norm ‖p‖ alone",
}
"""The quantities `nearest_parts` returns, with the label a figure or table shows."""


def nearest_parts(queries: torch.Tensor, bank: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per query row (patch feature p): the Euclidean nearest bank row m and the parts of the distance.

    Returns {"euclidean": ||p - m||^2, "norm_part": (||p|| - ||m||)^2, "direction_part": 1 - cos(p, m),
    "cross_part": 2 ||p|| ||m|| (1 - cos(p, m)), "cosine_nn": 1 - max_j cos(p, b_j), "norm": ||p||},
    each [Q] float32 on the CPU. norm_part + cross_part equals euclidean (up to rounding).
    """
    queries, bank = queries.float().cpu(), bank.float().cpu()
    _, nearest = NearestNeighbours(bank).search(queries, 1)
    matched = bank[nearest[:, 0].cpu()]
    norm_p, norm_m = queries.norm(dim=1), matched.norm(dim=1)
    cosine = (queries * matched).sum(1) / (norm_p * norm_m).clamp_min(1e-12)
    unit_queries = torch.nn.functional.normalize(queries, dim=1)
    unit_bank = torch.nn.functional.normalize(bank, dim=1)
    _, unit_nearest = NearestNeighbours(unit_bank).search(unit_queries, 1)
    best_cosine = (unit_queries * unit_bank[unit_nearest[:, 0].cpu()]).sum(1)
    return {
        "euclidean": (queries - matched).pow(2).sum(1),
        "norm_part": (norm_p - norm_m) ** 2,
        "direction_part": 1 - cosine,
        "cross_part": 2 * norm_p * norm_m * (1 - cosine),
        "cosine_nn": 1 - best_cosine,
        "norm": norm_p,
    }


def patch_groups(
    masks: torch.Tensor, labels: Sequence[int], grid: tuple[int, int], defect_share: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Which test patches count as defect and which as normal, as flat [N * H * W] bool arrays (raster order).

    A patch is a defect patch when at least `defect_share` of its pixels (the mask average-pooled to
    the feature grid) are in the defect mask; a normal patch lies in a defect-free test image. Patches
    that touch a defect only partly are in neither group.
    """
    share = torch.nn.functional.adaptive_avg_pool2d(masks.float()[:, None], grid).reshape(len(masks), -1)
    good = torch.as_tensor(list(labels)) == 0
    defect = share >= defect_share
    normal = good[:, None].expand_as(share)
    return defect.reshape(-1).numpy(), normal.reshape(-1).numpy()


def weighted_auroc(values: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> float:
    """AUROC of `values` (higher = more anomalous) for positives vs the rest, each sample counted `weights`
    times (a bootstrap's multiplicities); ties count one half, as `adlib.evaluation.metrics.image_auroc`."""
    _, group = np.unique(values, return_inverse=True)
    pos = np.bincount(group, weights=weights * positive)
    neg = np.bincount(group, weights=weights * ~positive)
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def separation(
    parts: Mapping[str, Mapping[str, np.ndarray]],
    groups: Mapping[str, tuple[np.ndarray, np.ndarray]],
    patches_per_image: Mapping[str, int],
    n_resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Patch AUROC (defect vs normal patches) of every quantity, per category and as the mean over categories.

    `parts[category]` is `nearest_parts`' output (as numpy), `groups[category]` the (defect, normal) masks
    of `patch_groups`, `patches_per_image[category]` the grid size H * W. The interval resamples test
    images (with replacement, every patch of a drawn image comes along; patches of one image are not
    independent), stratified: images with defect patches from those, the others from the others, so
    both groups are never empty; separately per category with one `numpy.random.default_rng(seed)` in sorted category
    order; the mean row averages the categories' values resample by resample. Also gives, per
    quantity, the paired difference "norm_part - direction_part" as the row quantity
    "norm_minus_direction". Columns: category, quantity, label, estimate, low, high, n_images,
    n_defect, n_normal.
    """
    rng = np.random.default_rng(seed)
    rows, curves = [], {}
    for category in sorted(parts):
        defect, normal = groups[category]
        keep = defect | normal
        per_image = patches_per_image[category]
        n_images = len(defect) // per_image
        image_of = (np.arange(len(defect)) // per_image)[keep]
        draws = np.stack(
            [np.ones(n_images)]
            + [_stratified_draw(defect.reshape(n_images, per_image).any(1), rng) for _ in range(n_resamples)]
        )
        values = {}
        for name in QUANTITIES:
            series = np.asarray(parts[category][name], dtype=np.float64)[keep]
            values[name] = np.array([weighted_auroc(series, defect[keep], draw[image_of]) for draw in draws])
        values["norm_minus_direction"] = values["norm_part"] - values["direction_part"]
        for name, series in values.items():
            curves.setdefault(name, []).append(series)
            rows.append(_row(category, name, series, level, n_images, int(defect.sum()), int(normal.sum())))
    for name, series in curves.items():
        rows.append(_row("mean", name, np.mean(series, axis=0), level, None, None, None))
    return pd.DataFrame(rows)


def _stratified_draw(has_defect: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How often each image is drawn in one stratified resample (images with defect patches among themselves)."""
    counts = np.zeros(len(has_defect))
    for stratum in (np.flatnonzero(has_defect), np.flatnonzero(~has_defect)):
        np.add.at(counts, stratum[rng.integers(0, len(stratum), len(stratum))], 1)
    return counts


def _row(category: str, name: str, series: np.ndarray, level: float, n_images, n_defect, n_normal) -> dict:
    """One table row: the estimate (first entry: the data as they are) and the percentile interval."""
    low, high = percentile_interval(series[1:], level)
    label = QUANTITIES.get(name, "pure norm part − pure direction part")
    return {
        "category": category,
        "quantity": name,
        "label": label,
        "estimate": float(series[0]),
        "low": low,
        "high": high,
        "n_images": n_images,
        "n_defect": n_defect,
        "n_normal": n_normal,
    }


def result_patch_parts(result) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray], int]:
    """For one `adlib.evaluation.evaluate.CategoryResult` of a PatchCore model: `nearest_parts` of its test patches
    against its memory bank (as numpy), the (defect, normal) groups of `patch_groups`, and H * W."""
    model, category = result.model, result.category
    test = model.extractor.embed(category.test, progress=False)
    queries = test.features.reshape(-1, test.features.shape[-1])
    parts = {name: values.numpy() for name, values in nearest_parts(queries, model.bank).items()}
    groups = patch_groups(result.masks, [sample.label for sample in category.test], test.grid)
    return parts, groups, test.grid[0] * test.grid[1]


def separation_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """The verdict on "the defect signal a direction-only score misses lives in the norm": the mean row's
    paired difference pure norm part - pure direction part (patch AUROC) above 0, by its interval, with n
    and, as the caption's note, the other quantities' patch AUROC and the same difference per category
    (where the signal lives can differ from category to category)."""
    rows = table.set_index(["category", "quantity"])
    per = table[(table.category != "mean") & (table.quantity == "euclidean")]
    difference = rows.loc[("mean", "norm_minus_direction")]
    per_difference = table[(table.category != "mean") & (table.quantity == "norm_minus_direction")]
    estimates = rows.xs("mean")["estimate"]
    categories = "1 category" if len(per) == 1 else f"{len(per)} categories"
    per_category = ", ".join(
        f"{row.category} {row.estimate:+.3f} [{row.low:+.3f}, {row.high:+.3f}]" for row in per_difference.itertuples()
    )
    estimate = float(difference["estimate"])
    return Verdict(
        "the pure norm part separates defect from normal patches better than the pure direction part",
        "patch AUROC of the pure norm part - of the pure direction part",
        "the pure norm part (‖p‖ − ‖m‖)² separates defect from normal patches better than the pure direction "
        f"part 1 − cos(p, m) by {estimate:+.3f} patch AUROC",
        "above",
        0.0,
        estimate,
        float(difference["low"]),
        float(difference["high"]),
        level,
        f"{categories}, {int(per['n_images'].sum())} test images, {int(per['n_defect'].sum())} defect / "
        f"{int(per['n_normal'].sum())} normal patches",
        note=f"patch AUROC of the Euclidean NN distance {estimates['euclidean']:.3f}, of the cosine NN distance "
        f"(KC) {estimates['cosine_nn']:.3f}, of the feature norm alone {estimates['norm']:.3f}; the difference "
        f"per category: {per_category}",
    )


def category_separation_verdicts(table: pd.DataFrame, level: float = 0.95) -> list[Verdict]:
    """`separation_verdict`'s claim weighed in each category alone (pure norm part - pure direction part, patch
    AUROC, above 0, by the category's bootstrap interval over its test images), in the table's order: the mean
    can be carried by one category while another goes the other way."""
    verdicts = []
    per = table[(table.category != "mean") & (table.quantity == "norm_minus_direction")]
    counts = table[table.quantity == "euclidean"].set_index("category")
    for row in per.itertuples():
        count = counts.loc[row.category]
        verdicts.append(
            Verdict(
                f"{row.category}: the pure norm part separates defect from normal patches better than the pure "
                "direction part",
                "patch AUROC of the pure norm part - of the pure direction part",
                f"{row.category}: the pure norm part separates defect from normal patches better than the pure "
                f"direction part by {row.estimate:+.3f} patch AUROC",
                "above",
                0.0,
                float(row.estimate),
                float(row.low),
                float(row.high),
                level,
                f"1 category ({row.category}), {int(count['n_images'])} test images, {int(count['n_defect'])} defect / "
                f"{int(count['n_normal'])} normal patches",
            )
        )
    return verdicts
