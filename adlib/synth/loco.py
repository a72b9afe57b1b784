"""A LOCO-style companion benchmark: scenes of several parts arranged by a rule, with logical anomalies.

Why: MVTec LOCO AD's *logical* anomalies (a part missing, one too many, the wrong kind, parts swapped
or turned) break a rule about the whole scene while every part looks fine, unlike the structural
defects of `adlib.synth`'s categories. These categories reuse the drawn nut, pill and screw:

* ``kit``: a 3 x 3 grid; the top row holds three nuts, the bottom row three pills, the middle row
  nothing. Logical: ``missing_part``, ``extra_part`` (a part in the middle row), ``wrong_kind`` (a pill
  among the nuts or the reverse), ``swapped`` (a column's nut and pill exchanged: two regions).
  Structural: ``scratch`` on a nut, ``chip`` off a pill.
* ``bag``: two nuts and two pills, each in one of nine places of a 3 x 3 grid, which places varies.
  Logical (counts; every part looks normal and lies where parts do lie): ``too_few`` (a part left
  out; region: where it was drawn in the scene), ``too_many`` (a fifth part), ``wrong_mix`` (a nut
  instead of a pill or the reverse). Structural: ``scratch`` on a nut, ``chip`` off a pill.
* ``rack``: five places in a column; the top four hold a screw each, head left, the fifth is empty.
  Logical: ``missing_part``, ``extra_part`` (a screw in the fifth place), ``flipped`` (head right),
  ``wrong_kind`` (a nut in a screw's place). Structural: ``thread_damage``, ``tip``.

Masks follow LOCO: one grey PNG per defect region with the defect's ``pixel_value``; a missing part's
region is the footprint it would have had; a wrong, swapped or turned part's region is the union of
the footprints of what is there and what should be. ``defects_config.json`` gives each defect kind's
saturation threshold (absolute pixels for a missing or extra part, about a quarter of a part's area,
relative otherwise), read by `adlib.data.loco`.

Layout (MVTec LOCO AD's), written by ``python -m adlib.synth --layout loco --out data/synthetic-loco``
(``--quick``: the smaller `QUICK_COUNTS`, a prefix of each split, for the notebooks' quick mode)::

    <out>/<category>/train/good/000.png, validation/good/, test/good/,
    <out>/<category>/test/logical_anomalies/000.png, test/structural_anomalies/000.png,
    <out>/<category>/ground_truth/<logical|structural>_anomalies/000/000.png (001.png, ...),
    <out>/<category>/defects_config.json

Determinism: as `adlib.synth` (one generator per image from seed, category, split and index; PNGs
without metadata; a category is written to a temporary folder and moved into place). The defect kind
of the k-th anomalous test image is the (k mod n)-th of its group.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from adlib.files import atomic_write_bytes
from adlib.synth.defects import chip, damaged_tip, scratch, stripped_thread
from adlib.synth.drawing import F
from adlib.synth.loco_scenes import Placement, paint
from adlib.synth.samples import image_rng
from adlib.synth.scenes import ROOF, photo_background
from adlib.synth.writer import _save_png

LOCO_VERSION = "1.0"
SPLITS = ("train/good", "validation/good", "test/good", "test/logical_anomalies", "test/structural_anomalies")
DEFAULT_COUNTS: Mapping[str, int] = {
    "train/good": 60,
    "validation/good": 10,
    "test/good": 20,
    "test/logical_anomalies": 40,
    "test/structural_anomalies": 20,
}
#: The quick copy (`make data-quick` -> data/synthetic-loco-quick, for make test): the first images of each
#: split, byte for byte those of a default root (an image is a pure function of its index).
QUICK_COUNTS: Mapping[str, int] = {
    "train/good": 20,
    "validation/good": 2,
    "test/good": 10,
    "test/logical_anomalies": 12,
    "test/structural_anomalies": 6,
}

#: A logical defect: paints the parts (altered by the rule it breaks) and returns its regions.
Logical = Callable[[np.ndarray, list[Placement], np.random.Generator], list[np.ndarray]]


def _paint_all(canvas: np.ndarray, parts: Sequence[Placement], rng: np.random.Generator) -> list[np.ndarray]:
    return [paint(canvas, part, rng)[0] for part in parts]


def _missing(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
    gone = int(rng.integers(len(parts)))
    _paint_all(canvas, [p for i, p in enumerate(parts) if i != gone], rng)
    return [paint(canvas, parts[gone], rng, draw=False)[0]]


def _replaced(
    canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator, changed: dict[int, Placement]
) -> list[np.ndarray]:
    """Parts with some replaced; each replaced part's region: its footprint or the expected one's."""
    footprints = _paint_all(canvas, [changed.get(i, p) for i, p in enumerate(parts)], rng)
    return [footprints[i] | paint(canvas, parts[i], rng, draw=False)[0] for i in sorted(changed)]


def _wrong_kind(others: Mapping[str, str]) -> Logical:
    def run(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
        i = int(rng.integers(len(parts)))
        return _replaced(canvas, parts, rng, {i: replace(parts[i], kind=others[parts[i].kind], flip=False)})

    return run


def _flipped(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
    i = int(rng.integers(len(parts)))
    return _replaced(canvas, parts, rng, {i: replace(parts[i], flip=True)})


def _swapped(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
    column = int(rng.integers(3))  # kit: parts 0-2 nuts (top row), 3-5 pills (bottom row)
    a, b = column, column + 3
    changed = {a: replace(parts[a], kind=parts[b].kind), b: replace(parts[b], kind=parts[a].kind)}
    return _replaced(canvas, parts, rng, changed)


Spare = Callable[[np.random.Generator, int, list[Placement]], Placement]


def _extra(spare: Spare) -> Logical:
    def run(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
        _paint_all(canvas, parts, rng)
        return [paint(canvas, spare(rng, canvas.shape[0], parts), rng)[0]]

    return run


def _structural(kind: str, defect: Callable) -> Logical:
    """A structural defect on a random part of `kind`; its region is the defect's mask."""

    def run(canvas: np.ndarray, parts: list[Placement], rng: np.random.Generator) -> list[np.ndarray]:
        target = int(rng.choice([i for i, p in enumerate(parts) if p.kind == kind]))
        masks = [paint(canvas, replace(p, defect=defect) if i == target else p, rng)[1] for i, p in enumerate(parts)]
        return [masks[target]]

    return run


