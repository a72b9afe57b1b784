"""The memory bank's nearest-neighbour search and PatchCore's scores and anomaly maps.

- `NearestNeighbours`: exact k-NN in a bank of patch features. faiss (`IndexFlatL2`, on the GPU when a
  faiss build with GPU support and a GPU are present) when faiss imports, torch otherwise; both return
  squared Euclidean distances and the same neighbours up to float ties.
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

BACKENDS = ("auto", "faiss", "torch")
DISTANCES = ("euclidean", "squared", "cosine")


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class NearestNeighbours:
    """Exact k-NN search in `bank` [M, D]; `search` returns squared distances and indices, nearest first."""

    def __init__(self, bank: torch.Tensor, backend: str = "auto", chunk_bytes: int = 256 * 1024**2):
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
        if bank.ndim != 2 or len(bank) == 0:
            raise ValueError(f"the memory bank must be a non-empty [M, D] matrix, got shape {tuple(bank.shape)}")
        if backend == "faiss" and not faiss_available():
            raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu (or conda install faiss-gpu)")
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss_available()) else "torch"
        self.bank = bank.float().contiguous()
        self.chunk_bytes = chunk_bytes
        if self.backend == "faiss":
            self._index = _faiss_index(self.bank)
        else:
            self._bank_norms = self.bank.pow(2).sum(1)

    def __len__(self) -> int:
        return len(self.bank)

    def search(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """[Q, D] -> (squared distances [Q, k], int64 indices [Q, k]) on the bank's device."""
        if not 1 <= k <= len(self.bank):
            raise ValueError(f"k={k} neighbours asked from a bank of {len(self.bank)} features")
        queries = queries.float().to(self.bank.device).contiguous()
        if self.backend == "faiss":
            distances, indices = self._index.search(queries.cpu().numpy(), k)
            return (
                torch.from_numpy(distances).to(self.bank.device),
                torch.from_numpy(indices).to(self.bank.device),
            )
        return self._torch_search(queries, k)

    def _torch_search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = max(1, self.chunk_bytes // (4 * len(self.bank)))
        distances, indices = [], []
        for chunk in queries.split(rows):
            squared = torch.addmm(self._bank_norms, chunk, self.bank.T, alpha=-2).add_(chunk.pow(2).sum(1, keepdim=True))
            values, index = torch.topk(squared, k, dim=1, largest=False, sorted=True)
            distances.append(values.clamp_(min=0))
            indices.append(index)
        return torch.cat(distances), torch.cat(indices)


def _faiss_index(bank: torch.Tensor):
    import faiss

    index = faiss.IndexFlatL2(bank.shape[1])
    if bank.is_cuda and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), bank.device.index or 0, index)
    index.add(bank.cpu().numpy())
    return index


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
    index: NearestNeighbours,
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
