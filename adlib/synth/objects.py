"""The drawn object categories: a pill, a nut and a screw, aligned (same pose up to a small jitter),
shaded with Lambert + Phong and laid on a low-contrast photo background. Each object is a frozen
parameter set and a pure drawing function, so a geometric defect is a redraw with a changed
parameter."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from adlib.synth.drawing import F, drop_shadow, grid, jitter_light, lambert_phong
from adlib.synth.scenes import GRASS, GRAVEL, ROOF, Scene, photo_background


@dataclass(frozen=True)
class _Pose:
    """Where an aligned object lies: centre (pixels), rotation (radians), scale."""

    cy: float
    cx: float
    angle: float
    scale: float


def _jitter_pose(rng: np.random.Generator, size: int, shift: float = 0.012, rot: float = 2.5) -> _Pose:
    """The centred pose, jittered: shift (fraction of the side) and rotation (degrees) are std devs."""
    return _Pose(
        cy=size / 2 + rng.normal(0, shift * size),
        cx=size / 2 + rng.normal(0, shift * size),
        angle=math.radians(rng.normal(0, rot)),
        scale=rng.uniform(0.975, 1.025),
    )


def object_coords(size: int, pose: _Pose) -> tuple[np.ndarray, np.ndarray, float]:
    """Canonical object coordinates (u, v) of every pixel (the object's frame, half-size = 1) and the
    size of one pixel in those units."""
    yy, xx = grid(size)
    half = size / 2
    x, y = (xx - pose.cx) / half, (yy - pose.cy) / half
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    u = (c * x + s * y) / pose.scale
    v = (-s * x + c * y) / pose.scale
    return u.astype(F), v.astype(F), 1 / (half * pose.scale)


def _fracture(cut: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For a chip (alpha of removed material): the remaining-material factor and a dark band of
    broken surface along the new edge."""
    if cut is None:
        return np.ones((size, size), F), np.zeros((size, size), F)
    dist = ndimage.distance_transform_edt(cut < 0.5).astype(F)
    band = np.clip(1 - dist / (3.0 * size / 256), 0, 1) * (cut < 0.5)
    return (1 - cut).astype(F), band.astype(F)


# ---- pill -----------------------------------------------------------------------------------------


def _lay_on(
    background: np.ndarray, shape: np.ndarray, cover: np.ndarray, body: np.ndarray, shadow: float
) -> np.ndarray:
    """The object's `body` (HxWxC) composited with alpha `cover` over `background`, which is darkened
    by the drop shadow of `shape` (`shadow` = its strength)."""
    ground = background * drop_shadow(shape, background.shape[0], shadow)[..., None]
    return np.clip(ground * (1 - cover[..., None]) + body * cover[..., None], 0, 1).astype(F)


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
    return np.asarray(canvas, dtype=F) / 255


def imprint(u: np.ndarray, v: np.ndarray, du: float = 0.0, dv: float = 0.0) -> np.ndarray:
    """The imprint's ink alpha at canonical coordinates (mark centred at (0.02, 0), 0.34 wide)."""
    bitmap = _imprint_bitmap()
    width, height = 0.38, 0.38 * bitmap.shape[0] / bitmap.shape[1]
    cols = (u - du - 0.02 + width / 2) / width * (bitmap.shape[1] - 1)
    rows = (v - dv + height / 2) / height * (bitmap.shape[0] - 1)
    return ndimage.map_coordinates(bitmap, [rows, cols], order=1, cval=0.0).astype(F)


def _pill_params(rng: np.random.Generator, size: int) -> _PillParams:
    pose = _jitter_pose(rng, size)
    count = rng.poisson(210)
    half = size / 2
    ys = pose.cy + rng.uniform(-1, 1, count) * (_PILL_RADIUS + 0.03) * half
    xs = pose.cx + rng.uniform(-1, 1, count) * (_PILL_RADIUS + _PILL_HALF + 0.03) * half
    canvas = np.zeros((size, size), F)
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    np.add.at(canvas, (ys[inside].astype(int), xs[inside].astype(int)), rng.uniform(0.4, 1.0, inside.sum()).astype(F))
    sigma = 0.7 * size / 256
    specks = np.clip(ndimage.gaussian_filter(canvas, sigma) * (2 * np.pi * sigma**2) * 1.3, 0, 0.9)
    return _PillParams(
        pose=pose,
        light=jitter_light(rng),
        albedo=(np.array([0.93, 0.90, 0.83], F) + rng.normal(0, 0.012, 3).astype(F)),
        specks=specks.astype(F),
        background=photo_background(GRAVEL, rng, size, "RGB", (0.20, 0.21, 0.23), 0.35, 0.8),
    )


def _draw_pill(p: _PillParams) -> np.ndarray:
    """A white oblong tablet with red speckles and a printed mark, lit from the upper left."""
    size = p.background.shape[0]
    u, v, px = object_coords(size, p.pose)
    radius = _PILL_RADIUS
    d = np.hypot(np.maximum(np.abs(u) - _PILL_HALF, 0), v)
    remain, band = _fracture(p.cut, size)
    shape = np.clip((radius - d) / px + 0.5, 0, 1)
    cover = shape * remain
    t = np.clip(d / radius, 0, 1)
    height = 0.32 * radius / px * (1 - t**4) ** 0.25 * remain - 2.0 * band
    diffuse, spec = lambert_phong(height, p.light, 0.38, 0.72, 40)
    ink = imprint(u, v)
    if p.ink_shift is not None:
        ink = np.maximum(ink, p.ink_shift[2] * imprint(u, v, p.ink_shift[0], p.ink_shift[1]))
    if p.ink_erase is not None:
        ink = ink * (1 - p.ink_erase)
    ink *= 0.85
    albedo = p.albedo * (1 - p.specks[..., None]) + np.array([0.70, 0.28, 0.24], F) * p.specks[..., None]
    albedo = albedo * (1 - ink[..., None]) + np.array([0.42, 0.14, 0.12], F) * ink[..., None]
    albedo = albedo * (1 - 0.45 * band[..., None])
    body = albedo * diffuse[..., None] + 0.22 * spec[..., None]
    return _lay_on(p.background, shape, cover, body, 0.45)


def render_pill(rng: np.random.Generator, size: int) -> Scene:
    """A pill scene; defects may go anywhere on the tablet."""
    params = _pill_params(rng, size)
    image = _draw_pill(params)
    u, v, _ = object_coords(size, params.pose)
    support = np.hypot(np.maximum(np.abs(u) - _PILL_HALF, 0), v) < _PILL_RADIUS
    return Scene(image=image, support=support, params=params, draw=_draw_pill)


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
    noise = rng.standard_normal((size, size)).astype(F)
    angle = rng.uniform(0, 180)
    brushed = ndimage.rotate(ndimage.gaussian_filter(noise, (0.6 * k, 6 * k)), angle, reshape=False, mode="wrap")
    brushed = (brushed / (brushed.std() + 1e-6)).astype(F)
    return _NutParams(
        pose=_jitter_pose(rng, size, rot=4.0),
        light=jitter_light(rng),
        albedo=np.array([0.66, 0.67, 0.70], F) * rng.uniform(0.95, 1.05) + rng.normal(0, 0.008, 3).astype(F),
        rings=rng.uniform(0, 2 * np.pi),
        brushed=brushed,
        background=photo_background(ROOF, rng, size, "RGB", (0.13, 0.15, 0.20), 0.3, 1.0),
    )


def _draw_nut(p: _NutParams) -> np.ndarray:
    """A hexagonal steel nut seen from above: turned face, chamfer ring, countersink, threaded bore."""
    size = p.background.shape[0]
    u, v, px = object_coords(size, p.pose)
    rho = np.hypot(u, v)
    remain, band = _fracture(p.cut, size)
    shape = np.clip((_NUT_APOTHEM - _hex_distance(u, v)) / px + 0.5, 0, 1)
    cover = shape * remain
    chamfer = np.clip(rho - _NUT_CHAMFER, 0, None) * 0.9
    sink = np.clip(_NUT_SINK - rho, 0, _NUT_SINK - _NUT_BORE) * 1.1
    height = -(chamfer + sink) / px - 2.5 * band
    diffuse, spec = lambert_phong(height, p.light, 0.30, 0.75, 25)
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
    return _lay_on(p.background, shape, cover, body, 0.5)


def render_nut(rng: np.random.Generator, size: int) -> Scene:
    """A nut scene; defects may go on its face and flanks, not into the bore."""
    params = _nut_params(rng, size)
    u, v, _ = object_coords(size, params.pose)
    support = (_hex_distance(u, v) < _NUT_APOTHEM) & (np.hypot(u, v) > _NUT_SINK)
    return Scene(image=_draw_nut(params), support=support, params=params, draw=_draw_nut)


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


_SCREW_NECK, _SCREW_TAPER, SCREW_PITCH = -0.50, 0.60, 0.052


def _tri(x: np.ndarray) -> np.ndarray:
    """Triangle wave, period 1, in [0, 1] with its crests at integers."""
    return np.abs(2 * (x - np.floor(x + 0.5)))


def _screw_params(rng: np.random.Generator, size: int) -> _ScrewParams:
    return _ScrewParams(
        pose=_jitter_pose(rng, size, rot=2.0),
        light=jitter_light(rng),
        albedo=float(rng.uniform(0.60, 0.68)),
        phase=float(rng.uniform(0, 1)),
        background=photo_background(GRASS, rng, size, "L", (0.74, 0.74, 0.74), 0.12, 2.0),
    )


def _draw_screw(p: _ScrewParams) -> np.ndarray:
    """A pan-head machine screw lying on its side: rounded head, plain neck, V threads, pointed tip."""
    size = p.background.shape[0]
    u, v, px = object_coords(size, p.pose)
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
    crest = _tri((u + 0.35 * v) / SCREW_PITCH + p.phase)
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
    diffuse, spec = lambert_phong(height, p.light, 0.30, 0.75, 18)
    flank = np.where(head > shank, 1.0, 0.78 + 0.22 * np.cos(2 * np.pi * ((u + 0.35 * v) / SCREW_PITCH + p.phase)))
    if p.stripped is not None:
        flank = flank * (1 - worn) + (0.72 + 0.1 * np.cos(u * 900)) * worn
    flank = np.where(u < _SCREW_NECK, 1.0, flank)
    body = p.albedo * diffuse * flank + 0.45 * spec
    return _lay_on(p.background, cover, cover, body[..., None], 0.35)


def render_screw(rng: np.random.Generator, size: int) -> Scene:
    """A screw scene; defects may go on its visible outline (drawn without background)."""
    params = _screw_params(rng, size)
    image = _draw_screw(params)
    plain = dataclasses.replace(params, background=np.zeros_like(params.background))
    support = _draw_screw(dataclasses.replace(plain, albedo=1.0))[..., 0] > 0.05
    return Scene(image=image, support=support, params=params, draw=_draw_screw)


def screw_head(scene: Scene) -> np.ndarray:
    """The part of a screw scene's support that is its head."""
    u, _, _ = object_coords(scene.image.shape[0], scene.params.pose)
    return scene.support & (u < -0.56)
