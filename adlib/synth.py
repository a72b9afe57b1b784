"""The embedded benchmark: an MVTec-AD-style anomaly-detection data set made offline, deterministically.

Why: the `synthetic` profile must run anywhere, with no download, and still be a real test of the
methods. So every pixel comes from photographs that ship inside installed packages, or from objects
drawn here:

* textures are random crops (small scale / rotation jitter, as from a fixed camera) of real photos: `skimage.data.brick`,
  `grass`, `gravel` (CC0, bundled with scikit-image) and the large photos of the `mvtb-data` package
  (MIT): brick walls and paving of `walls-l.png` / `walls-r.png`, the slate roof of `roof.png`.
  Train and test crops are drawn from the same regions, so good test images follow the training
  distribution;
* objects (`pill`, `nut`, `screw`) are drawn procedurally, aligned (same pose up to a small jitter, as
  in MVTec's object categories), shaded with a simple Lambert + Phong model and laid on a
  low-contrast real-photo background, with natural variation between good samples (pose, colour,
  lighting, speckles, machining marks, background crop, sensor noise).

A sample is made in three steps: a noise-free *scene* (the clean image, the region where defects may
go, and for objects the parameters it was drawn from), an optional *defect* (one small function per
defect kind, returning the altered image and its pixel mask), and sensor noise. The defect is
composited only inside its mask, so pixels outside the mask are bit-identical to the defect-free
image the defect was put on, and the mask covers exactly the altered pixels. Defects come in several
sizes and strengths, some small and faint, so that the benchmark is not trivial.

Determinism: every image draws from its own `numpy.random.Generator`, seeded by
`SeedSequence([seed, crc32(category), crc32(split), index])`; PNGs are written by PIL with fixed
options and no metadata. The same seed gives the same bytes, whatever categories are chosen and in
whatever order. A category is written into a temporary sibling folder and moved into place with
`os.replace`, so an interrupted run never leaves a half category that looks complete.

Layout (exactly MVTec AD's)::

    <out>/<category>/train/good/000.png
    <out>/<category>/test/good/000.png
    <out>/<category>/test/<defect_type>/000.png
    <out>/<category>/ground_truth/<defect_type>/000_mask.png   (mode 'L', values 0/255)

CLI: ``python -m adlib.synth --out data/synthetic [--seed 0] [--categories brick pill]
[--overview figures/benchmark_overview.png]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import math
import os
import shutil
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from adlib.files import atomic_write_bytes

__all__ = [
    "CATEGORIES",
    "GENERATOR_VERSION",
    "CategoryInfo",
    "Sample",
    "defect_types",
    "defect_counts",
    "generate",
    "make_sample",
    "main",
]

#: Bump when the bytes a given seed produces change.
GENERATOR_VERSION = "1.1"

_F = np.float32
_LIGHT = np.array([-0.45, -0.55, 0.70], dtype=_F)  # light from the upper left (x right, y down, z up)
_LIGHT /= np.linalg.norm(_LIGHT)


# --------------------------------------------------------------------------------------------------
# Public description of the categories
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryInfo:
    """What a category is: its kind ('texture' or 'object'), image mode, defect types and sources."""

    kind: str
    description: str
    mode: str
    defect_types: tuple[str, ...]
    sources: str


@dataclass(frozen=True)
class Sample:
    """One generated image (uint8, HxW or HxWx3), its mask (uint8 0/255, None for good images) and
    the defect-free image the defect was put on (equal to `image` for good images)."""

    image: np.ndarray
    mask: np.ndarray | None
    clean: np.ndarray


_SKIMAGE = "scikit-image `skimage.data.{}()` (CC0)"
_MVTB = "mvtb-data `mvtbdata/images/{}` (MIT)"

# Filled in at the bottom of the module, once the renderers and defects are defined.
CATEGORIES: Mapping[str, CategoryInfo]


def defect_types(category: str) -> tuple[str, ...]:
    """The defect types of `category`, in a fixed order, without generating anything."""
    return _spec(category).info.defect_types


def defect_counts(category: str, n_test_defect: int = 40) -> dict[str, int]:
    """How `n_test_defect` defective test images are shared out over the defect types (as evenly as
    possible, the first types get one more when it does not divide)."""
    types = defect_types(category)
    if n_test_defect < len(types):
        raise ValueError(
            f"n_test_defect={n_test_defect} is smaller than the {len(types)} defect types of "
            f"{category!r} ({', '.join(types)}): every type needs at least one image"
        )
    base, extra = divmod(n_test_defect, len(types))
    return {name: base + (i < extra) for i, name in enumerate(types)}


# --------------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------------


def _rng(seed: int, category: str, split: str, index: int) -> np.random.Generator:
    """An independent generator per image: same (seed, category, split, index) -> same numbers."""
    key = [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(key))


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (yy, xx), float32, read-only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(_F)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _tone(rgb: Sequence[float], channels: int) -> np.ndarray:
    """An RGB colour as a per-channel vector; its mean for grayscale images."""
    c = np.asarray(rgb, dtype=_F)
    return c if channels == 3 else c.mean(keepdims=True)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _pick_point(support: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A random pixel of `support`, at least `margin` pixels inside it when that leaves any."""
    inner = support
    if margin >= 1:
        size = support.shape[0]
        m = int(margin)
        inner = support.copy()
        inner[:m], inner[size - m :], inner[:, :m], inner[:, size - m :] = False, False, False, False
        if support.mean() < 0.999:  # objects: stay off the outline too
            inner &= ndimage.binary_erosion(support, iterations=m)
        if not inner.any():
            inner = support
    idx = np.flatnonzero(inner)
    y, x = divmod(int(idx[rng.integers(len(idx))]), support.shape[1])
    return float(y) + rng.uniform(-0.5, 0.5), float(x) + rng.uniform(-0.5, 0.5)


def _blob(
    size: int,
    center: tuple[float, float],
    radius: float,
    rng: np.random.Generator,
    irregularity: float = 0.3,
    softness: float = 1.0,
    aspect: float = 1.0,
) -> np.ndarray:
    """Alpha in [0, 1] of an irregular, star-shaped blob: a circle whose radius wobbles with a few
    random harmonics of the angle; `softness` is the edge width in pixels."""
    yy, xx = _grid(size)
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - center[0], xx - center[1]
    c, s = math.cos(angle), math.sin(angle)
    du, dv = c * dx + s * dy, (-s * dx + c * dy) * aspect
    r = np.hypot(du, dv)
    theta = np.arctan2(dv, du)
    wobble = np.ones_like(r)
    for k in range(2, 7):
        wobble += rng.uniform(-irregularity, irregularity) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    edge = radius * np.clip(wobble, 0.3, None)
    return np.clip((edge - r) / max(softness, 1e-3) + 0.5, 0, 1).astype(_F)


def _smooth_noise(size: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(_F), sigma)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def _stroke(size: int, paths: Sequence[np.ndarray], widths: Sequence[float]) -> np.ndarray:
    """Anti-aliased alpha of polylines (arrays of (y, x) points) with the given widths (pixels)."""
    alpha = np.zeros((size, size), _F)
    for pts, width in zip(paths, widths):
        seg = np.diff(pts, axis=0)
        n = np.maximum(np.ceil(np.hypot(seg[:, 0], seg[:, 1]) * 3).astype(int), 1)
        t = np.concatenate([np.arange(k) / k for k in n])
        start = np.repeat(pts[:-1], n, axis=0)
        dense = start + np.repeat(seg, n, axis=0) * t[:, None]
        dense = np.vstack([dense, pts[-1:]])
        yx = np.round(dense).astype(int)
        keep = (yx >= 0).all(1) & (yx < size).all(1)
        canvas = np.ones((size, size), bool)
        canvas[yx[keep, 0], yx[keep, 1]] = False
        if canvas.all():
            continue
        dist = ndimage.distance_transform_edt(canvas).astype(_F)
        alpha = np.maximum(alpha, np.clip(width / 2 + 0.5 - dist, 0, 1))
    return alpha


