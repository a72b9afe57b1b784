"""The per-image table `adlib.evidence` reads: rows built from scores, and the slow subset metrics.

`run_grid(...).images` already is such a table; `image_rows` / `image_rows_from_result` build one from
scores computed elsewhere. `subset_metric` recomputes pixel AUROC or PRO on a subset of one unit's
images from its full maps: the slow, obvious reference for the bootstrap of pixel metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

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
    labels_array = np.asarray(_host(labels)).ravel()
    scores_array = np.asarray(_host(scores), dtype=np.float64).ravel()
    if not len(images) == labels_array.size == scores_array.size:
        raise ValueError(
            f"{category}, seed {seed}, {method}: {len(images)} images, {labels_array.size} labels and "
            f"{scores_array.size} scores; pass one label and one score per image"
        )
    return pd.DataFrame({"category": category, "seed": int(seed), "method": method, "image": list(images),
                         "label": labels_array.astype(int), "score": scores_array})


def image_rows_from_result(result: object, seed: int, method: str) -> pd.DataFrame:
    """The rows for one `adlib.experiment.CategoryResult`: images are the test images' paths (as str)."""
    category, scores = result.category, result.scores  # type: ignore[attr-defined]
    images = [str(sample.image) for sample in category.test]
    return image_rows(category.name, seed, method, images, [sample.label for sample in category.test], scores.image)


def subset_metric(metric: str, masks: object, maps: object) -> SubsetMetric:
    """Pixel AUROC or PRO of a subset of one unit's images, as `adlib.experiment.evaluate` computes them.

    `masks` (bool) and `maps` are [N, H, W] in the order of that method's rows in the per-image table.
    PRO uses `anomalous_only=True` and FPR up to 0.3, pixel AUROC all images, as in `evaluate`.
    """
    from adlib.metrics import pixel_auroc, pro

    masks_array, maps_array = np.asarray(_host(masks)), np.asarray(_host(maps))
    if metric == "pixel_auroc":
        return lambda indices: pixel_auroc(masks_array[indices], maps_array[indices])
    if metric == "pro":
        return lambda indices: pro(masks_array[indices], maps_array[indices], anomalous_only=True)
    raise ValueError(
        f"subset_metric covers 'pixel_auroc' and 'pro'; got {metric!r} (image AUROC uses the score column)"
    )


def _host(values: object) -> object:
    """A torch tensor as a numpy array on the host; anything else as it is."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()  # type: ignore[attr-defined]
        return values.float().numpy() if values.is_floating_point() else values.numpy()  # type: ignore[attr-defined]
    return values
