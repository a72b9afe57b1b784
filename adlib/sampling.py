"""Memory-bank subsampling (PatchCore paper Sec. 3.2, official `sampler.py`).

A sampler picks `n` rows of a feature bank [N, D] and returns their indices (int64, on the CPU); the
caller keeps the rows. `coreset_size` turns the paper's percentage into `n` as the official code does.

The greedy samplers run minimax facility location (greedy k-center): `n` times, take the row farthest
from the coreset so far, then lower every row's distance to the coreset. They work on squared
Euclidean distances: argmax and min over squared distances pick the same rows as over distances.
Each pick costs one pass over the projected bank, so the bank is kept transposed and contiguous,
[k + 2, N] (k projected dims, then ||x||^2 and ones), which makes ||x - c||^2 for all rows a single
[1, k + 2] x [k + 2, N] product streamed at the memory bandwidth; row-major [N, k] with BLAS's
matrix-vector product is ~3x slower on the 2-core CPU of DESIGN.md §6. Measured there, 157k x 1024 ->
10 %: ~50 s (~25 GB/s, 90 % of a bare pass over the bank per pick) vs ~73 ms/pick (~19 min) for the
official-style loop in `adlib.reference.official_greedy_coreset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

_PROJECTION_CHUNK_ROWS = 16384  # rows cast and projected at once: bounds the copy of half-precision input
_SERIAL_SLICE = 16384  # elements per elementwise op in the greedy loop: below ATen's parallel grain (32768)


class CoresetSampler(Protocol):
    """Anything that picks `n` rows of a bank [N, D] and returns their indices."""

    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """Indices (int64, CPU, unique) of `n` rows of `features` [N, D]; the same for the same seed."""
        ...


def coreset_size(n_total: int, ratio: float) -> int:
    """The official coreset size `int(N * ratio)`; refuses ratios that would give an empty coreset."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio={ratio}: the coreset ratio must be in (0, 1], e.g. 0.1 for 10 % of the bank")
    if n_total < 1:
        raise ValueError(f"n_total={n_total}: the memory bank is empty; extract training features first")
    size = int(n_total * ratio)
    if size == 0:
        raise ValueError(
            f"ratio={ratio} too small for N={n_total} patches: int(N * ratio) = 0; "
            f"use a ratio of at least {1 / n_total:.3g}"
        )
    return size


@dataclass(frozen=True)
class ApproximateGreedyCoreset:
    """Greedy k-center on a random projection, as the official `ApproximateGreedyCoresetSampler`.

    - Features are projected by a freshly initialised `nn.Linear(D, projection_dim, bias=False)` (its
      default init, drawn from `seed`). When D <= projection_dim there is no projection: the official code
      skips it only at D == projection_dim and would project smaller features *up*, which costs more
      and only distorts the distances.
    - `start_points` random rows (from `seed`) give every row its initial distance: the mean of its
      Euclidean distances to them. They are not added to the coreset.
    - Then `n` picks; a picked row is never picked again (the official code could repeat one once every
      remaining distance is 0, i.e. with more duplicate rows than picks left).
    Memory: the projected bank [projection_dim + 2, N] plus O(N). The global RNG state is untouched.
    """

    projection_dim: int = 128
    start_points: int = 10

    def __post_init__(self) -> None:
        if self.projection_dim < 1:
            raise ValueError(f"projection_dim={self.projection_dim}: must be >= 1 (the official code uses 128)")
        if self.start_points < 1:
            raise ValueError(f"start_points={self.start_points}: must be >= 1 (the official code uses 10)")

    @torch.no_grad()
    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """Indices of `n` coreset rows of `features` [N, D], computed on the features' device."""
        _check_request(features, n)
        generator = torch.Generator().manual_seed(seed)
        bank = _augmented_bank(features, self.projection_dim, generator)  # [k + 2, N]
        total = bank.shape[1]
        starts = torch.randperm(total, generator=generator)[: min(self.start_points, total)].to(bank.device)
        distances_to = _StreamedDistances(bank)
        to_starts = torch.empty(len(starts), total, dtype=bank.dtype, device=bank.device)
        for row, start in zip(to_starts, starts.split(1)):
            distances_to(start, row)
        min_dist = to_starts.clamp_(min=0).sqrt_().mean(dim=0).square_()  # squared mean distance to the starts
        return _greedy_picks(min_dist, n, distances_to)


