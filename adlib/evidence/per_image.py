"""The per-image table `adlib.evidence.verdicts` reads: rows built from scores, and the slow subset metrics.

`run_grid(...).images` already is such a table; `image_rows` / `image_rows_from_result` build one from
scores computed elsewhere. `subset_metric` recomputes pixel AUROC or PRO on a subset of one unit's
images from its full maps: the slow, obvious reference for the bootstrap of pixel metrics;
`anomalous_pixel_metric` gives KC's anomalous-pixel AUROC (defective images only) from pixel statistics. `units_of`
splits a table into the units a claim compares, checked (paired images, both labels present).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adlib.evaluation.metrics import host_array, pixel_auroc, pro
from adlib.evaluation.pixel_stats import PixelStats

COLUMNS = ("category", "seed", "method", "image", "label", "score")

SubsetMetric = Callable[[np.ndarray], float]
"""A metric of a subset of one unit's test images: takes an index array (with repeats) into that
method's rows of the unit, in the order they appear in the table, and returns the metric."""


def image_rows(
    category: str,
    seed: int,
    method: str,
    images: Sequence[object],
    labels: Sequence[int],
    scores: Sequence[float],
) -> pd.DataFrame:
    """The per-image table's rows for one (category, seed, method): one row per test image."""
    labels_array = host_array(labels).ravel()
    scores_array = host_array(scores).astype(np.float64).ravel()
    if not len(images) == labels_array.size == scores_array.size:
        raise ValueError(
            f"{category}, seed {seed}, {method}: {len(images)} images, {labels_array.size} labels and "
            f"{scores_array.size} scores; pass one label and one score per image"
        )
    return pd.DataFrame(
        {
            "category": category,
            "seed": int(seed),
            "method": method,
            "image": list(images),
            "label": labels_array.astype(int),
            "score": scores_array,
        }
    )


def image_rows_from_result(result: object, seed: int, method: str) -> pd.DataFrame:
    """The rows for one `adlib.evaluation.evaluate.CategoryResult`: images are the test images' paths (as str)."""
    category, scores = result.category, result.scores  # type: ignore[attr-defined]
    images = [str(sample.image) for sample in category.test]
    return image_rows(category.name, seed, method, images, [sample.label for sample in category.test], scores.image)


def subset_metric(metric: str, masks: object, maps: object) -> SubsetMetric:
    """Pixel AUROC or PRO of a subset of one unit's images, as `adlib.evaluation.evaluate.evaluate` computes them.

    `masks` (bool) and `maps` are [N, H, W] in the order of that method's rows in the per-image table.
    PRO uses `anomalous_only=True` and FPR up to 0.3, pixel AUROC all images, as in `evaluate`.
    """
    masks_array, maps_array = host_array(masks), host_array(maps)
    if metric == "pixel_auroc":
        return lambda indices: pixel_auroc(masks_array[indices], maps_array[indices])
    if metric == "pro":
        return lambda indices: pro(masks_array[indices], maps_array[indices], anomalous_only=True)
    raise ValueError(
        f"subset_metric covers 'pixel_auroc' and 'pro'; got {metric!r} (image AUROC uses the score column)"
    )


@dataclass(frozen=True)
class Unit:
    """One (category, seed[, sweep value]): its images in sorted order, labels, and per method the
    scores (in that order) and the positions of those images among the method's own rows (each dict
    empty where the metric does not need it)."""

    key: tuple
    images: tuple
    labels: np.ndarray
    scores: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    results: dict[str, str]  # per method its evaluation's result_key (when pixel statistics are used)


def units_of(claim: object, table: pd.DataFrame, need_scores: bool, need_keys: bool = False) -> list[Unit]:
    """The table split into the units of an `adlib.evidence.claims.Claim` (its methods; its sweep column, if any),
    validated: every message names the unit and how to fix the table."""
    keys = ["category", "seed"] + ([claim.sweep] if claim.sweep else [])
    _check_table(claim.methods, table, keys, need_scores, need_keys)
    groups = _paired_groups(claim.methods, table, keys)
    units = []
    for group_key in sorted(groups[claim.methods[0]]):
        key = tuple(value.item() if isinstance(value, np.generic) else value for value in group_key)  # plain reprs
        where = ", ".join(f"{name} {value!r}" for name, value in zip(keys, key))
        per_method = {method: groups[method][group_key].reset_index(drop=True) for method in claim.methods}
        units.append(_unit(key, where, per_method, keys, need_scores, need_keys))
    return units


