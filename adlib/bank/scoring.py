"""PatchCore's scores and anomaly maps, from the squared distances of the bank search (`adlib.bank.search`).

- Patch score s* (paper Eq. 6): the distance of a test patch to its nearest bank patch, Euclidean as in
  the paper, or squared Euclidean as the official code's faiss `IndexFlatL2` returns it.
- Image score: the maximum patch score, optionally re-weighted by paper Eq. 7 with the b nearest bank
  neighbours of m* (the official code does not re-weight; anomalib does, with b = 9).
- Anomaly map: patch scores on their grid, bilinearly upsampled to the image size
  (`align_corners=False`), then a Gaussian blur with sigma = 4 (the official code's
  `scipy.ndimage.gaussian_filter`: reflect-at-the-edge padding, kernel radius int(4 sigma + 0.5)). Both
  steps are linear and separable, so they are applied as one [size, cells] matrix per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from adlib.bank.search import Search

DISTANCES = ("euclidean", "squared", "cosine")


def to_distance(squared: torch.Tensor, distance: str) -> torch.Tensor:
    """Squared Euclidean distances -> the chosen patch-score distance.

    For 'cosine' the distances must be between unit vectors: then 1 - cos = |a - b|^2 / 2.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance={distance!r}: choose one of {', '.join(DISTANCES)}")
    if distance == "cosine":
        return squared / 2
    return squared.sqrt() if distance == "euclidean" else squared


def reweighted_image_scores(
    patch_scores: torch.Tensor,
    nearest: torch.Tensor,
    test_features: torch.Tensor,
    index: Search,
    neighbours: int,
    distance: str,
) -> torch.Tensor:
    """Paper Eq. 7 for each image: s = (1 - exp d(m_test*, m*) / sum_{m in N_b(m*)} exp d(m_test*, m)) s*.

    `patch_scores` [N, P] are s* per patch, `nearest` [N, P] the bank index of each patch's nearest
    neighbour, `test_features` [N, P, D]. N_b(m*) are the b nearest bank features of m* (m* itself
    first); `neighbours` = 1 returns the plain maximum, as the official code scores images.
    """
    batch = torch.arange(len(patch_scores), device=patch_scores.device)
    top_patch = patch_scores.argmax(1)
    top_scores = patch_scores[batch, top_patch]
    if neighbours == 1:
        return top_scores
    b = min(neighbours, len(index))
    m_star = index.bank[nearest[batch, top_patch]]  # [N, D]
    _, support = index.search(m_star, b)  # [N, b]
    m_test = test_features[batch, top_patch].to(index.bank.device)  # [N, D]
    squared = (index.bank[support] - m_test[:, None, :]).pow(2).sum(-1)  # [N, b]
    d = to_distance(squared, distance)
    weights = 1 - torch.softmax(d, dim=1)[:, 0]
    return weights.to(top_scores.device) * top_scores


@lru_cache(maxsize=16)
def blur_matrix(length: int, sigma: float) -> torch.Tensor:
    """[length, length] float64 B with B @ x = `scipy.ndimage.gaussian_filter1d(x, sigma)` along a line of
    `length` samples (mode 'reflect': mirrored with the edge sample repeated, periodically for short lines;
    truncate 4: kernel radius int(4 sigma + 0.5)); the identity for sigma <= 0."""
    if sigma <= 0:
        return torch.eye(length, dtype=torch.float64)
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    rows = torch.arange(length)
    matrix = torch.zeros(length, length, dtype=torch.float64)
    for offset, weight in zip(offsets.long().tolist(), kernel):
        matrix.index_put_((rows, _reflected(rows + offset, length)), weight.expand(length), accumulate=True)
    return matrix


def _reflected(positions: torch.Tensor, length: int) -> torch.Tensor:
    """Positions on a line of `length` samples mirrored into range, edge sample repeated (numpy 'symmetric')."""
    period = 2 * length
    positions = positions % period
    return torch.where(positions >= length, period - 1 - positions, positions)


@lru_cache(maxsize=16)
def map_matrix(cells: int, size: int, sigma: float) -> torch.Tensor:
    """[size, cells] float64 A: along one axis, `cells` patch scores -> `size` map pixels, bilinear upsampling
    (`align_corners=False`) then the Gaussian blur. Both steps are linear and act on each axis apart, so a map
    is A_h @ scores @ A_w^T: two small products instead of an upsampled image and two convolutions."""
    identity = torch.eye(cells, dtype=torch.float64).unsqueeze(1)  # [cells, 1, cells]: one unit score per row
    upsample = F.interpolate(identity, size=size, mode="linear", align_corners=False)[:, 0].T  # [size, cells]
    return blur_matrix(size, sigma) @ upsample


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """[N, H, W] -> blurred like `scipy.ndimage.gaussian_filter(map, sigma)` (mode 'reflect', truncate 4)."""
    if sigma <= 0:
        return maps
    rows = blur_matrix(maps.shape[-2], sigma).to(maps)
    columns = blur_matrix(maps.shape[-1], sigma).to(maps)
    return rows @ maps @ columns.T


def anomaly_maps(patch_scores: torch.Tensor, grid: tuple[int, int], size: int, sigma: float = 4.0) -> torch.Tensor:
    """Patch scores [N, H*W] -> anomaly maps [N, size, size] (float32): bilinear upsampling, then a Gaussian
    blur, as one product per axis (`map_matrix`); equal to the two steps up to float rounding."""
    scores = patch_scores.reshape(len(patch_scores), *grid).float()
    rows = map_matrix(grid[0], size, sigma).to(scores)
    columns = map_matrix(grid[1], size, sigma).to(scores)
    return rows @ scores @ columns.T


@dataclass(frozen=True)
class Scores:
    """What a detector says about N test images."""

    image: torch.Tensor  # [N] image scores
    maps: torch.Tensor  # [N, size, size] anomaly maps at the input resolution