def _wander(
    rng: np.random.Generator, start: tuple[float, float], length: float, steps: int, turn: float, jitter: float = 0.0
) -> np.ndarray:
    """A random-walk polyline of `steps` segments: `turn` is the heading's random-walk step (radians),
    `jitter` a per-step sideways zig-zag (radians, mean-reverting: a jagged but straight-ish crack)."""
    heading = rng.uniform(0, 2 * np.pi)
    step = length / steps
    drift = np.cumsum(rng.normal(0, turn, steps))
    zigzag = rng.normal(0, jitter, steps) if jitter else np.zeros(steps)
    ang = heading + drift + zigzag
    moves = np.stack([np.sin(ang), np.cos(ang)], 1) * step
    return np.vstack([start, start + np.cumsum(moves, 0)]).astype(_F)


def _shade(height: np.ndarray, light: np.ndarray, ambient: float, diffuse: float, shininess: float):
    """Lambert diffuse term and Phong specular term of a height field (pixel units) under `light`."""
    gy, gx = np.gradient(height)
    norm = np.sqrt(gx * gx + gy * gy + 1)
    nx, ny, nz = -gx / norm, -gy / norm, 1 / norm
    ndl = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, None)
    half = light + np.array([0, 0, 1], _F)
    half /= np.linalg.norm(half)
    ndh = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, None)
    return (ambient + diffuse * ndl).astype(_F), (ndh**shininess).astype(_F)


def _jitter_light(rng: np.random.Generator) -> np.ndarray:
    light = _LIGHT + rng.normal(0, 0.05, 3).astype(_F)
    return (light / np.linalg.norm(light)).astype(_F)


def _drop_shadow(cover: np.ndarray, size: int, strength: float) -> np.ndarray:
    """Multiplicative darkening of the background under an object lit from the upper left."""
    k = size / 256
    shifted = np.roll(cover, (round(5 * k), round(4 * k)), axis=(0, 1))
    return 1 - strength * ndimage.gaussian_filter(shifted, 4 * k)


# --------------------------------------------------------------------------------------------------
# Photographs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Photo:
    """A region (left, top, right, bottom; None = all) of a bundled photo: 'skimage:brick' or
    'mvtbdata:walls-l.png'."""

    name: str
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class _TextureSource:
    """Where texture crops come from: photo regions, crop side in source pixels, max rotation
    (degrees) and whether horizontal flips are allowed."""

    photos: tuple[_Photo, ...]
    side: tuple[float, float]
    max_rot: float
    flip: bool


@lru_cache(maxsize=16)
def _load_photo(name: str, mode: str) -> Image.Image:
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


def _crop(source: _TextureSource, rng: np.random.Generator, size: int, mode: str) -> np.ndarray:
    """A random, slightly rotated and rescaled square crop, as float32 HxWxC in [0, 1]."""
    photo = source.photos[rng.integers(len(source.photos))]
    image = _load_photo(photo.name, mode)
    left, top, right, bottom = photo.box or (0, 0, image.width, image.height)
    side = rng.uniform(*source.side)
    angle = rng.uniform(-source.max_rot, source.max_rot)
    rad = math.radians(angle)
    spread = abs(math.cos(rad)) + abs(math.sin(rad))  # the rotated square's bounding box / side
    side = min(side, (min(right - left, bottom - top) - 8) / spread)  # never reach past the region
    half = side / 2 * spread + 3
    cx = rng.uniform(left + half, right - half)
    cy = rng.uniform(top + half, bottom - half)
    flip = source.flip and rng.random() < 0.5
    window = image.crop((math.floor(cx - half), math.floor(cy - half), math.ceil(cx + half), math.ceil(cy + half)))
    window = window.rotate(angle, resample=Image.Resampling.BICUBIC)
    wx, wy = window.width / 2, window.height / 2
    side = min(side, window.width, window.height)
    box = (wx - side / 2, wy - side / 2, wx + side / 2, wy + side / 2)
    out = window.resize((size, size), Image.Resampling.LANCZOS, box=box)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(out, dtype=_F) / 255
    return arr[..., None] if arr.ndim == 2 else arr


def _background(
    source: _TextureSource,
    rng: np.random.Generator,
    size: int,
    mode: str,
    mean: Sequence[float],
    contrast: float,
    blur: float,
) -> np.ndarray:
    """A low-contrast, tinted real-photo crop to lay objects on (a worn inspection table)."""
    photo = _crop(source, rng, size, mode)
    if blur:
        photo = ndimage.gaussian_filter(photo, (blur, blur, 0))
    photo = (photo - photo.mean()) * contrast
    return np.clip(photo + _tone(mean, photo.shape[2]) * rng.uniform(0.95, 1.05), 0, 1).astype(_F)


# --------------------------------------------------------------------------------------------------
# Scenes: a clean image, where defects may go, and (objects) how to redraw it with a change
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scene:
    image: np.ndarray  # float32 HxWxC in [0, 1], noise-free
    support: np.ndarray  # bool HxW: where defects are placed
    params: object = None  # object renderers: their frozen parameter set
    draw: Callable[[object], np.ndarray] | None = None  # params -> image (for geometric defects)


def _render_texture(rng: np.random.Generator, size: int, *, source: _TextureSource, mode: str) -> _Scene:
    """A texture sample: a photo crop under slightly varying, slightly uneven illumination."""
    image = _crop(source, rng, size, mode)
    yy, xx = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((yy - size / 2) * math.sin(angle) + (xx - size / 2) * math.cos(angle)) / size
    gain = rng.uniform(0.95, 1.05) * (1 + rng.uniform(-0.06, 0.06) * ramp)
    image = np.clip(image * gain[..., None], 0, 1).astype(_F)
    return _Scene(image=image, support=np.ones((size, size), bool))


@dataclass(frozen=True)
class _Pose:
    """Where an aligned object lies: centre (pixels), rotation (radians), scale."""

    cy: float
    cx: float
    angle: float
    scale: float


def _jitter_pose(rng: np.random.Generator, size: int, shift: float = 0.012, rot: float = 2.5) -> _Pose:
    return _Pose(
        cy=size / 2 + rng.normal(0, shift * size),
        cx=size / 2 + rng.normal(0, shift * size),
        angle=math.radians(rng.normal(0, rot)),
        scale=rng.uniform(0.975, 1.025),
    )


def _object_coords(size: int, pose: _Pose) -> tuple[np.ndarray, np.ndarray, float]:
    """Canonical object coordinates (u, v) of every pixel (the object's frame, half-size = 1) and the
    size of one pixel in those units."""
    yy, xx = _grid(size)
    half = size / 2
    x, y = (xx - pose.cx) / half, (yy - pose.cy) / half
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    u = (c * x + s * y) / pose.scale
    v = (-s * x + c * y) / pose.scale
    return u.astype(_F), v.astype(_F), 1 / (half * pose.scale)


