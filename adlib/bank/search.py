"""Nearest-neighbour search in a memory bank of patch features: one small class per backend, one factory.

- `TorchExact`: exact k-NN with torch matrix products in chunks of queries (any device).
- `FaissExact`: exact k-NN with faiss's `IndexFlatL2` (on the GPU when a faiss build with GPU support
  and a GPU are present).
- `FaissIVFPQ`: approximate k-NN with faiss's IVF-PQ, as the official `ApproximateFaissNN` (PC Table 5).

All three return squared Euclidean distances and int64 indices, nearest first, on the bank's device;
the two exact ones give the same neighbours up to float ties. `NearestNeighbours(bank, backend, index)`
picks one. `FAISS_SEED_RANGE` is the one range of seeds faiss accepts (it stores them in a C int); the
K-means of `adlib.bank.clustering` checks its seeds against it too.
"""

from __future__ import annotations

import torch

BACKENDS = ("auto", "faiss", "torch")
INDEXES = ("flat", "ivfpq")
IVFPQ_NPROBE = 1  # inverted lists searched per query: faiss's default, which the official code leaves
_IVFPQ_LISTS, _IVFPQ_SUBQUANTISERS, _IVFPQ_BITS = 512, 64, 8  # the official ApproximateFaissNN
_IVFPQ_POINTS_PER_LIST = 39  # faiss's minimum of training points per k-means centroid
FAISS_SEED_RANGE = (-(2**31), 2**31)  # faiss stores k-means seeds in a C int


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def check_faiss_seed(seed: int) -> None:
    """Refuse a seed that faiss cannot store."""
    if not FAISS_SEED_RANGE[0] <= seed < FAISS_SEED_RANGE[1]:
        raise ValueError(f"seed={seed}: faiss takes a 32-bit seed; pick one in [-2**31, 2**31)")


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


class Search:
    """What every backend shares: the bank [M, D] (float32, contiguous), its size, the query checks."""

    backend = ""  # "torch" or "faiss"
    index = ""  # "flat" or "ivfpq"

    def __init__(self, bank: torch.Tensor):
        if bank.ndim != 2 or len(bank) == 0:
            raise ValueError(f"the memory bank must be a non-empty [M, D] matrix, got shape {tuple(bank.shape)}")
        self.bank = bank.float().contiguous()

    def __len__(self) -> int:
        return len(self.bank)

    def search(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """[Q, D] -> (squared distances [Q, k], int64 indices [Q, k]) on the bank's device, nearest first."""
        if not 1 <= k <= len(self.bank):
            raise ValueError(f"k={k} neighbours asked from a bank of {len(self.bank)} features")
        return self._search(queries.float().to(self.bank.device).contiguous(), k)

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decoded_bank(self) -> torch.Tensor:
        """The bank as the index holds it [M, D], against which its distances are exact: the bank itself
        for exact search."""
        return self.bank


class TorchExact(Search):
    """Exact search as torch matrix products, `chunk_bytes` of distances at a time."""

    backend, index = "torch", "flat"

    def __init__(self, bank: torch.Tensor, chunk_bytes: int = 256 * 1024**2):
        super().__init__(bank)
        self.chunk_bytes = chunk_bytes
        self._bank_norms = self.bank.pow(2).sum(1)

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = max(1, self.chunk_bytes // (4 * len(self.bank)))
        distances, indices = [], []
        for chunk in queries.split(rows):
            squared = torch.addmm(self._bank_norms, chunk, self.bank.T, alpha=-2).add_(
                chunk.pow(2).sum(1, keepdim=True)
            )
            values, index = torch.topk(squared, k, dim=1, largest=False, sorted=True)
            distances.append(values.clamp_(min=0))
            indices.append(index)
        return torch.cat(distances), torch.cat(indices)


class FaissExact(Search):
    """Exact search in faiss's `IndexFlatL2` (moved to the GPU when the bank is there and faiss can)."""

    backend, index = "faiss", "flat"

    def __init__(self, bank: torch.Tensor):
        super().__init__(bank)
        import faiss

        index = faiss.IndexFlatL2(self.bank.shape[1])
        if self.bank.is_cuda and hasattr(faiss, "StandardGpuResources"):
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), self.bank.device.index or 0, index)
        index.add(self.bank.cpu().numpy())
        self._index = index

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        distances, indices = self._index.search(queries.cpu().numpy(), k)
        return torch.from_numpy(distances).to(self.bank.device), torch.from_numpy(indices).to(self.bank.device)


