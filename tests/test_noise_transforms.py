"""Transformed training copies of overlapping noise (SP Table 10): the protocol, the transforms, the cache keys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlib.data import transforms
from adlib.data.datasets import Category, Preprocessing, Sample, read_batch, read_image, read_mask
from adlib.data.protocol import Protocol, add_training_noise
from adlib.data.transforms import NoiseTransform, apply_to_image, apply_to_mask, parameters, sample_digest
from adlib.evaluation.store import data_fingerprint
from adlib.features.extractor import FeatureExtractor, FeatureSettings

SIZE = 48
PREP = Preprocessing(resize=SIZE, crop=SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def smooth_image(size: int = SIZE, phase: float = 0.0) -> np.ndarray:
    """A smooth RGB image (interpolation differences stay small) with structure in every direction."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    channels = [
        128 + 60 * np.sin(x / 7 + y / 13 + phase),
        128 + 60 * np.cos(y / 5 + phase),
        128 + 40 * np.sin((x - y) / 9),
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def category(root: Path, good: int = 10, defective: int = 6) -> Category:
    """A category on disk: `good` training images, and `defective` test images with a square mask each."""
    train, test = [], []
    for i in range(good):
        path = root / "train" / "good" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(phase=i)).save(path)
        train.append(Sample(path, (), 0, "good"))
    for i in range(defective):
        path, mask = root / "test" / "hole" / f"{i:03d}.png", root / "ground_truth" / "hole" / f"{i:03d}_mask.png"
        path.parent.mkdir(parents=True, exist_ok=True), mask.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(phase=10 + i)).save(path)
        pixels = np.zeros((SIZE, SIZE), np.uint8)
        pixels[10:20, 24:36] = 255
        Image.fromarray(pixels).save(mask)
        test.append(Sample(path, (mask,), 1, "hole"))
    return Category("toy", root, "mvtec", tuple(train), tuple(test))


# --------------------------------------------------------------------------------------------------
# The protocol


@pytest.mark.parametrize("bad", ["blur", "Gaussian", "", 3])
def test_bad_names_are_rejected_naming_the_setting_and_the_choices(bad) -> None:
    with pytest.raises(ValueError, match=r"noise_transform=.*gaussian, gaussian_blur, rotation, affine"):
        Protocol(0.1, True, noise_transform=bad)
    with pytest.raises(ValueError, match=r"NoiseTransform\.name="):
        NoiseTransform(bad, 0)


def test_a_transform_needs_overlap(tmp_path) -> None:
    with pytest.raises(ValueError, match="noise_transform='rotation'.*noise_overlap=True"):
        Protocol(0.1, False, noise_transform="rotation")
    with pytest.raises(ValueError, match="noise_transform='gaussian'.*noise_overlap=True"):
        Protocol(0.0, False, noise_transform="gaussian")
    with pytest.raises(ValueError, match="transform='affine'.*overlap=True"):
        add_training_noise(category(tmp_path), 0.3, False, 0, "affine")


def test_to_dict_names_the_transform_only_when_set() -> None:
    assert Protocol(0.1, True).to_dict() == {
        "noise_ratio": 0.1,
        "noise_overlap": True,
        "shots": None,
        "test_images": None,
    }
    assert Protocol(0.1, True, noise_transform="affine").to_dict()["noise_transform"] == "affine"


@pytest.mark.parametrize("name", transforms.TRANSFORMS)
def test_copies_are_transformed_the_test_set_is_not(tmp_path, name: str) -> None:
    clean = category(tmp_path)
    plain, plain_record = add_training_noise(clean, 0.3, True, 4)
    noisy, record = add_training_noise(clean, 0.3, True, 4, name)
    assert record.moved == plain_record.moved and record.transform == name  # the same images move
    assert noisy.test == clean.test and all(s.transform is None for s in noisy.test)
    copies = noisy.train[len(clean.train) :]
    assert noisy.train[: len(clean.train)] == clean.train
    seeds = np.random.default_rng([4, 2]).integers(0, 2**31 - 1, size=len(copies))
    assert [s.transform for s in copies] == [NoiseTransform(name, int(k)) for k in seeds]
    assert [(s.image, s.masks, s.label) for s in copies] == [(s.image, s.masks, s.label) for s in plain.train[10:]]
    assert add_training_noise(clean, 0.3, True, 4, name) == (noisy, record)  # deterministic
    other = add_training_noise(clean, 0.3, True, 5, name)[0].train[10:]
    assert {s.transform.seed for s in other}.isdisjoint({s.transform.seed for s in copies})
    for copy in copies:  # the copy differs from its test image, the test image reads as the file
        test_image = read_image(copy.image, PREP)
        assert (read_batch([copy], PREP)[0] - test_image).abs().mean() > 0.02
        assert torch.equal(read_batch([s for s in noisy.test if s.image == copy.image], PREP)[0], test_image)


