"""PaDiM, SPADE and image-level denoising against slow, obvious computations on tiny inputs."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from adlib.data.datasets import Preprocessing, load_category, read_mask
from adlib.detectors.image_denoise import ImageDenoised, ImageDenoisedSettings
from adlib.detectors.modelfile import read_state, write_state
from adlib.detectors.padim import (
    PADIM_CHANNELS,
    PADIM_LAYERS,
    PaDiM,
    PaDiMSettings,
    padim_settings,
    padim_star_settings,
)
from adlib.detectors.patchcore import PatchCore, PatchCoreSettings
from adlib.detectors.spade import SPADE_LAYERS, Spade, SpadeSettings
from adlib.evaluation.metrics import image_auroc, pixel_auroc
from adlib.features.backbones import BACKBONES
from adlib.features.extractor import FeatureExtractor, FeatureSettings, profile_settings

SMALL = Preprocessing(resize=64, crop=64)
PADIM_FEATURES = FeatureSettings(backbone="resnet18", weights=None, layers=PADIM_LAYERS, preprocessing=SMALL)
SPADE_FEATURES = dataclasses.replace(PADIM_FEATURES, layers=SPADE_LAYERS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("baseline-features")


@pytest.fixture
def category(tiny_benchmark):
    return load_category(tiny_benchmark, "pill")


def upsampled_blurred(patch: np.ndarray, grid, crop: int, sigma: float = 4.0) -> np.ndarray:
    """[N, H*W] -> [N, crop, crop]: bilinear upsampling (align_corners=False), scipy's Gaussian blur."""
    maps = F.interpolate(
        torch.from_numpy(patch).reshape(-1, 1, *grid), size=crop, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    return np.stack([gaussian_filter(m, sigma=sigma) for m in maps])


# --------------------------------------------------------------------------------------------------
# PaDiM


def padim_embedding(model: PaDiM, samples) -> np.ndarray:
    """[N, H*W, d] float64: layers upsampled nearest with F.interpolate, concatenated, the model's channels."""
    maps = model.extractor.layer_maps(samples, progress=False)
    grid = maps["layer1"].shape[-2:]
    full = torch.cat([F.interpolate(maps[layer].double(), size=grid, mode="nearest") for layer in PADIM_LAYERS], 1)
    chosen = full[:, model.channels]
    return chosen.flatten(2).transpose(1, 2).numpy()


def test_padim_matches_slow_numpy(category, cache):
    settings = PaDiMSettings(features=PADIM_FEATURES, channels=20)
    model = PaDiM(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    assert model.grid == (16, 16)
    channels = model.channels.tolist()
    assert len(set(channels)) == 20 and channels == sorted(channels) and 0 <= channels[0] and channels[-1] < 448

    train, test = padim_embedding(model, category.train), padim_embedding(model, category.test)
    expected = np.empty((len(test), train.shape[1]))
    for p in range(train.shape[1]):
        mean = train[:, p].mean(0)
        precision = np.linalg.inv(np.cov(train[:, p], rowvar=False) + 0.01 * np.eye(20))
        for i in range(len(test)):
            delta = test[i, p] - mean
            expected[i, p] = np.sqrt(delta @ precision @ delta)

    patch = model.patch_scores(category.test, progress=False)
    np.testing.assert_allclose(patch.double().numpy(), expected, rtol=1e-5)
    scores = model.predict(category.test, progress=False)
    maps = upsampled_blurred(expected, (16, 16), 64)
    assert scores.maps.shape == (len(category.test), 64, 64) and scores.image.shape == (len(category.test),)
    np.testing.assert_allclose(scores.maps.double().numpy(), maps, rtol=1e-4)
    np.testing.assert_allclose(scores.image.double().numpy(), maps.max(axis=(1, 2)), rtol=1e-4)


def test_padim_with_one_image_is_euclidean_over_sqrt_eps(category, cache):
    """N = 1: the covariance is taken as 0, so the model is eps * I around the single image."""
    model = PaDiM(PaDiMSettings(features=PADIM_FEATURES, channels=20, eps=0.25), device="cpu", cache_dir=cache)
    model.fit(category.train[:1], progress=False)
    train, test = padim_embedding(model, category.train[:1]), padim_embedding(model, category.test)
    expected = np.linalg.norm(test - train, axis=-1) / 0.5
    np.testing.assert_allclose(model.patch_scores(category.test, False).double().numpy(), expected, rtol=1e-4)


def test_padim_channel_draw_is_seeded(category, cache):
    def drawn(seed):
        settings = PaDiMSettings(features=PADIM_FEATURES, channels=20, seed=seed)
        return PaDiM(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False).channels

    assert torch.equal(drawn(3), drawn(3))
    assert not torch.equal(drawn(3), drawn(4))


def test_padim_presets():
    paper = padim_settings(profile_settings("paper"))
    assert paper.features.layers == PADIM_LAYERS and paper.channels == 550
    assert paper.features.backbone == "wide_resnet50_2" and paper.features.preprocessing == Preprocessing()
    star = padim_star_settings(weights=None, seed=2)
    assert (star.features.backbone, star.channels, star.seed, star.eps) == ("resnet18", 100, 2, 0.01)
    assert padim_settings().channels == 100 and PaDiMSettings().features.layers == PADIM_LAYERS
    assert set(PADIM_CHANNELS) == set(BACKBONES)  # every backbone has a channel count for the preset


# --------------------------------------------------------------------------------------------------
# SPADE


def pyramid(maps) -> torch.Tensor:
    """[N, H*W, D] float64: layer1..3 bilinearly upsampled (align_corners=False) to layer1's grid, concatenated."""
    grid = maps["layer1"].shape[-2:]
    parts = [
        F.interpolate(maps[layer].double(), size=grid, mode="bilinear", align_corners=False)
        for layer in SPADE_LAYERS[:3]
    ]
    return torch.cat(parts, 1).flatten(2).transpose(1, 2)


@pytest.mark.parametrize("image_k", [3, 50])
def test_spade_matches_brute_force(category, cache, image_k):
    settings = SpadeSettings(features=SPADE_FEATURES, image_k=image_k)
    model = Spade(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    k = min(image_k, len(category.train))  # 50 > 6 training images: all of them
    assert model.k == k

    train_maps = model.extractor.layer_maps(category.train, progress=False)
    test_maps = model.extractor.layer_maps(category.test, progress=False)
    pooled = torch.cdist(test_maps["layer4"].double().mean((2, 3)), train_maps["layer4"].double().mean((2, 3)))
    nearest = pooled.topk(k, dim=1, largest=False)
    train_pixels, test_pixels = pyramid(train_maps), pyramid(test_maps)
    expected_patch = torch.stack(
        [
            torch.cdist(test_pixels[i], train_pixels[nearest.indices[i]].reshape(-1, train_pixels.shape[-1])).amin(1)
            for i in range(len(category.test))
        ]
    )

    found = model.distances(category.test, progress=False)
    assert torch.equal(found.neighbours.sort(1).values, nearest.indices.sort(1).values)
    torch.testing.assert_close(found.image.double(), nearest.values.mean(1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(found.patch.double(), expected_patch, rtol=1e-4, atol=1e-4)
    scores = model.predict(category.test, progress=False)
    maps = upsampled_blurred(expected_patch.numpy(), (16, 16), 64)
    np.testing.assert_allclose(scores.maps.double().numpy(), maps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scores.image, found.image)


def test_spade_gallery_chunks_give_the_same_distances(category, cache, monkeypatch):
    """The gallery of the K retrieved images is searched a few images at a time; one at a time agrees."""
    settings = SpadeSettings(features=SPADE_FEATURES, image_k=4)
    model = Spade(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    whole = model.distances(category.test, progress=False)
    import adlib.detectors.spade

    monkeypatch.setattr(adlib.detectors.spade, "_CHUNK_BYTES", 1)
    chunked = model.distances(category.test, progress=False)
    torch.testing.assert_close(chunked.patch, whole.patch)


# --------------------------------------------------------------------------------------------------
# Image-level denoising


def denoised_settings(drop: float, seed: int = 0, **detector) -> ImageDenoisedSettings:
    patchcore = PatchCoreSettings(
        features=dataclasses.replace(PADIM_FEATURES, layers=("layer2", "layer3"), pre_dim=64, target_dim=64),
        coreset_ratio=0.25,
        **detector,
    )
    return ImageDenoisedSettings(
        filter=PaDiMSettings(features=PADIM_FEATURES, channels=20), detector=patchcore, drop=drop, seed=seed
    )


@pytest.mark.parametrize(("drop", "count"), [(0.5, 3), (0.34, 2), (0.15, 0)])  # int(drop * 6) images
def test_image_denoising_drops_the_top_share_then_fits_patchcore(category, cache, drop, count):
    settings = denoised_settings(drop)
    model = ImageDenoised(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)

    filter_scores = PaDiM(settings.filter, device="cpu", cache_dir=cache).fit(category.train, False)
    filter_scores = filter_scores.predict(category.train, progress=False).image
    torch.testing.assert_close(model.train_scores, filter_scores)
    worst = set(np.argsort(-filter_scores.numpy())[:count].tolist())
    assert len(set(filter_scores.tolist())) == len(filter_scores)  # no ties: the top share is unambiguous
    assert set(model.dropped) == {category.train[i].image for i in worst} and len(model.dropped) == count

    kept = [sample for i, sample in enumerate(category.train) if i not in worst]
    direct = PatchCore(settings.detector, device="cpu", cache_dir=cache).fit(kept, progress=False)
    assert torch.equal(model.detector.bank, direct.bank)
    a, b = model.predict(category.test, progress=False), direct.predict(category.test, progress=False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)


def test_image_denoising_with_a_padim_detector_is_padim_on_the_kept_images(category, cache):
    """SP Table 7's PaDiM*+PaDiM*: the same filter, then PaDiM (its own seed draw) on the kept images."""
    padim = PaDiMSettings(features=PADIM_FEATURES, channels=20)
    settings = ImageDenoisedSettings(filter=padim, detector=padim, drop=0.34, seed=2)
    model = ImageDenoised(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    assert isinstance(model.detector, PaDiM) and model.filter.extractor is model.detector.extractor
    assert len(model.dropped) == 2
    kept = [sample for sample in category.train if sample.image not in set(model.dropped)]
    direct = PaDiM(settings.detector, device="cpu", cache_dir=cache).fit(kept, progress=False)
    assert torch.equal(model.detector.mean, direct.mean) and torch.equal(model.detector.factor, direct.factor)
    a, b = model.predict(category.test, progress=False), direct.predict(category.test, progress=False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)


def test_image_denoised_seed_is_one_for_both_parts():
    settings = denoised_settings(0.5, seed=3)
    assert settings.filter.seed == settings.detector.seed == 3
    reseeded = dataclasses.replace(settings, seed=7)  # what the experiment runner does
    assert reseeded.filter.seed == reseeded.detector.seed == 7
    overwritten = ImageDenoisedSettings(filter=PaDiMSettings(seed=5), detector=PatchCoreSettings(seed=6), seed=1)
    assert overwritten.filter.seed == overwritten.detector.seed == 1
    values = settings.to_dict()
    assert json.loads(json.dumps(values)) == values
    assert values["filter"]["channels"] == 20 and values["detector"]["coreset_ratio"] == 0.25 and values["seed"] == 3
    assert settings.features == settings.detector.features


# --------------------------------------------------------------------------------------------------
# End to end


def write_easy_category(root, name="squares", n_train=8, n_good=4, n_defect=4, size=64, seed=0):
    """Grey noise; defects are a bright 14 x 14 square at a random place (its mask is the square)."""
    rng = np.random.default_rng(seed)
    folders = {f: root / name / f for f in ("train/good", "test/good", "test/square", "ground_truth/square")}
    for folder in folders.values():
        folder.mkdir(parents=True)

    def noise():
        return np.clip(rng.normal(110, 12, (size, size, 3)), 0, 255).astype(np.uint8)

    for i in range(n_train):
        Image.fromarray(noise()).save(folders["train/good"] / f"{i:03d}.png")
    for i in range(n_good):
        Image.fromarray(noise()).save(folders["test/good"] / f"{i:03d}.png")
    for i in range(n_defect):
        image, mask = noise(), np.zeros((size, size), np.uint8)
        top, left = rng.integers(4, size - 18, 2)
        image[top : top + 14, left : left + 14] = 250
        mask[top : top + 14, left : left + 14] = 255
        Image.fromarray(image).save(folders["test/square"] / f"{i:03d}.png")
        Image.fromarray(mask).save(folders["ground_truth/square"] / f"{i:03d}_mask.png")
    return load_category(root, name)


def detectors():
    return {
        "padim": lambda: PaDiM(PaDiMSettings(features=PADIM_FEATURES, channels=20), device="cpu"),
        "spade": lambda: Spade(SpadeSettings(features=SPADE_FEATURES, image_k=3), device="cpu"),
        "image_denoised": lambda: ImageDenoised(denoised_settings(0.25), device="cpu"),
    }


@pytest.mark.parametrize("name", ["padim", "spade", "image_denoised"])
def test_detectors_find_bright_squares(tmp_path, monkeypatch, name):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    easy = write_easy_category(tmp_path)
    scores = detectors()[name]().fit(easy.train, progress=False).predict(easy.test, progress=False)
    assert scores.image.shape == (8,) and scores.maps.shape == (8, 64, 64)
    assert bool(torch.isfinite(scores.maps).all()) and bool(torch.isfinite(scores.image).all())
    labels = np.array([sample.label for sample in easy.test])
    masks = np.stack([read_mask(sample, SMALL).numpy() for sample in easy.test])
    assert image_auroc(labels, scores.image.numpy()) == 1.0
    assert pixel_auroc(masks, scores.maps.numpy()) > 0.9


@pytest.mark.parametrize("name", ["padim", "spade", "image_denoised"])
def test_detectors_run_on_a_tiny_category(category, monkeypatch, tmp_path, name):
    """What every detector promises: image scores [N] and maps [N, crop, crop] on the CPU, the maps being
    its patch scores bilinearly upsampled and blurred (sigma 4) as PatchCore's are."""
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path))
    model = detectors()[name]().fit(category.train, progress=False)
    scores = model.predict(category.test, progress=False)
    n = len(category.test)
    assert scores.image.shape == (n,) and scores.maps.shape == (n, 64, 64)
    assert scores.image.device.type == "cpu" and scores.maps.device.type == "cpu"
    assert bool(torch.isfinite(scores.maps).all()) and bool(torch.isfinite(scores.image).all())
    if name == "image_denoised":  # the detector fitted on the kept images scores the test set
        assert len(model.dropped) == int(0.25 * len(category.train))
        direct = model.detector.predict(category.test, progress=False)
        assert torch.equal(scores.image, direct.image) and torch.equal(scores.maps, direct.maps)
        return
    if name == "padim":
        patch, image = model.patch_scores(category.test, progress=False), scores.maps.amax(dim=(1, 2))
    else:
        found = model.distances(category.test, progress=False)
        patch, image = found.patch, found.image
    expected = upsampled_blurred(patch.cpu().numpy(), model.grid, 64)
    np.testing.assert_allclose(scores.maps.double().numpy(), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scores.image, image.cpu())


# --------------------------------------------------------------------------------------------------
# Settings


def changed(a, b) -> bool:
    return not torch.allclose(a.image, b.image) or not torch.allclose(a.maps, b.maps)


def test_padim_settings_reach_the_scores(category, cache):
    base = PaDiMSettings(features=PADIM_FEATURES, channels=20)
    reference = PaDiM(base, device="cpu", cache_dir=cache).fit(category.train, False).predict(category.test, False)
    changes = {
        "channels": 30,
        "eps": 1.0,
        "blur_sigma": 0.0,
        "seed": 1,
        "features": dataclasses.replace(PADIM_FEATURES, init_seed=1),
    }
    for name, value in changes.items():
        model = PaDiM(dataclasses.replace(base, **{name: value}), device="cpu", cache_dir=cache)
        scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
        assert changed(scores, reference), f"setting {name}={value!r} did not change the scores"


def test_spade_settings_reach_the_scores(category, cache):
    base = SpadeSettings(features=SPADE_FEATURES, image_k=3)
    reference = Spade(base, device="cpu", cache_dir=cache).fit(category.train, False).predict(category.test, False)
    changes = {"image_k": 2, "blur_sigma": 0.0, "features": dataclasses.replace(SPADE_FEATURES, init_seed=1)}
    for name, value in changes.items():
        model = Spade(dataclasses.replace(base, **{name: value}), device="cpu", cache_dir=cache)
        scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
        assert changed(scores, reference), f"setting {name}={value!r} did not change the scores"
    # SPADE has no random step: the seed is accepted for the shared interface and changes nothing.
    model = Spade(dataclasses.replace(base, seed=1), device="cpu", cache_dir=cache).fit(category.train, False)
    assert not changed(model.predict(category.test, progress=False), reference)


def test_image_denoised_settings_reach_the_result(category, cache):
    base = denoised_settings(0.34)
    reference = ImageDenoised(base, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    reference_scores = reference.predict(category.test, progress=False)
    changes = {"drop": 0.5, "seed": 1, "detector": dataclasses.replace(base.detector, coreset_ratio=0.5)}
    for name, value in changes.items():
        model = ImageDenoised(dataclasses.replace(base, **{name: value}), device="cpu", cache_dir=cache)
        scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
        assert changed(scores, reference_scores), f"setting {name}={value!r} did not change the scores"
    # the filter's own settings act through its scores of the training images (and so what is dropped)
    for value in ({"channels": 30}, {"eps": 1.0}):
        model = ImageDenoised(
            dataclasses.replace(base, filter=dataclasses.replace(base.filter, **value)), device="cpu", cache_dir=cache
        ).fit(category.train, progress=False)
        assert not torch.allclose(model.train_scores, reference.train_scores), f"filter {value} did not act"


def test_misuse_is_explained(category, cache):
    for bad, match in [
        ({"channels": 0}, "channels=0"),
        ({"channels": 2.5}, "channels=2.5"),
        ({"eps": 0.0}, "eps=0.0"),
        ({"blur_sigma": -1.0}, "blur_sigma=-1.0"),
    ]:
        with pytest.raises(ValueError, match=match):
            PaDiMSettings(features=PADIM_FEATURES, **bad)
    with pytest.raises(ValueError, match=r"features.layers=\('layer2', 'layer3'\): PaDiM needs layers"):
        PaDiMSettings(features=dataclasses.replace(PADIM_FEATURES, layers=("layer2", "layer3")))
    with pytest.raises(ValueError, match="features.pre_dim set, but PaDiM uses the raw layer maps"):
        PaDiMSettings(features=dataclasses.replace(PADIM_FEATURES, pre_dim=64))
    with pytest.raises(ValueError, match=r"channels=449, but .* 64 \+ 128 \+ 256 = 448 channels"):
        PaDiM(PaDiMSettings(features=PADIM_FEATURES, channels=449), device="cpu", cache_dir=cache).fit(category.train)
    with pytest.raises(RuntimeError, match="before fit"):
        PaDiM(PaDiMSettings(features=PADIM_FEATURES), device="cpu").predict(category.test)

    for bad, match in [({"image_k": 0}, "image_k=0"), ({"blur_sigma": -0.5}, "blur_sigma=-0.5")]:
        with pytest.raises(ValueError, match=match):
            SpadeSettings(features=SPADE_FEATURES, **bad)
    with pytest.raises(ValueError, match="SPADE needs layers"):
        SpadeSettings(features=PADIM_FEATURES)
    with pytest.raises(RuntimeError, match="before fit"):
        Spade(SpadeSettings(features=SPADE_FEATURES), device="cpu").predict(category.test)

    for drop in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"drop={drop}"):
            denoised_settings(drop)
    with pytest.raises(TypeError, match="PaDiMSettings"):
        ImageDenoisedSettings(filter=PatchCoreSettings())
    with pytest.raises(TypeError, match="detector=SpadeSettings: pass PatchCoreSettings .* or PaDiMSettings"):
        ImageDenoisedSettings(detector=SpadeSettings(features=SPADE_FEATURES))
    with pytest.raises(RuntimeError, match="before fit"):
        ImageDenoised(denoised_settings(0.5), device="cpu").predict(category.test)


def test_shared_extractor(category, cache):
    extractor = FeatureExtractor(PADIM_FEATURES, device="cpu", cache_dir=cache)
    settings = PaDiMSettings(features=PADIM_FEATURES, channels=20)
    shared = PaDiM(settings, extractor=extractor)
    assert shared.extractor is extractor
    own = PaDiM(settings, device="cpu", cache_dir=cache)
    a = shared.fit(category.train, False).predict(category.test, False)
    b = own.fit(category.train, False).predict(category.test, False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)
    other = dataclasses.replace(PADIM_FEATURES, init_seed=1)
    with pytest.raises(ValueError, match="shared feature extractor"):
        PaDiM(PaDiMSettings(features=other), extractor=extractor)
    with pytest.raises(ValueError, match="shared feature extractor"):
        Spade(SpadeSettings(features=SPADE_FEATURES), extractor=extractor)
    assert (
        Spade(
            SpadeSettings(features=SPADE_FEATURES),
            extractor=(spade := FeatureExtractor(SPADE_FEATURES, device="cpu", cache_dir=cache)),
        ).extractor
        is spade
    )

    denoised = denoised_settings(0.5)
    detector_extractor = FeatureExtractor(denoised.features, device="cpu", cache_dir=cache)
    model = ImageDenoised(denoised, extractor=detector_extractor)
    assert model.detector.extractor is detector_extractor and model.filter.extractor is not detector_extractor
    with pytest.raises(ValueError, match="shared feature extractor"):
        ImageDenoised(denoised, extractor=extractor)  # the filter's features are not the detector's


@pytest.mark.parametrize(
    "detector, settings",
    [
        (PaDiM, PaDiMSettings(features=PADIM_FEATURES, channels=20, seed=3)),
        (Spade, SpadeSettings(features=SPADE_FEATURES, image_k=3)),
    ],
)
def test_save_load_round_trip_and_refusals(category, cache, tmp_path, detector, settings):
    model = detector(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = detector.load(path, settings, device="cpu", cache_dir=cache)
    assert loaded.settings == settings and loaded.grid == model.grid
    a, b = model.predict(category.test, progress=False), loaded.predict(category.test, progress=False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)
    assert detector.load(path, device="cpu", cache_dir=cache).settings == settings  # settings from the file

    other = dataclasses.replace(settings, blur_sigma=2.0)
    with pytest.raises(ValueError, match=r"other settings.*blur_sigma: 2\.0 asked, 4\.0 in the file"):
        detector.load(path, other, device="cpu", cache_dir=cache)
    wrong = Spade if detector is PaDiM else PaDiM
    with pytest.raises(ValueError, match=f"holds a '{detector.__name__.lower()}' model"):
        wrong.load(path, device="cpu", cache_dir=cache)
    with pytest.raises(RuntimeError, match="save before fit"):
        detector(settings, device="cpu", cache_dir=cache).save(tmp_path / "empty.pt")
    retagged = read_state(path)
    retagged["weights_tag"] = "other.pth:0123"
    write_state(tmp_path / "retagged.pt", retagged)
    with pytest.raises(ValueError, match="other.pth:0123.*same weights file or refit"):
        detector.load(tmp_path / "retagged.pt", device="cpu", cache_dir=cache)


@pytest.mark.parametrize("padim_detector", [False, True])
def test_image_denoised_save_load_round_trip_and_refusals(category, cache, tmp_path, padim_detector):
    settings = denoised_settings(0.34, seed=3)
    if padim_detector:
        settings = dataclasses.replace(settings, detector=settings.filter)
    model = ImageDenoised(settings, device="cpu", cache_dir=cache).fit(category.train, progress=False)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = ImageDenoised.load(path, settings, device="cpu", cache_dir=cache)
    assert loaded.settings == settings and loaded.dropped == model.dropped and len(model.dropped) == 2
    assert torch.equal(loaded.train_scores, model.train_scores)
    a, b = model.predict(category.test, progress=False), loaded.predict(category.test, progress=False)
    assert torch.equal(a.image, b.image) and torch.equal(a.maps, b.maps)
    assert ImageDenoised.load(path, device="cpu", cache_dir=cache).settings == settings  # settings from the file

    other = dataclasses.replace(settings, drop=0.5)
    with pytest.raises(ValueError, match=r"other settings.*drop: 0\.5 asked, 0\.34 in the file"):
        ImageDenoised.load(path, other, device="cpu", cache_dir=cache)
    with pytest.raises(ValueError, match="holds a 'image_denoised' model"):
        PaDiM.load(path, device="cpu", cache_dir=cache)
    with pytest.raises(RuntimeError, match="save before fit"):
        ImageDenoised(settings, device="cpu", cache_dir=cache).save(tmp_path / "empty.pt")
    retagged = read_state(path)
    retagged["filter_weights_tag"] = "other.pth:0123"
    write_state(tmp_path / "retagged.pt", retagged)
    with pytest.raises(ValueError, match="other.pth:0123.*same weights file or refit"):
        ImageDenoised.load(tmp_path / "retagged.pt", device="cpu", cache_dir=cache)
