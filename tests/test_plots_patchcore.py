"""The figure helpers of the PatchCore notebooks (adlib.companion.plots_patchcore): what they draw, checked on the axes."""

import numpy as np
import pandas as pd
import pytest

from adlib.companion.plots_patchcore import coverage_figure, error_gallery, pr_roc_figure, seed_verdict_dots
from adlib.evidence.intervals import interval_verdict
from adlib.style import pyplot


def verdicts():
    return [
        interval_verdict("A nearer", "A - B max distance", [-0.3, -0.29, -0.31], "below", detail="50 points"),
        interval_verdict("A noisy", "A - B mean distance", [-0.2, 0.2, 0.0], "below", detail="50 points"),
    ]


def test_seed_verdict_dots_draw_one_row_per_verdict_with_its_interval_and_status():
    fig, ax = pyplot().subplots()
    seed_verdict_dots(ax, verdicts())
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == ["A noisy", "A nearer"]  # first verdict on top
    first = verdicts()[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_ydata()[0] == 1]
    assert np.allclose(lines[0].get_xdata(), [first.low, first.high])
    assert [text.get_text() for text in ax.texts] == ["inconclusive", "holds"]
    assert "n = 3 seeds x 50 points" in ax.get_xlabel()
    pyplot().close(fig)


def test_coverage_figure_has_a_panel_per_data_set_and_sampler_and_the_verdicts():
    rng = np.random.default_rng(0)
    points, kept = rng.uniform(size=(30, 2)), rng.uniform(size=(4, 2))
    full = {"max_distance": 0.3, "mean_distance": 0.1, "clusters_missed": 1.0, "outliers_kept": 2.0}
    plain = {"max_distance": 0.3, "mean_distance": 0.1}
    shown = {
        ("mix", "a"): (points, kept, full),
        ("mix", "b"): (points, kept, full),
        ("square", "a"): (points, kept, plain),
        ("square", "b"): (points, kept, plain),
    }
    fig = coverage_figure(shown, verdicts(), {"a": "sampler a", "b": "sampler b"}, 4)
    assert len(fig.axes) == 5  # 4 scatter panels, one verdict panel (both verdicts are on distances)
    assert "clusters missed 1, outliers kept 2" in fig.axes[0].get_title()
    assert "clusters" not in fig.axes[2].get_title() and fig.axes[2].get_ylabel().startswith("square")
    assert fig.axes[4].get_xlabel().startswith("distance")
    pyplot().close(fig)
    counts = interval_verdict("A keeps more", "A - B outliers kept", [4, 5, 5], "above", detail="50 points")
    fig = coverage_figure(shown, [*verdicts(), counts], {"a": "sampler a", "b": "sampler b"}, 4)
    assert len(fig.axes) == 6 and fig.axes[5].get_xlabel().startswith("count")  # one unit per axis
    assert [t.get_text() for t in fig.axes[5].get_yticklabels()] == ["A keeps more"]
    pyplot().close(fig)


def curves_table():
    import pandas as pd

    rng = np.random.default_rng(2)
    rows = []
    for category in ("brick", "pill"):
        labels = np.r_[np.zeros(8, int), np.ones(12, int)]
        scores = rng.normal(size=20) + labels
        rows += [
            {
                "category": category,
                "method": "M",
                "seed": 0,
                "image": f"{category}/{i}.png",
                "label": int(label),
                "score": float(s),
                "defect": "good" if label == 0 else "crack",
            }
            for i, (label, s) in enumerate(zip(labels, scores))
        ]
    return pd.DataFrame(rows)


def test_pr_roc_figure_puts_each_working_point_on_its_roc_curve():
    from adlib.evaluation.metrics import image_auroc
    from adlib.evidence.thresholds import working_points

    images = curves_table()
    points = working_points(images)
    fig = pr_roc_figure(images, points)
    roc = fig.axes[1]
    curves = [line for line in roc.get_lines() if len(line.get_xdata()) > 2]
    dots = [line for line in roc.get_lines() if len(line.get_xdata()) == 1]
    assert len(curves) == 2 and len(dots) == 2
    for curve, dot in zip(curves, dots):
        vertices = set(zip(np.round(curve.get_xdata(), 9), np.round(curve.get_ydata(), 9)))
        assert (round(float(dot.get_xdata()[0]), 9), round(float(dot.get_ydata()[0]), 9)) in vertices
    brick = images[images.category == "brick"]
    assert f"AUROC {image_auroc(brick.label, brick.score):.3f}" in roc.get_legend().get_texts()[0].get_text()
    pyplot().close(fig)
    with pytest.raises(ValueError, match="one method and one seed"):
        pr_roc_figure(images, pd.concat([points, points]))


def test_error_gallery_draws_a_pair_of_rows_per_category(tmp_path):
    import pandas as pd
    from PIL import Image as PILImage

    from adlib.data.datasets import Preprocessing

    path = tmp_path / "a.png"
    PILImage.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)
    prep = Preprocessing(resize=16, crop=16)

    class Sample:
        image = path

    maps, masks = np.random.default_rng(0).uniform(size=(2, 16, 16)), np.zeros((2, 16, 16), bool)
    masks[1, 4:8, 4:8] = True
    errors = pd.DataFrame(
        [
            {"category": "c", "index": 0, "outcome": "FP", "defect": "good", "score": 2.0, "threshold": 1.5},
            {"category": "c", "index": 1, "outcome": "FN", "defect": "crack", "score": 1.0, "threshold": 1.5},
        ]
    )
    fig = error_gallery(errors, {"c": ([Sample(), Sample()], maps, masks)}, prep, "M")
    titles = [ax.get_title() for ax in fig.axes]
    assert "FP · c\ngood" in titles and "FN · c\ncrack" in titles and "score 1\nt* 1.5" in titles
    assert any("M score (c)" in ax.get_ylabel() for ax in fig.axes)  # the category's colour bar
    pyplot().close(fig)
    wrapped = error_gallery(errors, {"c": ([Sample(), Sample()], maps, masks)}, prep, "M", columns=1)
    assert sum(ax.get_title().startswith(("FP", "FN")) for ax in wrapped.axes) == 2  # both shown, one per row pair
    pyplot().close(wrapped)
    empty = error_gallery(errors.iloc[:0], {}, prep, "M")
    assert "no misclassified" in empty.axes[0].texts[0].get_text()
    pyplot().close(empty)


def test_threshold_titles_state_the_prediction_and_whether_it_is_right():
    from adlib.companion.plots_patchcore import threshold_titles

    titles = threshold_titles([3.0, 2.0, 1.0, 2.0], [1, 1, 0, 0], 2.0)
    assert titles == [
        "s = 3 >= t* 2\ndefective (right)",
        "s = 2 >= t* 2\ndefective (right)",
        "s = 1 < t* 2\ngood (right)",
        "s = 2 >= t* 2\ndefective (WRONG)",
    ]
    with pytest.raises(ValueError, match="one label per score"):
        threshold_titles([1.0], [0, 1], 0.5)
