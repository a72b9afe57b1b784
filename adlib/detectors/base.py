"""What every detector shares: settings -> fit(train) -> predict(test) -> Scores, and one model file.

A detector is a `Detector` subclass with a `settings_type` (a frozen settings dataclass with a
`features` field and `to_dict` / `from_dict`, see `Settings`), its command-line `options` (if any, see
`adlib.detectors.options`), a `method` name for its model files,
`fit` and `predict`, and the two halves of its fitted state: `state()` (tensors, lists, None: what
`save` writes) and `set_state(state)` (what `load` restores). The constructor, `save` and `load` live
here once, on top of `adlib.detectors.modelfile`; every detector takes the same constructor arguments,
so `adlib.detectors.registry.build_detector` builds any of them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import torch

from adlib.bank.scoring import Scores
from adlib.data.datasets import Sample
from adlib.detectors.modelfile import read_model, settings_from_dict, settings_to_dict, write_model
from adlib.detectors.options import Option
from adlib.features.extractor import FeatureExtractor, FeatureSettings


class Settings:
    """Mixin for settings dataclasses whose one nested field is `features`: to and from plain dicts."""

    def to_dict(self) -> dict[str, object]:
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]):
        return settings_from_dict(cls, values)


def feature_extractor(
    features: FeatureSettings,
    extractor: FeatureExtractor | None = None,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> FeatureExtractor:
    """`extractor` if given (lets many models share one loaded backbone; it must compute `features`),
    else a new extractor for `features`."""
    if extractor is None:
        return FeatureExtractor(features, device=device, cache_dir=cache_dir, use_cache=use_cache)
    if extractor.settings != features:
        raise ValueError(
            f"the shared feature extractor computes {extractor.settings}, but the settings ask for {features}: "
            "pass an extractor made with the same FeatureSettings, or none"
        )
    return extractor


def check_layer_features(features: FeatureSettings, layers: tuple[str, ...], method: str, why: str) -> None:
    """For detectors on raw layer maps (PaDiM, SPADE): `features` must name exactly `layers` and leave
    PatchCore's patch aggregation (unused there) at its defaults."""
    if not isinstance(features, FeatureSettings):
        raise TypeError(f"features={features!r}: pass an adlib.features.extractor.FeatureSettings")
    if features.layers != layers:
        raise ValueError(
            f"features.layers={features.layers}: {method} needs layers={layers} ({why}); "
            f"use dataclasses.replace(features, layers={layers})"
        )
    defaults = FeatureSettings()
    unused = [
        name for name in ("patch_size", "pre_dim", "target_dim") if getattr(features, name) != getattr(defaults, name)
    ]
    if unused:
        raise ValueError(
            f"features.{', features.'.join(unused)} set, but {method} uses the raw layer maps, not "
            "PatchCore's patch aggregation: leave them at their defaults"
        )


def check_blur(sigma: float) -> None:
    if sigma < 0:
        raise ValueError(f"blur_sigma={sigma}: use sigma >= 0 (0 = no blur; the papers use 4)")


class Detector:
    """fit(nominal training images) -> predict(test images) -> image scores [N] and anomaly maps [N, crop, crop]."""

    method: ClassVar[str]  # the method name written into model files
    settings_type: ClassVar[type]
    # Whether `backend` (the nearest-neighbour search engine, `adlib.bank.search.BACKENDS`) acts in this
    # detector; one without a memory-bank search refuses any backend but 'auto'.
    takes_backend: ClassVar[bool] = False
    # The command-line options that change its settings, by the (dotted) settings field each sets.
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(
        self,
        settings=None,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        extractor: FeatureExtractor | None = None,
        backend: str = "auto",
    ):
        settings = self.settings_type() if settings is None else settings
        if not isinstance(settings, self.settings_type):
            raise TypeError(f"{type(self).__name__} takes {self.settings_type.__name__}, got {type(settings).__name__}")
        if backend != "auto" and not self.takes_backend:
            raise ValueError(
                f"backend={backend!r}: {type(self).__name__} has no memory-bank search to run on it; leave it 'auto'"
            )
        self.settings = settings
        self.backend = backend
        self.extractor = feature_extractor(settings.features, extractor, device, cache_dir, use_cache)

    def fit(self, train: Sequence[Sample], progress: bool = True) -> Detector:
        raise NotImplementedError

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        raise NotImplementedError

    def state(self) -> dict[str, object]:
        """The fitted state to save (tensors on the CPU, lists, None); raises before fit."""
        raise NotImplementedError

    def set_state(self, state: dict[str, object]) -> None:
        """Restores what `state` returned (tensors arrive on the CPU)."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Writes the settings, the backbone-weights tag and the fitted state atomically to one file."""
        write_model(path, self.method, self.settings, self.extractor.weights_tag, self.state())

    @classmethod
    def load(
        cls,
        path: Path,
        settings=None,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        backend: str = "auto",
    ) -> Detector:
        """Reads a saved model; with `settings`, refuses a file that was made with other settings."""

        def build(stored) -> Detector:
            return cls(stored, device=device, cache_dir=cache_dir, use_cache=use_cache, backend=backend)

        model, state = read_model(path, cls.method, cls.settings_type.from_dict, settings, build)
        model.set_state(state)
        return model
