"""One sample, as a pure function of (category, kind, index, seed, size): its own random generator,
the scene, an optional defect composited inside its mask, and sensor noise."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from adlib.synth.categories import spec_of
from adlib.synth.drawing import F

#: Bump when the bytes a given seed produces, or the default set of images, change. 1.2 (2026-12-07):
#: 80 good and 160 defective test images per category by default (1.1: 20 and 40); every image 1.1
#: wrote is written again byte for byte (a sample depends on its index, not on how many are drawn).
GENERATOR_VERSION = "1.2"

#: The kinds of defect-free image: 'train' (train/good) and 'good' (test/good).
GOOD_KINDS = ("train", "good")


@dataclass(frozen=True)
class GeneratedSample:
    """One generated image (uint8, HxW or HxWx3), its mask (uint8 0/255, None for good images) and
    the defect-free image the defect was put on (equal to `image` for good images)."""

    image: np.ndarray
    mask: np.ndarray | None
    clean: np.ndarray


def split_folder(kind: str) -> str:
    """The MVTec AD folder of a kind: 'train/good', 'test/good' or 'test/<defect type>'."""
    return {"train": "train/good", "good": "test/good"}.get(kind, f"test/{kind}")


def image_rng(seed: int, category: str, split: str, index: int) -> np.random.Generator:
    """An independent generator per image: same (seed, category, split, index) -> same numbers."""
    key = [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """A float HxWxC image in [0, 1] as uint8, HxW for one channel."""
    out = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out


def make_sample(category: str, kind: str, index: int, seed: int = 0, size: int = 256) -> GeneratedSample:
    """One image of `category`: kind 'train' (train/good), 'good' (test/good) or a defect type.

    Pure function of its arguments: this is what `generate` writes, and what tests inspect."""
    spec = spec_of(category)
    if kind not in GOOD_KINDS and kind not in spec.defects:
        raise ValueError(
            f"unknown kind {kind!r} for {category!r}; use 'train', 'good' or one of {', '.join(spec.defects)}"
        )
    rng = image_rng(seed, category, split_folder(kind), index)
    scene = spec.render(rng, size)
    noise = rng.normal(0, spec.noise, scene.image.shape).astype(F)
    clean = _to_uint8(scene.image + noise)
    if kind in GOOD_KINDS:
        return GeneratedSample(image=clean, mask=None, clean=clean)
    for _ in range(8):  # a defect can come out empty (e.g. clipped by the outline): draw another
        altered, mask = spec.defects[kind](scene, rng)
        if mask.sum() >= 4:
            break
    else:
        raise RuntimeError(f"could not place a {kind!r} defect on {category!r} sample {index}")
    image = np.where(mask[..., None], altered, scene.image) + noise
    return GeneratedSample(image=_to_uint8(image), mask=(mask * 255).astype(np.uint8), clean=clean)
