"""adlib.evidence.verdicts.method_intervals against a slow, obvious bootstrap; the plots that show intervals."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from adlib.companion.plotting import curves_with_intervals, heatmap_panels, interval_dots, verdict_dots
from adlib.evidence.claims import Claim
from adlib.evidence.per_image import image_rows
from adlib.evidence.verdicts import assess, method_intervals
from adlib.style import pyplot


def table_of(units, methods, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for (category, unit_seed), (n_good, n_defective) in units.items():
        labels = np.array([0] * n_good + [1] * n_defective)
        images = [f"img-{k:03d}" for k in range(labels.size)]
        for method, strength in methods.items():
            scores = np.round(labels * strength + rng.normal(size=labels.size), 1)
            frames.append(image_rows(category, unit_seed, method, images, labels, scores))
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=3).reset_index(drop=True)


UNITS = {("brick", 0): (5, 9), ("pill", 0): (4, 7), ("pill", 1): (4, 7)}


def slow_intervals(table, method, n_resamples, seed):
    """The documented draws (one generator; groups, then units in sorted order; good then defective
    draws, made once per category and image set, so pill's two seeds share them) for the first group,
    with sklearn's AUROC per resample."""
    rng = np.random.default_rng(seed)
    rows = table[table["method"] == method]
    point, resampled, draws = [], [], {}
    for key in sorted(set(zip(rows["category"], rows["seed"]))):
        unit = rows[(rows["category"] == key[0]) & (rows["seed"] == key[1])].sort_values("image")
        labels, scores = unit["label"].to_numpy(), unit["score"].to_numpy()
        good, defective = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        images = (key[0], tuple(unit["image"]))
        if images not in draws:
            draws[images] = (
                good[rng.integers(0, good.size, size=(n_resamples, good.size))],
                defective[rng.integers(0, defective.size, size=(n_resamples, defective.size))],
            )
        draws_good, draws_defective = draws[images]
        point.append(roc_auc_score(labels, scores))
        resampled.append(
            [roc_auc_score(labels[np.r_[g, d]], scores[np.r_[g, d]]) for g, d in zip(draws_good, draws_defective)]
        )
    statistic = np.mean(resampled, axis=0)
    return np.mean(point), *np.percentile(statistic, [2.5, 97.5])


def test_method_intervals_match_a_slow_bootstrap():
    table = table_of(UNITS, {"A": 1.5, "B": 0.3})
    got = method_intervals(table, n_resamples=300, seed=4)
    assert list(got["method"]) == ["A", "B"] and list(got["units"]) == [3, 3]
    estimate, low, high = slow_intervals(table, "A", 300, 4)  # "A" is the first group: the same draws
    row = got.iloc[0]
    assert row["estimate"] == pytest.approx(estimate) and row["low"] == pytest.approx(low)
    assert row["high"] == pytest.approx(high)
    assert row["n"] == "3 units (2 categories, 2 seeds) x 11-14 test images (4-5 good / 7-9 defective)"
    b = got.iloc[1]
    assert b["low"] <= b["estimate"] <= b["high"] and b["estimate"] < row["estimate"]


def test_method_intervals_per_category_and_errors():
    table = table_of(UNITS, {"A": 1.0})
    per = method_intervals(table, by=("method", "category"), n_resamples=200)
    assert list(per["category"]) == ["brick", "pill"] and list(per["units"]) == [1, 2]
    with pytest.raises(ValueError, match="include 'method'"):
        method_intervals(table, by=("category",))
    with pytest.raises(ValueError, match="lacks the columns"):
        method_intervals(table.drop(columns="score"))
    with pytest.raises(ValueError, match="good and defective"):
        method_intervals(table[table["label"] == 1])


def test_identical_methods_have_identical_intervals():
    table = table_of(UNITS, {"A": 1.0})
    twin = table.assign(method="B")
    got = method_intervals(pd.concat([table, twin]), n_resamples=200)
    assert got.iloc[0][["estimate", "low", "high"]].tolist() == got.iloc[1][["estimate", "low", "high"]].tolist()


def test_interval_dots_put_dots_at_the_estimates_and_ticks_at_the_paper():
    plt = pyplot()
    intervals = pd.DataFrame({"method": ["A", "B"], "estimate": [0.9, 0.7], "low": [0.85, 0.6], "high": [0.95, 0.8]})
    fig, ax = plt.subplots()
    interval_dots(ax, intervals, paper={"A": 0.99})
    xs = sorted(x for line in ax.get_lines() for x in np.atleast_1d(line.get_xdata()))
    assert 0.9 in xs and 0.7 in xs and 0.99 in xs
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "A"]  # table order, top down
    with pytest.raises(ValueError, match="several rows"):
        interval_dots(ax, pd.concat([intervals, intervals]))
    plt.close(fig)