def _jitter(rng: np.random.Generator, size: int, y: float, x: float) -> tuple[float, float]:
    k = size / 256
    dy, dx = np.clip(rng.normal(0, 1.5, 2), -4.5, 4.5) * k  # clipped: a tile never leaves the image
    return y * k + dy, x * k + dx


def _kit(rng: np.random.Generator, size: int) -> list[Placement]:
    rows = (("nut", 48.0), ("pill", 208.0))
    return [Placement(kind, *_jitter(rng, size, y, x)) for kind, y in rows for x in (48.0, 128.0, 208.0)]


def _kit_spare(rng: np.random.Generator, size: int, parts: list[Placement]) -> Placement:
    return Placement(str(rng.choice(["nut", "pill"])), *_jitter(rng, size, 128.0, float(rng.choice([48, 128, 208]))))


_RACK_ROWS = (62.0, 96.0, 130.0, 164.0, 198.0)


def _rack(rng: np.random.Generator, size: int) -> list[Placement]:
    return [Placement("screw", *_jitter(rng, size, y, 128.0)) for y in _RACK_ROWS[:4]]


def _rack_spare(rng: np.random.Generator, size: int, parts: list[Placement]) -> Placement:
    return Placement("screw", *_jitter(rng, size, _RACK_ROWS[4], 128.0))


_BAG_CELLS = tuple((y, x) for y in (60.0, 128.0, 196.0) for x in (60.0, 128.0, 196.0))


