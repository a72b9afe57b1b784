"""Every method by name: its settings preset and its detector class. The CLI, `adlib.evaluation.experiment` and the
notebooks read this one table.

To add a method: write its detector module (a `adlib.detectors.base.Detector` subclass with a settings
dataclass and a preset function), then add one line to `METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from adlib.detectors.base import Detector
from adlib.detectors.image_denoise import ImageDenoised, image_denoised_settings
from adlib.detectors.padim import PaDiM, padim_settings
from adlib.detectors.patchcore import PatchCore, improved_patchcore_settings, patchcore_settings, softpatch_settings
from adlib.detectors.spade import Spade, spade_settings
from adlib.features.extractor import FeatureExtractor


@dataclass(frozen=True)
class Method:
    """A named method: `preset(features, ...)` gives its settings, `detector(settings, ...)` fits them."""

    preset: Callable[..., object]
    detector: type[Detector]


METHODS = {
    "patchcore": Method(patchcore_settings, PatchCore),
    "patchcore-random": Method(partial(patchcore_settings, sampler="random"), PatchCore),
    "improved-patchcore": Method(improved_patchcore_settings, PatchCore),
    "softpatch": Method(softpatch_settings, PatchCore),
    "image-denoised-patchcore": Method(image_denoised_settings, ImageDenoised),
    "padim": Method(padim_settings, PaDiM),
    "spade": Method(spade_settings, Spade),
}


def detector_class(settings) -> type[Detector]:
    """The detector class that fits `settings` (by the settings' type)."""
    for method in METHODS.values():
        if type(settings) is method.detector.settings_type:
            return method.detector
    raise TypeError(
        f"no detector for settings of type {type(settings).__name__}: add its method to "
        "adlib.detectors.registry.METHODS"
    )


def build_detector(
    settings,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    extractor: FeatureExtractor | None = None,
    backend: str = "auto",
) -> Detector:
    """The detector that `settings` describe (its class chosen by the settings' type, `detector_class`)."""
    return detector_class(settings)(settings, device=device, cache_dir=cache_dir, extractor=extractor, backend=backend)
