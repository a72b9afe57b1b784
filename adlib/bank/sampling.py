"""Memory-bank subsampling (PatchCore paper Sec. 3.2, official `sampler.py`).

Every sampler has one call, `sample(features [N, D], n, seed) -> Sampled(bank, source)`: the memory bank
and, for the samplers that keep training rows (the coresets and the random subset), their indices
(int64, on the CPU; their `select` returns just those). `coreset_size` turns the paper's percentage
into `n` as the official code does.

The greedy samplers run minimax facility location (greedy k-center): `n` times, take the row farthest
from the coreset so far, then lower every row's distance to the coreset. They work on squared
Euclidean distances: argmax and min over squared distances pick the same rows as over distances.
The projected bank is kept transposed and contiguous, [k + 2, N] (k projected dims, then ||x||^2 and
ones), which makes ||x - c||^2 for all rows a single [1, k + 2] x [k + 2, N] product. Streamed once per pick,
that pass runs at the memory bandwidth; on the CPU the loop instead works tile by tile and lazily
(`adlib.bank.greedy.tiled_greedy_picks`): a tile of the bank is brought up to date only when it may hold the farthest row,
with all its pending picks in one product while it sits in cache. The same picks (identical in float64;
in float32 a near-tie can go the other way, as between any two orders of summation), 6.4x faster on a
62,720-row bank (benchmarks/NOTES.md), and far faster than the official-style loop in
`adlib.bank.reference.official_greedy_coreset`.

`LearnedProxies` is the paper's third option (Fig. 5, Eq. 8): like `adlib.bank.clustering.KMeansBank` it
returns trained points (source None) instead of training rows.
`check_request`, `compute_dtype` and `augmented_bank` are shared with `adlib.bank.clustering` (its k-means++
computes distances on the same augmented bank); the greedy loops themselves are in `adlib.bank.greedy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from adlib.bank.greedy import MatrixRows, StreamedDistances, greedy_picks, tiled_greedy_picks

_PROJECTION_CHUNK_ROWS = 16384  # rows cast and projected at once: bounds the copy of half-precision input
_PROXY_BLOCK = 2**22  # distances (rows x proxies) per block of the Eq. 8 objective: 16 MiB in float32
_SQUARED_FLOOR = 1e-12  # squared distances are clamped here before the root (see reconstruction_gradient)
_SPREAD_CHUNK_ROWS = 4096  # rows copied to float64 at once when measuring the features' spread


@dataclass(frozen=True)
class Sampled:
    """A memory bank and, where its rows copy training patches, which ones."""

    bank: torch.Tensor  # [n, D], dtype and device of the features
    source: torch.Tensor | None  # [n] int64 CPU row indices into the features; None for built points


class Sampler(Protocol):
    """Every memory-bank sampler: `sample(features [N, D], n, seed) -> Sampled`, the same for the same seed."""

    def sample(self, features: torch.Tensor, n: int, seed: int) -> Sampled: ...


class Selector:
    """For samplers that keep rows of the bank: `sample` from `select` (the row indices)."""

    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, features: torch.Tensor, n: int, seed: int) -> Sampled:
        """The selected rows and their indices; n = N keeps the whole bank in its order (nothing to choose)."""
        if n == features.shape[0] and features.ndim == 2:
            return Sampled(features, torch.arange(n))
        chosen = self.select(features, n, seed)
        return Sampled(features[chosen.to(features.device)], chosen)


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
class ApproximateGreedyCoreset(Selector):
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
        check_request(features, n)
        generator = torch.Generator().manual_seed(seed)
        bank = augmented_bank(features, self.projection_dim, generator)  # [k + 2, N]
        total = bank.shape[1]
        starts = torch.randperm(total, generator=generator)[: min(self.start_points, total)].to(bank.device)
        distances_to = StreamedDistances(bank)
        to_starts = torch.empty(len(starts), total, dtype=bank.dtype, device=bank.device)
        for row, start in zip(to_starts, starts.split(1)):
            distances_to(start, row)
        min_dist = to_starts.clamp_(min=0).sqrt_().mean(dim=0).square_()  # squared mean distance to the starts
        if bank.device.type == "cpu":
            return tiled_greedy_picks(bank, min_dist, n)
        return greedy_picks(min_dist, n, distances_to)  # a GPU streams the bank fast enough, without host syncs


@dataclass(frozen=True)
class ExactGreedyCoreset(Selector):
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
        check_request(features, n)
        dtype = compute_dtype(features)
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
        return greedy_picks(start, n, MatrixRows(matrix))


@dataclass(frozen=True)
class RandomSubset(Selector):
    """A seeded uniform sample without replacement (the official `RandomSampler`, seeded)."""

    def select(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """Indices of `n` distinct rows of `features` [N, D], drawn uniformly."""
        check_request(features, n)
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(features.shape[0], generator=generator)[:n]


@dataclass(frozen=True)
class LearnedProxies:
    """The "learned basis proxies" of PatchCore's Fig. 5: `n` points trained to reconstruct the bank.

    Unlike the coreset samplers it builds new points (as `adlib.bank.clustering.KMeansBank`): the proxies,
    which become the memory bank (`Sampled.source` is None). They minimise the mean over the features m of the basis
    reconstruction objective, paper Eq. 8 (see `reconstruction_loss`),

        L(m) = || m - sum_k softmax_k(-||m - p_1||, ..., -||m - p_n||) p_k ||^2,

    with Euclidean (not squared) distances and no temperature, as printed. The paper prints the softmax
    of +||m - p_k||, which weighs the *farthest* proxies most and would rebuild m from the proxies least
    like it; we read that as a sign slip and use -||m - p_k||, so the nearest proxies weigh most. On
    features whose distances differ by tens (PatchCore embeddings: norms ~165, coordinate spread ~4
    for EfficientNet-Lite0) the weights are then almost one-hot and L(m) is close to the squared
    distance to the nearest proxy, i.e. K-means' objective, reached by gradient steps.

    Optimisation: the proxies start as the rows that `RandomSubset().select(features, n, seed)` picks
    (`steps=0` returns exactly them); then `steps` Adam steps (torch defaults: betas 0.9, 0.999),
    each on `batch_size` rows (at most N) drawn by the same seeded generator in epochs of a random
    permutation, with the step size `learning_rate` x the features' RMS per-coordinate standard
    deviation, so that one default suits every backbone's feature scale. Same seed -> same bank (on
    the same machine and thread count). The proxies live in the full feature space: they are the bank.
    Defaults (200 x 1024 rows, 0.03), chosen on 62,720 x 1024 features (EfficientNet-Lite0, brick)
    -> 1 % (627 proxies): the mean loss falls from ~9300 at the initialisation to ~6200 (0.03 after
    150 steps: ~6300; step size 0.01 after 200 steps: ~6900; 0.1 after 150: ~6600); more steps keep
    lowering it slowly.
    Cost: ~5 x batch_size x n x D multiply-adds per step (five matrix products, see
    `reconstruction_gradient`; measured times in benchmarks/NOTES.md).
    Memory: the proxies, their gradient and Adam's two moments ([n, D] each), one batch [batch_size, D]
    and three blocks of at most `_PROXY_BLOCK` (rows x n) distances: bounded for any N.
    """

    steps: int = 200
    batch_size: int = 1024
    learning_rate: float = 0.03

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps={self.steps}: use >= 0 Adam steps (0 returns the random initialisation)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: each Adam step needs at least one row (default 1024)")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate={self.learning_rate}: use a positive share of the features' spread (default 0.03)"
            )

    def sample(self, features: torch.Tensor, n: int, seed: int) -> Sampled:
        """`n` proxies trained on Eq. 8 as the bank [n, D] (dtype and device of `features` [N, D]); no source."""
        return Sampled(self._train(features, n, seed), None)

    def _train(self, features: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        check_request(features, n)
        features = features.detach()
        dtype = compute_dtype(features)
        total = features.shape[0]
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(total, generator=generator)  # its first n rows: RandomSubset's pick
        proxies = features[order[:n].to(features.device)].to(dtype)
        if self.steps == 0:
            return proxies.to(features.dtype)
        step_size = self.learning_rate * _rms_spread(features)
        optimiser = torch.optim.Adam([proxies], lr=step_size)
        batch = min(self.batch_size, total)
        order, used = torch.randperm(total, generator=generator), 0
        for _ in range(self.steps):
            rows = order[used : used + batch]
            used += len(rows)
            if len(rows) < batch:  # the epoch ran out: go on with the next permutation
                order, used = torch.randperm(total, generator=generator), batch - len(rows)
                rows = torch.cat([rows, order[:used]])
            _, proxies.grad = reconstruction_gradient(features[rows.to(features.device)], proxies)
            optimiser.step()
        return proxies.detach().to(features.dtype)


def reconstruction_loss(features: torch.Tensor, proxies: torch.Tensor, block: int | None = None) -> float:
    """The mean over the rows m of `features` [N, D] of Eq. 8's L(m) for `proxies` [n, D] (see
    `LearnedProxies`), computed in float32 (float64 for float64 proxies), `block` distances at a time."""
    dtype = compute_dtype(proxies)
    proxies = proxies.detach().to(dtype)
    norms = proxies.pow(2).sum(1)
    total = torch.zeros((), dtype=torch.float64, device=proxies.device)
    for rows in features.detach().split(_block_rows(len(proxies), block)):
        _, _, residuals = _reconstruction(rows.to(dtype), proxies, norms)
        total += residuals.pow(2).sum()
    return total.item() / features.shape[0]


@torch.no_grad()
def reconstruction_gradient(
    features: torch.Tensor, proxies: torch.Tensor, block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean Eq. 8 loss over the rows of `features` [N, D], its gradient [n, D] with respect to `proxies`).

    Written out rather than by autograd (fewer passes over the [rows, n] blocks, no saved graph), over
    blocks of at most `block` distances (default `_PROXY_BLOCK`), summed. With d_ik = ||m_i - p_k||,
    w_i = softmax(-d_i), r_i = m_i - sum_k w_ik p_k and a_ik = w_ik (r_i.p_k - sum_j w_ij r_i.p_j) / d_ik:
        dL/dp_k = -(2 / N) sum_i (w_ik r_i + a_ik (m_i - p_k)).
    Where a feature coincides with a proxy (d below sqrt(`_SQUARED_FLOOR`)) the distance has no
    gradient; that term gets the subgradient 0 (a_ik = 0)."""
    dtype = compute_dtype(proxies)
    proxies = proxies.detach().to(dtype)
    norms = proxies.pow(2).sum(1)
    loss = torch.zeros((), dtype=torch.float64, device=proxies.device)
    gradient = torch.zeros_like(proxies)
    for rows in features.detach().split(_block_rows(len(proxies), block)):
        rows = rows.to(dtype)
        minus_d, weights, residuals = _reconstruction(rows, proxies, norms)
        loss += residuals.pow(2).sum()
        a = torch.mm(residuals, proxies.t())  # r_i . p_k, turned into a_ik in place
        a.sub_(torch.bmm(weights.unsqueeze(1), a.unsqueeze(2)).squeeze(2)).mul_(weights).div_(minus_d).neg_()
        a.masked_fill_(minus_d >= -math.sqrt(_SQUARED_FLOOR), 0)
        gradient.addmm_(weights.t(), residuals).addmm_(a.t(), rows).addcmul_(a.sum(0)[:, None], proxies, value=-1)
    scale = features.shape[0]
    return (loss / scale).to(dtype), gradient.mul_(-2 / scale)


