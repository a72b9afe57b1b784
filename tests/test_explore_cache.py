"""The explorer's caches: prefix picks, the running prefix search, and a PatchCore fitted from them that scores
as a fresh `PatchCore.fit` / `predict` does."""

import dataclasses

import pytest
import torch

import adlib.companion.explore_cache as explore_cache
from adlib.bank import search
from adlib.bank.sampling import ApproximateGreedyCoreset, RandomSubset
from adlib.companion.explore import CORESET_SHARES, method_settings
from adlib.companion.explore_cache import (
    BankOrder,
    ExploreCache,
    PrefixPatchCore,
    RememberingExtractor,
    share_sizes,
    takes_prefix_path,
)
from adlib.data.datasets import load_category
from adlib.detectors.patchcore import PatchCore, patchcore_settings
from adlib.features.extractor import FeatureSettings


@pytest.mark.parametrize(
    "sampler", [ApproximateGreedyCoreset(), ApproximateGreedyCoreset(projection_dim=16), RandomSubset()]
)
def test_picks_for_a_smaller_share_are_a_prefix_of_those_for_a_larger_one(sampler):
    rows = torch.randn(700, 200, generator=torch.Generator().manual_seed(3))
    large = sampler.select(rows, 140, seed=5)  # two separate runs
    small = sampler.select(rows, 35, seed=5)
    assert torch.equal(small, large[:35])
    assert not torch.equal(sampler.select(rows, 35, seed=6), small)  # the seed does act


def _slow_nearest(queries, bank):
    """The nearest bank row of each query by squared distances in float64, the first on ties."""
    squared = torch.cdist(queries.double(), bank.double()).square()
    return squared.min(dim=1)


@pytest.mark.parametrize("screened", [False, True])
def test_running_prefix_search_matches_a_search_of_each_prefix(screened, monkeypatch):
    backend = "torch"
    if screened:  # every extension through one bfloat16 screen (`ScreenedExact.prefix_nearest`), however small
        monkeypatch.setattr(explore_cache, "PREFIX_SCREEN_MIN_ROWS", 1)
        monkeypatch.setattr(search, "bfloat16_products_are_fast", lambda: True)
        monkeypatch.setattr(explore_cache, "NearestNeighbours", None)  # never a search of its own
        backend = "auto"
    generator = torch.Generator().manual_seed(0)
    patches = torch.randn(300, 24, generator=generator)
    patches[150] = patches[40]  # a duplicate row: ties must go to the earlier pick
    queries = torch.cat([torch.randn(200, 24, generator=generator), patches[40:41] + 1e-3])
    kept = torch.arange(0, 300, 2)  # candidate rows 0, 2, 4, ...
    order = BankOrder(patches, kept, RandomSubset(), seed=1)
    stops = [10, 20, 40, 80]
    for n in (30, 12, 80, 20, 100, 5):  # up, down, up, a stop, beyond the stops, below the first stop
        squared, nearest = order.nearest(queries, n, stops, backend=backend)
        bank = patches[kept[order.first(n)]]
        expected, index = _slow_nearest(queries, bank)
        assert torch.allclose(squared[:, 0].double(), expected, rtol=1e-4, atol=1e-4)
        assert torch.equal(nearest[:, 0], index)
    assert {5, 10, 12, 20, 30, 40, 80, 100} <= set(order.snapshots)
    assert len(order.picks) == 150  # 30, then 80 (at least twice 30), then all 150 (at least twice 80)
    picks = order.first(100).tolist()
    assert 20 in picks and 75 in picks  # rows 40 and 150 (candidates 20 and 75) are both in the bank
    _, nearest = order.nearest(queries, 100, stops, backend=backend)
    assert nearest[-1, 0] == min(picks.index(20), picks.index(75))  # the tie goes to the earlier pick


def test_share_sizes_and_which_settings_take_the_prefix_path(small_features):
    assert share_sizes(250, (0.01, 0.002, 0.1, 0.104, 1.0)) == [2, 25, 26, 250]
    assert takes_prefix_path(patchcore_settings(small_features))
    assert takes_prefix_path(patchcore_settings(small_features, sampler="random"))
    assert not takes_prefix_path(patchcore_settings(small_features, sampler="kmeans"))
    assert not takes_prefix_path(method_settings("improved-patchcore", small_features))
    assert not takes_prefix_path(method_settings("padim", FeatureSettings()))