@dataclass(frozen=True)
class ExactGreedyCoreset:
    """Greedy k-center on the unprojected features from the full N x N distance matrix.

    As the official `GreedyCoresetSampler`, which computes the matrix once: the first pick is the row
    with the largest norm of its row of distances (no random start, so `seed` is unused), then the same
    argmax / min-update loop. (The official class also projects to 128 dims first; this one does not.)
    The matrix needs N * N * 4 bytes in float32, so above `max_bytes` it refuses.
    """

    max_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes={self.max_bytes}: must be a positive number of bytes")

    @torch.no_grad()
    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """Indices of `n` coreset rows of `features` [N, D]; deterministic, `seed` is ignored."""
        _check_request(features, n)
        dtype = _compute_dtype(features)
        total = features.shape[0]
        needed = total * total * (torch.finfo(dtype).bits // 8)
        if needed > self.max_bytes:
            raise ValueError(
                f"ExactGreedyCoreset needs the full {total} x {total} distance matrix, {needed / 1024**3:.2f} GiB, "
                f"more than max_bytes={self.max_bytes} ({self.max_bytes / 1024**3:.2f} GiB): use "
                "ApproximateGreedyCoreset (O(N) memory), or raise max_bytes if the memory is there"
            )
        rows = features.to(dtype)
        norms = torch.linalg.vector_norm(rows, dim=1).square_()
        matrix = torch.mm(rows, rows.t())  # the one N x N allocation; turned into squared distances in place
        matrix.mul_(-2).add_(norms[:, None]).add_(norms[None, :]).clamp_(min=0)
        start = matrix.sum(dim=1)  # squared norm of each row of distances: the official starting values
        return _greedy_picks(start, n, _MatrixRows(matrix))


@dataclass(frozen=True)
class RandomSubset:
    """A seeded uniform sample without replacement (the official `RandomSampler`, seeded)."""

    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """Indices of `n` distinct rows of `features` [N, D], drawn uniformly."""
        _check_request(features, n)
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(features.shape[0], generator=generator)[:n]


def _check_request(features: torch.Tensor, n: int) -> None:
    """Refuse a bank that is not [N, D] and a coreset size outside 1..N."""
    if features.ndim != 2:
        raise ValueError(f"features of shape {tuple(features.shape)}: pass a bank [N, D] (flatten images x patches)")
    total = features.shape[0]
    if n < 1:
        raise ValueError(f"n={n}: the coreset needs at least one row (see coreset_size)")
    if n > total:
        raise ValueError(f"n={n} > N={total}: coreset larger than the bank; ask for at most N rows (see coreset_size)")


def _compute_dtype(features: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (half, bfloat16, float32) is computed in float32."""
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _augmented_bank(features: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    """[N, D] -> contiguous [k + 2, N]: the rows projected by a fresh `nn.Linear(D, dim, bias=False)`
    (k = dim), or the rows themselves when D <= dim (k = D), transposed; then a row of squared norms
    ||x||^2 and a row of ones, so that one product [-2c, 1, ||c||^2] @ bank gives every ||x - c||^2."""
    dtype = _compute_dtype(features)
    total, width = features.shape
    k = min(width, dim)
    bank = torch.empty(k + 2, total, dtype=dtype, device=features.device)
    if width <= dim:
        bank[:k] = features.t()
    else:
        weight = torch.empty(dim, width)  # drawn on the CPU in float32, as nn.Linear(D, dim) would be
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)  # nn.Linear's default init
        weight = weight.to(features.device, dtype)
        for first in range(0, total, _PROJECTION_CHUNK_ROWS):
            rows = features[first : first + _PROJECTION_CHUNK_ROWS].to(dtype)
            torch.mm(weight, rows.t(), out=bank[:k, first : first + rows.shape[0]])
    torch.linalg.vector_norm(bank[:k], dim=0, out=bank[k]).square_()
    bank[k + 1] = 1
    return bank


class _StreamedDistances:
    """Squared distances of all rows to one row of an augmented bank (see `_augmented_bank`), as one
    [1, k + 2] x [k + 2, N] product: a single pass over the bank, no N-sized allocation."""

    def __init__(self, bank: torch.Tensor) -> None:
        self.bank = bank
        self.k = bank.shape[0] - 2
        self.centre = torch.ones(1, self.k + 2, dtype=bank.dtype, device=bank.device)  # [-2c, 1, ||c||^2]

    def __call__(self, pick: torch.Tensor, out: torch.Tensor) -> None:
        """Write the squared distances (may be slightly negative) of all rows to row `pick` (a [1] index
        tensor) into `out` [N]."""
        k = self.k
        torch.index_select(self.bank[:k], 1, pick, out=self.centre[:, :k].view(k, 1))
        self.centre[:, :k].mul_(-2)
        torch.index_select(self.bank[k], 0, pick, out=self.centre[0, k + 1 :])
        torch.mm(self.centre, self.bank, out=out.view(1, -1))


class _MatrixRows:
    """Squared distances of all rows to one row, read from a precomputed symmetric matrix."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix

    def __call__(self, pick: torch.Tensor, out: torch.Tensor) -> None:
        """Copy row `pick` (a [1] index tensor) of the matrix into `out` [N]."""
        torch.index_select(self.matrix, 0, pick, out=out.view(1, -1))


def _greedy_picks(
    min_dist: torch.Tensor, n: int, distances_to: Callable[[torch.Tensor, torch.Tensor], None]
) -> torch.Tensor:
    """`n` times: pick the argmax of `min_dist` (updated in place), then lower it to the distances to the pick.

    The update is one fused elementwise op, clamp(d, 0, min_dist) = min(min_dist, max(d, 0)). On the CPU
    it runs in slices below ATen's parallel grain: the loop is memory-bound, and a parallel region after
    every BLAS call made picks 2-3x slower on the shared 2-core CPU (a busy core stalls each region).
    Picked rows get -inf so they cannot come back. Indices stay on the device: no host sync per pick.
    """
    picks = torch.empty(n, dtype=torch.int64, device=min_dist.device)
    dist = torch.empty_like(min_dist)
    zero = torch.zeros((), dtype=min_dist.dtype, device=min_dist.device)
    slice_len = _SERIAL_SLICE if min_dist.device.type == "cpu" else len(min_dist)
    slices = list(zip(dist.split(slice_len), min_dist.split(slice_len)))  # views, made once
    for i in range(n):
        pick = picks[i : i + 1]
        torch.argmax(min_dist, dim=0, keepdim=True, out=pick)
        distances_to(pick, dist)
        for new, current in slices:
            torch.clamp(new, min=zero, max=current, out=current)
        min_dist.index_fill_(0, pick, -math.inf)
    return picks.cpu()
