"""Drawing primitives shared by the scenes, the objects and the defects: pixel grids, random points
and blobs, anti-aliased strokes, random walks, smooth noise and Lambert + Phong shading."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import ndimage

F = np.float32
LIGHT = np.array([-0.45, -0.55, 0.70], dtype=F)  # light from the upper left (x right, y down, z up)
LIGHT /= np.linalg.norm(LIGHT)


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (yy, xx), float32, read-only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(F)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def color_vector(rgb: Sequence[float], channels: int) -> np.ndarray:
    """An RGB colour as a per-channel vector; its mean for grayscale images."""
    c = np.asarray(rgb, dtype=F)
    return c if channels == 3 else c.mean(keepdims=True)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A number between `lo` and `hi`, uniform in log scale (small sizes as likely as large ones)."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def pick_point(support: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[float, float]:
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


def blob(
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
    yy, xx = grid(size)
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
    return np.clip((edge - r) / max(softness, 1e-3) + 0.5, 0, 1).astype(F)


def smooth_noise(size: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(F), sigma)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def stroke(size: int, paths: Sequence[np.ndarray], widths: Sequence[float]) -> np.ndarray:
    """Anti-aliased alpha of polylines (arrays of (y, x) points) with the given widths (pixels)."""
    alpha = np.zeros((size, size), F)
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
        dist = ndimage.distance_transform_edt(canvas).astype(F)
        alpha = np.maximum(alpha, np.clip(width / 2 + 0.5 - dist, 0, 1))
    return alpha


def wander(
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
    return np.vstack([start, start + np.cumsum(moves, 0)]).astype(F)


def lambert_phong(height: np.ndarray, light: np.ndarray, ambient: float, diffuse: float, shininess: float):
    """Lambert diffuse term and Phong specular term of a height field (pixel units) under `light`."""
    gy, gx = np.gradient(height)
    norm = np.sqrt(gx * gx + gy * gy + 1)
    nx, ny, nz = -gx / norm, -gy / norm, 1 / norm
    ndl = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, None)
    half = light + np.array([0, 0, 1], F)
    half /= np.linalg.norm(half)
    ndh = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, None)
    return (ambient + diffuse * ndl).astype(F), (ndh**shininess).astype(F)


def jitter_light(rng: np.random.Generator) -> np.ndarray:
    """The upper-left light direction, slightly perturbed (unit vector)."""
    light = LIGHT + rng.normal(0, 0.05, 3).astype(F)
    return (light / np.linalg.norm(light)).astype(F)


def drop_shadow(cover: np.ndarray, size: int, strength: float) -> np.ndarray:
    """Multiplicative darkening of the background under an object lit from the upper left."""
    k = size / 256
    shifted = np.roll(cover, (round(5 * k), round(4 * k)), axis=(0, 1))
    return 1 - strength * ndimage.gaussian_filter(shifted, 4 * k)