def test_protocol_apply_records_the_transform(tmp_path) -> None:
    noisy, columns = Protocol(0.3, True, noise_transform="rotation").apply(category(tmp_path), 1)
    assert columns["noise_transform"] == "rotation" and columns["noise_moved"] == 3
    assert "noise_transform" not in Protocol(0.3, True).apply(category(tmp_path), 1)[1]


# --------------------------------------------------------------------------------------------------
# The transforms


def test_parameters_are_seeded_and_in_their_ranges() -> None:
    angles = [parameters(NoiseTransform("rotation", s), SIZE, SIZE)["rotation"] for s in range(200)]
    assert all(10 <= abs(a) <= 30 for a in angles) and min(angles) < 0 < max(angles)
    for seed in range(50):
        drawn = parameters(NoiseTransform("affine", seed), 100, 200)
        assert abs(drawn["rotation"]) <= 10 and 0.9 <= drawn["scale"] <= 1.1 and abs(drawn["shear"]) <= 10
        assert abs(drawn["shift_rows"]) <= 5 and abs(drawn["shift_cols"]) <= 10
    assert parameters(NoiseTransform("gaussian_blur", 0), 512, 1024) == {"blur_sigma": 3.0, "noise_sigma": 0.1}
    assert parameters(NoiseTransform("affine", 3), 64, 64) == parameters(NoiseTransform("affine", 3), 64, 64)


def test_gaussian_noise_has_the_stated_sigma_and_is_seeded() -> None:
    grey = np.full((128, 128, 3), 128, np.uint8)
    first = apply_to_image(grey, NoiseTransform("gaussian", 7))
    noise = first.astype(float) - 128
    assert abs(noise.mean()) < 0.5 and abs(noise.std() - 25.5) < 0.5  # sigma 0.1 of 255, no clipping at 128
    assert np.array_equal(apply_to_image(grey, NoiseTransform("gaussian", 7)), first)
    assert not np.array_equal(apply_to_image(grey, NoiseTransform("gaussian", 8)), first)


def test_blur_then_noise_matches_a_direct_computation() -> None:
    from scipy import ndimage

    image = smooth_image(64)
    blurred = np.stack(
        [ndimage.gaussian_filter(image[..., c] / 255.0, 1.5 * 64 / 256, mode="reflect") for c in range(3)], -1
    )
    noise = np.random.default_rng([5, 1]).normal(0, 0.1, image.shape)
    expected = np.clip(np.rint((blurred + noise) * 255), 0, 255)
    assert np.abs(apply_to_image(image, NoiseTransform("gaussian_blur", 5)) - expected).max() <= 1


def test_rotation_matches_pil_inside_the_image() -> None:
    image = smooth_image(64)
    y, x = np.mgrid[0:64, 0:64]
    inside = (x - 31.5) ** 2 + (y - 31.5) ** 2 < 20**2  # PIL fills the corners, ours reflects
    for seed in range(4):
        transform = NoiseTransform("rotation", seed)
        angle = parameters(transform, 64, 64)["rotation"]  # positive: counter-clockwise, as PIL's rotate
        pil = np.asarray(Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR)).astype(float)
        assert np.abs(apply_to_image(image, transform) - pil)[inside].max() <= 2


def test_affine_moves_a_point_where_its_parameters_say() -> None:
    size, point = 96, np.array([30.0, 60.0])  # (row, col)
    y, x = np.mgrid[0:size, 0:size]
    blob = 255 * np.exp(-((y - point[0]) ** 2 + (x - point[1]) ** 2) / (2 * 2.0**2))
    for seed in range(5):
        transform = NoiseTransform("affine", seed)
        p = parameters(transform, size, size)
        angle, shear = math.radians(p["rotation"]), math.radians(p["shear"])
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        forward = p["scale"] * rotation @ np.array([[1.0, 0.0], [math.tan(shear), 1.0]])
        centre = np.array([(size - 1) / 2] * 2)
        expected = forward @ (point - centre) + centre + [p["shift_rows"], p["shift_cols"]]
        out = apply_to_image(np.repeat(blob[..., None], 3, -1).astype(np.uint8), transform)[..., 0].astype(float)
        found = np.array([(out * y).sum(), (out * x).sum()]) / out.sum()
        assert np.abs(found - expected).max() < 0.5