def _bag_at(rng: np.random.Generator, size: int, kind: str, cell: int) -> Placement:
    return Placement(kind, *_jitter(rng, size, *_BAG_CELLS[cell]))


def _bag(rng: np.random.Generator, size: int) -> list[Placement]:
    cells = rng.permutation(len(_BAG_CELLS))[:4]
    return [_bag_at(rng, size, kind, int(c)) for kind, c in zip(("nut", "nut", "pill", "pill"), cells)]


def _bag_spare(rng: np.random.Generator, size: int, parts: list[Placement]) -> Placement:
    k = size / 256
    used = {
        min(range(len(_BAG_CELLS)), key=lambda c: np.hypot(p.cy / k - _BAG_CELLS[c][0], p.cx / k - _BAG_CELLS[c][1]))
        for p in parts
    }
    free = [c for c in range(len(_BAG_CELLS)) if c not in used]
    return _bag_at(rng, size, str(rng.choice(["nut", "pill"])), int(rng.choice(free)))


@dataclass(frozen=True)
class LocoSpec:
    """A LOCO-style category: the rule's good arrangement, its anomalies and their saturation thresholds
    (name -> (threshold, relative)), logical first."""

    layout: Callable[[np.random.Generator, int], list[Placement]]
    logical: Mapping[str, Logical]
    structural: Mapping[str, Logical]
    saturation: Mapping[str, tuple[float, bool]]


# The structural defects of the scenes whose parts are nuts and pills (kit, bag): a scratched nut, a chipped pill.
_NUT_PILL_STRUCTURAL = {
    "scratch": _structural("nut", partial(scratch, tone="either", strength=(0.4, 0.8), length=(0.15, 0.4))),
    "chip": _structural("pill", partial(chip, radius=(0.06, 0.14))),
}

LOCO_CATEGORIES: Mapping[str, LocoSpec] = {
    "kit": LocoSpec(
        _kit,
        {
            "missing_part": _missing,
            "extra_part": _extra(_kit_spare),
            "wrong_kind": _wrong_kind({"nut": "pill", "pill": "nut"}),
            "swapped": _swapped,
        },
        _NUT_PILL_STRUCTURAL,
        {
            "missing_part": (400, False),
            "extra_part": (400, False),
            "wrong_kind": (0.5, True),
            "swapped": (0.5, True),
            "scratch": (1.0, True),
            "chip": (1.0, True),
        },
    ),
    "rack": LocoSpec(
        _rack,
        {
            "missing_part": _missing,
            "extra_part": _extra(_rack_spare),
            "flipped": _flipped,
            "wrong_kind": _wrong_kind({"screw": "nut"}),
        },
        {"thread_damage": _structural("screw", stripped_thread), "tip": _structural("screw", damaged_tip)},
        {
            "missing_part": (300, False),
            "extra_part": (300, False),
            "flipped": (0.5, True),
            "wrong_kind": (0.5, True),
            "thread_damage": (1.0, True),
            "tip": (1.0, True),
        },
    ),
    "bag": LocoSpec(
        _bag,
        {
            "too_few": _missing,
            "too_many": _extra(_bag_spare),
            "wrong_mix": _wrong_kind({"nut": "pill", "pill": "nut"}),
        },
        _NUT_PILL_STRUCTURAL,
        {
            "too_few": (400, False),
            "too_many": (400, False),
            "wrong_mix": (0.5, True),
            "scratch": (1.0, True),
            "chip": (1.0, True),
        },
    ),
}


def defects_config(category: str) -> list[dict]:
    """The category's defects_config.json entries: pixel values 255, 254, ... in the spec's order."""
    spec = LOCO_CATEGORIES[category]
    return [
        {
            "defect_name": name,
            "pixel_value": 255 - i,
            "saturation_threshold": threshold,
            "relative_saturation": relative,
        }
        for i, (name, (threshold, relative)) in enumerate(spec.saturation.items())
    ]


