"""The SoftPatch notebooks' figure helpers (adlib.companion.plots_softpatch, adlib.companion.plotting.ratio_dots): each draws what it says."""

import numpy as np
import pandas as pd
import pytest

from adlib.companion.plots_softpatch import filter_ranking, injected_noise_grid, injected_training_panels
from adlib.companion.plotting import ratio_dots
from adlib.data.datasets import Preprocessing, load_category
from adlib.data.protocol import add_training_noise
from adlib.style import pyplot


def test_injected_training_panels_outlines_only_the_injected_images(tiny_benchmark):
    noisy, record = add_training_noise(load_category(tiny_benchmark, "brick"), 0.34, True, seed=0)
    assert len(record.moved) == 2  # int(0.34 * 6)
    fig = injected_training_panels(noisy.train, Preprocessing(resize=64, crop=64), count=4, n_good=2)
    axes = fig.axes
    titles = [ax.get_title() for ax in axes]
    assert sum(title.startswith("injected") for title in titles) == 2 and titles[-2:] == ["good", "good"]
    for ax, title in zip(axes, titles):
        outlined = len(ax.collections) > 0  # contour sets of draw_mask_outline
        assert outlined == title.startswith("injected"), title
    pyplot().close(fig)


def test_injected_training_panels_refuses_a_clean_training_set(tiny_benchmark):
    with pytest.raises(ValueError, match="no injected"):
        injected_training_panels(load_category(tiny_benchmark, "brick").train, Preprocessing(resize=64, crop=64))


def test_injected_noise_grid_shows_each_categorys_injected_images_outlined(tiny_benchmark):
    trains = {
        name: add_training_noise(load_category(tiny_benchmark, name), 0.34, False, seed=0)[0].train
        for name in ("pill", "brick")
    }
    assert [sum(s.label for s in train) for train in trains.values()] == [2, 2]  # int(0.34 * 6)
    trains["brick"] = trains["brick"][:-1]  # brick keeps one injected image (they are appended last)
    prep = Preprocessing(resize=64, crop=64)
    fig = injected_noise_grid(trains, prep, per_category=3)
    axes = np.array(fig.axes).reshape(2, 2)  # a row per category (in the mapping's order); 2 columns: the most shown
    for row, (name, shown) in zip(axes, (("pill", 2), ("brick", 1))):
        injected = [s for s in trains[name] if s.label == 1]
        assert len(injected) == shown
        assert row[0].get_ylabel() == f"{name}\n{shown} of {len(trains[name])} injected"
        titles = [ax.get_title() for ax in row[:shown]]
        assert sorted(titles) == sorted(s.defect for s in injected)
        assert len(set(titles)) == len({s.defect for s in injected})  # one per defect type before a second
        assert all(len(ax.collections) > 0 and ax.images for ax in row[:shown])  # outlined (contours) images
        assert all(not ax.axison and not ax.images for ax in row[shown:])  # nothing to show: an empty panel
    pyplot().close(fig)
    fig = injected_noise_grid(trains, prep, per_category=1)
    assert len(fig.axes) == 2  # one image per category
    pyplot().close(fig)


def test_injected_noise_grid_shows_one_image_per_defect_type_before_a_second(tiny_benchmark):
    category = load_category(tiny_benchmark, "brick")
    noisy = add_training_noise(category, 0.99, True, seed=0)[0].train  # every defective test image: 6
    defects = sorted({s.defect for s in noisy if s.label == 1})
    assert len(defects) > 1 and sum(s.label for s in noisy) > len(defects)  # some type appears twice
    fig = injected_noise_grid({"brick": noisy}, Preprocessing(resize=64, crop=64), per_category=len(defects))
    assert sorted(ax.get_title() for ax in fig.axes) == defects
    pyplot().close(fig)


def test_injected_noise_grid_names_a_clean_category(tiny_benchmark):
    trains = {
        "pill": add_training_noise(load_category(tiny_benchmark, "pill"), 0.34, False, seed=0)[0].train,
        "brick": load_category(tiny_benchmark, "brick").train,
    }
    with pytest.raises(ValueError, match=r"\['brick'\]"):
        injected_noise_grid(trains, Preprocessing(resize=64, crop=64))


def test_filter_ranking_puts_points_and_cuts_where_the_scores_say():
    fig, ax = pyplot().subplots()
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.3, 0.4, 0.6, 0.8, 0.05])
    injected = np.zeros(10, bool)
    injected[[1, 8]] = True  # the two highest scores: ranks 1 and 2
    filter_ranking(ax, scores, injected, drops=[0.1, 0.3])
    good, bad = ax.collections
    np.testing.assert_allclose(bad.get_offsets()[:, 0], [1, 2])
    np.testing.assert_allclose(bad.get_offsets()[:, 1], [0.9, 0.8])
    assert list(good.get_offsets()[:, 0]) == list(range(3, 11))
    cuts = sorted(line.get_xdata()[0] for line in ax.lines)
    assert cuts == [1.5, 3.5]  # int(0.1 * 10) and int(0.3 * 10) images leave
    with pytest.raises(ValueError, match="one per training image"):
        filter_ranking(ax, scores, injected[:5], drops=[0.1])
    pyplot().close(fig)


def test_ratio_dots_draws_each_category_the_median_and_the_paper():
    fig, ax = pyplot().subplots()
    ratios = pd.DataFrame(
        {"method": ["A", "A", "B", "B"], "category": ["x", "y", "x", "y"], "ratio": [1.0, 3.0, 0.5, 0.7]}
    )
    ratio_dots(ax, ratios, paper={"A": 3.5}, unit="category")
    a_dots, a_median, a_paper, b_dots, b_median = ax.collections
    np.testing.assert_allclose(a_dots.get_offsets(), [[1.0, 0], [3.0, 0]])
    np.testing.assert_allclose(b_dots.get_offsets(), [[0.5, 1], [0.7, 1]])
    np.testing.assert_allclose([a_median.get_offsets()[0, 0], b_median.get_offsets()[0, 0]], [2.0, 0.6])
    assert a_paper.get_offsets()[0, 0] == 3.5 and a_dots.get_label() == "ours: one category"
    assert [label.get_text() for label in ax.get_yticklabels()] == ["A", "B"]
    pyplot().close(fig)


def test_show_displays_the_figure_as_png_and_closes_it(monkeypatch):
    import IPython.display

    from adlib.companion.plotting import show

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    show(fig)
    assert len(shown) == 1 and shown[0].data[:8] == b"\x89PNG\r\n\x1a\n" and len(shown[0].data) > 1000
    assert not plt.fignum_exists(fig.number)


def test_ratio_dots_mean_centre_and_labelled_log_ticks():
    from adlib.companion.plotting import ratio_ticks

    fig, ax = pyplot().subplots()
    ratios = pd.DataFrame({"method": ["A", "A", "A"], "ratio": [0.8, 0.9, 1.3]})
    ratio_dots(ax, ratios, center="mean")
    _, centre = ax.collections
    assert abs(centre.get_offsets()[0, 0] - 1.0) < 1e-12 and centre.get_label() == "ours: mean"
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert "1x" in labels and len([label for label in labels if label]) >= 3
    assert ratio_ticks(0.75, 1.4) == [0.8, 0.9, 1, 1.1, 1.25]
    assert 1 in ratio_ticks(0.01, 100) and len(ratio_ticks(0.01, 100)) <= 8
    with pytest.raises(ValueError, match="center"):
        ratio_dots(ax, ratios, center="mode")
    pyplot().close(fig)
