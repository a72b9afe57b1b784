"""SPADE (Cohen & Hoshen 2020): image kNN in pooled layer4 features, then pixel kNN in the retrieved images.

The `image_k` training images nearest to the test image in the globally average-pooled layer4 features
give the image score (their mean Euclidean distance) and the pixel gallery: a test position scores its
Euclidean distance to the nearest feature of all positions of those images (kappa = 1), on
layer1..layer3 concatenated after bilinear upsampling to layer1's grid (the paper's feature pyramid;
the public SPADE-pytorch code instead scores each layer on its own and averages the upsampled maps).
Maps are bilinearly upsampled and blurred as PatchCore's are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from adlib.bank.scoring import Scores, anomaly_maps
from adlib.bank.search import NearestNeighbours
from adlib.data.datasets import Sample
from adlib.detectors.base import Detector, Settings, check_blur, check_layer_features
from adlib.detectors.options import Option
from adlib.features.extractor import FeatureSettings

SPADE_LAYERS = ("layer1", "layer2", "layer3", "layer4")  # pixels from the first three, images from layer4
_CHUNK_BYTES = 256 * 1024**2  # work memory per chunk of gallery images


@dataclass(frozen=True)
class SpadeSettings(Settings):
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
        check_layer_features(
            self.features,
            SPADE_LAYERS,
            "SPADE",
            "layer1..layer3 form the pixel features, layer4 pooled the image feature",
        )
        if isinstance(self.image_k, bool) or not isinstance(self.image_k, int) or self.image_k < 1:
            raise ValueError(f"image_k={self.image_k!r}: retrieve at least 1 training image (SPADE: 50)")
        check_blur(self.blur_sigma)


# SPADE's command-line option, by the settings field it sets.
SPADE_OPTIONS = {"image_k": Option("--image-k", "SPADE: training images retrieved per test image", int, 50)}


def spade_settings(features: FeatureSettings | None = None, image_k: int = 50) -> SpadeSettings:
    """SPADE on `features`' backbone and preprocessing: layers 1-4, `image_k` retrieved training images."""
    features = dataclasses.replace(features or FeatureSettings(), layers=SPADE_LAYERS)
    return SpadeSettings(features=features, image_k=image_k)


@dataclass(frozen=True)
class SpadeDistances:
    """SPADE's raw scores of N test images, before upsampling and blurring."""

    image: torch.Tensor  # [N] mean distance to the K nearest training images (pooled layer4)
    patch: torch.Tensor  # [N, H*W] distance of each position to its nearest gallery feature
    neighbours: torch.Tensor  # [N, K] indices of the retrieved training images, nearest first


class Spade(Detector):
    """fit: keep the training images' feature maps -> predict: image kNN, then pixel kNN in the K retrieved.

    Memory: the training maps of all four layers stay on the device (WRN-50 at 224 px: ~5.6 MB per
    image); per test image the gallery is built in chunks of images of ~256 MB (WRN-50 at 224 px:
    K = 50 images x 3136 positions x 1792 channels = 1.1 GB in all, searched 11 images at a time).
    """

    method = "spade"
    settings_type = SpadeSettings
    options = SPADE_OPTIONS

    settings: SpadeSettings
    # The fitted state (None before fit):
    train_maps: list[torch.Tensor] | None = None  # layer1..layer3 maps [N, C, h, w]
    train_pooled: torch.Tensor | None = None  # [N, C4]
    grid: tuple[int, int] | None = None

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

    def state(self) -> dict[str, object]:
        if self.train_pooled is None:
            raise RuntimeError("Spade.save before fit: there are no training maps to save")
        return {
            "grid": list(self.grid),
            "train_maps": [m.cpu() for m in self.train_maps],
            "train_pooled": self.train_pooled.cpu(),
        }

    def set_state(self, state: dict[str, object]) -> None:
        device = self.extractor.device
        self.grid = tuple(state["grid"])
        self.train_maps = [m.to(device) for m in state["train_maps"]]
        self.train_pooled = state["train_pooled"].to(device)


def _pyramid(maps: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
    """Layer maps [n, C_l, h_l, w_l] -> [n, H*W, sum C_l]: bilinearly upsampled to `grid`, concatenated."""
    resized = [
        m if tuple(m.shape[-2:]) == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
        for m in maps
    ]
    return torch.cat(resized, dim=1).flatten(2).transpose(1, 2)