@pytest.mark.parametrize("name", ["rotation", "affine"])
def test_a_warped_copys_mask_follows_its_image(tmp_path, name: str) -> None:
    square = np.zeros((SIZE, SIZE), bool)
    square[12:30, 16:34] = True
    transform = NoiseTransform(name, 11)
    image = apply_to_image(np.repeat(square[..., None] * 255, 3, -1).astype(np.uint8), transform)[..., 0] > 127
    mask = apply_to_mask(square, transform)
    assert (image & mask).sum() / (image | mask).sum() > 0.9 and not np.array_equal(mask, square)
    assert np.array_equal(apply_to_mask(square, NoiseTransform("gaussian_blur", 11)), square)
    noisy = add_training_noise(category(tmp_path), 0.3, True, 0, name)[0]
    copy = noisy.train[-1]
    original = [s for s in noisy.test if s.image == copy.image][0]
    assert not torch.equal(read_mask(copy, PREP), read_mask(original, PREP))


# --------------------------------------------------------------------------------------------------
# Keys: the feature cache and the result store


def test_a_copy_has_its_own_cache_key(tmp_path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(smooth_image()).save(path)
    keys = {
        sample_digest(path, None),
        sample_digest(path, NoiseTransform("gaussian", 1)),
        sample_digest(path, NoiseTransform("gaussian", 2)),
        sample_digest(path, NoiseTransform("rotation", 1)),
    }
    assert len(keys) == 4 and sample_digest(path, NoiseTransform("affine", 1)) == sample_digest(
        path, NoiseTransform("affine", 1)
    )


def test_the_feature_cache_gives_a_copy_its_own_features(tmp_path) -> None:
    noisy = add_training_noise(category(tmp_path / "data"), 0.3, True, 0, "rotation")[0]
    copy = noisy.train[-1]
    original = [s for s in noisy.test if s.image == copy.image][0]
    settings = FeatureSettings(backbone="resnet18", weights=None, preprocessing=PREP, pre_dim=64, target_dim=48)
    uncached = FeatureExtractor(settings, device="cpu", use_cache=False)
    expected = uncached.embed([original, copy], progress=False).features
    assert not torch.allclose(expected[0], expected[1])
    first = FeatureExtractor(settings, device="cpu", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(first.embed([original, copy], progress=False).features, expected)
    second = FeatureExtractor(settings, device="cpu", cache_dir=tmp_path / "cache")  # both from the cache now
    torch.testing.assert_close(second.embed([copy, original], progress=False).features, expected.flip(0))
    assert len(list((tmp_path / "cache").rglob("*.layer3.pt"))) == 2
    torch.testing.assert_close(uncached.embed([copy], progress=False).features[0], expected[1])  # the memo too
    torch.testing.assert_close(uncached.embed([original], progress=False).features[0], expected[0])
    from adlib.companion.explore_cache import RememberingExtractor  # the explorer's per-image memory too

    remembering = RememberingExtractor(settings, device="cpu", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(remembering.embed([original, copy], progress=False).features, expected)


def test_the_data_fingerprint_tells_a_copy_from_its_file(tmp_path) -> None:
    clean = category(tmp_path)
    plain = add_training_noise(clean, 0.3, True, 0)[0]
    fingerprints = {
        data_fingerprint(plain.train, plain.test, tmp_path),
        *(data_fingerprint(c.train, c.test, tmp_path) for c in (
            add_training_noise(clean, 0.3, True, 0, name)[0] for name in transforms.TRANSFORMS
        )),
    }  # fmt: skip
    assert len(fingerprints) == 5


def test_display_image_shows_the_copy(tmp_path) -> None:
    from adlib.companion.plotting import display_image

    copy = add_training_noise(category(tmp_path), 0.3, True, 0, "affine")[0].train[-1]
    shown = display_image(copy.image, PREP, copy.transform)
    expected = np.clip(read_image(copy.image, PREP, copy.transform).numpy().transpose(1, 2, 0) * 0.5 + 0.5, 0, 1)
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    assert np.abs(shown - display_image(copy.image, PREP)).mean() > 0.01
