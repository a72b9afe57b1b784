"""The papers' baselines as small detectors with PatchCore's interface: PaDiM, SPADE, image-level denoising.

Every detector here is `Detector(settings, device, cache_dir, use_cache, extractor)` with
`fit(train) -> self` and `predict(test) -> Scores` (image scores [N] and anomaly maps [N, crop, crop]
on the CPU, bilinearly upsampled and blurred with sigma `blur_sigma` as PatchCore's maps are);
PaDiM and SPADE also `save(path)` and `load(path, settings)` like PatchCore (`adlib.modelfile`).

- `PaDiM` (Defard et al. 2021): one Gaussian per position of layer1's grid over the maps of
  layer1..layer3 (deeper maps upsampled *nearest*, which is what PaDiM's code's unfold-based
  `embedding_concat` computes when the strides divide), on a seeded random subset of `channels`
  channels; test patch score = Mahalanobis distance to its position's Gaussian; image score = the
  maximum of the blurred map. PaDiM's code also rescales all test maps by their joint min/max;
  that changes no AUROC or PRO and is left out.
- `Spade` (Cohen & Hoshen 2020): the `image_k` training images nearest to the test image in the
  globally average-pooled layer4 features give the image score (their mean Euclidean distance) and
  the pixel gallery: a test position scores its Euclidean distance to the nearest feature of all
  positions of those images (kappa = 1), on layer1..layer3 concatenated after bilinear upsampling
  to layer1's grid (the paper's feature pyramid; the public SPADE-pytorch code instead scores each
  layer on its own and averages the upsampled maps).
- `ImageDenoised` (SoftPatch appendix A.4, Table 7): a PaDiM filter ("PaDiM*": PaDiM on ResNet-18,
  see `padim_star_settings`) is fitted on all training images and scores them in-sample; the top
  `drop` share is removed and a detector, PatchCore or PaDiM (Table 7's PaDiM*+PaDiM*), is fitted on
  the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from adlib.data import Preprocessing, Sample
from adlib.features import FeatureExtractor, FeatureSettings
from adlib.methods import PatchCore, PatchCoreSettings, feature_extractor
from adlib.modelfile import read_model, settings_from_dict, settings_to_dict, write_model
from adlib.scoring import NearestNeighbours, Scores, anomaly_maps

PADIM_LAYERS = ("layer1", "layer2", "layer3")
SPADE_LAYERS = ("layer1", "layer2", "layer3", "layer4")  # pixels from the first three, images from layer4
# Channels PaDiM keeps per backbone (its paper: 100 of 448 for ResNet-18, 550 of 1792 for WRN-50). The
# ResNet-50 entry (same widths as WRN-50) and the EfficientNet-Lite0 entry (176 channels) are adlib's.
PADIM_CHANNELS = {"resnet18": 100, "wide_resnet50_2": 550, "resnet50": 550, "efficientnet-lite0": 100}
_CHUNK_BYTES = 256 * 1024**2  # work memory per chunk of positions (PaDiM) or of gallery images (SPADE)


def _check_features(features: FeatureSettings, layers: tuple[str, ...], method: str, why: str) -> None:
    """`features` must name exactly `layers` and leave PatchCore's aggregation (unused here) at its defaults."""
    if not isinstance(features, FeatureSettings):
        raise TypeError(f"features={features!r}: pass an adlib.features.FeatureSettings")
    if features.layers != layers:
        raise ValueError(f"features.layers={features.layers}: {method} needs layers={layers} ({why}); "
                         f"use dataclasses.replace(features, layers={layers})")
    defaults = FeatureSettings()
    unused = [name for name in ("patch_size", "pre_dim", "target_dim")
              if getattr(features, name) != getattr(defaults, name)]
    if unused:
        raise ValueError(f"features.{', features.'.join(unused)} set, but {method} uses the raw layer maps, not "
                         "PatchCore's patch aggregation: leave them at their defaults")


def _check_blur(sigma: float) -> None:
    if sigma < 0:
        raise ValueError(f"blur_sigma={sigma}: use sigma >= 0 (0 = no blur; the papers use 4)")


# --------------------------------------------------------------------------------------------------
# PaDiM


