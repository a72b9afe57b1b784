"""adlib.evidence.per_image.anomalous_pixel_metric against adlib.evaluation.metrics.pixel_auroc(anomalous_only=True)."""

import numpy as np
import pytest

from adlib.evaluation.metrics import pixel_auroc
from adlib.evaluation.pixel_stats import PixelStats
from adlib.evidence.per_image import anomalous_pixel_metric


def test_anomalous_pixel_metric_matches_the_exact_metric_on_subsets():
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 5, 5), dtype=bool)
    masks[3:, 1:3, 1:3] = True  # images 3-5 defective
    maps = np.round(rng.random((6, 5, 5)) + masks * 0.4, 2)  # few distinct scores: the statistics are exact
    names = [f"img{i}" for i in range(6)]
    stats = PixelStats.from_maps(masks, maps, images=names)
    table_order = [names[i] for i in (5, 0, 3, 1, 4, 2)]  # the unit's rows in another order than the evaluation's
    metric = anomalous_pixel_metric(stats, table_order)
    for subset in ([0, 1, 2, 3, 4, 5], [0, 0, 2, 4], [1, 3, 5, 0]):
        evaluation = [names.index(table_order[i]) for i in subset]
        expected = pixel_auroc(masks[evaluation], maps[evaluation], anomalous_only=True)
        assert metric(np.array(subset)) == pytest.approx(expected, abs=1e-9)
    assert metric(np.arange(6)) != pytest.approx(pixel_auroc(masks, maps), abs=1e-6)  # good images do count there
    with pytest.raises(ValueError, match="not in the pixel statistics"):
        anomalous_pixel_metric(stats, ["other"])