@dataclass(frozen=True)
class LocoSample:
    """One generated image (uint8 HxWx3) and its defect regions: (defect name, bool HxW) each."""

    image: np.ndarray
    regions: tuple[tuple[str, np.ndarray], ...]


def make_loco_sample(category: str, split: str, index: int, seed: int = 0, size: int = 256) -> LocoSample:
    """The `index`-th image of a split (one of SPLITS) of a LOCO-style category; pure function of its arguments."""
    if category not in LOCO_CATEGORIES:
        raise ValueError(f"unknown LOCO-style category {category!r}; use one of {', '.join(LOCO_CATEGORIES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    spec = LOCO_CATEGORIES[category]
    rng = image_rng(seed, f"loco/{category}", split, index)
    canvas = photo_background(ROOF, rng, size, "RGB", (0.42, 0.40, 0.36), 0.3, 1.0).copy()
    parts = spec.layout(rng, size)
    group = {"test/logical_anomalies": spec.logical, "test/structural_anomalies": spec.structural}.get(split)
    if group is None:
        _paint_all(canvas, parts, rng)
        regions: tuple[tuple[str, np.ndarray], ...] = ()
    else:
        name = list(group)[index % len(group)]
        regions = tuple((name, mask) for mask in group[name](canvas, parts, rng))
    noisy = canvas + rng.normal(0, 0.01, canvas.shape).astype(F)
    return LocoSample(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8), regions)


def _write_category(root: Path, category: str, seed: int, counts: Mapping[str, int], size: int, tick) -> None:
    final, tmp = root / category, root / f".{category}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    values = {entry["defect_name"]: entry["pixel_value"] for entry in defects_config(category)}
    try:
        for split in SPLITS:
            (tmp / split).mkdir(parents=True)
            for i in range(counts[split]):
                sample = make_loco_sample(category, split, i, seed, size)
                _save_png(sample.image, tmp / split / f"{i:03d}.png")
                if sample.regions:
                    folder = tmp / "ground_truth" / split.split("/")[1] / f"{i:03d}"
                    folder.mkdir(parents=True)
                    for r, (name, mask) in enumerate(sample.regions):
                        _save_png((mask * values[name]).astype(np.uint8), folder / f"{r:03d}.png")
                tick()
        config = json.dumps(defects_config(category), indent=2) + "\n"
        (tmp / "defects_config.json").write_text(config)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate_loco(
    out: Path,
    categories: Sequence[str] | None = None,
    seed: int = 0,
    size: int = 256,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    progress: bool = True,
) -> Path:
    """Write the LOCO-style categories (all, or the named ones) under `out` and return `out`."""
    names = list(LOCO_CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    for name in names:
        if name not in LOCO_CATEGORIES:
            raise ValueError(f"unknown LOCO-style category {name!r}; use one of {', '.join(LOCO_CATEGORIES)}")
    if set(counts) != set(SPLITS) or any(not isinstance(n, int) or not 1 <= n <= 1000 for n in counts.values()):
        raise ValueError(f"counts must give 1..1000 images for each of {', '.join(SPLITS)}, got {dict(counts)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 128:
        raise ValueError(f"size must be an integer >= 128 pixels for the LOCO-style scenes, got {size!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    with tqdm(total=len(names) * sum(counts.values()), desc="LOCO-style", unit="img", disable=not progress) as bar:
        for name in names:
            _write_category(out, name, seed, counts, size, lambda: bar.update(1))
    lines = [
        "# adlib LOCO-style benchmark (logical and structural anomalies)",
        "",
        f"Generated by `python -m adlib.synth --layout loco --out <this folder> --seed {seed} --size {size}` (generator "
        f"{LOCO_VERSION}). Rules and anomalies: the docstring of `adlib.synth.loco`.",
        "",
        "| category | " + " | ".join(SPLITS) + " |",
        "|---" * (len(SPLITS) + 1) + "|",
        *(f"| {name} | " + " | ".join(str(counts[s]) for s in SPLITS) + " |" for name in names),
        "",
    ]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode("utf-8"))
    return out
