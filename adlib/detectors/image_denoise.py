"""Image-level denoising (SoftPatch appendix A.4, Table 7), beside SoftPatch's patch-level `adlib.bank.denoise`.

A PaDiM filter ("PaDiM*": PaDiM on ResNet-18, see `adlib.detectors.padim.padim_star_settings`) is fitted on all
training images and scores them in-sample; the top `drop` share is removed and a detector, PatchCore or
PaDiM (Table 7's PaDiM*+PaDiM*), is fitted on the rest. It saves and loads like every detector: one
file with both fitted models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adlib.bank.scoring import Scores
from adlib.data.datasets import Sample
from adlib.detectors.base import Detector
from adlib.detectors.modelfile import settings_to_dict
from adlib.detectors.options import Option
from adlib.detectors.padim import CHANNELS, PaDiM, PaDiMSettings, padim_settings
from adlib.detectors.patchcore import PATCHCORE_OPTIONS, PatchCore, PatchCoreSettings
from adlib.features.extractor import FeatureExtractor, FeatureSettings


@dataclass(frozen=True)
class ImageDenoisedSettings:
    """A PaDiM filter that removes the worst training images, then a PatchCore or PaDiM detector on the rest.

    `drop`: share of the training images removed: the int(drop * N) highest-scoring ones (rounded
    down, like the noise protocol's int(ratio * N); ties broken by training-set order). SoftPatch's
    Table 7 drops 0.15 (and tried 0.1). `seed` is the one seed of the pipeline: it is written into
    both sub-settings, whose own `seed` fields are overwritten, so `dataclasses.replace(settings,
    seed=s)` (what the experiment runner does) reseeds the filter's channel draw and the detector's
    sampler together. `features` (for the runner's masks and a shared extractor) are the detector's.
    """

    filter: PaDiMSettings = field(default_factory=PaDiMSettings)
    detector: PatchCoreSettings | PaDiMSettings = field(default_factory=PatchCoreSettings)
    drop: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.filter, PaDiMSettings):
            raise TypeError(f"filter={type(self.filter).__name__}: the image filter is PaDiM, pass PaDiMSettings")
        if not isinstance(self.detector, (PatchCoreSettings, PaDiMSettings)):
            raise TypeError(
                f"detector={type(self.detector).__name__}: pass PatchCoreSettings (PatchCore, KC or SP) "
                "or PaDiMSettings"
            )
        if not 0 <= self.drop < 1:
            raise ValueError(
                f"drop={self.drop}: the share of training images to remove must be in [0, 1) (SoftPatch: 0.15)"
            )
        object.__setattr__(self, "filter", dataclasses.replace(self.filter, seed=self.seed))
        object.__setattr__(self, "detector", dataclasses.replace(self.detector, seed=self.seed))

    @property
    def features(self) -> FeatureSettings:
        return self.detector.features

    def to_dict(self) -> dict[str, object]:
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> ImageDenoisedSettings:
        values = dict(values)
        detector = values.pop("detector")
        detector_type = PatchCoreSettings if "coreset_ratio" in detector else PaDiMSettings  # PaDiM has no coreset
        return cls(
            filter=PaDiMSettings.from_dict(values.pop("filter")), detector=detector_type.from_dict(detector), **values
        )


# The command-line options, by the settings field each sets: PatchCore's reach the detector (the registry's
# image-denoised method has a PatchCore one), --channels the PaDiM filter.
IMAGE_DENOISED_OPTIONS = {
    **{f"detector.{path}": option for path, option in PATCHCORE_OPTIONS.items()},
    "filter.channels": CHANNELS,
    "drop": Option(
        "--drop", "image-denoised-patchcore: share of training images the PaDiM filter removes", float, 0.15
    ),
}


def image_denoised_settings(
    features: FeatureSettings | None = None,
    detector: PatchCoreSettings | None = None,
    drop: float = 0.15,
    channels: int | None = None,
) -> ImageDenoisedSettings:
    """A PaDiM filter on `features`' backbone (`channels`: see `padim_settings`) dropping the top `drop`
    share of the training images, then `detector` (default: PatchCore on `features`) on the rest."""
    features = features or FeatureSettings()
    base = dataclasses.replace(features, patch_size=FeatureSettings().patch_size)  # PaDiM reads raw layer maps
    return ImageDenoisedSettings(
        filter=padim_settings(base, channels=channels),
        detector=detector or PatchCoreSettings(features=features),
        drop=drop,
    )


class ImageDenoised(Detector):
    """fit: PaDiM scores the training images in-sample, the top `drop` share leaves, the detector fits the rest.

    A caveat of in-sample scoring: with no more training images N than PaDiM channels, every image
    lies at the same Mahalanobis distance (N - 1) / sqrt(N) from its own position's Gaussian when
    eps = 0, so the ranking comes only from the eps * I regulariser (e.g. 88 noisy training images
    with 100 channels). It still ranked the injected images first on the embedded benchmark, but
    nothing guarantees that; use fewer channels than images where the filter must be trusted.
    """

    method = "image_denoised"
    settings_type = ImageDenoisedSettings
    options = IMAGE_DENOISED_OPTIONS
    takes_backend = True  # its detector's (PatchCore's memory-bank search; a PaDiM detector refuses one)

    def __init__(
        self,
        settings: ImageDenoisedSettings | None = None,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        extractor: FeatureExtractor | None = None,
        backend: str = "auto",
    ):
        super().__init__(settings, device, cache_dir, use_cache, extractor, backend)  # self.extractor: the detector's
        settings = self.settings
        filter_extractor = self.extractor if settings.filter.features == settings.features else None
        self.filter = PaDiM(
            settings.filter, device=device, cache_dir=cache_dir, use_cache=use_cache, extractor=filter_extractor
        )
        detector = PatchCore if isinstance(settings.detector, PatchCoreSettings) else PaDiM
        self.detector = detector(
            settings.detector,
            device=device,
            cache_dir=cache_dir,
            use_cache=use_cache,
            extractor=self.extractor,
            backend=backend,
        )
        self.train_scores: torch.Tensor | None = None  # [N] the filter's in-sample image scores
        self.dropped: tuple[Path, ...] = ()

    def fit(self, train: Sequence[Sample], progress: bool = True) -> ImageDenoised:
        train = tuple(train)
        self.filter.fit(train, progress)
        self.train_scores = self.filter.predict(train, progress).image
        count = int(self.settings.drop * len(train))
        order = torch.argsort(self.train_scores, descending=True, stable=True)
        removed = set(order[:count].tolist())
        self.dropped = tuple(train[i].image for i in sorted(removed))
        self.detector.fit([sample for i, sample in enumerate(train) if i not in removed], progress)
        return self

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        if self.train_scores is None:
            raise RuntimeError("ImageDenoised.predict before fit: fit it on the (noisy) training images first")
        return self.detector.predict(test, progress)

    def state(self) -> dict[str, object]:
        if self.train_scores is None:
            raise RuntimeError("ImageDenoised.save before fit: there is no fitted filter or detector to save")
        return {
            "filter": self.filter.state(),
            "filter_weights_tag": self.filter.extractor.weights_tag,
            "detector": self.detector.state(),
            "train_scores": self.train_scores.cpu(),
            "dropped": [str(path) for path in self.dropped],
        }

    def set_state(self, state: dict[str, object]) -> None:
        if self.filter.extractor.weights_tag != state["filter_weights_tag"]:
            raise ValueError(
                f"the PaDiM filter was fitted with backbone weights {state['filter_weights_tag']}, "
                f"but they load as {self.filter.extractor.weights_tag} here: supply the same weights file or refit"
            )
        self.filter.set_state(state["filter"])
        self.detector.set_state(state["detector"])
        self.train_scores = state["train_scores"]
        self.dropped = tuple(Path(path) for path in state["dropped"])
