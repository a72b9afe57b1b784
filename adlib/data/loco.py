"""MVTec LOCO AD's per-defect ground truth: the defects configuration and one region per mask file.

sPRO (`adlib.evaluation.spro`) needs more than the united mask that `datasets.read_mask` returns: each
mask file of an anomalous image is one defect (a "channel" in LOCO's evaluation code), and each defect
kind has a saturation threshold. In LOCO (and in `adlib.synth.loco`):

* ``ground_truth/<type>/<stem>/000.png, 001.png, ...``: one grey image per defect; its non-zero pixels
  all hold the same value, the defect kind's ``pixel_value``;
* ``<category>/defects_config.json``: a list of ``{"defect_name", "pixel_value", "saturation_threshold",
  "relative_saturation"}``. With ``relative_saturation`` true the threshold is a fraction in (0, 1] of
  the region's area (a float, as LOCO's code requires); otherwise an integer number of pixels.

The saturation area of a region (the number of its pixels that count as a full detection) is
``floor(threshold * area)`` for a relative threshold and ``min(threshold, area)`` for an absolute one, as
LOCO's evaluation code computes it. Here the region is first given the images' geometry (`Preprocessing`:
resize, centre crop, NEAREST as `read_mask`); an absolute threshold, given in original pixels, is scaled
by the resize factor squared so that it keeps its meaning on the resized image. A region so small that
its relative saturation area rounds down to 0 gets 1 (LOCO's code would divide by zero there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adlib.data.datasets import Category, DataError, Preprocessing, Sample, _decode, _geometry, _image_size

DEFECTS_CONFIG = "defects_config.json"
_KEYS = ("defect_name", "pixel_value", "saturation_threshold", "relative_saturation")


@dataclass(frozen=True)
class DefectSpec:
    """One defect kind of `defects_config.json`: name, grey value in its mask files, saturation threshold."""

    name: str
    pixel_value: int
    saturation_threshold: float
    relative: bool


@dataclass(frozen=True)
class Region:
    """One defect of one image: its pixels (bool HxW), saturation area in pixels (1..area), defect name."""

    mask: np.ndarray
    saturation: int
    defect: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.mask, np.ndarray) or self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"Region.mask must be a 2-D bool array, got {type(self.mask).__name__}")
        area = int(self.mask.sum())
        if isinstance(self.saturation, bool) or not 1 <= int(self.saturation) <= area:
            raise ValueError(
                f"Region {self.defect!r}: saturation={self.saturation!r} must be an integer in 1..area ({area} "
                "pixels); an empty region or a saturation area of 0 leaves sPRO undefined"
            )


def saturation_area(area: int, spec: DefectSpec, scale: float = 1.0) -> int:
    """Pixels of a region of `area` pixels that count as fully detected (module docstring); `scale`:
    the factor by which the image's side was resized (an absolute threshold is scaled by its square)."""
    if spec.relative:
        return int(math.floor(spec.saturation_threshold * area))
    return int(min(round(spec.saturation_threshold * scale * scale), area))


def _spec(entry: object, path: Path, index: int) -> DefectSpec:
    """One checked entry of a defects configuration."""
    where = f"{path}, entry {index}"
    if not isinstance(entry, dict) or set(entry) != set(_KEYS):
        raise DataError(f"{where}: expected an object with exactly the keys {', '.join(_KEYS)}, got {entry!r}")
    name, value, threshold, relative = (entry[key] for key in _KEYS)
    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: defect_name must be a non-empty string, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise DataError(f"{where}: pixel_value must be an integer in 1..255, got {value!r}")
    if not isinstance(relative, bool):
        raise DataError(f"{where}: relative_saturation must be true or false, got {relative!r}")
    ok = isinstance(threshold, float) if relative else isinstance(threshold, int) and not isinstance(threshold, bool)
    if not ok or not math.isfinite(threshold) or threshold <= 0 or (relative and threshold > 1):
        limit = "a fraction in (0, 1] (a float)" if relative else "a positive integer number of pixels"
        raise DataError(f"{where}: saturation_threshold must be {limit}, got {threshold!r}")
    return DefectSpec(name, value, float(threshold), relative)


def read_defects_config(folder: Path | str) -> dict[int, DefectSpec]:
    """The defect kinds of a LOCO-layout category folder, by pixel value (checked; errors name the file)."""
    path = Path(folder) / DEFECTS_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"no {DEFECTS_CONFIG} in {folder}: sPRO needs each defect kind's saturation threshold; MVTec LOCO AD "
            "ships one per category (a list of defect_name, pixel_value, saturation_threshold, relative_saturation)"
        )
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}): re-create or re-download it") from error
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: expected a non-empty JSON list of defect kinds")
    specs = [_spec(entry, path, i) for i, entry in enumerate(entries)]
    by_value = {spec.pixel_value: spec for spec in specs}
    if len(by_value) != len(specs):
        raise DataError(f"{path}: two defect kinds share a pixel_value; each needs its own")
    return by_value


def _defect_of(path: Path, config: Mapping[int, DefectSpec]) -> tuple[np.ndarray, DefectSpec]:
    """A mask file's pixels (bool) and its defect kind, from its one non-zero grey value."""
    values = _decode(path, "mask", lambda image: np.asarray(image.convert("L")))
    present = np.unique(values[values > 0])
    if present.size != 1 or int(present[0]) not in config:
        known = ", ".join(f"{v} ({s.name})" for v, s in sorted(config.items()))
        raise DataError(
            f"the mask {path} holds the non-zero values {present.tolist()}: a LOCO mask file is one defect, all "
            f"its pixels one pixel_value of {DEFECTS_CONFIG} ({known})"
        )
    return values > 0, config[int(present[0])]


def read_regions(sample: Sample, prep: Preprocessing, config: Mapping[int, DefectSpec]) -> tuple[Region, ...]:
    """The sample's defects, one Region per mask file, in the images' geometry (crop x crop); () when good."""
    if not sample.masks:
        return ()
    width, height = _image_size(sample.image)
    scale = prep.resize / min(width, height)
    regions = []
    for path in sample.masks:
        pixels, spec = _defect_of(path, config)
        if pixels.shape != (height, width):
            raise DataError(f"the mask {path} is not the size of its image {sample.image} ({width}x{height})")
        image = Image.fromarray(pixels.astype(np.uint8) * 255)
        mask = np.asarray(_geometry(image, prep, Image.Resampling.NEAREST)) > 0
        area = int(mask.sum())
        if area == 0:
            raise DataError(
                f"the defect in {path} lies outside the centre crop ({prep.crop} of {prep.resize}): sPRO cannot "
                "score it; evaluate with Preprocessing(crop=resize) to keep the whole image"
            )
        saturation = max(1, saturation_area(area, spec, scale))
        regions.append(Region(mask=mask, saturation=saturation, defect=spec.name))
    return tuple(regions)


def category_regions(category: Category, prep: Preprocessing) -> list[tuple[Region, ...]]:
    """Regions of every test sample of a LOCO-layout category, in `category.test` order."""
    config = read_defects_config(category.root)
    return [read_regions(sample, prep, config) for sample in category.test]
