"""The timing notebooks' ratio plot (adlib.companion.plotting.ratio_dots) and the maps kept for figures
(adlib.companion.plots_patchcore.MapKeeper)."""

import numpy as np
import pandas as pd
import pytest

from adlib.companion.plotting import ratio_dots
from adlib.evidence.timing import ratio_table
from adlib.style import pyplot


def test_ratio_dots_places_each_repeat_and_the_median():
    seconds = pd.DataFrame({"ref": [2.0, 4.0, 4.0], "fast": [1.0, 1.0, 3.0]})
    table = ratio_table(seconds, "ref")
    assert list(table.columns) == ["method", "repeat", "ratio"] and list(table["method"]) == ["ref"] * 3 + ["fast"] * 3
    plt = pyplot()
    fig, ax = plt.subplots()
    ratio_dots(ax, table, paper={"fast": 0.5})
    points = [collection.get_offsets() for collection in ax.collections]
    repeats_fast = np.asarray(points[2])  # ref: repeats, median; fast: repeats, median, paper
    assert sorted(repeats_fast[:, 0]) == [0.25, 0.5, 0.75]  # 1/4, 1/2, 3/4 computed by hand
    assert np.asarray(points[3])[0, 0] == 0.5  # the median of the three
    assert np.asarray(points[4])[0, 0] == 0.5  # the paper's tick
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["ref", "fast"]
    with pytest.raises(ValueError, match="reference 'slow'"):
        ratio_table(seconds, "slow")
    plt.close(fig)


def test_map_keeper_keeps_the_same_images_for_every_setting():
    from types import SimpleNamespace

    import torch

    from adlib.companion.plots_patchcore import MapKeeper

    samples = [
        SimpleNamespace(image=f"img{i}.png", label=label, defect="good" if label == 0 else "crack")
        for i, label in enumerate([0, 1, 0, 1, 1])
    ]
    masks = torch.zeros(5, 4, 4, dtype=torch.bool)

    def result(test, offset):
        maps = torch.stack([torch.full((4, 4), float(int(s.image[3]) + offset)) for s in test])
        return SimpleNamespace(category=SimpleNamespace(test=test), scores=SimpleNamespace(maps=maps), masks=masks)

    keeper = MapKeeper(lambda settings: f"p = {settings}", defective=2, good=1)
    keeper(result(samples, 0), 1)
    keeper(result(samples[::-1], 10), 3)  # another order: still the same images, by path
    assert [s.image for s in keeper.samples] == ["img1.png", "img3.png", "img0.png"]
    assert [float(m[0, 0]) for m in keeper.rows["p = 1"]] == [1, 3, 0]
    assert [float(m[0, 0]) for m in keeper.rows["p = 3"]] == [11, 13, 10]
    assert keeper.titles() == ["crack", "crack", "good"]
    with pytest.raises(ValueError, match="img1.png"):
        keeper(result(samples[2:3], 0), 5)
