"""Anomaly detectors as small compositions of adlib's pieces: features -> memory bank -> scores.

`PatchCore` (Roth et al. 2022): locally aware patch features of the nominal training images, a coreset
of them as the memory bank, nearest-neighbour patch scores, the image score by Eq. 7 (or the plain
maximum), and blurred anomaly maps. The two other papers change single steps of it, so they are
settings of the same model, with presets:

- improved PatchCore (KC): `sampler="kmeans"` (PCA + K-means centroids as the bank) and
  `distance="cosine"` (1 - cosine similarity, averaged over the `top_k` most similar bank features);
  each switch works alone, for the 2 x 2 ablation of KC Table 4. `improved_patchcore_settings()`.
- SoftPatch (SP): `denoise="nearest" | "gaussian" | "lof"` scores every training patch within its
  position's group, drops the top `tau` share before the coreset, and (with `soft_weight`) keeps the
  rest's soft weights in the bank; a test patch's score is multiplied by the weight of its nearest
  bank patch. `softpatch_settings()`; `softpatch_variants()` gives one per discriminator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adlib.bank.clustering import KMeansBank
from adlib.bank.denoise import DENOISERS, denoise, outlier_scores
from adlib.bank.sampling import (
    ApproximateGreedyCoreset,
    ExactGreedyCoreset,
    LearnedProxies,
    RandomSubset,
    Sampler,
    Selector,
    coreset_size,
)
from adlib.bank.scoring import DISTANCES, Scores, anomaly_maps, reweighted_image_scores, to_distance
from adlib.bank.search import NearestNeighbours, Search
from adlib.data.datasets import Sample
from adlib.detectors.base import Detector, Settings
from adlib.detectors.options import Option
from adlib.features.extractor import FeatureExtractor, FeatureSettings, PatchEmbedding

SAMPLERS: dict[str, Sampler] = {
    "approximate_greedy": ApproximateGreedyCoreset(),
    "exact_greedy": ExactGreedyCoreset(),
    "random": RandomSubset(),
    "kmeans": KMeansBank(),  # builds new points: its bank copies no training patches
    "learned_proxies": LearnedProxies(),  # the same
}
# The sampler settings PatchCoreSettings reaches: its field -> (the sampler it acts on, that sampler's field).
# The samplers' other parameters (start points, K-means iterations, proxy batch ...) keep their defaults here.
SAMPLER_OPTIONS = {
    "projection_dim": ("approximate_greedy", "projection_dim"),
    "pca_dim": ("kmeans", "pca_dim"),
    "proxy_steps": ("learned_proxies", "steps"),
}
SEARCHES = {"exact": "flat", "ivfpq": "ivfpq"}  # PatchCoreSettings.search -> NearestNeighbours index


@dataclass(frozen=True)
class PatchCoreSettings(Settings):
    """Everything that changes a PatchCore model. Defaults: the paper's PatchCore-10 %.

    `reweight_neighbours` is b of Eq. 7 (the paper's image score; b is not stated in the paper, 9 is
    anomalib's choice); 1 scores an image by its maximum patch score, as the official code does.
    `distance` 'euclidean' is the paper's s*; 'squared' is what the official code's faiss search returns;
    'cosine' is 1 - cosine similarity, averaged over the `top_k` most similar bank features (KC).
    `denoise`, `tau`, `lof_k` and `soft_weight` are SoftPatch's; settings that would do nothing in a
    combination (e.g. `tau` without `denoise`, `top_k` without 'cosine') are rejected, not ignored.
    `projection_dim` (approximate_greedy: the random projection the coreset is picked in), `pca_dim`
    (kmeans: the PCA space K-means clusters in) and `proxy_steps` (learned_proxies: Adam steps) reach the
    sampler (`bank_sampler`); each acts with its sampler only.
    `search` 'exact' finds the nearest bank features exactly; 'ivfpq' approximately, with faiss's IVF-PQ
    as the official code's approximate mode (paper Table 5; see `adlib.bank.search.FaissIVFPQ`).
    """

    features: FeatureSettings = field(default_factory=FeatureSettings)
    coreset_ratio: float = 0.1
    sampler: str = "approximate_greedy"
    distance: str = "euclidean"
    reweight_neighbours: int = 9
    blur_sigma: float = 4.0
    seed: int = 0
    top_k: int = 1
    denoise: str | None = None
    tau: float = 0.15
    lof_k: int = 6
    soft_weight: bool = True
    search: str = "exact"
    projection_dim: int = 128
    pca_dim: int = 128
    proxy_steps: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio={self.coreset_ratio}: use a share of the patches in (0, 1]")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance={self.distance!r}: choose one of {', '.join(DISTANCES)}")
        if self.reweight_neighbours < 1:
            raise ValueError(f"reweight_neighbours={self.reweight_neighbours}: use b >= 1 (1 = plain maximum)")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma={self.blur_sigma}: use sigma >= 0 (0 = no blur)")
        if self.top_k < 1 or (self.top_k != 1 and self.distance != "cosine"):
            raise ValueError(f"top_k={self.top_k}: averaging over top_k > 1 neighbours needs distance='cosine'")
        if self.denoise is not None and self.denoise not in DENOISERS:
            raise ValueError(f"denoise={self.denoise!r}: choose None or one of {', '.join(DENOISERS)}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changed = [name for name in ("tau", "lof_k", "soft_weight") if getattr(self, name) != defaults[name]]
        if self.denoise is None and changed:
            verb = "acts" if len(changed) == 1 else "act"
            raise ValueError(f"{', '.join(changed)} only {verb} with denoise='nearest'|'gaussian'|'lof' (SoftPatch)")
        if self.lof_k != defaults["lof_k"] and self.denoise != "lof":
            raise ValueError(f"lof_k={self.lof_k} only acts with denoise='lof'")
        if not 0 <= self.tau < 1:
            raise ValueError(f"tau={self.tau}: the share of training patches to drop must be in [0, 1)")
        if self.denoise is not None and self.soft_weight and not isinstance(SAMPLERS[self.sampler], Selector):
            raise ValueError(
                "soft weights belong to kept training patches; K-means centroids and learned "
                f"proxies have none: use soft_weight=False with sampler={self.sampler!r}"
            )
        if self.search not in SEARCHES:
            raise ValueError(f"search={self.search!r}: choose one of {', '.join(SEARCHES)}")
        for option, (sampler, _) in SAMPLER_OPTIONS.items():
            if getattr(self, option) != defaults[option] and self.sampler != sampler:
                raise ValueError(f"{option}={getattr(self, option)} only acts with sampler={sampler!r}")
        self.bank_sampler  # noqa: B018 (the sampler's own checks of its option)

    @property
    def bank_sampler(self) -> Sampler:
        """The memory-bank sampler: `SAMPLERS[sampler]` with these settings' option for it."""
        for option, (sampler, field_name) in SAMPLER_OPTIONS.items():
            if sampler == self.sampler:
                return dataclasses.replace(SAMPLERS[sampler], **{field_name: getattr(self, option)})
        return SAMPLERS[self.sampler]


# The PatchCore family's command-line options (`python -m adlib run --help`), by the settings field each sets.
PATCHCORE_OPTIONS = {
    "features.patch_size": Option("--patch-size", "neighbourhood size p of the local aggregation", int, 3),
    "coreset_ratio": Option("--coreset", "memory bank size as a share of all patches", float, 0.1),
    "sampler": Option(
        "--sampler",
        "memory bank: approximate_greedy (PatchCore, default), exact_greedy, random, kmeans (KC), "
        "learned_proxies (PC Eq. 8)",
        choices=tuple(SAMPLERS),
    ),
    "search": Option(
        "--search",
        "memory-bank search: exact, or ivfpq (faiss IVF-PQ, approximate; PC Table 5)",
        default="exact",
        choices=tuple(SEARCHES),
    ),
    "distance": Option(
        "--distance", "patch score: euclidean (paper, default), squared (official code), cosine (KC)", choices=DISTANCES
    ),
    "top_k": Option("--top-k", "with --distance cosine: average over the top k bank features", int, 1),
    "reweight_neighbours": Option(
        "--reweight",
        "b of PatchCore's Eq. 7 image score (patchcore default 9; 1 = plain maximum: the official code, "
        "KC, and softpatch's default, as the SoftPatch paper scores images)",
        int,
    ),
    "denoise": Option(
        "--denoise", "SoftPatch outlier score per position (softpatch: lof); none for the others", choices=DENOISERS
    ),
    "tau": Option("--tau", "SoftPatch: share of training patches dropped", float, 0.15),
    "lof_k": Option("--lof-k", "SoftPatch: LOF neighbours", int, 6),
    "soft_weight": Option(
        "--no-soft-weight", "SoftPatch: drop patches but keep no soft weights", default=False, negates=True
    ),
}


def patchcore_settings(
    features: FeatureSettings | None = None,
    coreset_ratio: float = 0.1,
    sampler: str = "approximate_greedy",
    search: str = "exact",
) -> PatchCoreSettings:
    """PatchCore: a `sampler` memory bank (default the greedy coreset) of `coreset_ratio` of the patches."""
    return PatchCoreSettings(
        features=features or FeatureSettings(), coreset_ratio=coreset_ratio, sampler=sampler, search=search
    )


def improved_patchcore_settings(
    features: FeatureSettings | None = None, coreset_ratio: float = 0.1, top_k: int = 1
) -> PatchCoreSettings:
    """KC: K-means bank and cosine scores; the paper names no top_k, so 1 (the nearest) is the default."""
    return PatchCoreSettings(
        features=features or FeatureSettings(),
        coreset_ratio=coreset_ratio,
        sampler="kmeans",
        distance="cosine",
        top_k=top_k,
        reweight_neighbours=1,
    )


def softpatch_settings(
    features: FeatureSettings | None = None,
    denoise: str = "lof",
    coreset_ratio: float = 0.1,
    tau: float = 0.15,
    lof_k: int = 6,
    soft_weight: bool = True,
    reweight_neighbours: int = 1,
) -> PatchCoreSettings:
    """SP: patch-level denoising (paper: LOF, tau = 0.15, k = 6) with soft weights before a greedy coreset.

    The image score is SP's s* = max of the (soft-weighted) patch scores: `reweight_neighbours` = 1.
    PatchCore's Eq. 7 re-weighting, which the SoftPatch paper does not use, is the explicit option
    `reweight_neighbours=9`. `lof_k` acts with denoise='lof' only (another value with another
    discriminator is refused).
    """
    return PatchCoreSettings(
        features=features or FeatureSettings(),
        coreset_ratio=coreset_ratio,
        denoise=denoise,
        tau=tau,
        lof_k=lof_k,
        soft_weight=soft_weight,
        reweight_neighbours=reweight_neighbours,
    )


def softpatch_variants(
    features: FeatureSettings,
    coreset_ratio: float,
    tau: float,
    lof_k: int,
    denoisers: Sequence[str] = DENOISERS,
) -> dict[str, PatchCoreSettings]:
    """{"SoftPatch-<denoiser>": settings}: SP with each of its discriminators (SP Table 4 compares them), with
    the same coreset and tau; LOF with `lof_k` (the others have no k)."""
    return {
        f"SoftPatch-{denoise}": softpatch_settings(
            features, denoise, coreset_ratio, tau=tau, **({"lof_k": lof_k} if denoise == "lof" else {})
        )
        for denoise in denoisers
    }


class PatchCore(Detector):
    """fit(nominal training images) -> predict(test images) -> image scores and anomaly maps.

    `backend` picks the exact search's engine (`adlib.bank.search.NearestNeighbours`)."""

    method = "patchcore"
    settings_type = PatchCoreSettings
    takes_backend = True
    options = PATCHCORE_OPTIONS

    def __init__(
        self,
        settings: PatchCoreSettings | None = None,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        backend: str = "auto",
        extractor: FeatureExtractor | None = None,
    ):
        super().__init__(settings, device, cache_dir, use_cache, extractor, backend)
        self.bank: torch.Tensor | None = None
        self.bank_weights: torch.Tensor | None = None  # SoftPatch's soft weights, one per bank feature
        # Which training patch each bank row copies: row i * P + p is position p of training image i
        # (the order of `fit`'s images). None for the samplers that build new points, and after `load`.
        self.bank_source: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None
        self._index: Search | None = None

    def fit(self, train: Sequence[Sample], progress: bool = True) -> PatchCore:
        """Builds the memory bank (and SoftPatch's weights) from the patch features of `train`."""
        s = self.settings
        embedding = self.extractor.embed(train, progress)
        features = embedding.features
        patches = features.reshape(-1, features.shape[-1])
        source = torch.arange(len(patches), device=patches.device)
        weights = None
        if s.denoise is not None:
            scores = outlier_scores(features, s.denoise, lof_k=s.lof_k, seed=s.seed)
            kept = denoise(scores, s.denoise, s.tau)
            keep = kept.keep.reshape(-1)
            patches, source = patches[keep], source[keep]
            weights = kept.weights.reshape(-1)[keep] if s.soft_weight else None
        sampled = s.bank_sampler.sample(patches, coreset_size(len(patches), s.coreset_ratio), s.seed)
        if sampled.source is None:
            source = None  # built points (the settings refuse soft weights with them)
        else:
            chosen = sampled.source.to(patches.device)
            source = source[chosen].cpu()
            weights = weights[chosen] if weights is not None else None
        self._set_bank(sampled.bank.contiguous(), embedding.grid, weights)
        self.bank_source = source
        return self

    def _set_bank(self, bank: torch.Tensor, grid: tuple[int, int], weights: torch.Tensor | None = None) -> None:
        self.bank, self.grid, self.bank_weights = bank, tuple(grid), weights
        s = self.settings
        searched = torch.nn.functional.normalize(bank, dim=1) if s.distance == "cosine" else bank
        self._index = NearestNeighbours(searched, backend=self.backend, index=SEARCHES[s.search], seed=s.seed)

    def bank_usage(self, embedding: PatchEmbedding) -> float:
        """The share of memory bank features that are the nearest neighbour of at least one patch of
        `embedding` (paper Fig. 5, right: under 30 % of a full bank, ~95 % of a 1 % coreset), found by
        the model's own search (cosine: on unit vectors; 'ivfpq': its approximate neighbours)."""
        if self._index is None:
            raise RuntimeError("PatchCore.bank_usage before fit (or load): fit it on nominal training images first")
        _, _, nearest = self._search(embedding, 1)
        return len(torch.unique(nearest)) / len(self._index)

    def _search(self, embedding: PatchEmbedding, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The patches as the index holds them ([N, P, D]; unit vectors for cosine) and the squared distances
        and indices of their k nearest bank features ([N*P, k] each)."""
        if tuple(embedding.grid) != self.grid:
            raise ValueError(f"test patch grid {embedding.grid} differs from the memory bank's {self.grid}")
        features = embedding.features
        if self.settings.distance == "cosine":
            features = torch.nn.functional.normalize(features, dim=-1)
        squared, nearest = self._index.search(features.reshape(-1, features.shape[-1]), k)
        return features, squared, nearest

    def predict(self, test: Sequence[Sample], progress: bool = True) -> Scores:
        """Image scores [N] and anomaly maps [N, crop, crop] of `test`."""
        if self._index is None:
            raise RuntimeError("PatchCore.predict before fit (or load): fit it on nominal training images first")
        return self.score_embedding(self.extractor.embed(test, progress))

    def score_embedding(self, embedding: PatchEmbedding) -> Scores:
        """Scores patch features that were already extracted (lets experiments reuse one extraction)."""
        s = self.settings
        features, squared, nearest = self._search(embedding, s.top_k)
        n, patches, _ = features.shape
        patch_scores = to_distance(squared, s.distance).mean(1).reshape(n, patches)
        nearest = nearest[:, 0].reshape(n, patches)
        if self.bank_weights is not None:
            patch_scores = patch_scores * self.bank_weights.to(nearest.device)[nearest]
        image = reweighted_image_scores(patch_scores, nearest, features, self._index, s.reweight_neighbours, s.distance)
        maps = anomaly_maps(patch_scores, self.grid, s.features.preprocessing.crop, s.blur_sigma)
        return Scores(image=image.cpu(), maps=maps.cpu())

    def state(self) -> dict[str, object]:
        if self.bank is None:
            raise RuntimeError("PatchCore.save before fit: there is no memory bank to save")
        weights = None if self.bank_weights is None else self.bank_weights.cpu()
        return {"grid": list(self.grid), "bank": self.bank.cpu(), "bank_weights": weights}

    def set_state(self, state: dict[str, object]) -> None:
        weights = state.get("bank_weights")
        device = self.extractor.device
        self._set_bank(state["bank"].to(device), tuple(state["grid"]), None if weights is None else weights.to(device))
