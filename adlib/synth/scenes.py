"""Scenes from photographs: the bundled photos, random crops of them (texture samples and object
backgrounds), and the `Scene` every sample starts from (clean image, where defects may go)."""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from adlib.synth.drawing import F, color_vector, grid


@dataclass(frozen=True)
class Scene:
    """A noise-free sample before any defect: the image, the region where defects may be placed and,
    for drawn objects, the parameters it was drawn from and how to redraw it with a change."""

    image: np.ndarray  # float32 HxWxC in [0, 1], noise-free
    support: np.ndarray  # bool HxW: where defects are placed
    params: object = None  # object renderers: their frozen parameter set
    draw: Callable[[object], np.ndarray] | None = None  # params -> image (for geometric defects)


@dataclass(frozen=True)
class Photo:
    """A region (left, top, right, bottom; None = all) of a bundled photo: 'skimage:brick' or
    'mvtbdata:walls-l.png'."""

    name: str
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class TextureSource:
    """Where crops come from: photo regions, crop side in source pixels and max rotation (degrees).
    Every crop is flipped left-right with probability 1/2."""

    photos: tuple[Photo, ...]
    side: tuple[float, float]
    max_rot: float


@lru_cache(maxsize=16)
def load_photo(name: str, mode: str) -> Image.Image:
    """A bundled photo as a PIL image in `mode` ('L' or 'RGB'), loaded once per process."""
    package, file = name.split(":")
    if package == "skimage":
        import skimage.data

        image = Image.fromarray(getattr(skimage.data, file)())
    elif package == "mvtbdata":
        with (importlib.resources.files("mvtbdata") / "images" / file).open("rb") as fh:
            image = Image.open(fh)
            image.load()
    else:
        raise ValueError(f"unknown photo package {package!r}")
    return image.convert(mode)


def crop(source: TextureSource, rng: np.random.Generator, size: int, mode: str) -> np.ndarray:
    """A random, slightly rotated and rescaled square crop, as float32 HxWxC in [0, 1]."""
    photo = source.photos[rng.integers(len(source.photos))]
    image = load_photo(photo.name, mode)
    left, top, right, bottom = photo.box or (0, 0, image.width, image.height)
    side = rng.uniform(*source.side)
    angle = rng.uniform(-source.max_rot, source.max_rot)
    rad = math.radians(angle)
    spread = abs(math.cos(rad)) + abs(math.sin(rad))  # the rotated square's bounding box / side
    side = min(side, (min(right - left, bottom - top) - 8) / spread)  # never reach past the region
    half = side / 2 * spread + 3
    cx = rng.uniform(left + half, right - half)
    cy = rng.uniform(top + half, bottom - half)
    flip = rng.random() < 0.5
    window = image.crop((math.floor(cx - half), math.floor(cy - half), math.ceil(cx + half), math.ceil(cy + half)))
    window = window.rotate(angle, resample=Image.Resampling.BICUBIC)
    wx, wy = window.width / 2, window.height / 2
    side = min(side, window.width, window.height)
    box = (wx - side / 2, wy - side / 2, wx + side / 2, wy + side / 2)
    out = window.resize((size, size), Image.Resampling.LANCZOS, box=box)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(out, dtype=F) / 255
    return arr[..., None] if arr.ndim == 2 else arr


def photo_background(
    source: TextureSource,
    rng: np.random.Generator,
    size: int,
    mode: str,
    mean: Sequence[float],
    contrast: float,
    blur: float,
) -> np.ndarray:
    """A low-contrast, tinted real-photo crop to lay objects on (a worn inspection table)."""
    photo = crop(source, rng, size, mode)
    if blur:
        photo = ndimage.gaussian_filter(photo, (blur, blur, 0))
    photo = (photo - photo.mean()) * contrast
    return np.clip(photo + color_vector(mean, photo.shape[2]) * rng.uniform(0.95, 1.05), 0, 1).astype(F)


def render_texture(rng: np.random.Generator, size: int, *, source: TextureSource, mode: str) -> Scene:
    """A texture sample: a photo crop under slightly varying, slightly uneven illumination."""
    image = crop(source, rng, size, mode)
    yy, xx = grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((yy - size / 2) * math.sin(angle) + (xx - size / 2) * math.cos(angle)) / size
    gain = rng.uniform(0.95, 1.05) * (1 + rng.uniform(-0.06, 0.06) * ramp)
    image = np.clip(image * gain[..., None], 0, 1).astype(F)
    return Scene(image=image, support=np.ones((size, size), bool))


# ---- the photo regions the categories crop from ---------------------------------------------------


def _photos(*names: str | tuple[str, tuple[int, int, int, int]]) -> tuple[Photo, ...]:
    """Photo regions from names ('skimage:brick': the whole photo) or (name, box) pairs."""
    return tuple(Photo(n) if isinstance(n, str) else Photo(*n) for n in names)


BRICK = TextureSource(_photos("skimage:brick"), side=(200, 250), max_rot=2.0)
# Texture categories are filmed like MVTec's: a fixed camera over a fixed light, so a sample differs from
# the next only by a small pose / distance jitter. (Up to version 1.0 the grass and gravel crops were
# rotated by up to 180 degrees and scaled by +-15 %: that turned the light direction and the blades'
# direction around from image to image, a nuisance no inspection line shows, and it roughly doubled
# the spread of the normal patches, which put PatchCore at chance level on both categories.)
GRASS_TEXTURE = TextureSource(_photos("skimage:grass"), side=(220, 250), max_rot=3.0)
GRAVEL_TEXTURE = TextureSource(_photos("skimage:gravel"), side=(220, 250), max_rot=3.0)
# The same photos as object backgrounds (a worn table under a part) may lie in any orientation.
GRASS = TextureSource(_photos("skimage:grass"), side=(200, 270), max_rot=180.0)
GRAVEL = TextureSource(_photos("skimage:gravel"), side=(200, 270), max_rot=180.0)
WALL = TextureSource(
    _photos(("mvtbdata:walls-l.png", (810, 1075, 1555, 1400)), ("mvtbdata:walls-r.png", (410, 1150, 1060, 1490))),
    side=(240, 290),
    max_rot=2.0,
)
PAVING = TextureSource(
    _photos(("mvtbdata:walls-l.png", (0, 1940, 3264, 2448)), ("mvtbdata:walls-r.png", (0, 1960, 2740, 2448))),
    side=(400, 480),
    max_rot=4.0,
)
ROOF = TextureSource(_photos(("mvtbdata:roof.png", (330, 1060, 2009, 1660))), side=(300, 360), max_rot=2.0)
ROCKS = TextureSource(_photos("mvtbdata:rocks2-l.png", "mvtbdata:rocks2-r.png"), side=(150, 300), max_rot=180.0)
ROAD = TextureSource(_photos(("mvtbdata:road.png", (0, 520, 1280, 851))), side=(150, 300), max_rot=10.0)