def test_verdict_dots_and_curves_draw_every_series():
    plt = pyplot()
    table = table_of(UNITS, {"A": 1.5, "B": 0.3})
    verdict = assess(Claim.above("A beats B", "image_auroc", "A", "B", paper=0.1), table, n_resamples=200)
    fig, (left, right) = plt.subplots(1, 2)
    verdict_dots(left, [verdict])
    assert any(np.isclose(np.atleast_1d(line.get_xdata()), verdict.estimate).any() for line in left.get_lines())
    curve = pd.DataFrame(
        {
            "method": ["A"] * 3,
            "noise_ratio": [0, 0.1, 0.2],
            "estimate": [0.9, 0.8, 0.7],
            "low": [0.8, 0.7, 0.6],
            "high": [1.0, 0.9, 0.8],
        }
    )
    paper = pd.DataFrame({"method": ["A"] * 2, "noise_ratio": [0, 0.2], "value": [0.99, 0.9]})
    curves_with_intervals(right, curve, "noise_ratio", paper=paper)
    labels = [line.get_label() for line in right.get_lines()]
    assert labels == ["A", "A (paper)"] and len(right.collections) == 1  # one band
    plt.close(fig)


def test_heatmap_panels_one_row_per_method_and_checks_lengths():
    images = [np.zeros((8, 8, 3)), np.ones((8, 8, 3))]
    maps = [np.arange(64.0).reshape(8, 8), np.zeros((8, 8))]
    masks = [np.zeros((8, 8), bool), np.eye(8, dtype=bool)]
    fig = heatmap_panels(images, {"PatchCore": maps, "SoftPatch": maps}, masks, titles=["good", "crack"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6 and image_axes[2].get_ylabel() == "PatchCore"
    with pytest.raises(ValueError, match="one map per image"):
        heatmap_panels(images, {"PatchCore": maps[:1]})
    pyplot().close(fig)


def pixel_units():
    """Two units of one method, maps with few distinct scores (so PixelStats is exact), each evaluation's
    test order unlike sorted order; returns the per-image table (shuffled) and pixel_stats by result_key."""
    from adlib.evaluation.pixel_stats import PixelStats

    rng = np.random.default_rng(2)
    frames, stats, cases = [], {}, {}
    for category, n in (("brick", 7), ("pill", 8)):
        labels = np.array([0, 1] * (n // 2) + [1] * (n % 2))
        masks = np.zeros((n, 10, 10), dtype=bool)
        for i in np.flatnonzero(labels):
            masks[i, i % 4 : i % 4 + 3, 1 : 3 + i % 3] = True
        maps = np.round(masks * 0.7 + rng.normal(scale=0.5, size=masks.shape), 1)
        images = [f"{category}/test/{k:02d}.png" for k in rng.permutation(n)]  # evaluation order
        key = f"key-{category}"
        frames.append(image_rows(category, 0, "A", images, labels, np.zeros(n)).assign(result_key=key))
        stats[key] = PixelStats.from_maps(masks, maps, images=images)
        cases[category] = (images, labels, masks, maps)
    table = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=1)
    return table, stats, cases


@pytest.mark.parametrize("metric", ["pixel_auroc", "pro"])
def test_pixel_method_intervals_match_a_slow_bootstrap(metric):
    """The documented draws per unit (sorted images, good then defective), each resample's metric from
    adlib.evaluation.metrics on the explicitly repeated images."""
    from adlib.evaluation.metrics import pixel_auroc, pro

    exact = {"pixel_auroc": pixel_auroc, "pro": lambda m, s: pro(m, s, anomalous_only=True)}[metric]
    table, stats, cases = pixel_units()
    got = method_intervals(table, metric=metric, n_resamples=50, seed=3, pixel_stats=stats).iloc[0]
    rng = np.random.default_rng(3)
    point, resampled = [], []
    for category in ("brick", "pill"):
        images, labels, masks, maps = cases[category]
        order = np.argsort(images)  # sorted position -> evaluation index
        sorted_labels = labels[order]
        good, defective = np.flatnonzero(sorted_labels == 0), np.flatnonzero(sorted_labels == 1)
        draws = np.concatenate(
            [
                good[rng.integers(0, good.size, size=(50, good.size))],
                defective[rng.integers(0, defective.size, size=(50, defective.size))],
            ],
            axis=1,
        )
        point.append(exact(masks, maps))
        resampled.append([exact(masks[order[row]], maps[order[row]]) for row in draws])
    low, high = np.percentile(np.mean(resampled, axis=0), [2.5, 97.5])
    assert got["estimate"] == pytest.approx(np.mean(point), abs=1e-12)
    assert (got["low"], got["high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    with pytest.raises(ValueError, match="pass pixel_stats=grid.pixel_stats"):
        method_intervals(table, metric=metric)
    with pytest.raises(ValueError, match="not one evaluation of pixel_stats"):
        method_intervals(table, metric=metric, pixel_stats={"key-brick": stats["key-brick"]})