class FaissIVFPQ(Search):
    """Approximate search: `faiss.IndexIVFPQ(faiss.IndexFlatL2(D), D, lists, sub-quantisers, 8)` as the
    official `ApproximateFaissNN`, with the layout of `ivfpq_layout`.

    Trained on the whole bank (faiss subsamples large banks itself) with both its k-means (the coarse
    lists and the PQ codebooks) seeded by `seed`; the same seed gives the same index and results (same
    machine, same threads). `nprobe` lists are searched per query, `IVFPQ_NPROBE` = 1 by default,
    faiss's default, which the official code does not change. A query whose probed lists hold fewer
    than k features (faiss pads with -1) is searched again over all lists. Its distances are faiss's
    asymmetric PQ distances, used as the official code uses them: the squared L2 distance from the
    query to the neighbour's PQ reconstruction (`decoded_bank`), clamped at 0; they differ from the true
    squared distance by the reconstruction error (|sqrt(d) - ||q - m||| <= ||m - decoded m||). The index
    is kept on the CPU (faiss's GPU IVF-PQ supports fewer layouts); results come back on the bank's
    device. Measured speed and recall: benchmarks/NOTES.md.
    """

    backend, index = "faiss", "ivfpq"

    def __init__(self, bank: torch.Tensor, seed: int = 0, nprobe: int = IVFPQ_NPROBE):
        check_faiss_seed(seed)
        if nprobe < 1:
            raise ValueError(f"nprobe={nprobe}: search at least one inverted list per query (default 1)")
        super().__init__(bank)
        import faiss

        lists, subquantisers, bits = ivfpq_layout(*self.bank.shape)
        quantiser = faiss.IndexFlatL2(self.bank.shape[1])
        index = faiss.IndexIVFPQ(quantiser, self.bank.shape[1], lists, subquantisers, bits)  # keeps quantiser alive
        index.cp.seed = seed  # the coarse k-means (inverted lists)
        index.pq.cp.seed = seed  # the PQ codebooks' k-means
        index.pq.cp.min_points_per_centroid = 1  # small banks: no warning per sub-quantiser (codes just coarser)
        points = self.bank.cpu().numpy()
        index.train(points)
        index.add(points)
        index.nprobe = min(nprobe, lists)
        self._index = index

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        import faiss

        points = queries.cpu().numpy()
        distances, indices = self._index.search(points, k)
        short = (indices < 0).any(axis=1).nonzero()[0]  # probed lists held fewer than k features
        if len(short):
            every_list = faiss.SearchParametersIVF(nprobe=self._index.nlist)
            distances[short], indices[short] = self._index.search(points[short], k, params=every_list)
        distances = torch.from_numpy(distances).clamp_(min=0)
        return distances.to(self.bank.device), torch.from_numpy(indices).to(self.bank.device)

    def decoded_bank(self) -> torch.Tensor:
        """The PQ reconstructions (coarse centroid + decoded residual) [M, D] of the bank."""
        return torch.from_numpy(self._index.reconstruct_n(0, len(self.bank))).to(self.bank.device)


def NearestNeighbours(  # noqa: N802 (a factory named like the classes it returns, as before the split)
    bank: torch.Tensor,
    backend: str = "auto",
    chunk_bytes: int = 256 * 1024**2,
    index: str = "flat",
    seed: int = 0,
    nprobe: int = IVFPQ_NPROBE,
) -> TorchExact | FaissExact | FaissIVFPQ:
    """k-NN search in `bank` [M, D]: `search(queries, k)` returns squared distances and indices, nearest first.

    `index="flat"` (default) is exact; `backend` 'auto' takes faiss when it imports, torch otherwise
    (`chunk_bytes` bounds torch's distance blocks). `index="ivfpq"` is approximate, on faiss only
    (backend 'auto' or 'faiss'; never a silent fallback to exact search), seeded by `seed`, searching
    `nprobe` lists per query (see `FaissIVFPQ`).
    """
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
        return FaissIVFPQ(bank, seed, nprobe)
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        return FaissExact(bank)
    return TorchExact(bank, chunk_bytes)
