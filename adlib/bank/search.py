"""Nearest-neighbour search in a memory bank of patch features: one small class per backend, one factory.

- `TorchExact`: exact k-NN with torch matrix products in chunks of queries (any device).
- `FaissExact`: exact k-NN with faiss's `IndexFlatL2` (on the GPU when a faiss build with GPU support
  and a GPU are present).
- `ScreenedExact`: exact k-NN whose matrix product runs in bfloat16 (Intel AMX), with a proven error
  bound that keeps every row that could be among the k nearest, rescored in float32; its `prefix_nearest`
  gives the nearest row within each of several prefixes of the bank from one product (the explorer's
  nested coreset banks), rescored by `pair_distances`.
- `FaissIVFPQ`: approximate k-NN with faiss's IVF-PQ, as the official `ApproximateFaissNN` (PC Table 5).

All return squared Euclidean distances and int64 indices, nearest first, on the bank's device; the
exact ones give the same neighbours up to float ties. `NearestNeighbours(bank, backend, index)` picks
one. `FAISS_SEED_RANGE` is the one range of seeds faiss accepts (it stores them in a C int); the
K-means of `adlib.bank.clustering` checks its seeds against it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy
import torch

BACKENDS = ("auto", "faiss", "torch")
INDEXES = ("flat", "ivfpq")
IVFPQ_NPROBE = 1  # inverted lists searched per query: faiss's default, which the official code leaves
_IVFPQ_LISTS, _IVFPQ_SUBQUANTISERS, _IVFPQ_BITS = 512, 64, 8  # the official ApproximateFaissNN
_IVFPQ_POINTS_PER_LIST = 39  # faiss's minimum of training points per k-means centroid
SCREEN_MIN_ROWS = 3072  # smaller banks: faiss's float32 product is as quick as screening (benchmarks/NOTES.md)
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


def bfloat16_products_are_fast() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in AMX tiles (measured ~4.5x faiss's float32 rate on one
    core of a Xeon with AMX, benchmarks/NOTES.md); without AMX a bfloat16 product is no faster than float32."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


class ScreenedExact(Search):
    """Exact k-NN in two steps: a bfloat16 matrix product screens the bank, float32 decides.

    Each query q and bank row b, centred on the bank's mean, are widened so that one product gives the
    squared distance: [q, 1, 1, |q|^2] . [-2b, hi(|b|^2), lo(|b|^2), 1] = |q - b|^2 (|b|^2 split into two
    bfloat16 parts, so that it is kept to 16 bits). In bfloat16 (8 significant bits, unit roundoff u = 2^-8)
    with float32 accumulation, each value before its final rounding is off by at most
    E(q) = 0.016 |q| B + 10^-4 (B^2 + |q|^2), B the largest row norm: (4u + 2u^2) |q||b| from rounding q and
    b, u^2 |b|^2 from the split norm, at most (D + 4) 2^-24 of the sum of the terms' sizes from float32
    accumulation; rounding |q|^2 shifts every value of a query alike and changes no order. The result's
    own rounding is relative (a factor within 1 +- u). So a row can be among the true k nearest only if
    its screened value is at most (v_k / (1 - u) + 2 E(q)) (1 + u), v_k the k-th smallest screened value;
    those rows (a handful per query on patch features) are rescored as sum((q - b)^2) in float32 and the
    k smallest kept (ties: the lower index).

    The screened values are non-negative up to rounding, so their bfloat16 bit patterns read as int16
    order like the numbers (negatives, all tiny, sort first), which makes the minimum and the comparison
    cheap; v_k is clamped at 0, which only widens the screen. Columns are padded to a multiple of 8 with
    +inf so that the mask reads as int64 words.
    """

    backend, index = "torch", "flat"
    _PADDING = 8  # mask columns per int64 word
    _ROUNDOFF = 2.0**-8  # bfloat16's unit roundoff

    def __init__(self, bank: torch.Tensor, chunk_bytes: int = 16 * 1024**2):
        super().__init__(bank)
        if not torch.isfinite(self.bank).all():
            raise ValueError(
                "the memory bank holds NaN or infinite features: the screen's error bound needs finite ones"
            )
        self.chunk_bytes = chunk_bytes
        self._mean = self.bank.mean(0)
        centred = self.bank - self._mean
        norms = centred.pow(2).sum(1)
        self._largest_norm = float(norms.max().sqrt())
        high = norms.to(torch.bfloat16).float()
        widened = torch.cat([-2 * centred, high[:, None], (norms - high)[:, None], torch.ones(len(norms), 1)], 1)
        padding = torch.zeros(-len(self.bank) % self._PADDING, widened.shape[1])
        padding[:, -3] = float("inf")
        self._widened = torch.cat([widened, padding]).to(torch.bfloat16).T.contiguous()  # [D + 3, M + pad]

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        found = [
            self._rescored(chunk, *self._candidates(*self._screened(chunk), k), k) for chunk in self._chunks(queries)
        ]
        return torch.cat([d for d, _ in found]), torch.cat([i for _, i in found])

    def _chunks(self, queries: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return queries.split(max(1, self.chunk_bytes // (2 * self._widened.shape[1])))

    def _screened(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The screened |q - b|^2 of every query and row [Q, M + pad] as int16 bits (ordered as the numbers; the
        padding columns +inf), and each query's error term E(q) [Q]."""
        centred = queries - self._mean
        norms = centred.pow(2).sum(1)
        widened = torch.cat([centred, torch.ones(len(centred), 2), norms[:, None]], 1).to(torch.bfloat16)
        largest = self._largest_norm
        error = 0.016 * norms.sqrt() * largest + 1e-4 * (largest**2 + norms)
        return torch.mm(widened, self._widened).view(torch.int16), error

    def _bounds(self, kth: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """The largest screened value (as int16 bits) a row may have and still be among the k nearest, from the
        k-th smallest screened value `kth` (bfloat16) and the error term `error` (broadcast alike)."""
        u = self._ROUNDOFF
        kth = kth.float()
        if not torch.isfinite(kth).all():  # a query that is not finite screens as NaN or inf against every row
            raise ValueError(
                "the query features hold NaN or infinite values: the screen's error bound needs finite ones"
            )
        kth = kth.clamp(min=0)
        bound = (kth / (1 - u) + 2 * error) * (1 + u) * (1 + 2 * u)  # the last factor: bfloat16 rounding of it
        return bound.to(torch.bfloat16).view(torch.int16)

    def _candidates(self, order: torch.Tensor, error: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, row) pairs, by query, of the rows that may be among a query's k nearest."""
        kth = order.amin(1) if k == 1 else order.topk(k, dim=1, largest=False).values[:, -1]
        return self._masked_pairs(order <= self._bounds(kth.view(torch.bfloat16), error)[:, None])

    def _masked_pairs(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (query, row) pairs of a [Q, M + pad] mask, by query, read 8 columns (an int64 word) at a time."""
        query, word = mask.view(torch.int64).nonzero(as_tuple=True)
        hit, column = mask.view(len(mask), -1, self._PADDING)[query, word].nonzero(as_tuple=True)
        return query[hit], word[hit] * self._PADDING + column

    def _exact(
        self, queries: torch.Tensor, query: torch.Tensor, row: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's candidates, one row of [Q, width] per query in row order: sum((q - b)^2) in float32 and
        the row index (padding: +inf and the last row)."""
        counts = torch.bincount(query, minlength=len(queries))
        exact = (self.bank.index_select(0, row) - queries.repeat_interleave(counts, dim=0)).square_().sum(1)
        width = int(counts.max())
        slot = query * width + torch.arange(len(query)) - (counts.cumsum(0) - counts).repeat_interleave(counts)
        distances = torch.full((len(queries) * width,), float("inf")).index_copy_(0, slot, exact)
        rows = torch.full((len(queries) * width,), len(self.bank) - 1).index_copy_(0, slot, row)
        return distances.view(-1, width), rows.view(-1, width)

    def _rescored(
        self, queries: torch.Tensor, query: torch.Tensor, row: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest of each query's candidate rows (ties: the lower index)."""
        distances, rows = self._exact(queries, query, row)
        distances, order = distances.sort(dim=1, stable=True)  # candidates in row order: ties keep it
        return distances[:, :k], rows.gather(1, order[:, :k])

    def prefix_nearest(
        self, queries: torch.Tensor, ends: Sequence[int], reached: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest row within each prefix of the bank, from one screened product: (squared distances [Q, S],
        indices [Q, S]), column j for the first `ends[j]` rows (`ends` increasing, the last the bank's size;
        ties: the lower index). A row of segment j (between the ends before it and `ends[j]`) is rescored when
        its screened value is within the bound of the nearest screened value up to `ends[j]`; with `reached`
        [Q] (distances a caller already holds) also only when it could be closer than that: where no row is,
        the column holds +inf and index 0. The rescoring is `pair_distances` (faiss's kernel where faiss
        imports), so distances may differ from `search`'s in the last float32 bits."""
        ends = list(ends)
        if not ends or ends[-1] != len(self.bank) or any(b <= a for a, b in zip([0] + ends, ends)):
            raise ValueError(f"ends={ends}: increasing row counts from 1 to the bank's {len(self.bank)} rows")
        lengths = torch.tensor([b - a for a, b in zip([0] + ends, ends)])
        segment = torch.repeat_interleave(torch.arange(len(ends)), lengths)  # [M]: each row's segment
        queries = queries.float().contiguous()
        chunks = self._chunks(queries)
        known = [None] * len(chunks) if reached is None else reached.float().split([len(c) for c in chunks])
        found = [self._prefix_chunk(chunk, lengths, segment, limit) for chunk, limit in zip(chunks, known)]
        return torch.cat([d for d, _ in found]), torch.cat([i for _, i in found])

    def _prefix_chunk(
        self, queries: torch.Tensor, lengths: torch.Tensor, segment: torch.Tensor, reached: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`prefix_nearest` for one chunk of queries."""
        order, error = self._screened(queries)
        starts = (lengths.cumsum(0) - lengths).tolist()
        minima = torch.stack([order[:, a : a + n].amin(1) for a, n in zip(starts, lengths.tolist())], 1)
        bounds = self._bounds(minima.cummin(1).values.view(torch.bfloat16), error[:, None])  # [Q, S]
        if reached is not None:
            finite = torch.isfinite(reached)
            limit = self._bounds(torch.where(finite, reached, 0), error)
            bounds = torch.minimum(bounds, torch.where(finite, limit, torch.iinfo(torch.int16).max)[:, None])
        mask = torch.zeros(order.shape, dtype=torch.bool)  # the padding columns stay False
        for j, (start, length) in enumerate(zip(starts, lengths.tolist())):
            torch.le(order[:, start : start + length], bounds[:, j, None], out=mask[:, start : start + length])
        query, row = self._masked_pairs(mask)
        return _segment_minima(pair_distances(queries, query, self.bank, row), query, row, segment, len(queries))


def _segment_minima(
    distances: torch.Tensor, query: torch.Tensor, row: torch.Tensor, segment: torch.Tensor, queries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [Q, S], rows [Q, S]) of the nearest among each query's pairs with a row in segments 0..j,
    for every segment j (ties: the lower row; no pair: +inf and row 0)."""
    segments = int(segment.max()) + 1
    key = query * segments + segment[row]
    best = torch.full((queries * segments,), float("inf")).scatter_reduce_(0, key, distances, "amin")
    tied = distances == best[key]
    first = torch.full((queries * segments,), len(segment)).scatter_reduce_(0, key[tied], row[tied], "amin")
    best, first = best.view(queries, segments), first.view(queries, segments)
    for j in range(1, segments):  # the running nearest; a later segment's rows only when strictly closer
        closer = best[:, j] < best[:, j - 1]
        best[:, j] = torch.where(closer, best[:, j], best[:, j - 1])
        first[:, j] = torch.where(closer, first[:, j], first[:, j - 1])
    return best, first.masked_fill_(first == len(segment), 0)


def pair_distances(queries: torch.Tensor, query: torch.Tensor, bank: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """sum((queries[query] - bank[row])^2) in float32 for each pair, by faiss's fused kernel where faiss imports
    (~6x torch's gather-subtract-sum on CPU here, benchmarks/NOTES.md), else in torch."""
    if faiss_available() and not bank.is_cuda:
        import faiss

        distances = numpy.empty(len(query), dtype=numpy.float32)
        x, ix, y, iy = (t.contiguous().numpy() for t in (queries, query, bank, row))
        faiss.pairwise_indexed_L2sqr(
            bank.shape[1], len(query), *(faiss.swig_ptr(a) for a in (x, ix, y, iy)), faiss.swig_ptr(distances)
        )
        return torch.from_numpy(distances)
    return torch.cat(
        [(bank[r] - queries[q]).square_().sum(1) for q, r in zip(query.split(8192), row.split(8192))]
        or [torch.empty(0)]
    )


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
) -> TorchExact | ScreenedExact | FaissExact | FaissIVFPQ:
    """k-NN search in `bank` [M, D]: `search(queries, k)` returns squared distances and indices, nearest first.

    `index="flat"` (default) is exact; `backend` 'auto' takes the quickest exact engine here: the bfloat16
    screen (`ScreenedExact`) for a bank of `SCREEN_MIN_ROWS` or more on a CPU with AMX, else faiss when it
    imports, else torch's float32 products (`chunk_bytes` bounds torch's distance blocks). `index="ivfpq"` is
    approximate, on faiss only (backend 'auto' or 'faiss'; never a silent fallback to exact search), seeded by
    `seed`, searching `nprobe` lists per query (see `FaissIVFPQ`).
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
    if backend == "auto" and not bank.is_cuda and len(bank) >= SCREEN_MIN_ROWS and bfloat16_products_are_fast():
        return ScreenedExact(bank)
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        return FaissExact(bank)
    return TorchExact(bank, chunk_bytes)