def _block_rows(proxies: int, block: int | None) -> int:
    block = _PROXY_BLOCK if block is None else block
    if block < 1:
        raise ValueError(f"block={block}: use at least one distance per block")
    return max(1, block // proxies)


def _reconstruction(
    rows: torch.Tensor, proxies: torch.Tensor, norms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For rows m [b, D], proxies p [n, D] and their squared norms [n]: (-||m - p_k|| [b, n], the
    softmax weights w [b, n] of those, the residuals m - w @ p [b, D])."""
    minus_d = torch.addmm(norms, rows, proxies.t(), alpha=-2).add_(rows.pow(2).sum(1, keepdim=True))
    minus_d.clamp_(min=_SQUARED_FLOOR).sqrt_().neg_()
    weights = torch.softmax(minus_d, dim=1)
    return minus_d, weights, torch.addmm(rows, weights, proxies, alpha=-1)


def _rms_spread(features: torch.Tensor) -> float:
    """sqrt(mean over coordinates of their variance) of `features` [N, D], summed in float64 by chunks."""
    total = features.shape[0]
    mean = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
    for chunk in features.split(_SPREAD_CHUNK_ROWS):
        mean += chunk.sum(dim=0, dtype=torch.float64)
    mean /= total
    squares = torch.zeros((), dtype=torch.float64, device=features.device)
    for chunk in features.split(_SPREAD_CHUNK_ROWS):
        squares += (chunk.to(torch.float64) - mean).pow(2).sum()
    return math.sqrt(squares.item() / (total * features.shape[1]))


def check_request(features: torch.Tensor, n: int) -> None:
    """Refuse a bank that is not [N, D] and a coreset size outside 1..N."""
    if features.ndim != 2:
        raise ValueError(f"features of shape {tuple(features.shape)}: pass a bank [N, D] (flatten images x patches)")
    total = features.shape[0]
    if n < 1:
        raise ValueError(f"n={n}: the coreset needs at least one row (see coreset_size)")
    if n > total:
        raise ValueError(f"n={n} > N={total}: coreset larger than the bank; ask for at most N rows (see coreset_size)")


def compute_dtype(features: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (half, bfloat16, float32) is computed in float32."""
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def augmented_bank(features: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    """[N, D] -> contiguous [k + 2, N]: the rows projected by a fresh `nn.Linear(D, dim, bias=False)`
    (k = dim), or the rows themselves when D <= dim (k = D), transposed; then a row of squared norms
    ||x||^2 and a row of ones, so that one product [-2c, 1, ||c||^2] @ bank gives every ||x - c||^2."""
    dtype = compute_dtype(features)
    total, width = features.shape
    k = min(width, dim)
    bank = torch.empty(k + 2, total, dtype=dtype, device=features.device)
    if width <= dim:
        bank[:k] = features.t()
    else:
        weight = random_projection(width, dim, generator).to(features.device, dtype)
        for first in range(0, total, _PROJECTION_CHUNK_ROWS):
            rows = features[first : first + _PROJECTION_CHUNK_ROWS].to(dtype)
            torch.mm(weight, rows.t(), out=bank[:k, first : first + rows.shape[0]])
    torch.linalg.vector_norm(bank[:k], dim=0, out=bank[k]).square_()
    bank[k + 1] = 1
    return bank


def random_projection(width: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """The weight [dim, width] of a fresh `nn.Linear(width, dim, bias=False)` (its default init), drawn on
    the CPU in float32 from `generator`: the random projection of the greedy coreset and of SoftPatch's
    grouping space (`adlib.bank.denoise`)."""
    weight = torch.empty(dim, width)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)  # nn.Linear's default init
    return weight
