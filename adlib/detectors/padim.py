"""PaDiM (Defard et al. 2021): one Gaussian per position of layer1's grid, Mahalanobis anomaly maps.

The Gaussians model layer1..layer3 jointly (deeper maps upsampled *nearest*, which is what PaDiM's
code's unfold-based `embedding_concat` computes when the strides divide), on a seeded random subset of
`channels` channels; test patch score = Mahalanobis distance to its position's Gaussian
(`adlib.bank.denoise.mahalanobis`, shared with SoftPatch's Gaussian discriminator); image score = the
maximum of the blurred map. PaDiM's code also rescales all test maps by their joint min/max; that
changes no AUROC or PRO and is left out. Maps are bilinearly upsampled and blurred as PatchCore's are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from adlib.bank.denoise import gaussian_factors, mahalanobis, positions_per_chunk
from adlib.bank.scoring import Scores, anomaly_maps
from adlib.data.datasets import Preprocessing, Sample
from adlib.detectors.base import Detector, Settings, check_blur, check_layer_features
from adlib.detectors.options import Option
from adlib.features.extractor import FeatureSettings

PADIM_LAYERS = ("layer1", "layer2", "layer3")
# Channels PaDiM keeps per backbone (its paper: 100 of 448 for ResNet-18, 550 of 1792 for WRN-50). The
# ResNet-50 entry (same widths as WRN-50) and the EfficientNet-Lite0 entry (176 channels) are adlib's.
PADIM_CHANNELS = {"resnet18": 100, "wide_resnet50_2": 550, "resnet50": 550, "efficientnet-lite0": 100}
_CHUNK_BYTES = 256 * 1024**2  # work memory per chunk of positions


@dataclass(frozen=True)
class PaDiMSettings(Settings):
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
        check_layer_features(
            self.features,
            PADIM_LAYERS,
            "PaDiM",
            "it models the first three stages jointly, deeper maps upsampled to layer1's grid",
        )
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(
                f"channels={self.channels!r}: use a positive number of channels "
                "(PaDiM: 100 for ResNet-18, 550 for WRN-50)"
            )
        if not self.eps > 0:
            raise ValueError(f"eps={self.eps}: the covariance regulariser must be > 0 (PaDiM uses 0.01)")
        check_blur(self.blur_sigma)


# PaDiM's command-line option, by the settings field it sets (the image-denoising filter's too).
CHANNELS = Option(
    "--channels", "PaDiM (and the image-denoising filter): random channel subset (default per backbone)", int
)
PADIM_OPTIONS = {"channels": CHANNELS}


def padim_settings(
    features: FeatureSettings | None = None, channels: int | None = None, seed: int = 0
) -> PaDiMSettings:
    """PaDiM on `features`' backbone and preprocessing: layers 1-3 and `channels` channels (default: the
    backbone's count in `PADIM_CHANNELS`)."""
    features = dataclasses.replace(features or FeatureSettings(), layers=PADIM_LAYERS)
    if channels is None and features.backbone not in PADIM_CHANNELS:
        raise ValueError(
            f"no PaDiM channel count for backbone {features.backbone!r}: add it to PADIM_CHANNELS "
            "or build PaDiMSettings(features, channels=...) yourself"
        )
    channels = PADIM_CHANNELS[features.backbone] if channels is None else channels
    return PaDiMSettings(features=features, channels=channels, seed=seed)


def padim_star_settings(
    weights: str | None = "imagenet", preprocessing: Preprocessing | None = None, seed: int = 0
) -> PaDiMSettings:
    """SoftPatch's PaDiM*: PaDiM with a ResNet-18 backbone (100 channels), PatchCore's 256 -> 224 geometry."""
    features = FeatureSettings(
        backbone="resnet18", layers=PADIM_LAYERS, weights=weights, preprocessing=preprocessing or Preprocessing()
    )
    return padim_settings(features, seed=seed)


class PaDiM(Detector):
    """fit: a Gaussian per position of layer1's grid -> predict: Mahalanobis anomaly maps.

    Memory: the model holds one d x d Cholesky factor per position, float32: WRN-50 at 224 px has
    56 x 56 = 3136 positions x 550 x 550 -> 3.8 GB (ResNet-18, d = 100: 125 MB). Fitting and scoring
    run in chunks of positions of ~256 MB of work memory (one batched Cholesky / triangular solve per
    chunk), so the only other large buffer is the backbone's layer maps.
    With a single training image the sample covariance (normalised by N - 1) is undefined; it is taken
    as 0 there, so the model is eps * I around that image.
    """

    method = "padim"
    settings_type = PaDiMSettings
    options = PADIM_OPTIONS

    settings: PaDiMSettings
    # The fitted state (None before fit):
    channels: torch.Tensor | None = None  # indices into the concatenated layer1..3 channels
    mean: torch.Tensor | None = None  # [P, d]
    factor: torch.Tensor | None = None  # [P, d, d] lower Cholesky factors of the covariances
    grid: tuple[int, int] | None = None

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
            factor = gaussian_factors(group - mean[:, None], s.eps, "raise eps")
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
            scores[first:last] = mahalanobis(group - self.mean[first:last, None], self.factor[first:last])
        return scores.t().contiguous()

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        """Image scores [N] (the maximum of each map) and anomaly maps [N, crop, crop]."""
        s = self.settings
        patch = self.patch_scores(test, progress)
        maps = anomaly_maps(patch, self.grid, s.features.preprocessing.crop, s.blur_sigma)
        return Scores(image=maps.amax(dim=(1, 2)).cpu(), maps=maps.cpu())

    def state(self) -> dict[str, object]:
        if self.factor is None:
            raise RuntimeError("PaDiM.save before fit: there are no Gaussians to save")
        return {
            "grid": list(self.grid),
            "channels": self.channels,
            "mean": self.mean.cpu(),
            "factor": self.factor.cpu(),
        }

    def set_state(self, state: dict[str, object]) -> None:
        device = self.extractor.device
        self.grid, self.channels = tuple(state["grid"]), state["channels"]
        self.mean, self.factor = state["mean"].to(device), state["factor"].to(device)


def _positions_per_chunk(n_images: int, dim: int) -> int:
    """Positions per chunk within `_CHUNK_BYTES`: a few N x d groups and two d x d matrices each (float32)."""
    return positions_per_chunk(_CHUNK_BYTES, 3 * n_images * dim + 2 * dim * dim, 4)


def _gather(
    selected: list[torch.Tensor], sources: list[torch.Tensor], first: int, chunk: int, device: torch.device
) -> torch.Tensor:
    """The embeddings of positions first..first+chunk of every image, [B, N, d], on `device`."""
    parts = [values[:, :, source[first : first + chunk]] for values, source in zip(selected, sources)]
    return torch.cat(parts, dim=1).to(device).permute(2, 0, 1).contiguous()