def _fracture(cut: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For a chip (alpha of removed material): the remaining-material factor and a dark band of
    broken surface along the new edge."""
    if cut is None:
        return np.ones((size, size), _F), np.zeros((size, size), _F)
    dist = ndimage.distance_transform_edt(cut < 0.5).astype(_F)
    band = np.clip(1 - dist / (3.0 * size / 256), 0, 1) * (cut < 0.5)
    return (1 - cut).astype(_F), band.astype(_F)


# ---- pill -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PillParams:
    pose: _Pose
    light: np.ndarray
    albedo: np.ndarray
    specks: np.ndarray  # HxW alpha of red speckles
    background: np.ndarray
    cut: np.ndarray | None = None  # alpha of chipped-off material
    ink_erase: np.ndarray | None = None  # alpha of missing imprint
    ink_shift: tuple[float, float, float] | None = None  # (du, dv, alpha) of a doubled imprint


_PILL_RADIUS, _PILL_HALF = 0.32, 0.49


@lru_cache(maxsize=1)
def _imprint_bitmap() -> np.ndarray:
    """The pill's printed mark ('AD') as an anti-aliased float bitmap, rendered once."""
    canvas = Image.new("L", (360, 200), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=150)
    box = draw.textbbox((0, 0), "AD", font=font)
    draw.text(((360 - (box[2] + box[0])) / 2, (200 - (box[3] + box[1])) / 2), "AD", fill=255, font=font)
    return np.asarray(canvas, dtype=_F) / 255


def _imprint(u: np.ndarray, v: np.ndarray, du: float = 0.0, dv: float = 0.0) -> np.ndarray:
    """The imprint's ink alpha at canonical coordinates (mark centred at (0.02, 0), 0.34 wide)."""
    bitmap = _imprint_bitmap()
    width, height = 0.38, 0.38 * bitmap.shape[0] / bitmap.shape[1]
    cols = (u - du - 0.02 + width / 2) / width * (bitmap.shape[1] - 1)
    rows = (v - dv + height / 2) / height * (bitmap.shape[0] - 1)
    return ndimage.map_coordinates(bitmap, [rows, cols], order=1, cval=0.0).astype(_F)


def _pill_params(rng: np.random.Generator, size: int) -> _PillParams:
    pose = _jitter_pose(rng, size)
    count = rng.poisson(210)
    half = size / 2
    ys = pose.cy + rng.uniform(-1, 1, count) * (_PILL_RADIUS + 0.03) * half
    xs = pose.cx + rng.uniform(-1, 1, count) * (_PILL_RADIUS + _PILL_HALF + 0.03) * half
    canvas = np.zeros((size, size), _F)
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    np.add.at(canvas, (ys[inside].astype(int), xs[inside].astype(int)), rng.uniform(0.4, 1.0, inside.sum()).astype(_F))
    sigma = 0.7 * size / 256
    specks = np.clip(ndimage.gaussian_filter(canvas, sigma) * (2 * np.pi * sigma**2) * 1.3, 0, 0.9)
    return _PillParams(
        pose=pose,
        light=_jitter_light(rng),
        albedo=(np.array([0.93, 0.90, 0.83], _F) + rng.normal(0, 0.012, 3).astype(_F)),
        specks=specks.astype(_F),
        background=_background(_GRAVEL, rng, size, "RGB", (0.20, 0.21, 0.23), 0.35, 0.8),
    )


def _draw_pill(p: _PillParams) -> np.ndarray:
    """A white oblong tablet with red speckles and a printed mark, lit from the upper left."""
    size = p.background.shape[0]
    u, v, px = _object_coords(size, p.pose)
    radius = _PILL_RADIUS
    d = np.hypot(np.maximum(np.abs(u) - _PILL_HALF, 0), v)
    remain, band = _fracture(p.cut, size)
    shape = np.clip((radius - d) / px + 0.5, 0, 1)
    cover = shape * remain
    t = np.clip(d / radius, 0, 1)
    height = 0.32 * radius / px * (1 - t**4) ** 0.25 * remain - 2.0 * band
    diffuse, spec = _shade(height, p.light, 0.38, 0.72, 40)
    ink = _imprint(u, v)
    if p.ink_shift is not None:
        ink = np.maximum(ink, p.ink_shift[2] * _imprint(u, v, p.ink_shift[0], p.ink_shift[1]))
    if p.ink_erase is not None:
        ink = ink * (1 - p.ink_erase)
    ink *= 0.85
    albedo = p.albedo * (1 - p.specks[..., None]) + np.array([0.70, 0.28, 0.24], _F) * p.specks[..., None]
    albedo = albedo * (1 - ink[..., None]) + np.array([0.42, 0.14, 0.12], _F) * ink[..., None]
    albedo = albedo * (1 - 0.45 * band[..., None])
    body = albedo * diffuse[..., None] + 0.22 * spec[..., None]
    ground = p.background * _drop_shadow(shape, size, 0.45)[..., None]
    return np.clip(ground * (1 - cover[..., None]) + body * cover[..., None], 0, 1).astype(_F)


def _render_pill(rng: np.random.Generator, size: int) -> _Scene:
    params = _pill_params(rng, size)
    image = _draw_pill(params)
    u, v, _ = _object_coords(size, params.pose)
    support = np.hypot(np.maximum(np.abs(u) - _PILL_HALF, 0), v) < _PILL_RADIUS
    return _Scene(image=image, support=support, params=params, draw=_draw_pill)


# ---- nut ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NutParams:
    pose: _Pose
    light: np.ndarray
    albedo: np.ndarray
    rings: float  # phase of the turned rings on the face
    brushed: np.ndarray  # HxW machining noise
    background: np.ndarray
    cut: np.ndarray | None = None


_NUT_APOTHEM, _NUT_CHAMFER, _NUT_BORE, _NUT_SINK = 0.60, 0.57, 0.27, 0.34


def _hex_distance(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distance-like measure of a flat-sided regular hexagon (sides at u = +-apothem)."""
    s = math.sqrt(3) / 2
    return np.maximum(np.abs(u), np.maximum(np.abs(0.5 * u + s * v), np.abs(0.5 * u - s * v)))


def _nut_params(rng: np.random.Generator, size: int) -> _NutParams:
    k = size / 256
    noise = rng.standard_normal((size, size)).astype(_F)
    angle = rng.uniform(0, 180)
    brushed = ndimage.rotate(ndimage.gaussian_filter(noise, (0.6 * k, 6 * k)), angle, reshape=False, mode="wrap")
    brushed = (brushed / (brushed.std() + 1e-6)).astype(_F)
    return _NutParams(
        pose=_jitter_pose(rng, size, rot=4.0),
        light=_jitter_light(rng),
        albedo=np.array([0.66, 0.67, 0.70], _F) * rng.uniform(0.95, 1.05) + rng.normal(0, 0.008, 3).astype(_F),
        rings=rng.uniform(0, 2 * np.pi),
        brushed=brushed,
        background=_background(_ROOF, rng, size, "RGB", (0.13, 0.15, 0.20), 0.3, 1.0),
    )


def _draw_nut(p: _NutParams) -> np.ndarray:
    """A hexagonal steel nut seen from above: turned face, chamfer ring, countersink, threaded bore."""
    size = p.background.shape[0]
    u, v, px = _object_coords(size, p.pose)
    rho = np.hypot(u, v)
    remain, band = _fracture(p.cut, size)
    shape = np.clip((_NUT_APOTHEM - _hex_distance(u, v)) / px + 0.5, 0, 1)
    cover = shape * remain
    chamfer = np.clip(rho - _NUT_CHAMFER, 0, None) * 0.9
    sink = np.clip(_NUT_SINK - rho, 0, _NUT_SINK - _NUT_BORE) * 1.1
    height = -(chamfer + sink) / px - 2.5 * band
    diffuse, spec = _shade(height, p.light, 0.30, 0.75, 25)
    face = 1 + 0.04 * np.sin(2 * np.pi * rho / 0.026 + p.rings) + 0.035 * p.brushed
    metal = p.albedo * (face * diffuse)[..., None] + 0.35 * spec[..., None]
    # The bore: thread crests as a helix of bright/dark rings, darkening towards the through hole.
    theta = np.arctan2(v, u)
    thread = 0.5 + 0.5 * np.sin(2 * np.pi * rho / 0.028 + theta)
    depth = np.clip((rho - 0.17) / (_NUT_BORE - 0.17), 0, 1)
    bore = (0.06 + (0.12 + 0.22 * thread) * depth)[..., None] * p.albedo
    bore_alpha = np.clip((_NUT_BORE - rho) / px + 0.5, 0, 1)[..., None]
    body = metal * (1 - bore_alpha) + bore * bore_alpha
    body = body * (1 - 0.5 * band[..., None])
    ground = p.background * _drop_shadow(shape, size, 0.5)[..., None]
    return np.clip(ground * (1 - cover[..., None]) + body * cover[..., None], 0, 1).astype(_F)


def _render_nut(rng: np.random.Generator, size: int) -> _Scene:
    params = _nut_params(rng, size)
    u, v, _ = _object_coords(size, params.pose)
    support = (_hex_distance(u, v) < _NUT_APOTHEM) & (np.hypot(u, v) > _NUT_SINK)
    return _Scene(image=_draw_nut(params), support=support, params=params, draw=_draw_nut)


# ---- screw ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ScrewParams:
    pose: _Pose
    light: np.ndarray
    albedo: float
    phase: float  # thread phase along the axis (the helix starts anywhere)
    background: np.ndarray
    stripped: tuple[float, float] | None = None  # axial interval with damaged threads
    tip_end: float = 0.84  # axial end of the tip (shorter: a broken tip)
    bend: float = 0.0  # bend of the tip (radians)


_SCREW_NECK, _SCREW_TAPER, _SCREW_PITCH = -0.50, 0.60, 0.052


def _tri(x: np.ndarray) -> np.ndarray:
    """Triangle wave, period 1, in [0, 1] with its crests at integers."""
    return np.abs(2 * (x - np.floor(x + 0.5)))


def _screw_params(rng: np.random.Generator, size: int) -> _ScrewParams:
    return _ScrewParams(
        pose=_jitter_pose(rng, size, rot=2.0),
        light=_jitter_light(rng),
        albedo=float(rng.uniform(0.60, 0.68)),
        phase=float(rng.uniform(0, 1)),
        background=_background(_GRASS, rng, size, "L", (0.74, 0.74, 0.74), 0.12, 2.0),
    )


def _draw_screw(p: _ScrewParams) -> np.ndarray:
    """A pan-head machine screw lying on its side: rounded head, plain neck, V threads, pointed tip."""
    size = p.background.shape[0]
    u, v, px = _object_coords(size, p.pose)
    if p.bend:  # rotate the part beyond the bend point about it
        pivot = 0.52
        c, s = math.cos(p.bend), math.sin(p.bend)
        ub, vb = pivot + c * (u - pivot) + s * v, -s * (u - pivot) + c * v
        beyond = ub > pivot
        u, v = np.where(beyond, ub, u), np.where(beyond, vb, v)
    # Head: a rounded box, seen from the side.
    dh = ((np.abs(u + 0.675) / 0.135) ** 6 + (np.abs(v) / 0.25) ** 6) ** (1 / 6)
    head = np.clip((1 - dh) * 0.135 / px + 0.5, 0, 1)
    # Shank: V-thread radius along the axis, slanted crests (helix), tapering tip.
    crest = _tri((u + 0.35 * v) / _SCREW_PITCH + p.phase)
    radius = 0.072 + 0.030 * crest
    if p.stripped is not None:
        a, b = p.stripped
        worn = np.clip(np.minimum(u - a, b - u) / 0.01, 0, 1)
        radius = radius * (1 - worn) + (0.078 + 0.006 * crest) * worn
    radius = np.where(u < _SCREW_NECK, 0.088, radius)
    radius = radius * np.clip((0.84 - u) / (0.84 - _SCREW_TAPER), 0, 1)
    shank = np.clip((radius - np.abs(v)) / px + 0.5, 0, 1)
    shank *= np.clip((u + 0.55) / px + 0.5, 0, 1) * np.clip((p.tip_end - u) / px + 0.5, 0, 1)
    cover = np.maximum(head, shank)
    # Shading: cylinders around the axis; thread flanks alternate lit / shadowed.
    across = np.clip(v / np.maximum(np.where(head > shank, 0.25, radius), 1e-3), -1, 1)
    height = np.sqrt(1 - across**2) * 10.0
    diffuse, spec = _shade(height, p.light, 0.30, 0.75, 18)
    flank = np.where(head > shank, 1.0, 0.78 + 0.22 * np.cos(2 * np.pi * ((u + 0.35 * v) / _SCREW_PITCH + p.phase)))
    if p.stripped is not None:
        flank = flank * (1 - worn) + (0.72 + 0.1 * np.cos(u * 900)) * worn
    flank = np.where(u < _SCREW_NECK, 1.0, flank)
    body = p.albedo * diffuse * flank + 0.45 * spec
    ground = p.background[..., 0] * _drop_shadow(cover, size, 0.35)
    image = ground * (1 - cover) + body * cover
    return np.clip(image, 0, 1).astype(_F)[..., None]


def _render_screw(rng: np.random.Generator, size: int) -> _Scene:
    params = _screw_params(rng, size)
    image = _draw_screw(params)
    plain = dataclasses.replace(params, background=np.zeros_like(params.background))
    support = _draw_screw(dataclasses.replace(plain, albedo=1.0))[..., 0] > 0.05
    return _Scene(image=image, support=support, params=params, draw=_draw_screw)


# --------------------------------------------------------------------------------------------------
# Defects: each returns (altered clean image, bool mask); the caller keeps the original outside it
# --------------------------------------------------------------------------------------------------

_Defect = Callable[[_Scene, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _blend(image: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return (image + (target - image) * alpha[..., None]).astype(_F)


def _scratch(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    tone: str = "light",
    strength: tuple[float, float] = (0.3, 0.8),
    width: tuple[float, float] = (0.8, 2.0),
    length: tuple[float, float] = (0.08, 0.35),
) -> tuple[np.ndarray, np.ndarray]:
    """A thin, gently curved line, lighter (bare material) or darker than its surroundings."""
    size = scene.image.shape[0]
    start = _pick_point(scene.support, rng, 4)
    path = _wander(rng, start, _log_uniform(rng, *length) * size, 30, 0.05)
    alpha = _stroke(size, [path], [rng.uniform(*width) * size / 256]) * scene.support
    target = 1.0 if tone == "light" or (tone == "either" and rng.random() < 0.5) else 0.05
    mask = alpha > 0.2
    altered = _blend(scene.image, np.full_like(scene.image, target), alpha * rng.uniform(*strength))
    return altered, mask


def _crack(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    depth: tuple[float, float] = (0.35, 0.8),
    width: tuple[float, float] = (1.0, 2.6),
    length: tuple[float, float] = (0.10, 0.45),
) -> tuple[np.ndarray, np.ndarray]:
    """A jagged dark fissure with a branch or two."""
    size = scene.image.shape[0]
    k = size / 256
    start = _pick_point(scene.support, rng, 6 * k)
    main = _wander(rng, start, _log_uniform(rng, *length) * size, 40, 0.06, jitter=0.6)
    w = rng.uniform(*width) * k
    paths, widths = [main], [w]
    for _ in range(rng.integers(0, 3)):
        at = main[rng.integers(5, len(main) - 5)]
        paths.append(_wander(rng, at, rng.uniform(0.2, 0.5) * np.hypot(*(main[-1] - main[0])), 20, 0.1, 0.6))
        widths.append(max(w * 0.6, 0.8 * k))
    alpha = _stroke(size, paths, widths) * scene.support
    mask = alpha > 0.2
    altered = scene.image * (1 - alpha * rng.uniform(*depth))[..., None]
    return altered.astype(_F), mask


def _hole(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    radius: tuple[float, float] = (0.012, 0.06),
    darkness: tuple[float, float] = (0.3, 0.75),
) -> tuple[np.ndarray, np.ndarray]:
    """A pit: a sharp-edged cavity, shadowed on the side facing the light, its far wall lit."""
    size = scene.image.shape[0]
    r = _log_uniform(rng, *radius) * size
    cy, cx = _pick_point(scene.support, rng, r + 2)
    alpha = _blob(size, (cy, cx), r, rng, irregularity=0.35, softness=1.0) * scene.support
    yy, xx = _grid(size)
    ramp = np.clip(((yy - cy) * -_LIGHT[1] + (xx - cx) * -_LIGHT[0]) / (r * 0.9), -1, 1)
    shade = (1 - rng.uniform(*darkness)) * (0.8 + 0.35 * ramp)
    altered = scene.image * (1 - alpha + alpha * shade)[..., None]
    return altered.astype(_F), alpha > 0.25


def _stain(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    tints: tuple[tuple[float, float, float], ...] = ((0.45, 0.38, 0.30),),
    strength: tuple[float, float] = (0.25, 0.8),
    radius: tuple[float, float] = (0.02, 0.12),
    fill: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A blotchy soft-edged stain. With fill=0 it multiplies the surface by a tint (oil, rust, moss:
    the texture shows through); with fill=1 the tint is an opaque colour covering it (paint, cement)."""
    size = scene.image.shape[0]
    r = _log_uniform(rng, *radius) * size
    center = _pick_point(scene.support, rng, r * 0.8)
    shape = _blob(size, center, r, rng, irregularity=0.45, softness=max(1.0, 0.25 * r), aspect=rng.uniform(0.6, 1.0))
    blotch = 0.65 + 0.35 * _smooth_noise(size, rng, max(1.0, r / 4))
    alpha = shape * blotch * rng.uniform(*strength) * scene.support
    alpha = np.where(alpha > 0.04, alpha, 0).astype(_F)
    tint = _tone(tints[rng.integers(len(tints))], scene.image.shape[2])
    target = np.clip((1 - fill) * scene.image * tint + fill * tint, 0, 1)
    return _blend(scene.image, target, alpha), alpha > 0


def _spots(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    colors: tuple[tuple[float, float, float], ...] = ((0.12, 0.10, 0.08),),
    radius: tuple[float, float] = (0.006, 0.025),
    opacity: tuple[float, float] = (0.45, 0.95),
) -> tuple[np.ndarray, np.ndarray]:
    """Contamination: a small cluster of 1-4 specks of dirt or foreign material."""
    size = scene.image.shape[0]
    center = np.array(_pick_point(scene.support, rng, 6))
    color = _tone(colors[rng.integers(len(colors))], scene.image.shape[2])
    alpha = np.zeros((size, size), _F)
    for _ in range(rng.integers(1, 5)):
        r = _log_uniform(rng, *radius) * size
        at = center + rng.normal(0, 2.5 * r + 2, 2)
        alpha = np.maximum(alpha, _blob(size, tuple(at), r, rng, irregularity=0.5, softness=0.8))
    alpha = alpha * rng.uniform(*opacity) * scene.support
    mask = alpha > 0.05
    return _blend(scene.image, np.broadcast_to(color, scene.image.shape), alpha), mask


def _recolor(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    gains: tuple[tuple[float, float, float], ...] = ((1.15, 0.95, 0.8),),
    contrast: tuple[float, float] = (0.6, 1.0),
    strength: tuple[float, float] = (0.35, 1.0),
    radius: tuple[float, float] = (0.03, 0.14),
) -> tuple[np.ndarray, np.ndarray]:
    """A discoloured region: a soft blob where colour balance and contrast drift (heat tint, wrong
    dye, dried or bleached patch)."""
    size = scene.image.shape[0]
    r = _log_uniform(rng, *radius) * size
    center = _pick_point(scene.support, rng, r * 0.7)
    alpha = _blob(size, center, r, rng, irregularity=0.4, softness=max(1.0, 0.3 * r)) * scene.support
    alpha = np.where(alpha > 0.05, alpha, 0).astype(_F) * rng.uniform(*strength)
    gain = _tone(gains[rng.integers(len(gains))], scene.image.shape[2])
    mean = scene.image.mean((0, 1))
    changed = np.clip((mean + (scene.image - mean) * rng.uniform(*contrast)) * gain, 0, 1)
    return _blend(scene.image, changed, alpha), alpha > 0


def _foreign(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    source: _TextureSource,
    radius: tuple[float, float] = (0.03, 0.14),
    harmonize: tuple[float, float] = (0.3, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A patch of another material (cut from another photo) in an irregular outline; its brightness
    and contrast partly matched to the surroundings so it does not always stand out."""
    size, channels = scene.image.shape[0], scene.image.shape[2]
    r = _log_uniform(rng, *radius) * size
    center = _pick_point(scene.support, rng, r * 0.7)
    alpha = _blob(size, center, r, rng, irregularity=0.4, softness=1.2) * scene.support
    patch = _crop(source, rng, size, "RGB" if channels == 3 else "L")
    inside = alpha > 0.5
    if inside.sum() < 4:
        inside = alpha > 0
    local_mean, local_std = scene.image[inside].mean(0), scene.image[inside].std(0) + 1e-3
    p_mean, p_std = patch[inside].mean(0), patch[inside].std(0) + 1e-3
    matched = (patch - p_mean) / p_std * local_std + local_mean
    m = rng.uniform(*harmonize)
    patch = np.clip(m * matched + (1 - m) * patch, 0, 1)
    return _blend(scene.image, patch, alpha), alpha > 0.1


def _fibre(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    colors: tuple[tuple[float, float, float], ...] = ((0.9, 0.9, 0.88),),
    width: tuple[float, float] = (0.8, 1.8),
    length: tuple[float, float] = (0.15, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """A loose thread or hair lying on the surface, with its faint shadow."""
    size = scene.image.shape[0]
    k = size / 256
    path = _wander(rng, _pick_point(scene.support, rng, 8), _log_uniform(rng, *length) * size, 50, 0.12)
    w = rng.uniform(*width) * k
    alpha = _stroke(size, [path], [w]) * scene.support
    shadow = np.clip(_stroke(size, [path + 1.5 * k], [w + k]) - alpha, 0, 1) * scene.support
    color = _tone(colors[rng.integers(len(colors))], scene.image.shape[2])
    altered = scene.image * (1 - 0.35 * shadow)[..., None]
    altered = _blend(altered, np.broadcast_to(color, scene.image.shape), alpha * rng.uniform(0.6, 0.95))
    return altered.astype(_F), (alpha > 0.2) | (shadow > 0.2)


def _smudge(
    scene: _Scene,
    rng: np.random.Generator,
    *,
    radius: tuple[float, float] = (0.04, 0.13),
    sigma: tuple[float, float] = (1.5, 4.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A region where the surface structure is smeared out (glue, wet residue, a rubbed patch)."""
    size = scene.image.shape[0]
    r = _log_uniform(rng, *radius) * size
    center = _pick_point(scene.support, rng, r * 0.7)
    alpha = _blob(size, center, r, rng, irregularity=0.4, softness=max(1.0, 0.2 * r)) * scene.support
    alpha = np.where(alpha > 0.08, alpha, 0).astype(_F)
    s = rng.uniform(*sigma) * size / 256
    blurred = ndimage.gaussian_filter(scene.image, (s, s, 0)) * rng.uniform(0.92, 1.08)
    return _blend(scene.image, np.clip(blurred, 0, 1), alpha), alpha > 0


# ---- geometric defects of objects: redraw with changed parameters, mask = what changed ---------


def _changed(before: np.ndarray, after: np.ndarray, size: int) -> np.ndarray:
    """Pixels a redraw visibly altered, closed and hole-filled into solid regions. Changes below
    4/255 (the faint tail of a moved drop shadow) are left out, and so not applied."""
    mask = np.abs(after - before).max(axis=2) > 4 / 255
    mask = ndimage.binary_closing(mask, iterations=max(1, round(size / 256)))
    return ndimage.binary_fill_holes(mask)


def _chip(
    scene: _Scene, rng: np.random.Generator, *, radius: tuple[float, float] = (0.025, 0.09)
) -> tuple[np.ndarray, np.ndarray]:
    """A piece broken off the outline: the background shows through, a band of fracture remains."""
    size = scene.image.shape[0]
    edge = scene.support & ~ndimage.binary_erosion(scene.support, iterations=2)
    center = _pick_point(edge, rng, 0)
    cut = _blob(size, center, _log_uniform(rng, *radius) * size, rng, irregularity=0.5, softness=1.0)
    altered = scene.draw(dataclasses.replace(scene.params, cut=cut))
    return altered, _changed(scene.image, altered, size)


def _faulty_imprint(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The printed mark partly missing, or printed twice slightly offset."""
    size = scene.image.shape[0]
    if rng.random() < 0.5:
        u, v, _ = _object_coords(size, scene.params.pose)
        where = _imprint(u, v) > 0.5
        center = _pick_point(where, rng, 0)
        erase = _blob(size, center, rng.uniform(0.02, 0.07) * size, rng, softness=1.5)
        params = dataclasses.replace(scene.params, ink_erase=erase)
    else:
        du, dv = rng.uniform(0.015, 0.05) * rng.choice([-1, 1]), rng.uniform(0.0, 0.03) * rng.choice([-1, 1])
        params = dataclasses.replace(scene.params, ink_shift=(du, dv, rng.uniform(0.35, 0.9)))
    altered = scene.draw(params)
    return altered, _changed(scene.image, altered, size)


def _stripped_thread(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stretch of thread worn flat (a few pitches long)."""
    start = rng.uniform(-0.42, 0.45)
    span = rng.uniform(1.5, 5.0) * _SCREW_PITCH
    altered = scene.draw(dataclasses.replace(scene.params, stripped=(start, start + span)))
    return altered, _changed(scene.image, altered, scene.image.shape[0])


def _damaged_tip(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The tip broken off (shorter) or bent."""
    if rng.random() < 0.5:
        params = dataclasses.replace(scene.params, tip_end=rng.uniform(0.66, 0.79))
    else:
        params = dataclasses.replace(scene.params, bend=math.radians(rng.uniform(6, 20) * rng.choice([-1, 1])))
    altered = scene.draw(params)
    return altered, _changed(scene.image, altered, scene.image.shape[0])


def _head_region(scene: _Scene) -> np.ndarray:
    u, _, _ = _object_coords(scene.image.shape[0], scene.params.pose)
    return scene.support & (u < -0.56)


def _on_head(defect: _Defect) -> _Defect:
    """Restrict a surface defect to the screw's head."""

    def run(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return defect(dataclasses.replace(scene, support=_head_region(scene)), rng)

    return run


# --------------------------------------------------------------------------------------------------
# The categories
# --------------------------------------------------------------------------------------------------

_BRICK = _TextureSource((_Photo("skimage:brick"),), side=(200, 250), max_rot=2.0, flip=True)
# Texture categories are filmed like MVTec's: a fixed camera over a fixed light, so a sample differs from
# the next only by a small pose / distance jitter. (Up to version 1.0 the grass and gravel crops were
# rotated by up to 180 degrees and scaled by +-15 %: that turned the light direction and the blades'
# direction around from image to image, a nuisance no inspection line shows, and it roughly doubled
# the spread of the normal patches, which put PatchCore at chance level on both categories.)
_GRASS_TEXTURE = _TextureSource((_Photo("skimage:grass"),), side=(220, 250), max_rot=3.0, flip=True)
_GRAVEL_TEXTURE = _TextureSource((_Photo("skimage:gravel"),), side=(220, 250), max_rot=3.0, flip=True)
# The same photos as object backgrounds (a worn table under a part) may lie in any orientation.
_GRASS = _TextureSource((_Photo("skimage:grass"),), side=(200, 270), max_rot=180.0, flip=True)
_GRAVEL = _TextureSource((_Photo("skimage:gravel"),), side=(200, 270), max_rot=180.0, flip=True)
_WALL = _TextureSource(
    (_Photo("mvtbdata:walls-l.png", (810, 1075, 1555, 1400)), _Photo("mvtbdata:walls-r.png", (410, 1150, 1060, 1490))),
    side=(240, 290),
    max_rot=2.0,
    flip=True,
)
_PAVING = _TextureSource(
    (_Photo("mvtbdata:walls-l.png", (0, 1940, 3264, 2448)), _Photo("mvtbdata:walls-r.png", (0, 1960, 2740, 2448))),
    side=(400, 480),
    max_rot=4.0,
    flip=True,
)
_ROOF = _TextureSource((_Photo("mvtbdata:roof.png", (330, 1060, 2009, 1660)),), side=(300, 360), max_rot=2.0, flip=True)
_ROCKS = _TextureSource(
    (_Photo("mvtbdata:rocks2-l.png"), _Photo("mvtbdata:rocks2-r.png")), side=(150, 300), max_rot=180.0, flip=True
)
_ROAD = _TextureSource((_Photo("mvtbdata:road.png", (0, 520, 1280, 851)),), side=(150, 300), max_rot=10.0, flip=True)


@dataclass(frozen=True)
class _Spec:
    info: CategoryInfo
    render: Callable[[np.random.Generator, int], _Scene]
    defects: Mapping[str, _Defect]
    noise: float  # sensor noise standard deviation


def _texture(
    description: str, source: _TextureSource, mode: str, sources: str, defects: dict[str, _Defect]
) -> _Spec:
    info = CategoryInfo("texture", description, mode, tuple(defects), sources)
    return _Spec(info, partial(_render_texture, source=source, mode=mode), MappingProxyType(defects), 0.008)


def _object(
    description: str, render: Callable[[np.random.Generator, int], _Scene], mode: str, sources: str,
    defects: dict[str, _Defect],
) -> _Spec:
    info = CategoryInfo("object", description, mode, tuple(defects), sources)
    return _Spec(info, render, MappingProxyType(defects), 0.01)


_RUST, _OIL, _SOOT = (0.75, 0.5, 0.32), (0.35, 0.33, 0.30), (0.2, 0.2, 0.2)
_PAINTS = ((0.92, 0.92, 0.88), (0.30, 0.40, 0.65), (0.85, 0.75, 0.30), (0.25, 0.25, 0.25))
_MOSS = ((0.75, 1.05, 0.55), (0.8, 0.95, 0.6))

_SPECS: dict[str, _Spec] = {
    "brick": _texture(
        "grey brick wall, grey scale (photo crops)", _BRICK, "L", _SKIMAGE.format("brick") + "; foreign patches from "
        + _SKIMAGE.format("gravel"),
        {
            "crack": partial(_crack, depth=(0.3, 0.75)),
            "hole": partial(_hole, radius=(0.01, 0.05)),
            "stain": partial(_stain, tints=(_OIL, _SOOT, (1.4, 1.4, 1.4)), strength=(0.2, 0.7)),
            "foreign": partial(_foreign, source=_GRAVEL, radius=(0.03, 0.1)),
        },
    ),
    "grass": _texture(
        "lawn, grey scale (photo crops)", _GRASS_TEXTURE, "L", _SKIMAGE.format("grass") + "; foreign patches from "
        + _MVTB.format("road.png"),
        {
            "foreign": partial(_foreign, source=_ROAD, radius=(0.05, 0.14), harmonize=(0.0, 0.5)),
            "thread": partial(_fibre, colors=((0.97, 0.97, 0.97), (0.08, 0.08, 0.08)), width=(1.2, 2.6)),
            "discolor": partial(_recolor, gains=((1.45, 1.45, 1.45), (0.55, 0.55, 0.55)), contrast=(0.3, 0.7),
                                strength=(0.6, 1.0), radius=(0.05, 0.14)),
        },
    ),
    "gravel": _texture(
        "gravel, grey scale (photo crops)", _GRAVEL_TEXTURE, "L", _SKIMAGE.format("gravel") + "; foreign patches from "
        + _MVTB.format("rocks2-l.png / rocks2-r.png"),
        {
            "foreign": partial(_foreign, source=_ROCKS, radius=(0.04, 0.13)),
            "oil": partial(_stain, tints=(_OIL, _SOOT), strength=(0.35, 0.85)),
            "cement": partial(_stain, tints=((0.85, 0.85, 0.85), (0.7, 0.7, 0.7)), strength=(0.6, 1.0), fill=0.85,
                              radius=(0.03, 0.12)),
            "glue": partial(_smudge, radius=(0.04, 0.12)),
        },
    ),
    "wall": _texture(
        "red brick wall (photo crops)", _WALL, "RGB", _MVTB.format("walls-l.png / walls-r.png")
        + "; foreign patches from " + _MVTB.format("rocks2-l.png / rocks2-r.png"),
        {
            "crack": partial(_crack),
            "paint": partial(_stain, tints=_PAINTS, strength=(0.25, 0.85), fill=0.8),
            "hole": partial(_hole, radius=(0.01, 0.05)),
            "foreign": partial(_foreign, source=_ROCKS, radius=(0.03, 0.1)),
        },
    ),
    "paving": _texture(
        "herringbone block paving (photo crops)", _PAVING, "RGB", _MVTB.format("walls-l.png / walls-r.png")
        + "; foreign patches from " + _MVTB.format("road.png"),
        {
            "crack": partial(_crack, depth=(0.35, 0.7)),
            "oil": partial(_stain, tints=((0.3, 0.28, 0.26), (0.22, 0.22, 0.22), _RUST), strength=(0.6, 1.0),
                           radius=(0.04, 0.14)),
            "foreign": partial(_foreign, source=_ROAD, radius=(0.04, 0.13)),
            "discolor": partial(_recolor, gains=_MOSS + ((1.2, 1.15, 1.1),), contrast=(0.5, 0.9)),
        },
    ),
    "roof": _texture(
        "slate roof (photo crops)", _ROOF, "RGB", _MVTB.format("roof.png"),
        {
            "crack": partial(_crack, depth=(0.3, 0.7)),
            "hole": partial(_hole, radius=(0.012, 0.05)),
            "moss": partial(_stain, tints=((0.7, 0.85, 0.45), (0.55, 0.6, 0.35)), strength=(0.3, 0.8)),
            "scratch": partial(_scratch, tone="light", strength=(0.25, 0.7)),
        },
    ),
    "pill": _object(
        "white speckled tablet with a printed mark (drawn)", _render_pill, "RGB",
        "drawn procedurally; background from " + _SKIMAGE.format("gravel"),
        {
            "crack": partial(_crack, depth=(0.25, 0.6), width=(0.8, 1.8), length=(0.06, 0.3)),
            "contamination": partial(_spots, colors=((0.15, 0.12, 0.1), (0.35, 0.25, 0.2), (0.2, 0.3, 0.5))),
            "color": partial(_recolor, gains=((1.0, 0.82, 0.78), (1.02, 0.98, 0.7)), contrast=(0.9, 1.0),
                             strength=(0.5, 1.0), radius=(0.04, 0.12)),
            "faulty_imprint": _faulty_imprint,
            "chip": partial(_chip, radius=(0.025, 0.08)),
        },
    ),
    "nut": _object(
        "hexagonal steel nut, top view (drawn)", _render_nut, "RGB",
        "drawn procedurally; background from " + _MVTB.format("roof.png"),
        {
            "scratch": partial(_scratch, tone="either", strength=(0.25, 0.7), length=(0.06, 0.3)),
            "chip": partial(_chip, radius=(0.03, 0.1)),
            "color": partial(_recolor, gains=((0.8, 0.9, 1.3), (1.25, 1.05, 0.7)), contrast=(0.8, 1.0),
                             strength=(0.5, 1.0), radius=(0.04, 0.14)),
            "contamination": partial(_spots, colors=(_OIL, _RUST, (0.1, 0.1, 0.1)), radius=(0.006, 0.03)),
        },
    ),
    "screw": _object(
        "pan-head machine screw, side view, grey scale (drawn)", _render_screw, "L",
        "drawn procedurally; background from " + _SKIMAGE.format("grass"),
        {
            "scratch_head": _on_head(partial(_scratch, tone="either", strength=(0.3, 0.8), length=(0.03, 0.12))),
            "thread_damage": _stripped_thread,
            "tip": _damaged_tip,
            "contamination": partial(_spots, colors=((0.1, 0.1, 0.1), (0.35, 0.35, 0.35)), radius=(0.006, 0.02)),
        },
    ),
}

CATEGORIES = MappingProxyType({name: spec.info for name, spec in _SPECS.items()})


def _spec(category: str) -> _Spec:
    try:
        return _SPECS[category]
    except KeyError:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(_SPECS)}") from None


# --------------------------------------------------------------------------------------------------
# Making and writing samples
# --------------------------------------------------------------------------------------------------


def _to_uint8(image: np.ndarray) -> np.ndarray:
    out = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out


def make_sample(category: str, kind: str, index: int, seed: int = 0, size: int = 256) -> Sample:
    """One image of `category`: kind 'train' (train/good), 'good' (test/good) or a defect type.

    Pure function of its arguments: this is what `generate` writes, and what tests inspect."""
    spec = _spec(category)
    if kind not in ("train", "good") and kind not in spec.defects:
        raise ValueError(f"unknown kind {kind!r} for {category!r}; use 'train', 'good' or one of "
                         f"{', '.join(spec.defects)}")
    split = {"train": "train/good", "good": "test/good"}.get(kind, f"test/{kind}")
    rng = _rng(seed, category, split, index)
    scene = spec.render(rng, size)
    noise = rng.normal(0, spec.noise, scene.image.shape).astype(_F)
    clean = _to_uint8(scene.image + noise)
    if kind in ("train", "good"):
        return Sample(image=clean, mask=None, clean=clean)
    for _ in range(8):  # a defect can come out empty (e.g. clipped by the outline): draw another
        altered, mask = spec.defects[kind](scene, rng)
        if mask.sum() >= 4:
            break
    else:
        raise RuntimeError(f"could not place a {kind!r} defect on {category!r} sample {index}")
    image = np.where(mask[..., None], altered, scene.image) + noise
    return Sample(image=_to_uint8(image), mask=(mask * 255).astype(np.uint8), clean=clean)


def _save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG with fixed options and no metadata, so the bytes depend only on the pixels."""
    Image.fromarray(array).save(path, format="PNG", compress_level=6)


def _write_category(
    root: Path, category: str, seed: int, counts: dict[str, int], size: int, tick: Callable[[], None]
) -> None:
    """Write one category into a temporary sibling folder, then move it into place."""
    final = root / category
    tmp = root / f".{category}.tmp-{os.getpid()}"
    for stale in [*root.glob(f".{category}.tmp-*"), *root.glob(f".{category}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
    jobs = [("train", "train/good", counts["train"]), ("good", "test/good", counts["good"])]
    jobs += [(d, f"test/{d}", n) for d, n in counts.items() if d not in ("train", "good")]
    try:
        for kind, folder, n in jobs:
            (tmp / folder).mkdir(parents=True)
            if kind not in ("train", "good"):
                (tmp / "ground_truth" / kind).mkdir(parents=True)
            for i in range(n):
                sample = make_sample(category, kind, i, seed, size)
                _save_png(sample.image, tmp / folder / f"{i:03d}.png")
                if sample.mask is not None:
                    _save_png(sample.mask, tmp / "ground_truth" / kind / f"{i:03d}_mask.png")
                tick()
        if final.exists():
            old = root / f".{category}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _readme(seed: int, categories: Sequence[str], counts: Mapping[str, Mapping[str, int]], size: int) -> str:
    lines = [
        "# adlib embedded anomaly-detection benchmark",
        "",
        f"Generated by `adlib.synth` version {GENERATOR_VERSION} with seed {seed}, images {size}x{size},",
        "in the MVTec AD layout (`<category>/train/good`, `test/good`, `test/<defect>`,",
        "`ground_truth/<defect>/NNN_mask.png` with values 0/255). The same seed gives the same bytes.",
        f"Regenerate: `python -m adlib.synth --out <dir> --seed {seed} --size {size} --categories "
        + " ".join(categories) + "`.",
        "This file describes the categories written by the last run into this folder.",
        "",
        "| category | kind | mode | train | test good | defect types (test images) | sources and licences |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in categories:
        info, c = CATEGORIES[name], counts[name]
        defects = ", ".join(f"{d} ({c[d]})" for d in info.defect_types)
        lines.append(
            f"| {name} | {info.kind}: {info.description} | {info.mode} | {c['train']} | {c['good']} | {defects} "
            f"| {info.sources} |"
        )
    lines += [
        "",
        "Licences: scikit-image's bundled `brick`, `grass` and `gravel` images are CC0; the photographs of",
        "the `mvtb-data` package (Machine Vision Toolbox data, P. Corke) are MIT-licensed. Objects are drawn",
        "procedurally by `adlib.synth`. Defects are synthetic; masks cover exactly the altered pixels.",
        "",
    ]
    return "\n".join(lines)


def _check_args(categories: Sequence[str] | None, n_train: int, n_test_good: int, n_test_defect: int, size: int,
                seed: int) -> list[str]:
    if isinstance(categories, str):
        raise TypeError(f"categories must be a sequence of names, not the string {categories!r}")
    names = list(CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    if not names:
        raise ValueError("categories is empty; pass None for all of: " + ", ".join(CATEGORIES))
    for name in names:
        _spec(name)
    for label, value in (("n_train", n_train), ("n_test_good", n_test_good), ("n_test_defect", n_test_defect)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if value > 1000:
            raise ValueError(f"{label} must be at most 1000 (file names have three digits), got {value!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 64:
        raise ValueError(f"size must be an integer >= 64 pixels, got {size!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name in names:
        defect_counts(name, n_test_defect)
    return names


def generate(
    out: Path,
    categories: Sequence[str] | None = None,
    seed: int = 0,
    n_train: int = 80,
    n_test_good: int = 20,
    n_test_defect: int = 40,
    size: int = 256,
    progress: bool = True,
) -> Path:
    """Write the benchmark (all categories, or the named ones) under `out` in the MVTec AD layout and
    return `out`. Existing category folders are replaced; others in `out` are left alone.

    n_test_defect is shared out over a category's defect types (see `defect_counts`)."""
    names = _check_args(categories, n_train, n_test_good, n_test_defect, size, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {
        name: {"train": n_train, "good": n_test_good, **defect_counts(name, n_test_defect)} for name in names
    }
    total = sum(sum(c.values()) for c in counts.values())
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="synthetic benchmark", unit="img", disable=not progress) as bar:
        for name in names:
            bar.set_postfix_str(name)
            _write_category(out, name, int(seed), counts[name], int(size), lambda: bar.update(1))
    atomic_write_bytes(out / "README.md", _readme(int(seed), names, counts, int(size)).encode("utf-8"))
    return out


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        f"  {name:<8} {info.kind:<8} {', '.join(info.defect_types)}" for name, info in CATEGORIES.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m adlib.synth",
        description="Generate adlib's embedded MVTec-AD-style anomaly-detection benchmark, offline and "
        "deterministically, from photos bundled with scikit-image and mvtb-data plus drawn objects.",
        epilog="categories (kind, defect types):\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"),
                        help="output folder (default: data/synthetic)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    parser.add_argument("--categories", nargs="+", metavar="NAME", choices=list(CATEGORIES), default=None,
                        help="categories to generate (default: all)")
    parser.add_argument("--n-train", type=int, default=80, help="train/good images per category (default: 80)")
    parser.add_argument("--n-test-good", type=int, default=20, help="test/good images per category (default: 20)")
    parser.add_argument("--n-test-defect", type=int, default=40,
                        help="defective test images per category, shared over its defect types (default: 40)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    parser.add_argument("--overview", type=Path, default=None, metavar="PNG",
                        help="also write a contact sheet of the generated categories to this PNG")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate, then optionally draw the contact sheet."""
    args = _parser().parse_args(argv)
    try:
        out = generate(args.out, args.categories, seed=args.seed, n_train=args.n_train,
                       n_test_good=args.n_test_good, n_test_defect=args.n_test_defect, size=args.size,
                       progress=not args.no_progress)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    if args.overview is not None:
        from adlib.plotting import benchmark_overview

        names = args.categories or list(CATEGORIES)
        print(f"wrote {benchmark_overview(out, args.overview, categories=names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