@pytest.fixture
def wide_features(small_features) -> FeatureSettings:
    """1024-dim patch features: the greedy coreset and SoftPatch project them (128 dims), as in real use."""
    return dataclasses.replace(small_features, pre_dim=1024, target_dim=1024)


def test_prefix_patchcore_scores_as_a_fresh_fit_for_any_share_and_tau(tiny_benchmark, wide_features, tmp_path):
    category = load_category(tiny_benchmark, "brick")
    extractor = RememberingExtractor(wide_features, device="cpu", cache_dir=tmp_path / "cache")
    train, test = extractor.stacked(category.train, False), extractor.stacked(category.test, False)
    assert extractor.stacked(category.test, False) is test  # the same list: the same stacked embedding
    copy = extractor.embed(category.test, False)  # what detectors get: equal, but their own
    assert torch.equal(copy.features, test.features) and copy.features.data_ptr() != test.features.data_ptr()
    cache = ExploreCache()
    steps = [
        ("patchcore", 0.2, 0.15),
        ("patchcore", 0.05, 0.15),
        ("patchcore", 0.3, 0.15),
        ("patchcore", 1.0, 0.15),
        ("patchcore-random", 0.1, 0.15),
        ("softpatch", 0.1, 0.2),
        ("softpatch", 0.25, 0.05),
        ("softpatch", 0.03, 0.2),
        ("softpatch-nearest", 0.1, 0.3),
    ]
    for method, share, tau in steps:
        settings = method_settings(method, wide_features, coreset_ratio=share, tau=tau, lof_k=3, seed=2)
        cached = PrefixPatchCore(settings, extractor=extractor).fit_cached(cache, "brick", train, test, CORESET_SHARES)
        fresh = PatchCore(settings, device="cpu", cache_dir=tmp_path / "cache").fit(category.train, progress=False)
        assert torch.equal(cached.bank, fresh.bank) and torch.equal(cached.bank_source, fresh.bank_source)
        assert (cached.bank_weights is None) == (fresh.bank_weights is None)
        if fresh.bank_weights is not None:
            assert torch.equal(cached.bank_weights, fresh.bank_weights)
        got, expected = cached.score_embedding(test), fresh.predict(category.test, progress=False)
        assert torch.allclose(got.image, expected.image, rtol=1e-5, atol=1e-5), (method, share, tau)
        assert torch.allclose(got.maps, expected.maps, rtol=1e-5, atol=1e-5), (method, share, tau)


def test_a_smaller_share_or_a_tau_seen_before_searches_nothing(tiny_benchmark, wide_features, tmp_path, monkeypatch):
    category = load_category(tiny_benchmark, "pill")
    extractor = RememberingExtractor(wide_features, device="cpu", cache_dir=tmp_path / "cache")
    train, test = extractor.stacked(category.train, False), extractor.stacked(category.test, False)
    searched = []
    real = explore_cache.NearestNeighbours

    def counting(bank, backend):
        searched.append(len(bank))
        return real(bank, backend=backend)

    monkeypatch.setattr(explore_cache, "NearestNeighbours", counting)
    cache = ExploreCache()

    def fit(share, tau):
        settings = method_settings("softpatch", wide_features, coreset_ratio=share, tau=tau, lof_k=3)
        model = PrefixPatchCore(settings, extractor=extractor).fit_cached(cache, "pill", train, test, CORESET_SHARES)
        model.score_embedding(test)
        return model

    fit(0.1, 0.15)
    first = sum(searched)
    fit(0.05, 0.15)
    fit(0.1, 0.15)
    assert sum(searched) == first  # a smaller share, then the share again: no new search
    fit(0.12, 0.15)
    assert 0 < sum(searched) - first < first  # a larger share: only the added rows
    before = sum(searched)
    other = fit(0.1, 0.3)
    fit(0.1, 0.15)
    assert sum(searched) - before == len(other.bank)  # a new tau searches its whole bank; the old one is kept


def test_the_cache_forgets_the_least_recently_used_training_set():
    cache = ExploreCache(training_sets=2)
    settings = patchcore_settings(FeatureSettings(), sampler="random")
    patches = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    orders = {key: cache.order(key, patches, None, settings) for key in ("a", "b")}
    assert cache.order("a", patches, None, settings) is orders["a"]  # "a" is now the latest
    cache.order("c", patches, None, settings)  # forgets "b", the least recently used
    assert cache.order("a", patches, None, settings) is orders["a"]
    assert cache.order("b", patches, None, settings) is not orders["b"]
    with pytest.raises(ValueError, match="at least one"):
        ExploreCache(training_sets=0)
