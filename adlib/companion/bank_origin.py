"""Where a memory bank's rows come from when the training set is noisy (SoftPatch Fig. 5).

Every row of a PatchCore / SoftPatch memory bank copies one training patch (`PatchCore.bank_source`), so
its origin is known: a patch of a normal image, of a noisy (anomalous) image outside its defect, or of a
noisy image inside its defect (the patch's cell of the feature grid overlaps the ground-truth mask).
`bank_origins` builds the banks of several methods from one noisy training set and labels their rows;
`origin_shares` counts them over every row. A claim about bank shares is judged over the (category, seed)
units with `adlib.evidence.intervals.interval_verdict` (a Student-t interval of the mean over the units).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adlib.data.datasets import Preprocessing, Sample, load_category, read_mask
from adlib.data.protocol import add_training_noise, low_shot

#: The three origins, in the order of the codes `patch_origins` gives (0, 1, 2).
ORIGINS = ("normal image", "noisy image, normal region", "noisy image, defect region")
DEFECT = ORIGINS[2]


def patch_origins(samples: Sequence[Sample], grid: tuple[int, int], prep: Preprocessing) -> np.ndarray:
    """The origin code (0, 1, 2 as in `ORIGINS`) of every patch, image-major (row i * P + p is cell p of
    image i, P = grid cells): a cell is in the defect when the mask, max-pooled to the grid, touches it."""
    masks = torch.stack([read_mask(sample, prep) for sample in samples]).float()
    touched = torch.nn.functional.adaptive_max_pool2d(masks[:, None], grid).reshape(len(samples), -1) > 0
    noisy = torch.tensor([sample.label == 1 for sample in samples])[:, None].expand_as(touched)
    return (noisy.long() + (noisy & touched).long()).reshape(-1).numpy()


@dataclass(frozen=True)
class BankOrigins:
    """One noisy training set: every patch's origin and feature, and per method its bank's source rows."""

    category: str
    seed: int
    train_images: int
    noisy_images: int
    origin: np.ndarray  # [patches] codes 0, 1, 2
    features: np.ndarray  # [patches, D] float32
    sources: dict[str, np.ndarray]  # method -> [bank rows] indices into the patches


def bank_origins(
    data_root: Path | str,
    category: str,
    methods: Mapping[str, object],
    seed: int,
    noise_ratio: float,
    clean_shots: int | None = None,
    extractor=None,
) -> BankOrigins:
    """Fits each method's bank (PatchCore settings, seeded with `seed`) on one noisy training set.

    The clean training set is first cut to `clean_shots` seeded images (None: all), then SoftPatch's
    noise protocol adds int(noise_ratio * clean images) anomalous test images (seeded), so the noisy
    share is exactly the ratio. `extractor`: a loaded `FeatureExtractor` to share between calls.
    """
    from adlib.detectors.patchcore import PatchCore
    from adlib.features.extractor import FeatureExtractor

    clean = load_category(data_root, category)
    if clean_shots is not None:
        clean = low_shot(clean, clean_shots, seed)
    noisy, record = add_training_noise(
        clean, noise_ratio, overlap=False, seed=seed
    )  # overlap changes only the test set
    first = next(iter(methods.values()))
    extractor = extractor or FeatureExtractor(first.features)
    embedding = extractor.embed(noisy.train, progress=False)
    features = embedding.features.reshape(-1, embedding.features.shape[-1]).cpu().numpy()
    origin = patch_origins(noisy.train, embedding.grid, first.features.preprocessing)
    sources = {}
    for name, settings in methods.items():
        model = PatchCore(dataclasses.replace(settings, seed=seed), extractor=extractor).fit(
            noisy.train, progress=False
        )
        sources[name] = model.bank_source.numpy()
        if not np.array_equal(features[sources[name]], model.bank.cpu().numpy()):
            raise AssertionError(f"{category}, seed {seed}, {name}: a bank row is not the training patch it names")
    return BankOrigins(category, seed, len(noisy.train), len(record.moved), origin, features, sources)


def origin_shares(banks: BankOrigins) -> pd.DataFrame:
    """One row per bank and one for the training set: its size and the share of each origin, over every row."""
    rows = {"training set (all patches)": np.arange(len(banks.origin)), **banks.sources}
    table = pd.DataFrame(
        [
            {
                "category": banks.category,
                "seed": banks.seed,
                "bank": name,
                "size": len(index),
                **dict(zip(ORIGINS, np.bincount(banks.origin[index], minlength=3) / len(index))),
            }
            for name, index in rows.items()
        ]
    )
    return table


def tsne_sample(banks: BankOrigins, points: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to draw in a t-SNE map: per bank every defect-region row (they are few), then a seeded uniform
    draw of the others up to `points`. Returns the features, the owner (bank name) and the origin code of
    each drawn row; the drawing decides only the picture, never a share."""
    rng = np.random.default_rng(seed)
    picked, owners = [], []
    for name, rows in banks.sources.items():
        defects = rows[banks.origin[rows] == 2]
        others = rows[banks.origin[rows] != 2]
        drawn = rng.choice(others, size=max(0, min(points - len(defects), len(others))), replace=False)
        picked.append(np.sort(np.concatenate([defects, drawn])))
        owners += [name] * len(picked[-1])
    index = np.concatenate(picked)
    return banks.features[index], np.array(owners), banks.origin[index]


def tsne_map(features: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE coordinates of `features` (after PCA to at most 50 dimensions), seeded, on one thread so
    that the map is the same on any machine."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
    with threadpool_limits(1):
        return TSNE(
            n_components=2, perplexity=min(perplexity, (len(features) - 1) / 3), init="pca", random_state=seed
        ).fit_transform(reduced)


def normal_coverage(banks: BankOrigins, chunk: int = 4096) -> pd.DataFrame:
    """How well each bank models the normal training data (SP A.1: random sampling "cannot model the normal
    samples adequately"): per bank, the mean Euclidean distance from every normal training patch (origin
    codes 0 and 1: not in a defect region) to its nearest bank row. Columns: category, seed, bank,
    normal_coverage_distance (0 where every normal patch is itself in the bank)."""
    normal = torch.from_numpy(np.ascontiguousarray(banks.features[banks.origin != 2], dtype=np.float32))
    rows = []
    for name, index in banks.sources.items():
        bank = torch.from_numpy(np.ascontiguousarray(banks.features[index], dtype=np.float32))
        nearest = torch.cat([torch.cdist(part, bank).min(dim=1).values for part in normal.split(chunk)])
        rows.append(
            {
                "category": banks.category,
                "seed": banks.seed,
                "bank": name,
                "normal_coverage_distance": float(nearest.double().mean()),
            }
        )
    return pd.DataFrame(rows)
