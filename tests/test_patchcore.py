"""PatchCore end to end on a tiny benchmark, against a brute-force composition of its steps."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from adlib.bank.clustering import KMeansBank
from adlib.bank.denoise import denoise, outlier_scores
from adlib.bank.sampling import ApproximateGreedyCoreset, LearnedProxies, RandomSubset
from adlib.data.datasets import load_category
from adlib.detectors.modelfile import MAGIC, read_state, write_state
from adlib.detectors.patchcore import (
    PatchCore,
    PatchCoreSettings,
    improved_patchcore_settings,
    softpatch_settings,
    softpatch_variants,
)
from adlib.features.extractor import profile_settings


@pytest.fixture
def category(tiny_benchmark):
    return load_category(tiny_benchmark, "pill")


def brute_force_scores(model: PatchCore, test):
    """Max over patches of the Euclidean distance to the nearest bank feature; upsampled, blurred maps."""
    embedding = model.extractor.embed(test, progress=False)
    distances = torch.cdist(embedding.features.double(), model.bank.double()).amin(-1)  # [N, P]
    grid = embedding.grid
    crop = model.settings.features.preprocessing.crop
    up = F.interpolate(distances.reshape(-1, 1, *grid), size=crop, mode="bilinear", align_corners=False)
    maps = np.stack([gaussian_filter(m[0].numpy(), sigma=4) for m in up])
    return distances.amax(1), torch.from_numpy(maps)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_patchcore_matches_brute_force(category, small_features, tmp_path, backend):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25, reweight_neighbours=1)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path, backend=backend).fit(category.train, progress=False)
    patches = len(category.train) * model.grid[0] * model.grid[1]
    assert model.bank.shape == (int(patches * 0.25), 64)
    scores = model.predict(category.test, progress=False)
    image, maps = brute_force_scores(model, category.test)
    assert scores.image.shape == (len(category.test),) and scores.maps.shape == (len(category.test), 64, 64)
    torch.testing.assert_close(scores.image.double(), image, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scores.maps.double(), maps, rtol=1e-4, atol=1e-4)


def test_full_bank_keeps_every_patch(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=1.0)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    embedding = model.extractor.embed(category.train, progress=False)
    assert torch.equal(model.bank, embedding.features.reshape(-1, 64))


@pytest.mark.parametrize("denoised", [False, True])
@pytest.mark.parametrize("sampler", ["approximate_greedy", "random"])
def test_bank_source_names_the_training_patch_of_every_bank_row(category, small_features, tmp_path, sampler, denoised):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25, sampler=sampler)
    if denoised:  # the dropped patches must not shift the indices
        settings = dataclasses.replace(softpatch_settings(small_features, "lof", 0.25), sampler=sampler, lof_k=3)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    patches = model.extractor.embed(category.train, progress=False).features.reshape(-1, 64)
    source = model.bank_source
    assert source.dtype == torch.int64 and len(torch.unique(source)) == len(source) == len(model.bank)
    assert torch.equal(patches[source], model.bank)
    if denoised:
        kept = denoise(
            outlier_scores(patches.reshape(len(category.train), -1, 64), "lof", lof_k=3, seed=0), "lof", settings.tau
        )
        assert kept.keep.reshape(-1)[source].all()


def test_bank_source_is_none_for_built_banks_and_after_load(category, small_features, tmp_path):
    built = PatchCoreSettings(features=small_features, coreset_ratio=0.25, sampler="kmeans")
    assert PatchCore(built, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False).bank_source is None
    model = PatchCore(PatchCoreSettings(features=small_features), device="cpu", cache_dir=tmp_path)
    model.fit(category.train, progress=False).save(tmp_path / "model.pt")
    assert PatchCore.load(tmp_path / "model.pt", device="cpu", cache_dir=tmp_path).bank_source is None


def test_settings_reach_the_scores(category, small_features, tmp_path):
    base = PatchCoreSettings(features=small_features, coreset_ratio=0.25)
    reference = PatchCore(base, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    reference = reference.predict(category.test, progress=False)
    changes = [  # pairs, not a dict: "distance" is changed twice
        ("coreset_ratio", 0.5),
        ("sampler", "random"),
        ("distance", "squared"),
        ("reweight_neighbours", 1),
        ("blur_sigma", 0.0),
        ("seed", 1),
        ("features", dataclasses.replace(small_features, patch_size=1)),
        ("distance", "cosine"),
        ("denoise", "nearest"),
        ("projection_dim", 8),  # the greedy coreset's projection
    ]
    for name, value in changes:
        model = PatchCore(dataclasses.replace(base, **{name: value}), device="cpu", cache_dir=tmp_path)
        scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
        changed = not torch.allclose(scores.image, reference.image) or not torch.allclose(scores.maps, reference.maps)
        assert changed, f"setting {name}={value!r} did not change the scores"


def test_save_load_round_trip_and_refusals(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = PatchCore.load(path, settings, device="cpu", cache_dir=tmp_path)
    assert torch.equal(loaded.bank, model.bank) and loaded.grid == model.grid
    a, b = model.predict(category.test, progress=False), loaded.predict(category.test, progress=False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)

    other = dataclasses.replace(settings, coreset_ratio=0.5)
    with pytest.raises(ValueError, match=r"other settings.*coreset_ratio: 0\.5 asked, 0\.25 in the file"):
        PatchCore.load(path, other, device="cpu")
    state = read_state(path)
    state["format"] = 99
    write_state(tmp_path / "newer.pt", state)
    with pytest.raises(ValueError, match="format 99.*upgrade adlib"):
        PatchCore.load(tmp_path / "newer.pt", device="cpu")
    (tmp_path / "broken.pt").write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="broken.pt.*fails its checksum"):
        PatchCore.load(tmp_path / "broken.pt", device="cpu")
    (tmp_path / "bare.pt").write_bytes(path.read_bytes()[path.read_bytes().index(b"\n", len(MAGIC)) + 1 :])
    with pytest.raises(ValueError, match="bare.pt is not an adlib model file of format 2"):
        PatchCore.load(tmp_path / "bare.pt", device="cpu")


def test_a_flipped_bit_in_a_saved_bank_is_refused_with_the_file_named(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25)
    path = tmp_path / "copied.patchcore"
    PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # a bit in the middle of the payload: the memory bank's tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="copied.patchcore fails its checksum"):
        PatchCore.load(path, device="cpu")


def test_misuse_is_explained(category, small_features):
    with pytest.raises(RuntimeError, match="before fit"):
        PatchCore(PatchCoreSettings(features=small_features), device="cpu").predict(category.test)
    for bad in (
        {"coreset_ratio": 0.0},
        {"coreset_ratio": 1.5},
        {"sampler": "kmeans++"},
        {"reweight_neighbours": 0},
        {"top_k": 3},
        {"tau": 0.2},
        {"soft_weight": False},
        {"lof_k": 5},
        {"denoise": "isolation"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PatchCoreSettings(features=small_features, **bad)
    with pytest.raises(ValueError, match="lof_k"):
        PatchCoreSettings(features=small_features, denoise="gaussian", lof_k=5)
    with pytest.raises(ValueError, match="soft_weight=False"):
        PatchCoreSettings(features=small_features, denoise="lof", sampler="kmeans")


def test_sampler_options_reach_their_sampler_only(small_features):
    settings = PatchCoreSettings(features=small_features, projection_dim=8)
    assert settings.bank_sampler == ApproximateGreedyCoreset(projection_dim=8)
    assert PatchCoreSettings(sampler="kmeans", pca_dim=16).bank_sampler == KMeansBank(pca_dim=16)
    assert PatchCoreSettings(sampler="learned_proxies", proxy_steps=0).bank_sampler == LearnedProxies(steps=0)
    assert PatchCoreSettings(sampler="random").bank_sampler == RandomSubset()
    assert PatchCoreSettings().bank_sampler == ApproximateGreedyCoreset()  # today's defaults, today's numbers
    for bad in ({"pca_dim": 16}, {"proxy_steps": 0}, {"projection_dim": 8, "sampler": "kmeans"}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}=.* only acts with sampler="):
            PatchCoreSettings(**bad)
    with pytest.raises(ValueError, match="projection_dim=0"):
        PatchCoreSettings(projection_dim=0)


def test_pca_dim_reaches_the_kmeans_bank(category, small_features, tmp_path):
    settings = PatchCoreSettings(features=small_features, coreset_ratio=0.25, sampler="kmeans", pca_dim=8)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    train = model.extractor.embed(category.train, progress=False).features.reshape(-1, 64)
    torch.testing.assert_close(model.bank, KMeansBank(pca_dim=8).sample(train, int(len(train) * 0.25), 0).bank)


@pytest.mark.parametrize("top_k", [1, 3])
def test_improved_patchcore_matches_brute_force(category, small_features, tmp_path, top_k):
    """KC: the bank is the K-means bank; a patch scores 1 - mean cosine similarity of its top_k."""
    settings = improved_patchcore_settings(small_features, coreset_ratio=0.25, top_k=top_k)
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    train = model.extractor.embed(category.train, progress=False).features.reshape(-1, 64)
    expected_bank = KMeansBank().sample(train, int(len(train) * 0.25), 0).bank
    torch.testing.assert_close(model.bank, expected_bank)
    test = model.extractor.embed(category.test, progress=False).features
    cosine = F.normalize(test.double(), dim=-1) @ F.normalize(model.bank.double(), dim=-1).T  # [N, P, M]
    patch = 1 - cosine.topk(top_k, dim=-1).values.mean(-1)
    scores = model.predict(category.test, progress=False)
    torch.testing.assert_close(scores.image.double(), patch.amax(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("soft_weight", [True, False])
def test_softpatch_matches_brute_force(category, small_features, tmp_path, soft_weight):
    """SP: denoised patches form the bank; test patch score = distance to nearest x its soft weight."""
    settings = dataclasses.replace(
        softpatch_settings(small_features, "lof", coreset_ratio=1.0),
        soft_weight=soft_weight,
        reweight_neighbours=1,
        lof_k=3,
    )  # 6 images here
    model = PatchCore(settings, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    train = model.extractor.embed(category.train, progress=False).features
    kept = denoise(outlier_scores(train, "lof", lof_k=3, seed=0), "lof", 0.15)
    bank = train.reshape(-1, 64)[kept.keep.reshape(-1)]
    assert torch.equal(model.bank, bank)
    test = model.extractor.embed(category.test, progress=False).features
    distances = torch.cdist(test.double(), bank.double())  # [N, P, M]
    nearest_d, nearest = distances.min(-1)
    weights = kept.weights.reshape(-1)[kept.keep.reshape(-1)].double()
    patch = nearest_d * weights[nearest] if soft_weight else nearest_d
    scores = model.predict(category.test, progress=False)
    torch.testing.assert_close(scores.image.double(), patch.amax(1), rtol=1e-4, atol=1e-4)
    if soft_weight:
        model.save(tmp_path / "sp.pt")
        loaded = PatchCore.load(tmp_path / "sp.pt", settings, device="cpu", cache_dir=tmp_path)
        assert torch.equal(loaded.bank_weights, model.bank_weights)
        assert torch.equal(loaded.predict(category.test, progress=False).image, scores.image)


def test_softpatch_and_kc_settings_reach_the_scores(category, small_features, tmp_path):
    base = dataclasses.replace(softpatch_settings(small_features, "lof", coreset_ratio=0.5), lof_k=3)
    reference = PatchCore(base, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    reference = reference.predict(category.test, progress=False)
    for name, value in {"tau": 0.3, "lof_k": 4, "soft_weight": False}.items():
        model = PatchCore(dataclasses.replace(base, **{name: value}), device="cpu", cache_dir=tmp_path)
        scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
        assert not torch.allclose(scores.maps, reference.maps), f"setting {name}={value!r} did not change the scores"
    kc = improved_patchcore_settings(small_features, coreset_ratio=0.25)
    first = PatchCore(kc, device="cpu", cache_dir=tmp_path).fit(category.train, progress=False)
    other = PatchCore(dataclasses.replace(kc, top_k=3), device="cpu", cache_dir=tmp_path).fit(category.train, False)
    a, b = first.predict(category.test, progress=False), other.predict(category.test, progress=False)
    assert not torch.allclose(a.maps, b.maps)


def test_softpatch_variants_share_coreset_and_tau_and_only_lof_takes_k():
    features = profile_settings("synthetic")
    variants = softpatch_variants(features, 0.05, 0.2, 4)
    assert list(variants) == ["SoftPatch-nearest", "SoftPatch-gaussian", "SoftPatch-lof"]
    for denoiser in ("nearest", "gaussian"):
        expected = dataclasses.replace(softpatch_settings(features, denoiser, 0.05), tau=0.2)
        assert variants[f"SoftPatch-{denoiser}"] == expected
    assert variants["SoftPatch-lof"] == dataclasses.replace(softpatch_settings(features, "lof", 0.05), tau=0.2, lof_k=4)
    assert all(v.reweight_neighbours == 1 for v in variants.values())  # SP's image score: the plain maximum
