"""The greedy k-center loop of PatchCore's coreset (`adlib.bank.sampling`): n times, take the row farthest from
the picks so far, then lower every row's distance to the picks.

`greedy_picks` streams one distance pass per pick (over an augmented bank, `StreamedDistances`, or the rows of
a precomputed matrix, `MatrixRows`); `tiled_greedy_picks` gives the same picks lazily, tile by tile, so that a
tile is read once for many picks while it sits in cache (the CPU default; benchmarks/NOTES.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SERIAL_SLICE = 16384  # elements per elementwise op in the streamed loop: below ATen's parallel grain (32768)


class StreamedDistances:
    """Squared distances of all rows to one row of an augmented bank (see `augmented_bank`), as one
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


class MatrixRows:
    """Squared distances of all rows to one row, read from a precomputed symmetric matrix."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix

    def __call__(self, pick: torch.Tensor, out: torch.Tensor) -> None:
        """Copy row `pick` (a [1] index tensor) of the matrix into `out` [N]."""
        torch.index_select(self.matrix, 0, pick, out=out.view(1, -1))


GREEDY_TILE = 2048  # bank columns per tile of the lazy greedy loop: [130, 2048] float32 is about 1 MB


def tiled_greedy_picks(bank: torch.Tensor, min_dist: torch.Tensor, n: int, tile: int = GREEDY_TILE) -> torch.Tensor:
    """The picks of `greedy_picks` over the augmented `bank` [k + 2, N], with the distance updates done lazily.

    The rows are cut into tiles of `tile` columns. Each tile keeps an upper bound of its rows' distances
    to the coreset (its maximum when last brought up to date: distances only fall) and the picks not yet
    applied to it. To find the farthest row, the tile with the highest bound (the first on ties) is
    brought up to date, all its pending picks in one [p, k + 2] x [k + 2, tile] product, until the best
    tile is up to date: its farthest row is then the argmax over all rows, the first on ties, as in
    `greedy_picks`. The arithmetic per distance is the same product; what changes is that a tile is read
    once for many picks while it sits in cache, instead of the whole bank streamed from memory per pick.
    """
    k = bank.shape[0] - 2
    total = bank.shape[1]
    edges = [(start, min(start + tile, total)) for start in range(0, total, tile)]
    bounds = torch.stack([min_dist[start:end].max() for start, end in edges])
    applied = [0] * len(edges)  # picks [0, applied[t]) are in tile t's distances
    centres = torch.empty(n, k + 2, dtype=bank.dtype, device=bank.device)  # [-2c, 1, ||c||^2] per pick
    picks = torch.empty(n, dtype=torch.int64)
    for i in range(n):
        while True:
            t = int(torch.argmax(bounds))
            start, end = edges[t]
            if applied[t] == i:
                break
            block = torch.mm(centres[applied[t] : i], bank[:, start:end]).clamp_(min=0)
            torch.minimum(min_dist[start:end], block.amin(dim=0), out=min_dist[start:end])
            applied[t] = i
            bounds[t] = min_dist[start:end].max()
        pick = start + int(torch.argmax(min_dist[start:end]))
        picks[i] = pick
        centres[i, :k] = bank[:k, pick] * -2
        centres[i, k] = 1
        centres[i, k + 1] = bank[k, pick]
        min_dist[pick] = -math.inf
        bounds[t] = min_dist[start:end].max()  # an upper bound until pick i is applied to the tile
    return picks


def greedy_picks(
    min_dist: torch.Tensor, n: int, distances_to: Callable[[torch.Tensor, torch.Tensor], None]
) -> torch.Tensor:
    """`n` times: pick the argmax of `min_dist` (updated in place), then lower it to the distances to the pick.

    The update is one fused elementwise op, clamp(d, 0, min_dist) = min(min_dist, max(d, 0)). On the CPU
    it runs in slices below ATen's parallel grain: the loop is memory-bound, and a parallel region after
    every BLAS call makes picks slower on a busy CPU (benchmarks/NOTES.md).
    Picked rows get -inf so they cannot come back. Indices stay on the device: no host sync per pick.
    """
    picks = torch.empty(n, dtype=torch.int64, device=min_dist.device)
    dist = torch.empty_like(min_dist)
    zero = torch.zeros((), dtype=min_dist.dtype, device=min_dist.device)
    slice_len = SERIAL_SLICE if min_dist.device.type == "cpu" else len(min_dist)
    slices = list(zip(dist.split(slice_len), min_dist.split(slice_len)))  # views, made once
    for i in range(n):
        pick = picks[i : i + 1]
        torch.argmax(min_dist, dim=0, keepdim=True, out=pick)
        distances_to(pick, dist)
        for new, current in slices:
            torch.clamp(new, min=zero, max=current, out=current)
        min_dist.index_fill_(0, pick, -math.inf)
    return picks.cpu()