def _check_table(
    methods: Sequence[str], table: pd.DataFrame, keys: list[str], need_scores: bool, need_keys: bool
) -> None:
    """Raises unless `table` has the columns, the methods, 0 / 1 labels and finite scores a claim needs."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame with columns {list(COLUMNS)}; got {type(table).__name__}")
    needed = ["category", "seed", "method", "image", "label"] + (["score"] if need_scores else []) + keys[2:]
    needed += ["result_key"] if need_keys else []
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise ValueError(f"the per-image table lacks the columns {missing}; it has {list(table.columns)}")
    present = set(table["method"].unique())
    for method in methods:
        if method not in present:
            raise ValueError(f"method {method!r} is not in the table's method column; it has {sorted(present)}")
    if not table["label"].isin([0, 1]).all():
        raise ValueError(f"label must be 0 (good) or 1 (defective); got {sorted(table['label'].unique())[:6]}")
    if need_scores and not np.isfinite(table["score"].to_numpy(dtype=np.float64)).all():
        raise ValueError("score holds NaN or infinite values: fix or drop those images for every method first")


def _paired_groups(methods: Sequence[str], table: pd.DataFrame, keys: list[str]) -> dict[str, dict]:
    """Per method its rows by unit key; raises unless every method covers the same units (the comparison is paired)."""
    groups = {method: dict(iter(table[table["method"] == method].groupby(keys, sort=True))) for method in methods}
    first, *others = methods
    for other in others:
        if set(groups[other]) != set(groups[first]):
            only = sorted(set(groups[first]) ^ set(groups[other]))
            raise ValueError(
                f"methods {first!r} and {other!r} cover different {keys}: {only[:4]} are in one only; "
                "the comparison is paired, so run both on the same units"
            )
    return groups


def _unit(
    key: tuple, where: str, per_method: dict[str, pd.DataFrame], keys: list[str], need_scores: bool, need_keys: bool
) -> Unit:
    """One unit from each method's rows: the same images with the same labels for every method, both labels present."""
    scores, rows, results, images, labels = {}, {}, {}, None, None
    first = next(iter(per_method))
    for method, group in per_method.items():
        order, method_images, method_labels = _sorted_images(where, method, group, keys)
        if images is None:
            images, labels = method_images, method_labels
        else:
            _check_same_images(where, (first, images, labels), (method, method_images, method_labels))
        rows[method] = order
        if need_scores:
            scores[method] = group["score"].to_numpy(dtype=np.float64)[order]
        if need_keys:
            results[method] = _result_key(where, method, group)
    n_defective = int(labels.sum())
    if n_defective == 0 or n_defective == labels.size:
        has, lacks = ("defective", "good") if n_defective else ("good", "defective")
        raise ValueError(
            f"{where}: {labels.size} test images, all {has}, no {lacks} one; the bootstrap is stratified "
            f"good / defective and the metrics need both: drop this unit or add {lacks} test images"
        )
    return Unit(key, images, labels, scores, rows, results)


def _sorted_images(
    where: str, method: str, group: pd.DataFrame, keys: list[str]
) -> tuple[np.ndarray, tuple, np.ndarray]:
    """The order that sorts one method's rows of a unit by image, the sorted images and their labels (bool);
    raises if an image appears twice."""
    duplicated = group["image"].duplicated(keep=False)
    if duplicated.any():
        image = group.loc[duplicated, "image"].iloc[0]
        extra = [c for c in group.columns if c not in (*COLUMNS, *keys) and group.loc[duplicated, c].nunique() > 1]
        raise ValueError(
            f"{where}, method {method!r}: image {image!r} appears {int((group['image'] == image).sum())} times; "
            f"filter the table to one run per unit (columns that vary: {extra}) or name the swept column as the "
            "claim's sweep"
        )
    order = group["image"].argsort(kind="stable").to_numpy()
    return order, tuple(group["image"].to_numpy()[order].tolist()), group["label"].to_numpy()[order].astype(bool)


def _check_same_images(where: str, first: tuple, other: tuple) -> None:
    """Raises unless two methods' (name, sorted images, labels) of one unit have the same images and labels."""
    (name_a, images_a, labels_a), (name_b, images_b, labels_b) = first, other
    if images_b != images_a:
        only_a, only_b = set(images_a) - set(images_b), set(images_b) - set(images_a)
        raise ValueError(
            f"{where}: methods {name_a!r} and {name_b!r} were scored on different test images "
            f"({len(only_a)} only in {name_a!r}, e.g. {sorted(map(str, only_a))[:2]}; {len(only_b)} only in "
            f"{name_b!r}, e.g. {sorted(map(str, only_b))[:2]}); the bootstrap is paired: give both the same images"
        )
    if not np.array_equal(labels_b, labels_a):
        raise ValueError(f"{where}: methods {name_a!r} and {name_b!r} give different labels to the same images")


def _result_key(where: str, method: str, group: pd.DataFrame) -> str:
    """The one evaluation (run_grid's result_key) that one method's rows of a unit come from."""
    found = group["result_key"].unique()
    if len(found) != 1 or not isinstance(found[0], str):
        raise ValueError(
            f"{where}, method {method!r}: result_key {list(found)[:3]}; each unit's images must "
            "come from one evaluation, named by run_grid's result_key column"
        )
    return found[0]


def anomalous_pixel_metric(stats: PixelStats, images: Sequence[object]) -> SubsetMetric:
    """KC's anomalous-pixel AUROC of a subset of one unit's images, from its evaluation's `PixelStats`: pixel
    AUROC over the drawn images whose mask has a defect (as `pixel_auroc(..., anomalous_only=True)`), for
    `adlib.evidence.verdicts.assess(..., subset_metrics=...)`. `images` names that method's rows of the unit in
    table order (the subset's indices point into it); each is looked up by name in `stats.images`."""
    where = {image: i for i, image in enumerate(stats.images)}
    missing = [image for image in images if image not in where]
    if missing:
        raise ValueError(f"{len(missing)} images are not in the pixel statistics (e.g. {missing[0]!r})")
    order = np.array([where[image] for image in images], dtype=np.int64)
    defective = np.zeros(len(stats.images), dtype=bool)
    defective[np.unique(stats.region_image)] = True

    def metric(indices: np.ndarray) -> float:
        drawn = order[np.asarray(indices, dtype=np.int64)]
        weights = np.bincount(drawn[defective[drawn]], minlength=len(stats.images))[None, :]
        return float(stats.pixel_auroc(weights)[0])

    return metric
