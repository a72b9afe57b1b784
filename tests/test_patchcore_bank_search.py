"""PatchCore's learned-proxy bank, IVF-PQ search and bank usage (paper Fig. 5, Table 5), end to end
on a tiny benchmark, against the pieces composed by hand and brute-force computations."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from adlib.bank.sampling import LearnedProxies
from adlib.bank.search import NearestNeighbours
from adlib.data.datasets import load_category
from adlib.detectors.patchcore import PatchCore, PatchCoreSettings


@pytest.fixture
def category(tiny_benchmark):
    return load_category(tiny_benchmark, "pill")


def fitted(settings, category, tmp_path):
    return PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)


def test_learned_proxies_are_the_bank(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25, sampler="learned_proxies", seed=3)
    model = fitted(settings, category, tmp_path)
    train = model.extractor.embed(category.train, progress=False).features.reshape(-1, 64)
    expected = LearnedProxies().sample(train, int(len(train) * 0.25), 3).bank
    assert torch.equal(model.bank, expected)
    assert not (torch.cdist(model.bank, train).amin(1) == 0).all()  # trained points, not training patches
    test = model.extractor.embed(category.test, progress=False).features
    distances = torch.cdist(test.double(), model.bank.double()).amin(-1)
    scores = model.predict(category.test, progress=False)
    torch.testing.assert_close(scores.image.double(), _eq7(model, test, distances), rtol=1e-4, atol=1e-4)


def _eq7(model, test, distances):
    """Image scores with Eq. 7 (b = 9) by hand from the patch distances [N, P] of `test` [N, P, D]."""
    bank = model.bank.double()
    out = []
    for features, patch in zip(test.double(), distances):
        top = int(patch.argmax())
        m_star = int(torch.cdist(features[top][None], bank).argmin())
        support = torch.cdist(bank[m_star][None], bank)[0].argsort()[:9]
        d = torch.cdist(features[top][None], bank[support])[0]
        out.append((1 - torch.softmax(d, 0)[0]) * patch[top])
    return torch.stack(out)


def test_builders_have_no_soft_weights(small_features):
    with pytest.raises(ValueError, match="soft_weight=False with sampler='learned_proxies'"):
        PatchCoreSettings(features=small_features, denoise="lof", sampler="learned_proxies")
    PatchCoreSettings(features=small_features, denoise="lof", sampler="learned_proxies", soft_weight=False)


def test_search_setting_is_validated_and_round_trips(small_features):
    with pytest.raises(ValueError, match="search='hnsw'"):
        PatchCoreSettings(features=small_features, search="hnsw")
    settings = PatchCoreSettings(features=small_features, search="ivfpq")
    assert PatchCoreSettings.from_dict(settings.to_dict()) == settings
    older = settings.to_dict()
    del older["search"]  # a file written before the setting existed: exact search, as then
    assert PatchCoreSettings.from_dict(older).search == "exact"


def test_ivfpq_changes_only_the_search(category, small_features, tmp_path):
    """PatchCore-100 % + IVF-PQ (Table 5). The bank is the same as with exact search; the scores are the
    approximate search's: never below the exact ones by more than the PQ reconstruction error."""
    exact = PatchCoreSettings(features=small_features, coreset_ratio=1.0, reweight_neighbours=1, seed=2)
    approximate = dataclasses.replace(exact, search="ivfpq")
    exact_model, model = fitted(exact, category, tmp_path), fitted(approximate, category, tmp_path)
    assert torch.equal(model.bank, exact_model.bank)  # fitting does not depend on the search
    scores, exact_scores = model.predict(category.test, progress=False), exact_model.predict(category.test, False)
    assert not torch.allclose(scores.image, exact_scores.image)
    # by hand: the same index (settings.seed reaches it), the max over patches of sqrt(PQ distance)
    index = NearestNeighbours(model.bank, index="ivfpq", seed=2)
    test = model.extractor.embed(category.test, progress=False).features
    squared, _ = index.search(test.reshape(-1, 64), 1)
    torch.testing.assert_close(scores.image, squared.sqrt().reshape(len(test), -1).amax(1))
    error = (model.bank - index.decoded_bank()).norm(dim=1).max()
    assert (scores.image >= exact_scores.image - error - 1e-4).all()
    again = fitted(approximate, category, tmp_path).predict(category.test, progress=False)
    assert torch.equal(again.image, scores.image) and torch.equal(again.maps, scores.maps)


def test_ivfpq_needs_faiss_search_and_a_big_enough_bank(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=1.0, search="ivfpq")
    with pytest.raises(ValueError, match="backend='faiss' or 'auto'"):
        PatchCore(settings, device="cpu", cache_dir=tmp_path, backend="torch").fit(category.train, progress=False)
    with pytest.raises(ValueError, match="at least 256 features"):
        fitted(dataclasses.replace(settings, coreset_ratio=0.25), category, tmp_path)  # 96 patches


def brute_force_usage(bank, test):
    """Share of bank rows that are some test patch's nearest row, by cdist over everything."""
    nearest = torch.cdist(test.reshape(-1, test.shape[-1]).double(), bank.double()).argmin(1)
    return len(set(nearest.tolist())) / len(bank)


@pytest.mark.parametrize("distance, ratio", [("euclidean", 1.0), ("euclidean", 0.1), ("cosine", 0.25)])
def test_bank_usage_matches_brute_force(category, small_features, tmp_path, distance, ratio):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=ratio, distance=distance)
    model = fitted(settings, category, tmp_path)
    embedding = model.extractor.embed(category.test, progress=False)
    features, bank = embedding.features, model.bank
    if distance == "cosine":
        features, bank = F.normalize(features, dim=-1), F.normalize(bank, dim=-1)
    expected = brute_force_usage(bank, features)
    assert 0 < expected < 1 or ratio < 1  # a full bank is only partly used (paper: < 30 %), so not trivial
    assert model.bank_usage(embedding) == pytest.approx(expected)


def test_bank_usage_misuse(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path)
    embedding = model.extractor.embed(category.test[:2], progress=False)
    with pytest.raises(RuntimeError, match="before fit"):
        model.bank_usage(embedding)
    model.fit(category.train, progress=False)
    patches = embedding.features.shape[1]
    shifted = dataclasses.replace(embedding, features=embedding.features[:, :-1], grid=(1, patches - 1))
    with pytest.raises(ValueError, match="grid"):
        model.bank_usage(shifted)
