"""Scenes of several drawn parts (LOCO-style): parts painted one after another onto a shared background.

Each part is one of the drawn objects of `adlib.synth.objects`, rendered on a square tile whose
background is the canvas under it, then pasted back: shadows fall on what lies below, and tiles may
overlap. A part's *footprint* is where it covers the canvas (found by drawing it on black and on white:
the object's pixels do not depend on the background, the rest does), so a missing part's footprint is
known without painting it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from adlib.synth.defects import Defect
from adlib.synth.drawing import F
from adlib.synth.objects import render_nut, render_pill, render_screw
from adlib.synth.scenes import Scene

#: Part kinds: renderer and tile side in pixels (at a 256-pixel image; scaled with the image).
PARTS: dict[str, tuple[Callable[[np.random.Generator, int], Scene], int]] = {
    "nut": (render_nut, 72),
    "pill": (render_pill, 72),
    "screw": (render_screw, 104),
}


@dataclass(frozen=True)
class Placement:
    """A part to paint: kind, centre (pixels), turned by 180 degrees or not, optional structural defect."""

    kind: str
    cy: float
    cx: float
    flip: bool = False
    defect: Defect | None = None


def tile_side(kind: str, size: int) -> int:
    """The tile side of a part kind at image side `size`."""
    return max(16, round(PARTS[kind][1] * size / 256))


def _drawn(placement: Placement, rng: np.random.Generator, size: int) -> tuple[Scene, int, int]:
    """The part's scene on its tile (own background for now) and the tile's top-left corner."""
    render, _ = PARTS[placement.kind]
    side = tile_side(placement.kind, size)
    scene = render(rng, side)
    if placement.flip:
        pose = scene.params.pose
        scene = dataclasses.replace(
            scene, params=dataclasses.replace(scene.params, pose=dataclasses.replace(pose, angle=pose.angle + math.pi))
        )
    top, left = round(placement.cy - side / 2), round(placement.cx - side / 2)
    if top < 0 or left < 0 or top + side > size or left + side > size:
        raise ValueError(f"a {placement.kind} at ({placement.cy:.0f}, {placement.cx:.0f}) leaves the {size}px image")
    return scene, top, left


def _on(scene: Scene, background: np.ndarray) -> np.ndarray:
    """The part drawn over `background` (tile-sized, RGB)."""
    return scene.draw(dataclasses.replace(scene.params, background=background))


def _footprint(scene: Scene, side: int) -> np.ndarray:
    """Where the part covers its tile (more than half opaque), holes filled."""
    black = _on(scene, np.zeros((side, side, 3), F))
    white = _on(scene, np.ones((side, side, 3), F))
    # Off the part the two differ by the (shadowed) background, >= 0.5; on it they are equal.
    return ndimage.binary_fill_holes(np.abs(white - black).max(axis=2) < 0.25)


def paint(
    canvas: np.ndarray, placement: Placement, rng: np.random.Generator, *, draw: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Paint a part onto `canvas` (in place; not when `draw` is False) and return its footprint and the
    mask of its structural defect (None without one), both bool HxW over the whole canvas."""
    size = canvas.shape[0]
    scene, top, left = _drawn(placement, rng, size)
    side = scene.image.shape[0]
    window = (slice(top, top + side), slice(left, left + side))
    footprint = np.zeros((size, size), bool)
    footprint[window] = _footprint(scene, side)
    if not draw:
        return footprint, None
    params = dataclasses.replace(scene.params, background=canvas[window].copy())
    image = scene.draw(params)
    defect_mask = None
    if placement.defect is not None:
        local = Scene(image=image, support=footprint[window], params=params, draw=scene.draw)
        for _ in range(8):  # a defect may come out empty: draw another
            altered, mask = placement.defect(local, rng)
            if mask.sum() >= 4:
                break
        else:
            raise RuntimeError(f"could not place a defect on a {placement.kind}")
        image = np.where(mask[..., None], altered, image)
        defect_mask = np.zeros((size, size), bool)
        defect_mask[window] = mask
    canvas[window] = image
    return footprint, defect_mask