@dataclass(frozen=True)
class PaDiMSettings:
    """Everything that changes a PaDiM model. Defaults: PaDiM's ResNet-18 choices on the synthetic profile.

    `channels`: size of the random channel subset of layer1..layer3 (PaDiM: 100 for ResNet-18, 550 for
    WRN-50; `padim_settings` picks it per backbone from `PADIM_CHANNELS`); it must not exceed the
    layers' channel total, checked in `fit` when the backbone's widths are known. `seed` draws the
    subset. `eps` regularises each covariance (eps * I; PaDiM's 0.01).
    """

    features: FeatureSettings = field(default_factory=lambda: FeatureSettings(layers=PADIM_LAYERS))
    channels: int = 100
    eps: float = 0.01
    blur_sigma: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_features(self.features, PADIM_LAYERS, "PaDiM",
                        "it models the first three stages jointly, deeper maps upsampled to layer1's grid")
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels={self.channels!r}: use a positive number of channels "
                             "(PaDiM: 100 for ResNet-18, 550 for WRN-50)")
        if not self.eps > 0:
            raise ValueError(f"eps={self.eps}: the covariance regulariser must be > 0 (PaDiM uses 0.01)")
        _check_blur(self.blur_sigma)

    def to_dict(self) -> dict[str, object]:
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> PaDiMSettings:
        return settings_from_dict(cls, values)


def padim_settings(features: FeatureSettings | None = None, seed: int = 0) -> PaDiMSettings:
    """PaDiM on `features`' backbone and preprocessing: layers 1-3 and the backbone's channel count."""
    features = dataclasses.replace(features or FeatureSettings(), layers=PADIM_LAYERS)
    if features.backbone not in PADIM_CHANNELS:
        raise ValueError(f"no PaDiM channel count for backbone {features.backbone!r}: add it to PADIM_CHANNELS "
                         "or build PaDiMSettings(features, channels=...) yourself")
    return PaDiMSettings(features=features, channels=PADIM_CHANNELS[features.backbone], seed=seed)


def padim_star_settings(weights: str | None = "imagenet", preprocessing: Preprocessing | None = None,
                        seed: int = 0) -> PaDiMSettings:
    """SoftPatch's PaDiM*: PaDiM with a ResNet-18 backbone (100 channels), PatchCore's 256 -> 224 geometry."""
    features = FeatureSettings(backbone="resnet18", layers=PADIM_LAYERS, weights=weights,
                               preprocessing=preprocessing or Preprocessing())
    return padim_settings(features, seed)


