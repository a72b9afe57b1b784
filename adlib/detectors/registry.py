"""Every method by name: its settings preset, its detector class and a one-line summary. The CLI, the explorer,
`adlib.evaluation` and the notebooks read this one table.

To add a method: write its detector module (a `adlib.detectors.base.Detector` subclass with a settings
dataclass, a preset function and, if users may change its settings, its command-line `options`), then add
one line to `METHODS`. `python -m adlib run --method NAME` with its options, `build_detector`, the
explorer and `adlib.evaluation.experiment.run_grid` then know it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from adlib.detectors.base import Detector
from adlib.detectors.image_denoise import ImageDenoised, image_denoised_settings
from adlib.detectors.options import Option, replaced
from adlib.detectors.padim import PaDiM, padim_settings
from adlib.detectors.patchcore import PatchCore, improved_patchcore_settings, patchcore_settings, softpatch_settings
from adlib.detectors.spade import Spade, spade_settings
from adlib.features.extractor import FeatureExtractor, FeatureSettings


@dataclass(frozen=True)
class Method:
    """A named method: `preset(features)` gives its settings, `detector(settings, ...)` fits them; `summary`
    says what it is (the CLI's --method help)."""

    preset: Callable[[FeatureSettings], object]
    detector: type[Detector]
    summary: str

    @property
    def options(self) -> dict[str, Option]:
        """The command-line options that change its settings, by flag (its detector's `options`)."""
        return {option.flag: option for option in self.detector.options.values()}


METHODS = {
    "patchcore": Method(patchcore_settings, PatchCore, "PatchCore: greedy coreset bank, nearest-neighbour scores"),
    "patchcore-random": Method(
        partial(patchcore_settings, sampler="random"), PatchCore, "PatchCore with a random subset as the bank"
    ),
    "improved-patchcore": Method(improved_patchcore_settings, PatchCore, "K-means bank + cosine scores"),
    "softpatch": Method(softpatch_settings, PatchCore, "LOF denoising with soft weights"),
    "softpatch-nearest": Method(
        partial(softpatch_settings, denoise="nearest"), PatchCore, "SoftPatch with the nearest-neighbour denoiser"
    ),
    "softpatch-gaussian": Method(
        partial(softpatch_settings, denoise="gaussian"), PatchCore, "SoftPatch with the Gaussian denoiser"
    ),
    "image-denoised-patchcore": Method(
        image_denoised_settings, ImageDenoised, "a PaDiM filter drops the worst training images, then PatchCore"
    ),
    "padim": Method(padim_settings, PaDiM, "a Gaussian per position, Mahalanobis scores"),
    "spade": Method(spade_settings, Spade, "image kNN, then pixel kNN in the retrieved images"),
}


def command_line_options() -> dict[str, Option]:
    """Every option of the registry's methods, by flag, in registry order; a flag means one thing to all."""
    found: dict[str, Option] = {}
    for name, method in METHODS.items():
        for flag, option in method.options.items():
            if found.setdefault(flag, option) != option:
                raise ValueError(
                    f"{flag} of method {name!r} differs from another method's {flag}: give it another flag"
                )
    return found


def does_nothing(flags: list[str], name: str) -> str:
    """The error message for command-line options that method `name` does not read."""
    return f"{', '.join(flags)} do(es) nothing with --method {name}: drop it or choose another method"


def method_settings(name: str, features: FeatureSettings, values: Mapping[str, object] | None = None):
    """Method `name`'s settings on `features`: its preset with the command-line option `values` (flag -> value)
    set. A flag the method does not read is refused, and so is a value its settings refuse (e.g. --tau
    without denoising), naming the flags to blame: those without which the others are accepted."""
    if name not in METHODS:
        raise ValueError(f"method={name!r}: choose one of {', '.join(METHODS)}")
    method, values = METHODS[name], dict(values or {})
    unread = [flag for flag in values if flag not in method.options]
    if unread:
        raise ValueError(does_nothing(unread, name))
    preset = method.preset(features)
    try:
        return _with_options(preset, method, values)
    except ValueError as error:
        blamed = [flag for flag in values if _accepts(preset, method, {f: v for f, v in values.items() if f != flag})]
        raise ValueError(
            f"{', '.join(blamed or values)} with --method {name}: {in_flags(str(error), method)}"
        ) from error


def in_flags(message: str, method: Method) -> str:
    """A settings error in the words of the command line: each settings field that one of `method`'s options
    sets is named by its flag ('tau=0.3 only acts with denoise=...' -> '--tau 0.3 only acts with --denoise ...');
    a negating flag stands for its field set to False ('soft_weight=False' -> '--no-soft-weight')."""
    for path, option in method.detector.options.items():
        field = re.escape(path.rpartition(".")[2])
        if option.negates:
            message = re.sub(rf"(?<![-\w.]){field}=False\b", option.flag, message)
        message = re.sub(rf"(?<![-\w.]){field}=", f"{option.flag} ", message)
        message = re.sub(rf"(?<![-\w.]){field}\b(?!=)", option.flag, message)
    return message


def _with_options(settings, method: Method, values: Mapping[str, object]):
    """`settings` with the option `values` (flag -> value) set at the fields their options name."""
    options = method.detector.options.items()
    return replaced(
        settings, {path: option.field_value(values[option.flag]) for path, option in options if option.flag in values}
    )


def _accepts(settings, method: Method, values: Mapping[str, object]) -> bool:
    try:
        _with_options(settings, method, values)
    except ValueError:
        return False
    return True


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
