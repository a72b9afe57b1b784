"""The nine categories: for each its public description (`CategoryInfo`), how a scene is rendered,
its defect kinds with their settings, and its sensor noise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

import numpy as np

from adlib.synth.defects import (
    Defect,
    chip,
    crack,
    damaged_tip,
    faulty_imprint,
    fibre,
    foreign,
    hole,
    on_head,
    recolor,
    scratch,
    smudge,
    spots,
    stain,
    stripped_thread,
)
from adlib.synth.objects import render_nut, render_pill, render_screw
from adlib.synth.scenes import (
    BRICK,
    GRASS_TEXTURE,
    GRAVEL,
    GRAVEL_TEXTURE,
    PAVING,
    ROAD,
    ROCKS,
    ROOF,
    WALL,
    Scene,
    TextureSource,
    render_texture,
)


@dataclass(frozen=True)
class CategoryInfo:
    """What a category is: its kind ('texture' or 'object'), image mode, defect types and sources."""

    kind: str
    description: str
    mode: str
    defect_types: tuple[str, ...]
    sources: str


@dataclass(frozen=True)
class Spec:
    """How a category is made: its info, the scene renderer, the defects by type and the noise."""

    info: CategoryInfo
    render: Callable[[np.random.Generator, int], Scene]
    defects: Mapping[str, Defect]
    noise: float  # sensor noise standard deviation


_SKIMAGE = "scikit-image `skimage.data.{}()` (CC0)"
_MVTB = "mvtb-data `mvtbdata/images/{}` (MIT)"


def _texture(
    description: str,
    source: TextureSource,
    mode: str,
    photos: str,
    *,
    foreign_from: str | None = None,
    defects: dict[str, Defect],
) -> Spec:
    """A texture category: crops of `photos`; its foreign-material patches (if any) cut from `foreign_from`."""
    sources = photos if foreign_from is None else f"{photos}; foreign patches from {foreign_from}"
    info = CategoryInfo("texture", description, mode, tuple(defects), sources)
    return Spec(info, partial(render_texture, source=source, mode=mode), MappingProxyType(defects), 0.008)


def _object(
    description: str,
    render: Callable[[np.random.Generator, int], Scene],
    mode: str,
    *,
    background: str,
    defects: dict[str, Defect],
) -> Spec:
    """A drawn object category, laid on a crop of the `background` photo."""
    sources = f"drawn procedurally; background from {background}"
    info = CategoryInfo("object", description, mode, tuple(defects), sources)
    return Spec(info, render, MappingProxyType(defects), 0.01)


_RUST, _OIL, _SOOT = (0.75, 0.5, 0.32), (0.35, 0.33, 0.30), (0.2, 0.2, 0.2)
_PAINTS = ((0.92, 0.92, 0.88), (0.30, 0.40, 0.65), (0.85, 0.75, 0.30), (0.25, 0.25, 0.25))
_MOSS = ((0.75, 1.05, 0.55), (0.8, 0.95, 0.6))

SPECS: dict[str, Spec] = {
    "brick": _texture(
        "grey brick wall, grey scale (photo crops)",
        BRICK,
        "L",
        _SKIMAGE.format("brick"),
        foreign_from=_SKIMAGE.format("gravel"),
        defects={
            "crack": partial(crack, depth=(0.3, 0.75)),
            "hole": partial(hole, radius=(0.01, 0.05)),
            "stain": partial(stain, tints=(_OIL, _SOOT, (1.4, 1.4, 1.4)), strength=(0.2, 0.7)),
            "foreign": partial(foreign, source=GRAVEL, radius=(0.03, 0.1)),
        },
    ),
    "grass": _texture(
        "lawn, grey scale (photo crops)",
        GRASS_TEXTURE,
        "L",
        _SKIMAGE.format("grass"),
        foreign_from=_MVTB.format("road.png"),
        defects={
            "foreign": partial(foreign, source=ROAD, radius=(0.05, 0.14), harmonize=(0.0, 0.5)),
            "thread": partial(fibre, colors=((0.97, 0.97, 0.97), (0.08, 0.08, 0.08)), width=(1.2, 2.6)),
            "discolor": partial(
                recolor,
                gains=((1.45, 1.45, 1.45), (0.55, 0.55, 0.55)),
                contrast=(0.3, 0.7),
                strength=(0.6, 1.0),
                radius=(0.05, 0.14),
            ),
        },
    ),
    "gravel": _texture(
        "gravel, grey scale (photo crops)",
        GRAVEL_TEXTURE,
        "L",
        _SKIMAGE.format("gravel"),
        foreign_from=_MVTB.format("rocks2-l.png / rocks2-r.png"),
        defects={
            "foreign": partial(foreign, source=ROCKS, radius=(0.04, 0.13)),
            "oil": partial(stain, tints=(_OIL, _SOOT), strength=(0.35, 0.85)),
            "cement": partial(
                stain, tints=((0.85, 0.85, 0.85), (0.7, 0.7, 0.7)), strength=(0.6, 1.0), fill=0.85, radius=(0.03, 0.12)
            ),
            "glue": partial(smudge, radius=(0.04, 0.12)),
        },
    ),
    "wall": _texture(
        "red brick wall (photo crops)",
        WALL,
        "RGB",
        _MVTB.format("walls-l.png / walls-r.png"),
        foreign_from=_MVTB.format("rocks2-l.png / rocks2-r.png"),
        defects={
            "crack": partial(crack),
            "paint": partial(stain, tints=_PAINTS, strength=(0.25, 0.85), fill=0.8),
            "hole": partial(hole, radius=(0.01, 0.05)),
            "foreign": partial(foreign, source=ROCKS, radius=(0.03, 0.1)),
        },
    ),
    "paving": _texture(
        "herringbone block paving (photo crops)",
        PAVING,
        "RGB",
        _MVTB.format("walls-l.png / walls-r.png"),
        foreign_from=_MVTB.format("road.png"),
        defects={
            "crack": partial(crack, depth=(0.35, 0.7)),
            "oil": partial(
                stain, tints=((0.3, 0.28, 0.26), (0.22, 0.22, 0.22), _RUST), strength=(0.6, 1.0), radius=(0.04, 0.14)
            ),
            "foreign": partial(foreign, source=ROAD, radius=(0.04, 0.13)),
            "discolor": partial(recolor, gains=_MOSS + ((1.2, 1.15, 1.1),), contrast=(0.5, 0.9)),
        },
    ),
    "roof": _texture(
        "slate roof (photo crops)",
        ROOF,
        "RGB",
        _MVTB.format("roof.png"),
        defects={
            "crack": partial(crack, depth=(0.3, 0.7)),
            "hole": partial(hole, radius=(0.012, 0.05)),
            "moss": partial(stain, tints=((0.7, 0.85, 0.45), (0.55, 0.6, 0.35)), strength=(0.3, 0.8)),
            "scratch": partial(scratch, tone="light", strength=(0.25, 0.7)),
        },
    ),
    "pill": _object(
        "white speckled tablet with a printed mark (drawn)",
        render_pill,
        "RGB",
        background=_SKIMAGE.format("gravel"),
        defects={
            "crack": partial(crack, depth=(0.25, 0.6), width=(0.8, 1.8), length=(0.06, 0.3)),
            "contamination": partial(spots, colors=((0.15, 0.12, 0.1), (0.35, 0.25, 0.2), (0.2, 0.3, 0.5))),
            "color": partial(
                recolor,
                gains=((1.0, 0.82, 0.78), (1.02, 0.98, 0.7)),
                contrast=(0.9, 1.0),
                strength=(0.5, 1.0),
                radius=(0.04, 0.12),
            ),
            "faulty_imprint": faulty_imprint,
            "chip": partial(chip, radius=(0.025, 0.08)),
        },
    ),
    "nut": _object(
        "hexagonal steel nut, top view (drawn)",
        render_nut,
        "RGB",
        background=_MVTB.format("roof.png"),
        defects={
            "scratch": partial(scratch, tone="either", strength=(0.25, 0.7), length=(0.06, 0.3)),
            "chip": partial(chip, radius=(0.03, 0.1)),
            "color": partial(
                recolor,
                gains=((0.8, 0.9, 1.3), (1.25, 1.05, 0.7)),
                contrast=(0.8, 1.0),
                strength=(0.5, 1.0),
                radius=(0.04, 0.14),
            ),
            "contamination": partial(spots, colors=(_OIL, _RUST, (0.1, 0.1, 0.1)), radius=(0.006, 0.03)),
        },
    ),
    "screw": _object(
        "pan-head machine screw, side view, grey scale (drawn)",
        render_screw,
        "L",
        background=_SKIMAGE.format("grass"),
        defects={
            "scratch_head": on_head(partial(scratch, tone="either", strength=(0.3, 0.8), length=(0.03, 0.12))),
            "thread_damage": stripped_thread,
            "tip": damaged_tip,
            "contamination": partial(spots, colors=((0.1, 0.1, 0.1), (0.35, 0.35, 0.35)), radius=(0.006, 0.02)),
        },
    ),
}

CATEGORIES: Mapping[str, CategoryInfo] = MappingProxyType({name: spec.info for name, spec in SPECS.items()})


def spec_of(category: str) -> Spec:
    """The spec of `category`; a ValueError naming the valid categories for an unknown one."""
    try:
        return SPECS[category]
    except KeyError:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(SPECS)}") from None


def defect_types(category: str) -> tuple[str, ...]:
    """The defect types of `category`, in a fixed order, without generating anything."""
    return spec_of(category).info.defect_types


def defect_counts(category: str, n_test_defect: int = 160) -> dict[str, int]:
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
