"""The memory bank's nearest-neighbour search and PatchCore's scores and anomaly maps.

- `NearestNeighbours`: k-NN in a bank of patch features. Exact (`index="flat"`): faiss (`IndexFlatL2`, on
  the GPU when a faiss build with GPU support and a GPU are present) when faiss imports, torch
  otherwise; both return squared Euclidean distances and the same neighbours up to float ties.
  Approximate (`index="ivfpq"`, PC Table 5): faiss's IVF-PQ as the official `ApproximateFaissNN`.
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
INDEXES = ("flat", "ivfpq")
IVFPQ_NPROBE = 1  # inverted lists searched per query: faiss's default, which the official code leaves
_IVFPQ_LISTS, _IVFPQ_SUBQUANTISERS, _IVFPQ_BITS = 512, 64, 8  # the official ApproximateFaissNN
_IVFPQ_POINTS_PER_LIST = 39  # faiss's minimum of training points per k-means centroid
_FAISS_SEED_RANGE = (-(2**31), 2**31)  # faiss stores k-means seeds in a C int


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def ivfpq_layout(bank_size: int, dim: int) -> tuple[int, int, int]:
    """(inverted lists, sub-quantisers, bits per code) of the IVF-PQ index of a bank [bank_size, dim].

    The official 512 lists, 64 sub-quantisers and 8 bits, with two adjustments for what faiss can train:
    lists = min(512, bank_size // 39), so that the coarse k-means has >= 39 points per list (512 lists
    need a bank of 19,968); sub-quantisers = the largest divisor of `dim` up to 64 (64 itself for the
    usual 1024 dims), as each codes an equal slice of the vector. 8 bits mean 256 centroids per
    sub-quantiser, so a bank needs at least 256 features: smaller ones are refused.
    """
    if bank_size < 2**_IVFPQ_BITS:
        raise ValueError(
            f"index='ivfpq' trains {2**_IVFPQ_BITS}-entry PQ codebooks and needs a bank of at least "
            f"{2**_IVFPQ_BITS} features, got {bank_size}: use exact search (index='flat', search='exact')"
        )
    lists = min(_IVFPQ_LISTS, bank_size // _IVFPQ_POINTS_PER_LIST)
    subquantisers = max(m for m in range(1, min(_IVFPQ_SUBQUANTISERS, dim) + 1) if dim % m == 0)
    return lists, subquantisers, _IVFPQ_BITS


class NearestNeighbours:
    """k-NN search in `bank` [M, D]; `search` returns squared distances and indices, nearest first.

    `index="flat"` (default) is exact; `backend` picks faiss or torch for it, and `seed` and `nprobe`
    are unused. `index="ivfpq"` is approximate, on faiss (backend 'auto' or 'faiss'; never a silent
    fallback to exact search): `faiss.IndexIVFPQ(faiss.IndexFlatL2(D), D, lists, sub-quantisers, 8)`
    as the official `ApproximateFaissNN`, with the layout of `ivfpq_layout`, trained on the whole bank
    (faiss subsamples large banks itself) with both its k-means (the coarse lists and the PQ codebooks)
    seeded by `seed`; the same seed gives the same index and results (same machine, same threads).
    `nprobe` lists are searched per query, `IVFPQ_NPROBE` = 1 by default, faiss's default, which the
    official code does not change. A query whose probed lists hold fewer than k features (faiss pads
    with -1) is searched again over all lists. Its distances are faiss's asymmetric PQ distances, used
    as the official code uses them: the squared L2 distance from the query to the neighbour's PQ
    reconstruction (`decoded_bank`), clamped at 0; they differ from the true squared distance by the
    reconstruction error (|sqrt(d) - ||q - m||| <= ||m - decoded m||). The index is kept on the CPU
    (faiss's GPU IVF-PQ supports fewer layouts); results come back on the bank's device.
    Measured on a 62,720 x 1024 bank (EfficientNet-Lite0, brick, PatchCore-100 %), shared 2-core CPU at
    load ~10: training ~155 s; 3,920 test patches searched in 0.9 s (flat: 14 s); recall@1 0.49; patch
    scores within ~1 % (median) of the exact ones, image scores (max) within ~3 %.
    """

    def __init__(
        self,
        bank: torch.Tensor,
        backend: str = "auto",
        chunk_bytes: int = 256 * 1024**2,
        index: str = "flat",
        seed: int = 0,
        nprobe: int = IVFPQ_NPROBE,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
        if index not in INDEXES:
            raise ValueError(f"index={index!r}: choose one of {', '.join(INDEXES)}")
        if bank.ndim != 2 or len(bank) == 0:
            raise ValueError(f"the memory bank must be a non-empty [M, D] matrix, got shape {tuple(bank.shape)}")
        if backend == "faiss" and not faiss_available():
            raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu (or conda install faiss-gpu)")
        if index == "ivfpq":
            if backend == "torch":
                raise ValueError("index='ivfpq' is faiss's IVF-PQ: use backend='faiss' or 'auto', or index='flat'")
            if not faiss_available():
                raise ImportError("index='ivfpq' (approximate search) needs faiss: pip install faiss-cpu")
            if not _FAISS_SEED_RANGE[0] <= seed < _FAISS_SEED_RANGE[1]:
                raise ValueError(f"seed={seed}: faiss takes a 32-bit seed; pick one in [-2**31, 2**31)")
            if nprobe < 1:
                raise ValueError(f"nprobe={nprobe}: search at least one inverted list per query (default 1)")
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss_available()) else "torch"
        self.index = index
        self.bank = bank.float().contiguous()
        self.chunk_bytes = chunk_bytes
        if index == "ivfpq":
            self._index = _faiss_ivfpq_index(self.bank, seed, nprobe)
        elif self.backend == "faiss":
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
        if self.index == "ivfpq":
            return self._ivfpq_search(queries, k)
        if self.backend == "faiss":
            distances, indices = self._index.search(queries.cpu().numpy(), k)
            return (
                torch.from_numpy(distances).to(self.bank.device),
                torch.from_numpy(indices).to(self.bank.device),
            )
        return self._torch_search(queries, k)

    def decoded_bank(self) -> torch.Tensor:
        """The bank as the index holds it [M, D]: the bank itself for 'flat', the PQ reconstructions
        (coarse centroid + decoded residual) for 'ivfpq', against which its distances are exact."""
        if self.index == "flat":
            return self.bank
        return torch.from_numpy(self._index.reconstruct_n(0, len(self.bank))).to(self.bank.device)

    def _ivfpq_search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        import faiss

        points = queries.cpu().numpy()
        distances, indices = self._index.search(points, k)
        short = (indices < 0).any(axis=1).nonzero()[0]  # probed lists held fewer than k features
        if len(short):
            every_list = faiss.SearchParametersIVF(nprobe=self._index.nlist)
            distances[short], indices[short] = self._index.search(points[short], k, params=every_list)
        distances = torch.from_numpy(distances).clamp_(min=0)
        return distances.to(self.bank.device), torch.from_numpy(indices).to(self.bank.device)

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


def _faiss_ivfpq_index(bank: torch.Tensor, seed: int, nprobe: int):
    """A trained, filled faiss IndexIVFPQ of `bank` (see `NearestNeighbours`), on the CPU."""
    import faiss

    lists, subquantisers, bits = ivfpq_layout(*bank.shape)
    quantiser = faiss.IndexFlatL2(bank.shape[1])
    index = faiss.IndexIVFPQ(quantiser, bank.shape[1], lists, subquantisers, bits)  # faiss keeps quantiser alive
    index.cp.seed = seed  # the coarse k-means (inverted lists)
    index.pq.cp.seed = seed  # the PQ codebooks' k-means
    index.pq.cp.min_points_per_centroid = 1  # small banks: no warning per sub-quantiser (codes just coarser)
    points = bank.cpu().numpy()
    index.train(points)
    index.add(points)
    index.nprobe = min(nprobe, lists)
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
