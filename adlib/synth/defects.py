"""The defects: one small function per defect kind, `(scene, rng) -> (altered image, bool mask)`.

Surface defects (scratch, crack, hole, stain, spots, recolor, foreign, fibre, smudge) paint on the
scene's image inside its support; geometric defects of drawn objects (chip, faulty imprint, stripped
thread, damaged tip) redraw the object with a changed parameter, and their mask is what changed. The
caller composites the altered image only inside the mask."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from adlib.synth.drawing import (
    LIGHT,
    F,
    blob,
    color_vector,
    grid,
    log_uniform,
    pick_point,
    smooth_noise,
    stroke,
    wander,
)
from adlib.synth.objects import SCREW_PITCH, imprint, object_coords, screw_head
from adlib.synth.scenes import Scene, TextureSource, crop

#: A defect: (scene, rng) -> (altered image, HxW bool mask of the pixels it altered).
Defect = Callable[[Scene, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _blend(image: np.ndarray, target: np.ndarray | float, alpha: np.ndarray) -> np.ndarray:
    """`image` moved towards `target` (an image, a colour vector or a grey level) by `alpha` (HxW)."""
    return (image + (target - image) * alpha[..., None]).astype(F)


def _soft_blob(
    scene: Scene, rng: np.random.Generator, radius: tuple[float, float], *, edge: float, min_edge: float = 1.0
) -> np.ndarray:
    """Alpha of an irregular blob cut to the scene's support: radius log-uniform in `radius` (fractions
    of the image side), centred at a support pixel at least 0.7 radii inside it, edge width
    max(min_edge, edge * radius) pixels."""
    size = scene.image.shape[0]
    r = log_uniform(rng, *radius) * size
    center = pick_point(scene.support, rng, r * 0.7)
    return blob(size, center, r, rng, irregularity=0.4, softness=max(min_edge, edge * r)) * scene.support


def scratch(
    scene: Scene,
    rng: np.random.Generator,
    *,
    tone: str = "light",
    strength: tuple[float, float] = (0.3, 0.8),
    width: tuple[float, float] = (0.8, 2.0),
    length: tuple[float, float] = (0.08, 0.35),
) -> tuple[np.ndarray, np.ndarray]:
    """A thin, gently curved line, lighter (bare material) or darker than its surroundings."""
    size = scene.image.shape[0]
    start = pick_point(scene.support, rng, 4)
    path = wander(rng, start, log_uniform(rng, *length) * size, 30, 0.05)
    alpha = stroke(size, [path], [rng.uniform(*width) * size / 256]) * scene.support
    target = 1.0 if tone == "light" or (tone == "either" and rng.random() < 0.5) else 0.05
    mask = alpha > 0.2
    altered = _blend(scene.image, target, alpha * rng.uniform(*strength))
    return altered, mask


def crack(
    scene: Scene,
    rng: np.random.Generator,
    *,
    depth: tuple[float, float] = (0.35, 0.8),
    width: tuple[float, float] = (1.0, 2.6),
    length: tuple[float, float] = (0.10, 0.45),
) -> tuple[np.ndarray, np.ndarray]:
    """A jagged dark fissure with a branch or two."""
    size = scene.image.shape[0]
    k = size / 256
    start = pick_point(scene.support, rng, 6 * k)
    main = wander(rng, start, log_uniform(rng, *length) * size, 40, 0.06, jitter=0.6)
    w = rng.uniform(*width) * k
    paths, widths = [main], [w]
    for _ in range(rng.integers(0, 3)):
        at = main[rng.integers(5, len(main) - 5)]
        paths.append(wander(rng, at, rng.uniform(0.2, 0.5) * np.hypot(*(main[-1] - main[0])), 20, 0.1, 0.6))
        widths.append(max(w * 0.6, 0.8 * k))
    alpha = stroke(size, paths, widths) * scene.support
    mask = alpha > 0.2
    altered = scene.image * (1 - alpha * rng.uniform(*depth))[..., None]
    return altered.astype(F), mask


def hole(
    scene: Scene,
    rng: np.random.Generator,
    *,
    radius: tuple[float, float] = (0.012, 0.06),
    darkness: tuple[float, float] = (0.3, 0.75),
) -> tuple[np.ndarray, np.ndarray]:
    """A pit: a sharp-edged cavity, shadowed on the side facing the light, its far wall lit."""
    size = scene.image.shape[0]
    r = log_uniform(rng, *radius) * size
    cy, cx = pick_point(scene.support, rng, r + 2)
    alpha = blob(size, (cy, cx), r, rng, irregularity=0.35, softness=1.0) * scene.support
    yy, xx = grid(size)
    ramp = np.clip(((yy - cy) * -LIGHT[1] + (xx - cx) * -LIGHT[0]) / (r * 0.9), -1, 1)
    shade = (1 - rng.uniform(*darkness)) * (0.8 + 0.35 * ramp)
    altered = scene.image * (1 - alpha + alpha * shade)[..., None]
    return altered.astype(F), alpha > 0.25


def stain(
    scene: Scene,
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
    r = log_uniform(rng, *radius) * size
    center = pick_point(scene.support, rng, r * 0.8)
    shape = blob(size, center, r, rng, irregularity=0.45, softness=max(1.0, 0.25 * r), aspect=rng.uniform(0.6, 1.0))
    blotch = 0.65 + 0.35 * smooth_noise(size, rng, max(1.0, r / 4))
    alpha = shape * blotch * rng.uniform(*strength) * scene.support
    alpha = np.where(alpha > 0.04, alpha, 0).astype(F)
    tint = color_vector(tints[rng.integers(len(tints))], scene.image.shape[2])
    target = np.clip((1 - fill) * scene.image * tint + fill * tint, 0, 1)
    return _blend(scene.image, target, alpha), alpha > 0


def spots(
    scene: Scene,
    rng: np.random.Generator,
    *,
    colors: tuple[tuple[float, float, float], ...] = ((0.12, 0.10, 0.08),),
    radius: tuple[float, float] = (0.006, 0.025),
    opacity: tuple[float, float] = (0.45, 0.95),
) -> tuple[np.ndarray, np.ndarray]:
    """Contamination: a small cluster of 1-4 specks of dirt or foreign material."""
    size = scene.image.shape[0]
    center = np.array(pick_point(scene.support, rng, 6))
    color = color_vector(colors[rng.integers(len(colors))], scene.image.shape[2])
    alpha = np.zeros((size, size), F)
    for _ in range(rng.integers(1, 5)):
        r = log_uniform(rng, *radius) * size
        at = center + rng.normal(0, 2.5 * r + 2, 2)
        alpha = np.maximum(alpha, blob(size, tuple(at), r, rng, irregularity=0.5, softness=0.8))
    alpha = alpha * rng.uniform(*opacity) * scene.support
    mask = alpha > 0.05
    return _blend(scene.image, color, alpha), mask


def recolor(
    scene: Scene,
    rng: np.random.Generator,
    *,
    gains: tuple[tuple[float, float, float], ...] = ((1.15, 0.95, 0.8),),
    contrast: tuple[float, float] = (0.6, 1.0),
    strength: tuple[float, float] = (0.35, 1.0),
    radius: tuple[float, float] = (0.03, 0.14),
) -> tuple[np.ndarray, np.ndarray]:
    """A discoloured region: a soft blob where colour balance and contrast drift (heat tint, wrong
    dye, dried or bleached patch)."""
    alpha = _soft_blob(scene, rng, radius, edge=0.3)
    alpha = np.where(alpha > 0.05, alpha, 0).astype(F) * rng.uniform(*strength)
    gain = color_vector(gains[rng.integers(len(gains))], scene.image.shape[2])
    mean = scene.image.mean((0, 1))
    changed = np.clip((mean + (scene.image - mean) * rng.uniform(*contrast)) * gain, 0, 1)
    return _blend(scene.image, changed, alpha), alpha > 0


def foreign(
    scene: Scene,
    rng: np.random.Generator,
    *,
    source: TextureSource,
    radius: tuple[float, float] = (0.03, 0.14),
    harmonize: tuple[float, float] = (0.3, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A patch of another material (cut from another photo) in an irregular outline; its brightness
    and contrast partly matched to the surroundings so it does not always stand out."""
    alpha = _soft_blob(scene, rng, radius, edge=0.0, min_edge=1.2)
    patch = crop(source, rng, scene.image.shape[0], "RGB" if scene.image.shape[2] == 3 else "L")
    inside = alpha > 0.5
    if inside.sum() < 4:
        inside = alpha > 0
    local_mean, local_std = scene.image[inside].mean(0), scene.image[inside].std(0) + 1e-3
    p_mean, p_std = patch[inside].mean(0), patch[inside].std(0) + 1e-3
    matched = (patch - p_mean) / p_std * local_std + local_mean
    m = rng.uniform(*harmonize)
    patch = np.clip(m * matched + (1 - m) * patch, 0, 1)
    return _blend(scene.image, patch, alpha), alpha > 0.1


