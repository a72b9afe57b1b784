"""Locally aware patch features for a list of images: backbone maps (cached on disk) -> PatchCore embedding.

`FeatureSettings` holds everything that changes the features. The backbone part of it (backbone,
weights, preprocessing, precision) keys the on-disk cache of layer maps, one entry per image and layer; the aggregation part
(neighbourhood size `patch_size`, `pre_dim`, `target_dim`) is applied to the cached maps on every call,
which takes milliseconds, so ablations over it cost no backbone pass.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from adlib.data.datasets import Preprocessing, Sample, read_batch
from adlib.data.transforms import sample_digest
from adlib.features.backbones import BACKBONES, load_backbone
from adlib.features.cache import FeatureCache, default_cache_root
from adlib.features.patches import locally_aware_features

PRECISIONS = ("fp32", "bf16")
PROFILES = ("synthetic", "paper")


@dataclass(frozen=True)
class FeatureSettings:
    """What a patch feature depends on. Defaults: the offline `synthetic` profile (EfficientNet-Lite0)."""

    backbone: str = "efficientnet-lite0"
    layers: tuple[str, ...] = ("layer2", "layer3")
    weights: str | None = "imagenet"  # 'imagenet', a state-dict file, or None for a random init
    init_seed: int = 0  # seeds the random init; only allowed with weights=None
    precision: str = "fp32"  # 'bf16' runs the backbone under bf16 autocast with channels_last
    preprocessing: Preprocessing = field(default_factory=lambda: Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3))
    patch_size: int = 3  # neighbourhood p of the local aggregation
    pre_dim: int = 1024  # each layer's p*p*C vector is pooled to this
    target_dim: int = 1024  # the stacked layers are pooled to this

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.weights is not None and self.init_seed != 0:
            raise ValueError(f"init_seed={self.init_seed} only applies with weights=None (a random init)")
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size={self.patch_size}: use an odd neighbourhood size (1, 3, 5, ...)")
        if self.pre_dim < 1 or self.target_dim < 1:
            raise ValueError(f"pre_dim={self.pre_dim}, target_dim={self.target_dim}: must be positive")

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> FeatureSettings:
        """The inverse of `dataclasses.asdict` after a JSON round trip (lists back to tuples)."""
        values = dict(values)
        preprocessing = {k: tuple(v) if isinstance(v, list) else v for k, v in values.pop("preprocessing").items()}
        return cls(**values, preprocessing=Preprocessing(**preprocessing))

    def cache_config(self) -> dict[str, object]:
        """The settings that change a cached layer map (the weights enter as the loaded tag; the layer is
        part of each entry's name, so extractors of other layer sets share the maps they have in common)."""
        return {
            "backbone": self.backbone,
            "precision": self.precision,
            "preprocessing": dataclasses.asdict(self.preprocessing),
        }


def profile_settings(profile: str) -> FeatureSettings:
    """The feature settings of a profile: `synthetic` (offline, EfficientNet-Lite0) or `paper` (WRN-50)."""
    if profile == "synthetic":
        return FeatureSettings()
    if profile == "paper":
        return FeatureSettings(backbone="wide_resnet50_2", preprocessing=Preprocessing())
    raise ValueError(f"profile={profile!r}: choose one of {', '.join(PROFILES)}")


@dataclass(frozen=True)
class PatchEmbedding:
    """Patch features of N images on an H x W grid; row h*W + w of an image is grid cell (h, w)."""

    features: torch.Tensor  # [N, H*W, D]
    grid: tuple[int, int]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fixed_shape(batch: torch.Tensor, size: int) -> torch.Tensor:
    """`batch` [n, ...] padded to [size, ...] with copies of its last row (the rows past n are to be dropped).

    Every backbone and aggregation call then sees one tensor shape, so the kernels a library picks for a
    shape (oneDNN chooses by batch size on some CPUs) are the same for every image, and an image's float
    bits do not depend on how many images shared its batch: not on the set's size, nor on which images
    the feature cache already held."""
    missing = size - len(batch)
    if missing <= 0:
        return batch
    return torch.cat([batch, batch[-1:].expand(missing, *batch.shape[1:])])


class FeatureExtractor:
    """Computes (or loads from the cache) backbone maps and turns them into patch features.

    `embed` remembers its last `RECENT` results (by the images' content digests): a grid runs its methods
    one after the other on the same training and test images with one shared extractor, and pooling the
    cached maps again was a fifth of `make reproduce`'s feature time. An image's features depend on that
    image alone (fixed batch shapes), so a remembered result is the number a fresh one would be."""

    RECENT = 2  # a training and a test set

    def __init__(
        self,
        settings: FeatureSettings,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        batch_size: int = 4,
        channels_last: bool = True,
    ):
        """`channels_last` runs the fp32 backbone on channels-last (NHWC) tensors: the same maps up to float
        rounding (tests/test_features_memory_format.py), so it is not part of the cache key. Both defaults
        are the fastest `make bench` measured (benchmarks/NOTES.md). bf16 always runs channels-last."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        self.settings = settings
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_size = batch_size
        self.channels_last = channels_last or settings.precision == "bf16"
        loaded = load_backbone(settings.backbone, settings.layers, settings.weights, settings.init_seed)
        self.weights_tag = loaded.weights_tag
        self.model = loaded.model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.cache = None
        if use_cache:
            config = dict(settings.cache_config(), weights=self.weights_tag)
            self.cache = FeatureCache(cache_dir if cache_dir is not None else default_cache_root(), config)
        self._recent: OrderedDict[tuple[str, ...], PatchEmbedding] = OrderedDict()  # `embed`'s last results

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        images = images.to(self.device)
        if not self.channels_last:
            return self.model(images)
        images = images.contiguous(memory_format=torch.channels_last)
        if self.settings.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                maps = self.model(images)
        else:
            maps = self.model(images)
        return {name: value.contiguous() for name, value in maps.items()}

    def layer_maps(self, samples: Sequence[Sample], progress: bool = True) -> dict[str, torch.Tensor]:
        """{layer: [N, C, h, w]} on the CPU, from the cache where possible.

        Each image's maps are copied into one preallocated tensor per layer as they arrive (a cache hit,
        or a row of a forward batch), so the maps of the whole set are held once, not once per image
        and again stacked."""
        if not samples:
            raise ValueError("no images to extract features from")
        digests = [sample_digest(s.image, s.transform) for s in samples] if self.cache else [None] * len(samples)
        return self._layer_maps(samples, digests, progress)

    def _layer_maps(
        self, samples: Sequence[Sample], digests: Sequence[str | None], progress: bool
    ) -> dict[str, torch.Tensor]:
        """`layer_maps` with the images' cache keys (`sample_digest`) already computed; unused without a cache."""
        layers = self.settings.layers
        stacked: dict[str, torch.Tensor] = {}

        def keep(index: int, maps_of_image: dict[str, torch.Tensor]) -> None:
            for layer in layers:
                value = maps_of_image[layer]
                if layer not in stacked:
                    stacked[layer] = torch.empty((len(samples), *value.shape), dtype=value.dtype)
                stacked[layer][index] = value

        missing = []
        for index, digest in enumerate(digests):
            cached = {layer: self.cache.get(digest, layer) for layer in layers} if self.cache else {}
            if cached and all(m is not None for m in cached.values()):
                keep(index, cached)
            else:
                missing.append(index)
        batches = [missing[i : i + self.batch_size] for i in range(0, len(missing), self.batch_size)]
        bar = tqdm(total=len(missing), desc=f"features {self.settings.backbone}", unit="img", disable=not progress)
        for batch in batches:
            images = fixed_shape(read_batch([samples[i] for i in batch], self.settings.preprocessing), self.batch_size)
            maps = {name: value.cpu() for name, value in self._forward(images).items()}
            for row, index in enumerate(batch):
                maps_of_image = {name: value[row] for name, value in maps.items()}
                keep(index, maps_of_image)
                if self.cache:
                    for layer in layers:
                        self.cache.put(digests[index], layer, maps_of_image[layer])
            bar.update(len(batch))
        bar.close()
        return stacked

    def embed(self, samples: Sequence[Sample], progress: bool = True) -> PatchEmbedding:
        """PatchCore's locally aware patch features of `samples`, on `self.device` (a tensor of the caller's own).

        Each batch's features are copied into one preallocated [N, P, D] tensor (the copy that also lays
        out the aggregation's transposed view), so the features are never held twice, as a list of
        batches and their concatenation: on a full training set that was the fit's peak memory."""
        if not samples:
            raise ValueError("no images to extract features from")
        digests = [sample_digest(sample.image, sample.transform) for sample in samples]  # a transformed copy: its own
        key = tuple(digests)
        if key in self._recent:
            self._recent.move_to_end(key)
            remembered = self._recent[key]
            return PatchEmbedding(remembered.features.clone(), remembered.grid)
        maps = self._layer_maps(samples, digests, progress)
        s = self.settings
        features: torch.Tensor | None = None
        for start in range(0, len(samples), self.batch_size):
            chunk = [
                fixed_shape(maps[layer][start : start + self.batch_size], self.batch_size).to(self.device)
                for layer in s.layers
            ]
            with torch.inference_mode():
                part = locally_aware_features(chunk, s.patch_size, s.pre_dim, s.target_dim)
            part = part[: min(self.batch_size, len(samples) - start)]
            if features is None:  # allocated outside inference mode: callers may change it in place
                features = torch.empty((len(samples), *part.shape[1:]), dtype=part.dtype, device=part.device)
            features[start : start + len(part)] = part
        grid = tuple(maps[s.layers[0]].shape[-2:])
        self._recent[key] = PatchEmbedding(features.clone(), grid)  # a copy: the caller may change its own
        while len(self._recent) > self.RECENT:
            self._recent.popitem(last=False)
        return PatchEmbedding(features, grid)
