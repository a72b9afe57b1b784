"""The figure helpers of the PatchCore notebooks (adlib.plotting, '# --- pca'): what they draw, checked on the axes."""

import numpy as np

from adlib.plotting import coverage_figure, pyplot, seed_verdict_dots
from adlib.toy import seed_verdict


def verdicts():
    return [seed_verdict("A nearer", "max_distance", "A", "B", [0.1, 0.12, 0.11], [0.4, 0.42, 0.41], "below", 50),
            seed_verdict("A noisy", "mean_distance", "A", "B", [0.1, 0.5, 0.3], [0.3, 0.3, 0.3], "below", 50)]


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
    shown = {("mix", "a"): (points, kept, full), ("mix", "b"): (points, kept, full),
             ("square", "a"): (points, kept, plain), ("square", "b"): (points, kept, plain)}
    fig = coverage_figure(shown, verdicts(), {"a": "sampler a", "b": "sampler b"}, 4)
    assert len(fig.axes) == 5
    assert "clusters missed 1, outliers kept 2" in fig.axes[0].get_title()
    assert "clusters" not in fig.axes[2].get_title() and fig.axes[2].get_ylabel().startswith("square")
    pyplot().close(fig)