class PaDiM:
    """fit: a Gaussian per position of layer1's grid -> predict: Mahalanobis anomaly maps.

    Memory: the model holds one d x d Cholesky factor per position, float32: WRN-50 at 224 px has
    56 x 56 = 3136 positions x 550 x 550 -> 3.8 GB (ResNet-18, d = 100: 125 MB). Fitting and scoring
    run in chunks of positions of ~256 MB of work memory (one batched Cholesky / triangular solve per
    chunk), so the only other large buffer is the backbone's layer maps.
    With a single training image the sample covariance (normalised by N - 1) is undefined; it is taken
    as 0 there, so the model is eps * I around that image.
    """

    def __init__(
        self,
        settings: PaDiMSettings = PaDiMSettings(),
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        extractor: FeatureExtractor | None = None,
    ):
        self.settings = settings
        self.extractor = feature_extractor(settings.features, extractor, device, cache_dir, use_cache)
        self.channels: torch.Tensor | None = None  # indices into the concatenated layer1..3 channels
        self.mean: torch.Tensor | None = None  # [P, d]
        self.factor: torch.Tensor | None = None  # [P, d, d] lower Cholesky factors of the covariances
        self.grid: tuple[int, int] | None = None

    def fit(self, train: Sequence[Sample], progress: bool = True) -> PaDiM:
        """Per-position mean and regularised covariance of the training images' embeddings."""
        s = self.settings
        maps = self.extractor.layer_maps(train, progress)
        widths = [maps[layer].shape[1] for layer in PADIM_LAYERS]
        if s.channels > sum(widths):
            raise ValueError(
                f"channels={s.channels}, but layers {PADIM_LAYERS} of {s.features.backbone} have "
                f"{' + '.join(map(str, widths))} = {sum(widths)} channels: use channels <= {sum(widths)}"
            )
        generator = torch.Generator().manual_seed(s.seed)
        self.channels = torch.randperm(sum(widths), generator=generator)[: s.channels].sort().values
        self.grid = tuple(maps[PADIM_LAYERS[0]].shape[-2:])
        device = self.extractor.device
        n_images, dim = len(train), s.channels
        positions = self.grid[0] * self.grid[1]
        self.mean = torch.empty(positions, dim, device=device)
        self.factor = torch.empty(positions, dim, dim, device=device)
        chunk = _positions_per_chunk(n_images, dim)
        selected, sources = self._select(maps)
        for first in range(0, positions, chunk):
            group = _gather(selected, sources, first, chunk, device)  # [B, N, d]
            mean = group.mean(dim=1)
            centred = group - mean[:, None]
            covariance = centred.transpose(1, 2) @ centred / max(n_images - 1, 1)
            covariance.diagonal(dim1=1, dim2=2).add_(s.eps)
            factor, info = torch.linalg.cholesky_ex(covariance)
            if bool((info != 0).any()):
                raise ValueError(f"eps={s.eps}: a regularised covariance is not positive definite in float32 "
                                 f"(d={dim}, N={n_images}); raise eps")
            self.mean[first : first + len(group)] = mean
            self.factor[first : first + len(group)] = factor
        return self

    def _select(self, maps: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each layer's chosen channels [N, c, h*w] and, per layer1 position, its nearest source cell [P]."""
        selected, sources, offset = [], [], 0
        for layer in PADIM_LAYERS:
            values = maps[layer].float()
            n, width, h, w = values.shape
            mine = self.channels[(self.channels >= offset) & (self.channels < offset + width)] - offset
            selected.append(values[:, mine].reshape(n, len(mine), h * w))
            cells = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
            sources.append(F.interpolate(cells, size=self.grid, mode="nearest").reshape(-1).long())
            offset += width
        return selected, sources

    def patch_scores(self, test: Sequence[Sample], progress: bool = True) -> torch.Tensor:
        """Mahalanobis distance of every test position to its Gaussian, [N, H*W] on the model's device."""
        if self.factor is None:
            raise RuntimeError("PaDiM.predict before fit: fit it on nominal training images first")
        maps = self.extractor.layer_maps(test, progress)
        grid = tuple(maps[PADIM_LAYERS[0]].shape[-2:])
        if grid != self.grid:
            raise ValueError(f"test layer1 grid {grid} differs from the fitted {self.grid}: use the same preprocessing")
        selected, sources = self._select(maps)
        positions, dim = self.mean.shape
        scores = torch.empty(positions, len(test), device=self.mean.device)
        chunk = _positions_per_chunk(len(test), dim)
        for first in range(0, positions, chunk):
            group = _gather(selected, sources, first, chunk, self.mean.device)  # [B, N, d]
            last = first + len(group)
            centred = (group - self.mean[first:last, None]).transpose(1, 2).contiguous()  # [B, d, N]
            solved = torch.linalg.solve_triangular(self.factor[first:last], centred, upper=False)
            scores[first:last] = torch.linalg.vector_norm(solved, dim=1)
        return scores.t().contiguous()

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        """Image scores [N] (the maximum of each map) and anomaly maps [N, crop, crop]."""
        s = self.settings
        patch = self.patch_scores(test, progress)
        maps = anomaly_maps(patch, self.grid, s.features.preprocessing.crop, s.blur_sigma)
        return Scores(image=maps.amax(dim=(1, 2)).cpu(), maps=maps.cpu())

    def save(self, path: Path) -> None:
        """Writes the settings, the channel subset and the Gaussians atomically to one file."""
        if self.factor is None:
            raise RuntimeError("PaDiM.save before fit: there are no Gaussians to save")
        write_model(path, "padim", self.settings, self.extractor.weights_tag,
                    {"grid": list(self.grid), "channels": self.channels, "mean": self.mean.cpu(),
                     "factor": self.factor.cpu()})

    @classmethod
    def load(cls, path: Path, settings: PaDiMSettings | None = None, device: torch.device | str | None = None,
             cache_dir: Path | None = None, use_cache: bool = True) -> PaDiM:
        """Reads a saved model; with `settings`, refuses a file that was made with other settings."""
        model, state = read_model(path, "padim", PaDiMSettings.from_dict, settings,
                                  lambda stored: cls(stored, device=device, cache_dir=cache_dir, use_cache=use_cache))
        device = model.extractor.device
        model.grid, model.channels = tuple(state["grid"]), state["channels"]
        model.mean, model.factor = state["mean"].to(device), state["factor"].to(device)
        return model


def _positions_per_chunk(n_images: int, dim: int) -> int:
    """Positions per chunk within `_CHUNK_BYTES`: a few N x d groups and two d x d matrices each (float32)."""
    return max(1, _CHUNK_BYTES // (4 * (3 * n_images * dim + 2 * dim * dim)))


def _gather(selected: list[torch.Tensor], sources: list[torch.Tensor], first: int, chunk: int,
            device: torch.device) -> torch.Tensor:
    """The embeddings of positions first..first+chunk of every image, [B, N, d], on `device`."""
    parts = [values[:, :, source[first : first + chunk]] for values, source in zip(selected, sources)]
    return torch.cat(parts, dim=1).to(device).permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------------------
# SPADE


@dataclass(frozen=True)
class SpadeSettings:
    """Everything that changes a SPADE model. Defaults: SPADE's K = 50 on the synthetic profile.

    `image_k`: training images retrieved per test image; with fewer training images all of them are
    used (K = min(image_k, N_train), e.g. in low-shot runs). SPADE has no random step: `seed` is
    accepted for the detectors' shared interface (the experiment runner seeds its data draws with
    it) and changes nothing here.
    """

    features: FeatureSettings = field(default_factory=lambda: FeatureSettings(layers=SPADE_LAYERS))
    image_k: int = 50
    blur_sigma: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_features(self.features, SPADE_LAYERS, "SPADE",
                        "layer1..layer3 form the pixel features, layer4 pooled the image feature")
        if isinstance(self.image_k, bool) or not isinstance(self.image_k, int) or self.image_k < 1:
            raise ValueError(f"image_k={self.image_k!r}: retrieve at least 1 training image (SPADE: 50)")
        _check_blur(self.blur_sigma)

    def to_dict(self) -> dict[str, object]:
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SpadeSettings:
        return settings_from_dict(cls, values)


@dataclass(frozen=True)
class SpadeDistances:
    """SPADE's raw scores of N test images, before upsampling and blurring."""

    image: torch.Tensor  # [N] mean distance to the K nearest training images (pooled layer4)
    patch: torch.Tensor  # [N, H*W] distance of each position to its nearest gallery feature
    neighbours: torch.Tensor  # [N, K] indices of the retrieved training images, nearest first


class Spade:
    """fit: keep the training images' feature maps -> predict: image kNN, then pixel kNN in the K retrieved.

    Memory: the training maps of all four layers stay on the device (WRN-50 at 224 px: ~5.6 MB per
    image); per test image the gallery is built in chunks of images of ~256 MB (WRN-50 at 224 px:
    K = 50 images x 3136 positions x 1792 channels = 1.1 GB in all, searched 11 images at a time).
    """

    def __init__(
        self,
        settings: SpadeSettings = SpadeSettings(),
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        extractor: FeatureExtractor | None = None,
    ):
        self.settings = settings
        self.extractor = feature_extractor(settings.features, extractor, device, cache_dir, use_cache)
        self.train_maps: list[torch.Tensor] | None = None  # layer1..layer3 maps [N, C, h, w]
        self.train_pooled: torch.Tensor | None = None  # [N, C4]
        self.grid: tuple[int, int] | None = None

    @property
    def k(self) -> int:
        """The K used: `image_k`, capped at the number of training images."""
        if self.train_pooled is None:
            raise RuntimeError("Spade.k before fit: K depends on the training set size")
        return min(self.settings.image_k, len(self.train_pooled))

    def fit(self, train: Sequence[Sample], progress: bool = True) -> Spade:
        maps = self.extractor.layer_maps(train, progress)
        device = self.extractor.device
        self.train_maps = [maps[layer].float().to(device) for layer in SPADE_LAYERS[:3]]
        self.train_pooled = maps[SPADE_LAYERS[3]].float().to(device).mean(dim=(2, 3))
        self.grid = tuple(maps[SPADE_LAYERS[0]].shape[-2:])
        return self

    def distances(self, test: Sequence[Sample], progress: bool = True) -> SpadeDistances:
        """Image scores, per-position distances [N, H*W] and the retrieved training images."""
        if self.train_pooled is None:
            raise RuntimeError("Spade.predict before fit: fit it on nominal training images first")
        maps = self.extractor.layer_maps(test, progress)
        device = self.train_pooled.device
        grid = tuple(maps[SPADE_LAYERS[0]].shape[-2:])
        if grid != self.grid:
            raise ValueError(f"test layer1 grid {grid} differs from the fitted {self.grid}: use the same preprocessing")
        pooled = maps[SPADE_LAYERS[3]].float().to(device).mean(dim=(2, 3))
        squared, neighbours = NearestNeighbours(self.train_pooled).search(pooled, self.k)
        image = squared.sqrt().mean(dim=1)
        test_maps = [maps[layer].float() for layer in SPADE_LAYERS[:3]]
        dim = sum(m.shape[1] for m in self.train_maps)
        per_chunk = max(1, _CHUNK_BYTES // (4 * grid[0] * grid[1] * dim))
        patch = torch.empty(len(test), grid[0] * grid[1], device=device)
        for row in tqdm(range(len(test)), desc="SPADE pixel kNN", unit="img", disable=not progress):
            query = _pyramid([m[row : row + 1].to(device) for m in test_maps], grid)[0]  # [P, D]
            best = torch.full((len(query),), float("inf"), device=device)
            for images in neighbours[row].split(per_chunk):
                gallery = _pyramid([m[images] for m in self.train_maps], grid).reshape(-1, dim)
                nearest, _ = NearestNeighbours(gallery).search(query, 1)
                best = torch.minimum(best, nearest[:, 0].to(device))
            patch[row] = best.sqrt()
        return SpadeDistances(image=image, patch=patch, neighbours=neighbours)

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        """Image scores [N] (mean kNN distance) and anomaly maps [N, crop, crop]."""
        s = self.settings
        found = self.distances(test, progress)
        maps = anomaly_maps(found.patch, self.grid, s.features.preprocessing.crop, s.blur_sigma)
        return Scores(image=found.image.cpu(), maps=maps.cpu())

    def save(self, path: Path) -> None:
        """Writes the settings and the training images' layer maps atomically to one file."""
        if self.train_pooled is None:
            raise RuntimeError("Spade.save before fit: there are no training maps to save")
        write_model(path, "spade", self.settings, self.extractor.weights_tag,
                    {"grid": list(self.grid), "train_maps": [m.cpu() for m in self.train_maps],
                     "train_pooled": self.train_pooled.cpu()})

    @classmethod
    def load(cls, path: Path, settings: SpadeSettings | None = None, device: torch.device | str | None = None,
             cache_dir: Path | None = None, use_cache: bool = True) -> Spade:
        """Reads a saved model; with `settings`, refuses a file that was made with other settings."""
        model, state = read_model(path, "spade", SpadeSettings.from_dict, settings,
                                  lambda stored: cls(stored, device=device, cache_dir=cache_dir, use_cache=use_cache))
        device = model.extractor.device
        model.grid = tuple(state["grid"])
        model.train_maps = [m.to(device) for m in state["train_maps"]]
        model.train_pooled = state["train_pooled"].to(device)
        return model


def _pyramid(maps: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
    """Layer maps [n, C_l, h_l, w_l] -> [n, H*W, sum C_l]: bilinearly upsampled to `grid`, concatenated."""
    resized = [m if tuple(m.shape[-2:]) == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
               for m in maps]
    return torch.cat(resized, dim=1).flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------------------------------
# Image-level denoising (SoftPatch Table 7)


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
            raise TypeError(f"detector={type(self.detector).__name__}: pass PatchCoreSettings (PatchCore, KC or SP) "
                            "or PaDiMSettings")
        if not 0 <= self.drop < 1:
            raise ValueError(f"drop={self.drop}: the share of training images to remove must be in [0, 1) "
                             "(SoftPatch: 0.15)")
        object.__setattr__(self, "filter", dataclasses.replace(self.filter, seed=self.seed))
        object.__setattr__(self, "detector", dataclasses.replace(self.detector, seed=self.seed))

    @property
    def features(self) -> FeatureSettings:
        return self.detector.features

    def to_dict(self) -> dict[str, object]:
        return settings_to_dict(self)


class ImageDenoised:
    """fit: PaDiM scores the training images in-sample, the top `drop` share leaves, the detector fits the rest.

    A caveat of in-sample scoring: with no more training images N than PaDiM channels, every image
    lies at the same Mahalanobis distance (N - 1) / sqrt(N) from its own position's Gaussian when
    eps = 0, so the ranking comes only from the eps * I regulariser (e.g. 88 noisy training images
    with 100 channels). It still ranked the injected images first on the embedded benchmark, but
    nothing guarantees that; use fewer channels than images where the filter must be trusted.
    """

    def __init__(
        self,
        settings: ImageDenoisedSettings = ImageDenoisedSettings(),
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        extractor: FeatureExtractor | None = None,
    ):
        self.settings = settings
        detector_extractor = feature_extractor(settings.features, extractor, device, cache_dir, use_cache)
        filter_extractor = detector_extractor if settings.filter.features == settings.features else None
        self.filter = PaDiM(settings.filter, device=device, cache_dir=cache_dir, use_cache=use_cache,
                            extractor=filter_extractor)
        detector = PatchCore if isinstance(settings.detector, PatchCoreSettings) else PaDiM
        self.detector = detector(settings.detector, device=device, cache_dir=cache_dir, use_cache=use_cache,
                                 extractor=detector_extractor)
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