def fibre(
    scene: Scene,
    rng: np.random.Generator,
    *,
    colors: tuple[tuple[float, float, float], ...] = ((0.9, 0.9, 0.88),),
    width: tuple[float, float] = (0.8, 1.8),
    length: tuple[float, float] = (0.15, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """A loose thread or hair lying on the surface, with its faint shadow."""
    size = scene.image.shape[0]
    k = size / 256
    path = wander(rng, pick_point(scene.support, rng, 8), log_uniform(rng, *length) * size, 50, 0.12)
    w = rng.uniform(*width) * k
    alpha = stroke(size, [path], [w]) * scene.support
    shadow = np.clip(stroke(size, [path + 1.5 * k], [w + k]) - alpha, 0, 1) * scene.support
    color = color_vector(colors[rng.integers(len(colors))], scene.image.shape[2])
    altered = scene.image * (1 - 0.35 * shadow)[..., None]
    altered = _blend(altered, color, alpha * rng.uniform(0.6, 0.95))
    return altered.astype(F), (alpha > 0.2) | (shadow > 0.2)


def smudge(
    scene: Scene,
    rng: np.random.Generator,
    *,
    radius: tuple[float, float] = (0.04, 0.13),
    sigma: tuple[float, float] = (1.5, 4.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A region where the surface structure is smeared out (glue, wet residue, a rubbed patch)."""
    alpha = _soft_blob(scene, rng, radius, edge=0.2)
    alpha = np.where(alpha > 0.08, alpha, 0).astype(F)
    s = rng.uniform(*sigma) * scene.image.shape[0] / 256
    blurred = ndimage.gaussian_filter(scene.image, (s, s, 0)) * rng.uniform(0.92, 1.08)
    return _blend(scene.image, np.clip(blurred, 0, 1), alpha), alpha > 0


# ---- geometric defects of objects: redraw with changed parameters, mask = what changed ---------


def _redraw(scene: Scene, **changes: object) -> tuple[np.ndarray, np.ndarray]:
    """The object redrawn with some of its parameters changed, and the pixels the redraw visibly
    altered, closed and hole-filled into solid regions. Changes below 4/255 (the faint tail of a
    moved drop shadow) are left out of the mask, and so not applied."""
    altered = scene.draw(dataclasses.replace(scene.params, **changes))
    mask = np.abs(altered - scene.image).max(axis=2) > 4 / 255
    mask = ndimage.binary_closing(mask, iterations=max(1, round(scene.image.shape[0] / 256)))
    return altered, ndimage.binary_fill_holes(mask)


def chip(
    scene: Scene, rng: np.random.Generator, *, radius: tuple[float, float] = (0.025, 0.09)
) -> tuple[np.ndarray, np.ndarray]:
    """A piece broken off the outline: the background shows through, a band of fracture remains."""
    size = scene.image.shape[0]
    edge = scene.support & ~ndimage.binary_erosion(scene.support, iterations=2)
    center = pick_point(edge, rng, 0)
    cut = blob(size, center, log_uniform(rng, *radius) * size, rng, irregularity=0.5, softness=1.0)
    return _redraw(scene, cut=cut)


def faulty_imprint(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The printed mark partly missing, or printed twice slightly offset."""
    size = scene.image.shape[0]
    if rng.random() < 0.5:
        u, v, _ = object_coords(size, scene.params.pose)
        where = imprint(u, v) > 0.5
        center = pick_point(where, rng, 0)
        erase = blob(size, center, rng.uniform(0.02, 0.07) * size, rng, softness=1.5)
        return _redraw(scene, ink_erase=erase)
    du, dv = rng.uniform(0.015, 0.05) * rng.choice([-1, 1]), rng.uniform(0.0, 0.03) * rng.choice([-1, 1])
    return _redraw(scene, ink_shift=(du, dv, rng.uniform(0.35, 0.9)))


def stripped_thread(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stretch of thread worn flat (a few pitches long)."""
    start = rng.uniform(-0.42, 0.45)
    span = rng.uniform(1.5, 5.0) * SCREW_PITCH
    return _redraw(scene, stripped=(start, start + span))


def damaged_tip(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The tip broken off (shorter) or bent."""
    if rng.random() < 0.5:
        return _redraw(scene, tip_end=rng.uniform(0.66, 0.79))
    return _redraw(scene, bend=math.radians(rng.uniform(6, 20) * rng.choice([-1, 1])))


def on_head(defect: Defect) -> Defect:
    """Restrict a surface defect to the screw's head."""

    def run(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return defect(dataclasses.replace(scene, support=screw_head(scene)), rng)

    return run
