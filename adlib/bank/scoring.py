"""PatchCore's scores and anomaly maps, from the squared distances of the bank search (`adlib.bank.search`).

- Patch score s* (paper Eq. 6): the distance of a test patch to its nearest bank patch, Euclidean as in
  the paper, or squared Euclidean as the official code's faiss `IndexFlatL2` returns it.
- Image score: the maximum patch score, optionally re-weighted by paper Eq. 7 with the b nearest bank
  neighbours of m* (the official code does not re-weight; anomalib does, with b = 9).
- Anomaly map: patch scores on their grid, bilinearly upsampled to the image size
  (`align_corners=False`), then a Gaussian blur with sigma = 4 (the official code's
  `scipy.ndimage.gaussian_filter`: reflect-at-the-edge padding, kernel radius int(4 sigma + 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """[N, H, W] -> blurred like `scipy.ndimage.gaussian_filter(map, sigma)` (mode 'reflect', truncate 4)."""
    if sigma <= 0:
        return maps
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(maps.dtype).to(maps.device)
    x = maps.unsqueeze(1)
    for dim in (-1, -2):
        x = _symmetric_pad(x, radius, dim)
        weight = kernel.view(1, 1, 1, -1) if dim == -1 else kernel.view(1, 1, -1, 1)
        x = F.conv2d(x, weight)
    return x.squeeze(1)


def _symmetric_pad(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Pads `dim` by `radius` mirroring with the edge sample repeated (scipy's 'reflect', numpy's 'symmetric')."""
    size = x.shape[dim]
    positions = torch.arange(-radius, size + radius, device=x.device)
    period = 2 * size
    positions = positions % period
    positions = torch.where(positions >= size, period - 1 - positions, positions)
    return x.index_select(dim % x.ndim, positions)


def anomaly_maps(patch_scores: torch.Tensor, grid: tuple[int, int], size: int, sigma: float = 4.0) -> torch.Tensor:
    """Patch scores [N, H*W] -> anomaly maps [N, size, size]: bilinear upsampling, then a Gaussian blur."""
    maps = patch_scores.reshape(len(patch_scores), 1, *grid).float()
    maps = F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False).squeeze(1)
    return gaussian_blur(maps, sigma)


@dataclass(frozen=True)
class Scores:
    """What a detector says about N test images."""

    image: torch.Tensor  # [N] image scores
    maps: torch.Tensor  # [N, size, size] anomaly maps at the input resolution
