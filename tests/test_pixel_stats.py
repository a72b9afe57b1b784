"""adlib.evaluation.pixel_stats against adlib.evaluation.metrics' exact pixel AUROC and PRO: on the full test set, on resamples
(the exact metric of the explicitly repeated images), exactly when every distinct score has its own bin,
and within the bound `binning_error` states (checked to be small) when scores share bins."""

from __future__ import annotations

import numpy as np
import pytest

from adlib.evaluation.metrics import pixel_auroc, pro
from adlib.evaluation.pixel_stats import PixelStats, bin_edges


def random_case(seed: int, n: int = 8, size: int = 24, noise: float = 0.8):
    """Good and defective images with blob-shaped, sometimes several, defects; maps = mask + noise."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n // 3, n):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, size - 6, size=2)
            h, w = rng.integers(1, 7, size=2)
            masks[i, y : y + h, x : x + w] = True
    maps = masks * rng.uniform(0.2, 1.5) + rng.normal(scale=noise, size=masks.shape)
    return masks, maps.astype(np.float32)


def exact(masks, maps):
    return pixel_auroc(masks, maps), pro(masks, maps, anomalous_only=True)


def binned(stats, weights):
    return stats.pixel_auroc(weights), stats.pro(weights)


@pytest.mark.parametrize("seed", range(4))
def test_few_distinct_scores_are_exact(seed):
    """Rounded maps: at most `bins` distinct scores, each an edge: binned == exact, full set and resamples."""
    masks, maps = random_case(seed)
    maps = np.round(maps, 1)
    stats = PixelStats.from_maps(masks, maps, bins=2000)
    ones = np.ones((1, len(masks)))
    np.testing.assert_allclose(binned(stats, ones), np.array(exact(masks, maps))[:, None], atol=1e-12)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        counts = rng.integers(0, 3, size=len(masks))
        counts[-1] += 1  # at least one defective image
        repeated = np.repeat(np.arange(len(masks)), counts)
        got = binned(stats, counts[None, :])
        np.testing.assert_allclose(got, np.array(exact(masks[repeated], maps[repeated]))[:, None], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_continuous_scores_within_the_stated_bound(seed):
    """Continuous scores with 64 bins (so that binning shows): |binned - exact| <= binning_error, and the
    bound itself is at most 2 / bins (module docstring) - both on the full set and on resamples."""
    masks, maps = random_case(seed, n=9, size=32)
    bins = 64
    stats = PixelStats.from_maps(masks, maps, bins=bins)
    assert stats.edges.size <= bins
    rng = np.random.default_rng(10 + seed)
    counts = np.vstack([np.ones(len(masks), dtype=int), rng.integers(0, 3, size=(6, len(masks)))])
    counts[:, -1] += 1
    auroc, overlap = binned(stats, counts)
    auroc_bound, pro_bound = stats.binning_error("pixel_auroc", counts), stats.binning_error("pro", counts)
    for row, weights in enumerate(counts):
        repeated = np.repeat(np.arange(len(masks)), weights)
        exact_auroc, exact_pro = exact(masks[repeated], maps[repeated])
        assert abs(auroc[row] - exact_auroc) <= auroc_bound[row] + 1e-12
        assert abs(overlap[row] - exact_pro) <= pro_bound[row] + 1e-12
    assert (auroc_bound <= 2 / bins).all()
    assert (pro_bound <= 2 / bins / 0.3).all()
    assert (auroc - exact(masks, maps)[0] != 0).any()  # the binning does show at 64 bins


def test_default_bins_are_close_on_evaluation_sized_maps():
    """60 maps of 64 x 64 (continuous scores), the default 2000 bins: within 1e-3 of exact and of the bound."""
    masks, maps = random_case(7, n=60, size=64, noise=0.6)
    stats = PixelStats.from_maps(masks, maps)
    ones = np.ones((1, 60))
    exact_auroc, exact_pro = exact(masks, maps)
    assert stats.pixel_auroc(ones)[0] == pytest.approx(exact_auroc, abs=stats.binning_error("pixel_auroc", ones)[0])
    assert stats.pro(ones)[0] == pytest.approx(exact_pro, abs=stats.binning_error("pro", ones)[0] + 1e-12)
    assert stats.binning_error("pixel_auroc", ones)[0] < 1e-3 and stats.binning_error("pro", ones)[0] < 1e-3


def test_perfect_inverted_and_shuffled_maps():
    masks, noise = random_case(3, n=12, size=32)
    ones = np.ones((3, 12))
    perfect = PixelStats.from_maps(masks, masks + 0.1 * np.abs(noise) * ~masks)  # every defect above every normal
    np.testing.assert_allclose(binned(perfect, ones), 1.0, atol=1e-12)
    inverted = PixelStats.from_maps(masks, -masks.astype(float))
    np.testing.assert_allclose(binned(inverted, ones), 0.0, atol=1e-12)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(masks.ravel()).reshape(masks.shape) + rng.normal(size=masks.shape)
    auroc = PixelStats.from_maps(masks, shuffled).pixel_auroc(ones[:1])[0]
    assert auroc == pytest.approx(0.5, abs=0.03)


def test_the_statistics_round_trip():
    masks, maps = random_case(1)
    stats = PixelStats.from_maps(masks, maps, images=[f"img-{i}" for i in range(8)])
    again = PixelStats.from_dict(stats.to_dict())
    for name in ("edges", "normal", "regions", "region_image"):
        np.testing.assert_array_equal(getattr(again, name), getattr(stats, name))
    assert again.images == stats.images
    assert stats.to_dict()["normal"].dtype == np.uint16  # counts fit: stored at half size


def test_edges_are_actual_scores_and_ties_stay_together():
    rng = np.random.default_rng(0)
    normal, defect = rng.normal(size=5000), rng.normal(1.0, size=300)
    edges = bin_edges(normal, defect, bins=100)
    assert edges.size <= 100 and np.all(np.diff(edges) > 0)
    assert np.isin(edges, np.concatenate([normal, defect])).all()
    assert edges[0] == min(normal.min(), defect.min()) and edges[-1] == max(normal.max(), defect.max())


def test_bad_inputs_name_the_fix():
    masks, maps = random_case(0)
    with pytest.raises(ValueError, match="same shape"):
        PixelStats.from_maps(masks, maps[:, :-1])
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        PixelStats.from_maps(masks[0], maps[0])
    with pytest.raises(ValueError, match="every mask is empty"):
        PixelStats.from_maps(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="NaN"):
        PixelStats.from_maps(masks, np.where(masks, np.nan, maps))
    with pytest.raises(ValueError, match="one name per map"):
        PixelStats.from_maps(masks, maps, images=["a"])
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        PixelStats.from_maps(masks, maps, bins=1)
    stats = PixelStats.from_maps(masks, maps)
    with pytest.raises(ValueError, match=r"weights must be \[R, 8\]"):
        stats.pixel_auroc(np.ones((2, 7)))
    with pytest.raises(ValueError, match="counts >= 0"):
        stats.pro(-np.ones((1, 8)))
    with pytest.raises(ValueError, match="at least one defective image"):
        stats.pro(np.eye(8)[:1])  # only image 0, a good one
    with pytest.raises(ValueError, match="fpr_limit"):
        stats.pro(np.ones((1, 8)), fpr_limit=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_histograms_equal_a_lookup_per_value(dtype):
    """The sort-per-group histograms against the obvious count: each value's bin by a binary search, then a
    count per (group, bin); values on an edge, groups out of order, an empty group, edges between float32s."""
    from adlib.evaluation.pixel_stats import _histograms

    rng = np.random.default_rng(3)
    values = rng.integers(0, 40, size=3000).astype(dtype) / 4  # many ties, many values exactly on an edge
    groups = rng.integers(0, 6, size=3000)
    groups[groups == 4] = 5  # group 4 is empty
    for edges in (np.unique(values[::7]).astype(np.float64), np.array([-1.0, 0.1, 2.5, 2.5000001, 9.75, 20.0])):
        bins = np.searchsorted(edges, values.astype(np.float64), side="right")
        expected = np.zeros((6, edges.size + 1), dtype=np.int64)
        np.add.at(expected, (groups, bins), 1)
        np.testing.assert_array_equal(_histograms(values, groups, 6, edges), expected)
        order = np.argsort(groups, kind="stable")  # already grouped: the path without a re-sort
        np.testing.assert_array_equal(_histograms(values[order], groups[order], 6, edges), expected)
