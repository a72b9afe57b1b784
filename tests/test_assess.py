"""adlib.evidence.verdicts against a slow, obvious bootstrap (plain loops, sklearn's roc_auc_score) and on cases
whose answers are known: identical methods, a perfect ranking, a clearly worse method, unequal units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from adlib.evaluation.metrics import image_auroc, pixel_auroc, pro
from adlib.evaluation.pixel_stats import PixelStats
from adlib.evidence import per_image
from adlib.evidence.bootstrap import resampled_image_auroc, stratified_indices
from adlib.evidence.claims import Claim, reported_difference, reported_value
from adlib.evidence.per_image import image_rows, subset_metric
from adlib.evidence.verdicts import assess, interval_status, method_intervals

PAPER_DATA = Path(__file__).resolve().parents[1] / "adlib" / "evidence" / "paper_data"


def make_table(units, scorers, seed=0):
    """Rows for units {(category, seed): (n_good, n_defective)} and methods {name: f(labels, rng) -> scores}.

    Images are named 'img-<k>' in a shuffled order, so that the code has to sort them."""
    rng = np.random.default_rng(seed)
    frames = []
    for (category, unit_seed), (n_good, n_defective) in units.items():
        labels = np.array([0] * n_good + [1] * n_defective)
        images = [f"img-{k:03d}" for k in range(labels.size)]
        for method, scorer in scorers.items():
            frames.append(image_rows(category, unit_seed, method, images, labels, scorer(labels, rng)))
    table = pd.concat(frames, ignore_index=True)
    return table.sample(frac=1.0, random_state=1).reset_index(drop=True)


def random_scores(labels, rng):
    return np.round(rng.normal(size=labels.size), 1)  # rounded: ties between good and defective occur


def weak_scores(labels, rng):
    return np.round(labels * 0.8 + rng.normal(size=labels.size), 1)


def perfect_scores(labels, rng):
    return labels * 10.0 + rng.uniform(size=labels.size)


def inverted_scores(labels, rng):
    return -perfect_scores(labels, rng)


UNITS = {("brick", 0): (5, 9), ("brick", 1): (5, 9), ("pill", 0): (4, 7), ("wood", 3): (6, 6)}


def slow_bootstrap(table, a, b, n_resamples, seed):
    """The documented protocol, written out: units in sorted order, images in sorted order, good draws
    then defective draws from one generator (made once per category and image set: the seeds of a
    category that score the same images share them), sklearn AUROC of every resample, mean difference
    over units."""
    rng = np.random.default_rng(seed)
    per_unit = []  # per unit: (point difference, [difference per resample])
    draws = {}
    for key in sorted(set(zip(table["category"], table["seed"]))):
        unit = table[(table["category"] == key[0]) & (table["seed"] == key[1])]
        rows = {m: unit[unit["method"] == m].sort_values("image") for m in (a, b)}
        labels = rows[a]["label"].tolist()
        good = [i for i, label in enumerate(labels) if label == 0]
        defective = [i for i, label in enumerate(labels) if label == 1]
        images = (key[0], tuple(rows[a]["image"]))
        if images not in draws:
            draws[images] = (
                rng.integers(0, len(good), size=(n_resamples, len(good))),
                rng.integers(0, len(defective), size=(n_resamples, len(defective))),
            )
        draws_good, draws_defective = draws[images]

        def auroc(method, chosen):
            scores = rows[method]["score"].tolist()
            return roc_auc_score([labels[i] for i in chosen], [scores[i] for i in chosen])

        point = auroc(a, range(len(labels))) - auroc(b, range(len(labels)))
        resampled = []
        for r in range(n_resamples):
            chosen = [good[j] for j in draws_good[r]] + [defective[j] for j in draws_defective[r]]
            resampled.append(auroc(a, chosen) - auroc(b, chosen))
        per_unit.append((point, resampled))
    estimate = sum(point for point, _ in per_unit) / len(per_unit)
    statistic = [sum(unit[1][r] for unit in per_unit) / len(per_unit) for r in range(n_resamples)]
    low, high = np.percentile(statistic, [2.5, 97.5])
    return estimate, np.array(statistic), low, high


def test_matches_slow_bootstrap():
    table = make_table(UNITS, {"A": weak_scores, "B": random_scores})
    verdict = assess(Claim.above("A beats B", "image_auroc", "A", "B"), table, n_resamples=40, seed=7)
    estimate, statistic, low, high = slow_bootstrap(table, "A", "B", n_resamples=40, seed=7)
    assert verdict.estimate == pytest.approx(estimate, abs=1e-12)
    np.testing.assert_allclose(verdict.values, statistic, atol=1e-12)
    assert (verdict.low, verdict.high) == pytest.approx((low, high), abs=1e-12)
    assert verdict.values.shape == (40,)


def test_generic_path_equals_fast_path():
    """Callables over index arrays (into each method's rows in table order) give the fast path's numbers."""
    table = make_table(UNITS, {"A": weak_scores, "B": random_scores})
    claim = Claim.above("A beats B", "image_auroc", "A", "B")

    def auroc_of_subset(rows):
        labels, scores = rows["label"].to_numpy(), rows["score"].to_numpy()
        return lambda indices: image_auroc(labels[indices], scores[indices])

    callables = {key: auroc_of_subset(rows) for key, rows in table.groupby(["category", "seed", "method"])}
    fast = assess(claim, table, n_resamples=100, seed=3)
    generic = assess(claim, table, n_resamples=100, seed=3, subset_metrics=callables)
    np.testing.assert_allclose(generic.values, fast.values, atol=1e-12)
    assert generic.estimate == pytest.approx(fast.estimate, abs=1e-12)


def test_resampled_image_auroc_against_sklearn():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 7 + [1] * 11, dtype=bool)
    scores = np.round(rng.normal(size=18), 1)
    indices = rng.integers(0, 18, size=(40, 18))
    indices[:, 0], indices[:, 1] = 0, 17  # every row has a good and a defective image
    fast = resampled_image_auroc(labels, scores, indices)
    slow = [roc_auc_score(labels[row], scores[row]) for row in indices]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_identical_methods():
    table = make_table(UNITS, {"A": weak_scores})
    table = pd.concat([table, table.assign(method="B")], ignore_index=True)
    above = assess(Claim.above("A beats B", "image_auroc", "A", "B"), table, n_resamples=300)
    assert (above.estimate, above.low, above.high) == (0.0, 0.0, 0.0)
    assert above.status == "inconclusive"
    within = assess(Claim.within("A matches B", "image_auroc", "A", "B", delta=0.01), table, n_resamples=300)
    assert within.status == "holds"


def test_perfect_ranking_beats_random():
    table = make_table(UNITS, {"perfect": perfect_scores, "random": random_scores})
    verdict = assess(Claim.above("perfect beats random", "image_auroc", "perfect", "random"), table)
    assert verdict.status == "holds"
    assert verdict.low > 0
    assert method_intervals(table, n_resamples=50).set_index("method").loc["perfect", "estimate"] == 1.0
    reverse = assess(Claim.above("random beats perfect", "image_auroc", "random", "perfect"), table)
    assert reverse.status == "does not hold" and reverse.high < 0
    within = assess(Claim.within("they match", "image_auroc", "perfect", "random", delta=0.05), table)
    assert within.status == "does not hold"


def test_small_noisy_difference_is_inconclusive():
    table = make_table({("brick", 0): (4, 4)}, {"A": random_scores, "B": random_scores}, seed=5)
    verdict = assess(Claim.above("A beats B", "image_auroc", "A", "B"), table)
    assert verdict.low < 0 < verdict.high
    assert verdict.status == "inconclusive"


def test_units_weigh_equally_whatever_their_size():
    """Unit 1 (40 images): A perfect, B inverted, difference 1 in every resample; unit 2 (6 images):
    identical methods, difference 0. Mean over units = 0.5 exactly (pooling images would not give it)."""
    big = make_table({("brick", 0): (10, 30)}, {"A": perfect_scores, "B": inverted_scores})
    small = make_table({("pill", 0): (3, 3)}, {"A": weak_scores})
    small = pd.concat([small, small.assign(method="B")], ignore_index=True)
    verdict = assess(Claim.above("A beats B", "image_auroc", "A", "B"), pd.concat([big, small]), n_resamples=200)
    assert (verdict.estimate, verdict.low, verdict.high) == (0.5, 0.5, 0.5)
    assert verdict.status == "holds"
    assert verdict.sample() == "2 categories x 1 seed x 6-40 test images (3-10 good / 3-30 defective)"


def test_stratification_keeps_counts():
    rng = np.random.default_rng(0)
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    indices = stratified_indices(labels, 500, rng)
    assert indices.shape == (500, 9)
    assert (~labels[indices[:, :3]]).all() and labels[indices[:, 3:]].all()
    assert (labels[indices].sum(axis=1) == 6).all()
    assert len(np.unique(indices[:, 3:])) == 6  # every defective image is drawn somewhere


def test_deterministic_with_seed_and_row_order():
    table = make_table(UNITS, {"A": weak_scores, "B": random_scores})
    claim = Claim.above("A beats B", "image_auroc", "A", "B")
    first, again = assess(claim, table, seed=11), assess(claim, table, seed=11)
    np.testing.assert_array_equal(first.values, again.values)
    shuffled = assess(claim, table.sample(frac=1.0, random_state=4), seed=11)
    np.testing.assert_array_equal(first.values, shuffled.values)
    other = assess(claim, table, seed=12)
    assert not np.array_equal(first.values, other.values)


def test_trend_against_slow_computation():
    """A's AUROC rises with x (noise shrinks); slope and first-vs-last as np.polyfit / subtraction say."""
    frames = []
    for x, spread in ((0.0, 3.0), (0.1, 1.0), (0.2, 0.3)):

        def scorer(labels, rng, spread=spread):
            return labels + rng.normal(scale=spread, size=labels.size)

        frames.append(make_table(UNITS, {"A": scorer}, seed=int(x * 10)).assign(noise=x))
    table = pd.concat(frames, ignore_index=True)
    rising = assess(Claim.trend("A rises with noise", "image_auroc", "A", "noise", "increasing"), table)
    curve = [
        np.mean(
            [
                roc_auc_score(unit["label"], unit["score"])
                for _, unit in table[table["noise"] == x].groupby(["category", "seed"])
            ]
        )
        for x in (0.0, 0.1, 0.2)
    ]
    assert rising.estimate == pytest.approx(np.polyfit([0.0, 0.1, 0.2], curve, 1)[0], abs=1e-10)
    assert rising.status == "holds"
    falling = assess(Claim.trend("A falls with noise", "image_auroc", "A", "noise", "decreasing"), table)
    assert falling.status == "does not hold"
    first_last = assess(
        Claim.trend("A rises", "image_auroc", "A", "noise", "increasing", statistic="last_minus_first"), table
    )
    assert first_last.estimate == pytest.approx(curve[-1] - curve[0], abs=1e-12)
    assert rising.sample() == (
        "12 units (3 categories, 3 seeds, 3 noise values) x 11-14 test images (4-6 good / 6-9 defective)"
    )


def test_trend_shares_draws_across_sweep_values_with_the_same_images():
    """Same images and the same scores at every x: each resample's curve is flat, so the slope is 0."""
    base = make_table(UNITS, {"A": weak_scores})
    table = pd.concat([base.assign(x=x) for x in (1, 2, 4)], ignore_index=True)
    verdict = assess(Claim.trend("flat", "image_auroc", "A", "x", "increasing"), table, n_resamples=100)
    np.testing.assert_allclose(verdict.values, 0.0, atol=1e-12)
    assert verdict.status == "inconclusive"


def test_pixel_metric_through_subset_callables():
    """Pixel AUROC per resample equals adlib.evaluation.metrics.pixel_auroc of the resampled images (a slow loop),
    also when a method's rows (and so its maps) are in another order than the other's."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    masks = np.zeros((7, 6, 6), dtype=bool)
    for i in range(3, 7):
        masks[i, i - 3 : i, 1:4] = True
    maps = {"A": masks + rng.normal(scale=0.8, size=masks.shape), "B": rng.normal(size=masks.shape)}
    images = [f"img-{i}" for i in range(7)]
    order = {"A": np.arange(7), "B": np.array([6, 0, 5, 1, 4, 2, 3])}
    table = pd.concat(
        [image_rows("brick", 0, m, [images[i] for i in order[m]], labels[order[m]], np.zeros(7)) for m in ("A", "B")]
    )
    callables = {("brick", 0, m): subset_metric("pixel_auroc", masks[order[m]], maps[m][order[m]]) for m in ("A", "B")}
    verdict = assess(
        Claim.above("A localises better", "pixel_auroc", "A", "B"),
        table.drop(columns="score"),
        n_resamples=30,
        seed=2,
        subset_metrics=callables,
    )
    draws = stratified_indices(labels.astype(bool), 30, np.random.default_rng(2))
    slow = [pixel_auroc(masks[row], maps["A"][row]) - pixel_auroc(masks[row], maps["B"][row]) for row in draws]
    np.testing.assert_allclose(verdict.values, slow, atol=1e-12)
    assert verdict.estimate == pytest.approx(pixel_auroc(masks, maps["A"]) - pixel_auroc(masks, maps["B"]))


def test_caption():
    table = make_table({("brick", 0): (2, 4), ("pill", 0): (2, 4)}, {"A": weak_scores})
    table = pd.concat([table, table.assign(method="B")], ignore_index=True)
    verdict = assess(Claim.above("A beats B", "image_auroc", "A", "B", paper=0.299), table, n_resamples=50)
    assert verdict.caption() == (
        "**inconclusive** (n = 2 categories x 1 seed x 6 test images (2 good / 4 defective)): "
        "A above B by +0.000 image AUROC, 95 % CI [+0.000, +0.000]; paper: +0.299"
    )
    plain = assess(Claim.within("A matches B", "image_auroc", "A", "B", delta=0.02), table, n_resamples=50)
    assert plain.caption().startswith("**holds** (n = 2 categories x 1 seed x 6 test images")
    assert plain.caption().endswith("A within 0.02 of B: difference +0.000 image AUROC, 95 % CI [+0.000, +0.000]")


def test_status_rules():
    def status(claim, low, high):
        return interval_status(low, high, claim.side, claim.bound)

    above = Claim.above("", "image_auroc", "A", "B")
    assert [status(above, lo, hi) for lo, hi in ((0.01, 0.2), (-0.2, -0.01), (-0.1, 0.1), (-0.1, 0.0))] == [
        "holds",
        "does not hold",
        "inconclusive",
        "inconclusive",
    ]
    within = Claim.within("", "image_auroc", "A", "B", delta=0.05)
    assert [status(within, lo, hi) for lo, hi in ((-0.05, 0.05), (0.06, 0.1), (-0.1, -0.06), (0.0, 0.1))] == [
        "holds",
        "does not hold",
        "does not hold",
        "inconclusive",
    ]
    falls = Claim.trend("", "image_auroc", "A", "x", "decreasing")
    assert [status(falls, lo, hi) for lo, hi in ((-0.3, -0.1), (0.1, 0.3), (-0.1, 0.1))] == [
        "holds",
        "does not hold",
        "inconclusive",
    ]


def test_reported_difference_against_the_csv():
    sp = pd.read_csv(PAPER_DATA / "sp.csv", dtype=str, keep_default_na=False)

    def cell(method):
        row = sp[(sp.table == "1") & (sp.method == method) & (sp.setting == "noise=0.1;overlap=no")
                 & (sp.category == "mean") & (sp.metric == "image_auroc")]  # fmt: skip
        return float(row.value.item())

    got = reported_difference("SP", "1", "image_auroc", "SoftPatch-lof", "PatchCore", "noise=0.1;overlap=no")
    assert got == pytest.approx(cell("SoftPatch-lof") - cell("PatchCore"))
    with pytest.raises(ValueError, match="settings there"):
        reported_value("SP", "1", "PatchCore", "image_auroc", setting="noise=0.5")


# --------------------------------------------------------------------------- errors


def comparison_table():
    return make_table({("brick", 0): (3, 5), ("pill", 0): (3, 5)}, {"A": weak_scores, "B": random_scores})


CLAIM = Claim.above("A beats B", "image_auroc", "A", "B")


def test_error_unit_without_defective_or_good_images():
    table = comparison_table()
    no_defect = table[~((table["category"] == "pill") & (table["label"] == 1))]
    with pytest.raises(ValueError, match=r"category 'pill', seed 0: 3 test images, all good, no defective.*add defect"):
        assess(CLAIM, no_defect)
    no_good = table[~((table["category"] == "brick") & (table["label"] == 0))]
    with pytest.raises(ValueError, match=r"category 'brick', seed 0: 5 test images, all defective, no good"):
        assess(CLAIM, no_good)


def test_error_mismatched_images():
    table = comparison_table()
    dropped = table.drop(table[(table["method"] == "B") & (table["category"] == "brick")].index[:1])
    with pytest.raises(ValueError, match=r"category 'brick', seed 0: methods 'A' and 'B' were scored on different"):
        assess(CLAIM, dropped)
    only_a = table[~((table["method"] == "B") & (table["category"] == "pill"))]
    with pytest.raises(ValueError, match="cover different"):
        assess(CLAIM, only_a)


def test_error_duplicates_name_the_varying_column():
    table = comparison_table()
    doubled = pd.concat([table.assign(noise_ratio=0.0), table.assign(noise_ratio=0.1)])
    with pytest.raises(ValueError, match=r"appears 2 times.*\['noise_ratio'\]"):
        assess(CLAIM, doubled)


def test_error_unknown_metric_method_and_settings():
    with pytest.raises(ValueError, match=r"unknown metric 'f1'.*image_auroc"):
        Claim.above("", "f1", "A", "B")
    with pytest.raises(ValueError, match=r"method 'C' is not in the table.*\['A', 'B'\]"):
        assess(Claim.above("", "image_auroc", "A", "C"), comparison_table())
    with pytest.raises(ValueError, match="needs the pixel statistics: pass pixel_stats=grid.pixel_stats"):
        assess(Claim.above("", "pro", "A", "B"), comparison_table())
    with pytest.raises(ValueError, match="delta > 0"):
        Claim.within("", "image_auroc", "A", "B", delta=0)
    with pytest.raises(ValueError, match="direction"):
        Claim.trend("", "image_auroc", "A", "x", "up")
    with pytest.raises(ValueError, match="lacks the columns"):
        assess(CLAIM, comparison_table().drop(columns="score"))
    with pytest.raises(ValueError, match="label must be 0"):
        assess(CLAIM, comparison_table().assign(label=2))
    with pytest.raises(ValueError, match="at least two values"):
        assess(Claim.trend("", "image_auroc", "A", "x", "increasing"), comparison_table().assign(x=1))


def test_image_rows_from_a_result():
    """The per-image rows of an `experiment.CategoryResult`-shaped object (scores as a torch tensor)."""
    from types import SimpleNamespace

    import torch

    test = [
        SimpleNamespace(image=Path(f"/data/brick/test/{name}.png"), label=label)
        for name, label in (("good_0", 0), ("crack_0", 1), ("crack_1", 1))
    ]
    result = SimpleNamespace(
        category=SimpleNamespace(name="brick", test=test), scores=SimpleNamespace(image=torch.tensor([0.1, 0.7, 0.4]))
    )
    rows = per_image.image_rows_from_result(result, seed=2, method="PatchCore")
    assert list(rows.columns) == ["category", "seed", "method", "image", "label", "score"]
    assert rows["image"].tolist() == [
        "/data/brick/test/good_0.png",
        "/data/brick/test/crack_0.png",
        "/data/brick/test/crack_1.png",
    ]
    assert rows["label"].tolist() == [0, 1, 1] and rows["seed"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(rows["score"], [0.1, 0.7, 0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="3 images, 2 labels and 3 scores"):
        image_rows("brick", 0, "A", ["a", "b", "c"], [0, 1], [0.1, 0.2, 0.3])


def test_pro_subset_metric_is_evaluate_s_pro():
    """subset_metric('pro', ...) is PRO with anomalous_only=True (as experiment.evaluate), on the rows picked."""
    from adlib.evaluation.metrics import pro

    rng = np.random.default_rng(1)
    masks = np.zeros((5, 8, 8), dtype=bool)
    masks[2:, 2:5, 2:6] = True
    maps = masks + rng.normal(scale=0.7, size=masks.shape)
    function = subset_metric("pro", masks, maps)
    picked = np.array([0, 2, 2, 4, 1])
    assert function(picked) == pytest.approx(pro(masks[picked], maps[picked], anomalous_only=True), abs=1e-12)
    assert function(np.arange(5)) != pytest.approx(pro(masks, maps))  # the good images' pixels are left out
    with pytest.raises(ValueError, match="covers 'pixel_auroc' and 'pro'"):
        subset_metric("image_auroc", masks, maps)


# --------------------------------------------------------------------------- pixel statistics route


def pixel_case(rounded: bool):
    """Two methods on one unit of 9 images (3 good), the evaluations' test orders differing from each other
    and from sorted order; returns the table (with result_key), masks, maps and evaluation orders."""
    rng = np.random.default_rng(4)
    labels = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1])
    masks = np.zeros((9, 12, 12), dtype=bool)
    for i in np.flatnonzero(labels):
        masks[i, i % 5 : i % 5 + 4, 2:6] = True
        masks[i, 9:, 9:] = i % 2 == 0  # a second region in some
    maps = {"A": masks * 0.8 + rng.normal(scale=0.6, size=masks.shape), "B": rng.normal(size=masks.shape)}
    if rounded:
        maps = {m: np.round(v, 1) for m, v in maps.items()}
    images = [f"brick/test/{name}.png" for name in "qwertyuio"]
    order = {"A": np.array([3, 1, 4, 8, 0, 2, 6, 5, 7]), "B": np.arange(9)[::-1]}
    table = pd.concat(
        [
            image_rows("brick", 0, m, [images[i] for i in order[m]], labels[order[m]], np.zeros(9)).assign(
                result_key=f"key-{m}"
            )
            for m in ("A", "B")
        ]
    )
    return table, masks, maps, images, order, labels


@pytest.mark.parametrize("metric", ["pixel_auroc", "pro"])
def test_pixel_stats_route_equals_the_slow_route(metric):
    """Rounded maps (few distinct scores: exact bins): every resample equals subset_metrics' exact metric.
    Continuous maps with 32 bins: the verdict interval moves by at most the binning errors' sum."""
    for rounded, bins in ((True, 2000), (False, 32)):
        table, masks, maps, images, order, labels = pixel_case(rounded)
        stats = {
            f"key-{m}": PixelStats.from_maps(
                masks[order[m]], maps[m][order[m]], images=[images[i] for i in order[m]], bins=bins
            )
            for m in "AB"
        }
        slow_callables = {("brick", 0, m): subset_metric(metric, masks[order[m]], maps[m][order[m]]) for m in "AB"}
        claim = Claim.above("A localises better", metric, "A", "B")
        fast = assess(claim, table, n_resamples=40, seed=5, pixel_stats=stats)
        slow = assess(claim, table, n_resamples=40, seed=5, subset_metrics=slow_callables)
        if rounded:
            np.testing.assert_allclose(fast.values, slow.values, atol=1e-12)
            assert fast.estimate == pytest.approx(slow.estimate, abs=1e-12)
            continue
        # the bound: each resample's weights over the evaluation order, as assess draws them
        draws = stratified_indices(labels_sorted(table), 40, np.random.default_rng(5))
        bound = sum(stats[f"key-{m}"].binning_error(metric, weights_of(images, order[m], draws)) for m in "AB")
        assert np.abs(fast.values - slow.values).max() <= bound.max() + 1e-12
        assert abs(fast.low - slow.low) <= bound.max() + 1e-12 and abs(fast.high - slow.high) <= bound.max() + 1e-12
        assert (fast.values != slow.values).any()  # 32 bins do show


def labels_sorted(table):
    """The unit's labels in sorted image order (as assess orders a unit)."""
    a = table[table["method"] == "A"].sort_values("image")
    return a["label"].to_numpy().astype(bool)


def weights_of(images, order, draws):
    """Count weights [R, N] in an evaluation's order for draws of positions into the sorted images."""
    names = sorted(images)
    evaluation = [images[i] for i in order]
    mapped = np.array([evaluation.index(name) for name in names])[draws]
    return np.stack([np.bincount(row, minlength=len(images)) for row in mapped]).astype(float)


def test_pixel_stats_resamples_are_the_metric_of_the_repeated_images():
    """One resample, by hand: np.repeat the drawn images and call adlib.evaluation.metrics.pro."""
    table, masks, maps, images, order, labels = pixel_case(rounded=True)
    stats = {
        f"key-{m}": PixelStats.from_maps(masks[order[m]], maps[m][order[m]], images=[images[i] for i in order[m]])
        for m in "AB"
    }
    verdict = assess(Claim.above("", "pro", "A", "B"), table, n_resamples=3, seed=1, pixel_stats=stats)
    draws = stratified_indices(labels_sorted(table), 3, np.random.default_rng(1))
    by_name = np.argsort(images)  # position in the sorted names -> original image index
    for row, drawn in enumerate(draws):
        picked = by_name[drawn]
        expected = pro(masks[picked], maps["A"][picked], anomalous_only=True) - pro(
            masks[picked], maps["B"][picked], anomalous_only=True
        )
        assert verdict.values[row] == pytest.approx(expected, abs=1e-12)


def test_pixel_stats_errors_name_the_fix():
    table, masks, maps, images, order, labels = pixel_case(rounded=True)
    stats = {
        f"key-{m}": PixelStats.from_maps(masks[order[m]], maps[m][order[m]], images=[images[i] for i in order[m]])
        for m in "AB"
    }
    claim = Claim.above("", "pixel_auroc", "A", "B")
    with pytest.raises(ValueError, match="lacks the columns.*result_key"):
        assess(claim, table.drop(columns="result_key"), pixel_stats=stats)
    with pytest.raises(ValueError, match="pass the pixel_stats of the run_grid"):
        assess(claim, table, pixel_stats={"key-A": stats["key-A"]})
    with pytest.raises(ValueError, match="not both"):
        assess(claim, table, pixel_stats=stats, subset_metrics={})
    other = table.assign(image=table["image"].str.replace("q.png", "z.png"))
    with pytest.raises(ValueError, match="same run_grid"):
        assess(claim, other, pixel_stats=stats)
    image_claim = Claim.above("", "image_auroc", "A", "B")  # pixel_stats is ignored for image AUROC
    assert assess(image_claim, table, pixel_stats=stats).estimate == assess(image_claim, table).estimate


def test_seeds_on_the_same_test_images_count_as_one_test_set():
    """Two seeds that score the same images alike carry the evidence of one test set: the interval is the
    one seed's, not narrower (drawing the seeds' images apart narrowed it by about 1 / sqrt 2)."""
    one = make_table({("brick", 0): (8, 12)}, {"A": weak_scores, "B": random_scores})
    twice = pd.concat([one, one.assign(seed=1)], ignore_index=True)
    claim = Claim.above("A beats B", "image_auroc", "A", "B")
    alone, both = assess(claim, one, n_resamples=200, seed=3), assess(claim, twice, n_resamples=200, seed=3)
    assert both.estimate == pytest.approx(alone.estimate)
    assert (both.low, both.high) == pytest.approx((alone.low, alone.high))
