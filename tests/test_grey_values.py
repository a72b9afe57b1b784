"""adlib.companion.grey_values against scipy and slow loops."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from adlib.companion.grey_values import (
    grey_images,
    pairwise_w1,
    ratio_verdict,
    spread_table,
    summary_line,
    within_spread,
)


def test_pairwise_w1_and_spread_match_scipy():
    rng = np.random.default_rng(0)
    greys = rng.beta(2, 5, size=(4, 6, 5))
    distances = pairwise_w1(greys)
    spread = within_spread(greys)
    for i in range(4):
        flat = greys[i].ravel()
        assert abs(spread[i] - wasserstein_distance(flat, [np.median(flat)])) < 1e-12
        for j in range(4):
            assert abs(distances[i, j] - wasserstein_distance(flat, greys[j].ravel())) < 1e-12


def test_ratio_estimate_is_mean_between_over_mean_within():
    rng = np.random.default_rng(1)
    greys = {"a": rng.random((5, 8, 8)), "b": rng.random((4, 8, 8)) * 0.5 + 0.5 * (np.arange(4) / 4)[:, None, None]}
    table = spread_table(greys, n_resamples=100, seed=0).set_index("category")
    for name, images in greys.items():
        pairs = [
            wasserstein_distance(images[i].ravel(), images[j].ravel())
            for i in range(len(images))
            for j in range(len(images))
            if i != j
        ]
        within = np.mean([np.abs(x.ravel() - np.median(x)).mean() for x in images])
        assert abs(table.loc[name, "ratio"] - np.mean(pairs) / within) < 1e-9
        assert table.loc[name, "ratio_low"] <= table.loc[name, "ratio"] <= table.loc[name, "ratio_high"]
    assert abs(table.loc["mean", "ratio"] - table.loc[["a", "b"], "ratio"].mean()) < 1e-12
    # images that differ only by a shift: the between-image distance is the shift
    shifted = {"s": np.stack([np.full((4, 4), 0.1), np.full((4, 4), 0.5)]) + np.linspace(0, 0.01, 16).reshape(4, 4)}
    row = spread_table(shifted, n_resamples=10).iloc[0]
    assert abs(row["between"] - 0.4) < 1e-12 and row["ratio"] > 10


def test_grey_images_refuses_normalised_input():
    rgb = np.ones((1, 3, 2, 2))
    assert np.allclose(grey_images(rgb), 1.0)
    with pytest.raises(ValueError, match="without normalisation"):
        grey_images(rgb * 2.5)


def test_image_histograms_draws_one_line_per_shown_image_and_the_pool():
    from adlib.companion.plots_patchcore import image_histograms
    from adlib.style import pyplot

    fig, ax = pyplot().subplots()
    image_histograms(ax, np.random.default_rng(0).random((20, 4, 4)), shown=5)
    assert len(ax.lines) == 6 and ax.lines[-1].get_label() == "all 20 images pooled"
    pyplot().close(fig)


def test_ratio_verdict_judges_the_mean_ratio_over_categories():
    rng = np.random.default_rng(3)
    mixed = {name: rng.random((4, 6, 6)) for name in "abc"}  # every image the same uniform mixture: ratio << 1
    table = spread_table(mixed, n_resamples=50)
    verdict = ratio_verdict(table)
    assert verdict.status == "does not hold" and verdict.sample() == "3 categories x 4 good training images"
    assert verdict.estimate == pytest.approx(table[table.category != "mean"]["ratio"].mean())
    # each image one grey level (+ a little noise), the levels far apart: images differ far more than pixels
    levels = {name: np.linspace(0.1, 0.9, 4)[:, None, None] + 0.01 * rng.random((4, 6, 6)) for name in "abc"}
    assert ratio_verdict(spread_table(levels, n_resamples=50)).status == "holds"
    assert ratio_verdict(spread_table({"a": mixed["a"]}, n_resamples=50)).status == "inconclusive"  # 1 category


def test_summary_line_reads_the_mean_row():
    table = spread_table({"a": np.random.default_rng(3).random((4, 6, 6))}, n_resamples=50)
    line = summary_line(table)
    mean = table.iloc[-1]
    assert f"(gap {mean['gap']:.3f}, 95 % bootstrap interval over images [{mean['gap_low']:.3f}" in line
    assert f"their ratio {mean['ratio']:.2f} [{mean['ratio_low']:.2f}, {mean['ratio_high']:.2f}]" in line
    assert "**" not in line  # plain text: the bold verdict lines are the verdicts'


def test_gap_is_between_minus_floor_and_verdicts_cite_the_register():
    from adlib.companion.grey_values import FLOOR_ID, RATIO_ID, floor_verdict

    rng = np.random.default_rng(2)
    greys = {name: rng.random((6, 8, 8)) * 0.3 + shift for name, shift in (("a", 0.0), ("b", 0.5))}
    table = spread_table(greys, n_resamples=50, seed=0)
    assert np.allclose(table["gap"], table["between"] - table["floor"])
    assert (table["gap_low"] <= table["gap_high"]).all()
    assert floor_verdict(table).source == FLOOR_ID
    assert ratio_verdict(table).source == RATIO_ID


def test_mixture_beats_one_gaussian_on_two_grey_levels_and_not_on_one_gaussian():
    from adlib.companion.grey_values import MIXTURE_ID, held_out_loglik, mixture_table, mixture_verdict

    rng = np.random.default_rng(3)
    two_levels = np.where(rng.random((6, 20, 20)) < 0.5, 0.2, 0.8) + rng.normal(0, 0.03, (6, 20, 20))
    single, mixture, components = held_out_loglik(two_levels, fit_pixels=1200)
    assert single.shape == mixture.shape == (3,) and components >= 2
    assert (mixture - single > 0.3).all()
    gaussian = rng.normal(0.5, 0.1, (6, 20, 20))
    single, mixture, _ = held_out_loglik(gaussian, fit_pixels=1200)
    assert np.abs(mixture - single).max() < 0.05
    table = mixture_table({"two": two_levels, "one": gaussian}, n_resamples=50).set_index("category")
    assert table.loc["two", "loglik_gain_low"] > 0 and table.loc["two", "held_out_images"] == 3
    assert abs(table.loc["mean", "loglik_gain"] - table.loc[["two", "one"], "loglik_gain"].mean()) < 1e-12
    assert mixture_verdict(table.reset_index()).source == MIXTURE_ID
