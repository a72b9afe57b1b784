"""SoftPatch's patch-level denoising (SoftPatch paper Sec. 3.2-3.3, public `softpatch.py`).

Training patches are grouped by spatial position: features [N, P, D] hold N images x P positions, and
the group of position p is the N vectors features[:, p]. Each patch gets an outlier score within its
group (higher = more likely noise); `denoise` then drops the top tau share of all N x P scores before
the coreset and turns the scores of the rest into soft weights.

Outlier scores (`outlier_scores`), all on Euclidean distances in the grouping space:
- `nearest` (paper Eq. 1): distance to the nearest patch of another image at the same position.
- `gaussian` (Eq. 2-3): Mahalanobis distance to the position's Gaussian, mean and covariance of its N
  patches, the covariance normalised by N - 1 (the paper's Eq. 2 and the public code's
  `MultiVariateGaussian`, like `np.cov`) plus eps * I (the public code's 0.01). The patch itself is
  part of the fit, as in the paper.
- `lof` (Eq. 4-6): the local outlier factor with k = `lof_k` neighbours among the N patches,
  exactly scikit-learn's `-LocalOutlierFactor(n_neighbors=k).fit(X).negative_outlier_factor_`,
  including its 1e-10 added to the mean reachability distance (finite with more than k duplicates).

Grouping space: as in the public code, the embeddings first go through a random projection to
`projection_dim` dims, a fresh `nn.Linear(D, projection_dim, bias=False)` with its default init, here
drawn from a local generator seeded by `seed` (the public code draws it unseeded from the global RNG).
When D <= projection_dim the features are used as they are (the public code would project *up* unless
D == 128), as `adlib.bank.sampling.ApproximateGreedyCoreset` does.

Differences from the public code, on purpose:
- `lof` uses k = `lof_k` (default 6, the paper's value); the public code's `--lof_k` never reached
  its model, which used 5.
- `nearest` excludes the patch itself by index. The public code sums the two smallest distances,
  the patch's own (0 up to the float error of its ||a||^2 + ||b||^2 - 2ab distances) and the nearest
  other one.
- The public code adds 1 to the `nearest` and `gaussian` scores. Here that shift lives in the soft
  weight (`denoise`), so the scores are the paper's Eq. 1 and 3 and the keep/drop split is unchanged
  (a constant shift does not move any patch across the quantile).

Behaviour to know (seen in `notebooks/sp_table4_softweight.ipynb`):
- `gaussian` with N <= `projection_dim` images: the N - 1 sample directions span the covariance, so
  every patch sits at almost the same in-sample Mahalanobis distance, about (N - 1) / sqrt(N) (eps
  breaks the tie). The ranking that decides the drop still works; the soft weight then barely varies
  and does nothing. More images than projected dims, or a smaller `projection_dim`, restore it.
- `nearest`'s soft weight is 1 + distance, and a Euclidean distance on raw backbone features is far
  larger than 1 (about 25 on EfficientNet-Lite0): the weight then rescales each bank patch's distances
  by a large, patch-dependent factor instead of correcting them slightly. In that notebook (pill, 10 %
  noise) it lowers the mean image + pixel AUROC by 0.08-0.10; the LOF weight (about 1) does not.

Cost: positions are processed in chunks sized to `_CHUNK_BYTES` of work memory (`positions_per_chunk`),
each as batched matrix products on the features' device; no loop over patches. float64 input is
computed in float64, everything else in float32. `gaussian_factors` and `mahalanobis` are shared with
`adlib.detectors.padim`; the random projection is `adlib.bank.sampling.random_projection`, the greedy coreset's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from adlib.bank.sampling import random_projection

DENOISERS = ("nearest", "gaussian", "lof")
# Added to the outlier score to give the soft weight, as the public code adds 1 to these two scores.
_WEIGHT_OFFSET = {"nearest": 1.0, "gaussian": 1.0, "lof": 0.0}
_CHUNK_BYTES = 128 * 1024**2  # work memory per chunk of positions (~140 positions at N = 200, k = 128)
_LRD_EPS = 1e-10  # scikit-learn's guard in the local reachability density


@torch.no_grad()
def outlier_scores(
    features: torch.Tensor,
    method: str,
    lof_k: int = 6,
    eps: float = 0.01,
    projection_dim: int | None = 128,
    seed: int = 0,
) -> torch.Tensor:
    """Outlier score of every training patch within its position's group, [N, P] (higher = noisier).

    `features` [N, P, D]: N images x P positions. `lof_k` is used by `lof` only, `eps` by `gaussian`
    only; `projection_dim` and `seed` set the random projection of the grouping space (None: none).
    """
    if method not in DENOISERS:
        raise ValueError(f"method={method!r}: choose one of {', '.join(DENOISERS)}")
    if features.ndim != 3:
        raise ValueError(
            f"features of shape {tuple(features.shape)}: pass [N_images, P, D], "
            "the training patches grouped by position"
        )
    n_images, n_positions, width = features.shape
    if n_images < 2:
        raise ValueError(f"N={n_images} training images: outlier scores per position need at least 2 images")
    if method == "lof" and not 1 <= lof_k < n_images:
        raise ValueError(
            f"lof_k={lof_k} with N={n_images} images: LOF needs 1 <= lof_k < N neighbours (the paper uses 6)"
        )
    if not eps > 0:
        raise ValueError(f"eps={eps}: the covariance regulariser must be > 0 (the public code uses 0.01)")
    if projection_dim is not None and projection_dim < 1:
        raise ValueError(f"projection_dim={projection_dim}: must be >= 1, or None for no projection (public code: 128)")

    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    weight = None
    if projection_dim is not None and width > projection_dim:  # as ApproximateGreedyCoreset: never project up
        weight = random_projection(width, projection_dim, torch.Generator().manual_seed(seed))
    dim = width if weight is None else weight.shape[0]
    if weight is not None:
        weight = weight.to(features.device, dtype)
    scores = torch.empty(n_positions, n_images, dtype=dtype, device=features.device)
    chunk = positions_per_chunk(_CHUNK_BYTES, _position_elements(method, n_images, dim), torch.finfo(dtype).bits // 8)
    for first in range(0, n_positions, chunk):
        group = features[:, first : first + chunk].to(dtype)  # [N, B, D], a view when already in dtype
        if weight is not None:
            group = group @ weight.t()  # projected before the transpose: no copy of the wide features
        group = group.transpose(0, 1)  # [B, N, D]
        group = (group - group.mean(dim=1, keepdim=True)).contiguous()  # centred: same distances, less float error
        if method == "nearest":
            scores[first : first + len(group)] = _nearest(group)
        elif method == "gaussian":
            scores[first : first + len(group)] = _mahalanobis(group, eps)
        else:
            scores[first : first + len(group)] = _lof(group, lof_k)
    return scores.t().contiguous()


@dataclass(frozen=True)
class DenoiseResult:
    """Which training patches enter the coreset, and the soft weight each carries into the bank."""

    keep: torch.Tensor  # [N, P] bool: False for the top-tau outliers
    weights: torch.Tensor  # [N, P] float soft weights (defined for every patch; the bank uses weights[keep])
    threshold: float  # the (1 - tau) quantile of the scores: patches scoring above it are dropped


@torch.no_grad()
def denoise(scores: torch.Tensor, method: str, tau: float = 0.15) -> DenoiseResult:
    """Drop the top `tau` share of all patches by outlier score; soft weights for the bank.

    - tau is one global quantile over all N x P scores, not one per position: `threshold` is
      `torch.quantile(scores.flatten(), 1 - tau)` (linear interpolation, computed in float64) and a
      patch is dropped iff its score is strictly above it, as in the public code. With M = N x P
      distinct scores that drops M - 1 - floor((1 - tau)(M - 1)) = ceil(tau (M - 1)) patches, e.g.
      23520 of 156800 at tau = 0.15; ties at the threshold are all kept. tau = 0 drops nothing.
    - Soft weight W = max(score + c, 0) with c = 1 for `nearest` and `gaussian` and 0 for `lof`
      (`method` names the scores' method): exactly the public code's `patch_weight.clamp(min=0)`,
      where the +1 is added to those two scores. With this module's scores (all >= 0; LOF > 0) the clamp
      never acts; it stays for scores from elsewhere.
    - How they are applied (paper Eq. 8, public `_predict`): the bank holds features[keep] and
      weights[keep] (after any coreset subsampling, the picked rows' weights); a test patch p with
      nearest bank patch m* scores W[m*] * d(p, m*), with d the bank search's distance (Euclidean in
      the paper; squared in the public code's faiss search). Weights > 1 raise the score of a test
      patch whose best match is itself an outlying training patch.
    """
    if method not in DENOISERS:
        raise ValueError(f"method={method!r}: name the method the scores came from, one of {', '.join(DENOISERS)}")
    if not 0 <= tau < 1:
        raise ValueError(f"tau={tau}: the share of patches to drop must be in [0, 1) (the paper uses 0.15)")
    if scores.ndim != 2 or scores.numel() == 0:
        raise ValueError(f"scores of shape {tuple(scores.shape)}: pass the [N, P] output of outlier_scores")
    flat = scores.flatten().double()
    position = (1 - tau) * (len(flat) - 1)
    below = math.floor(position)
    above = min(below + 1, len(flat) - 1)
    low = torch.kthvalue(flat, below + 1).values
    high = torch.kthvalue(flat, above + 1).values
    threshold = torch.lerp(low, high, position - below).item()
    keep = scores.double() <= threshold
    weights = (scores + _WEIGHT_OFFSET[method]).clamp(min=0)
    return DenoiseResult(keep=keep, weights=weights, threshold=threshold)


def positions_per_chunk(budget_bytes: int, elements_per_position: int, element_bytes: int) -> int:
    """How many positions (at least 1) fit `budget_bytes` of work memory when each needs
    `elements_per_position` numbers of `element_bytes` bytes (shared with `adlib.detectors.padim`)."""
    return max(1, budget_bytes // (elements_per_position * element_bytes))


def _position_elements(method: str, n_images: int, dim: int) -> int:
    """Work numbers per position: a few N x N matrices, or D x D ones as well for `gaussian`."""
    per_position = 4 * n_images * n_images + 3 * n_images * dim
    if method == "gaussian":
        per_position += 2 * dim * dim
    return per_position


def _squared_distances(group: torch.Tensor) -> torch.Tensor:
    """[B, N, D] -> [B, N, N] squared distances from one Gram matrix per position, with +inf on the
    diagonal (a patch is never its own neighbour). The norms are the Gram diagonal, so exact duplicates
    get 0 as scikit-learn's exact search does."""
    gram = group @ group.transpose(1, 2)
    norms = gram.diagonal(dim1=1, dim2=2)
    squared = (norms[:, :, None] + norms[:, None, :]).sub_(gram, alpha=2).clamp_(min=0)
    squared.diagonal(dim1=1, dim2=2).fill_(math.inf)
    return squared


def _nearest(group: torch.Tensor) -> torch.Tensor:
    """[B, N, D] -> [B, N]: distance to the nearest other patch of the group."""
    return _squared_distances(group).amin(dim=2).sqrt_()


def gaussian_factors(centred: torch.Tensor, eps: float, fix: str) -> torch.Tensor:
    """[B, N, d] groups centred on their means -> [B, d, d] lower Cholesky factors of S + eps I, with
    S = x^T x / max(N - 1, 1) the sample covariance (taken as 0 for a single sample). One helper for
    SoftPatch's Gaussian discriminator and PaDiM; `fix` ends the error when a factor does not exist."""
    n_samples, dim = centred.shape[1], centred.shape[2]
    covariance = centred.transpose(1, 2) @ centred / max(n_samples - 1, 1)
    covariance.diagonal(dim1=1, dim2=2).add_(eps)
    factor, info = torch.linalg.cholesky_ex(covariance)
    if bool((info != 0).any()):
        raise ValueError(
            f"eps={eps}: a regularised covariance is not positive definite in {centred.dtype} "
            f"(d={dim}, N={n_samples}); {fix}"
        )
    return factor


def mahalanobis(centred: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[B, N, d] points minus their Gaussian's mean, [B, d, d] its Cholesky factor -> [B, N] distances
    sqrt(x^T (L L^T)^-1 x), by one triangular solve per group."""
    # contiguous right-hand side: solve_triangular on the transposed view is much slower on the CPU
    solved = torch.linalg.solve_triangular(factor, centred.transpose(1, 2).contiguous(), upper=False)  # [B, d, N]
    return torch.linalg.vector_norm(solved, dim=1)


def _mahalanobis(group: torch.Tensor, eps: float) -> torch.Tensor:
    """[B, N, D] centred -> [B, N]: in-sample Mahalanobis distance to the group's own Gaussian."""
    return mahalanobis(group, gaussian_factors(group, eps, "raise eps or pass float64 features"))


def _lof(group: torch.Tensor, k: int) -> torch.Tensor:
    """[B, N, D] -> [B, N]: scikit-learn's local outlier factor with k neighbours (self excluded).

    k-distance(j) = distance of j to its k-th neighbour; reach(i, j) = max(k-distance(j), d(i, j));
    lrd(i) = 1 / (mean over i's k neighbours of reach(i, j) + 1e-10); LOF(i) = mean lrd(j) / lrd(i).
    """
    squared, neighbours = torch.topk(_squared_distances(group), k, dim=2, largest=False, sorted=True)
    distances = squared.sqrt_()  # [B, N, k], nearest first
    batch, n_images = distances.shape[:2]
    flat_neighbours = neighbours.reshape(batch, n_images * k)
    k_distance = distances[:, :, -1]  # [B, N]
    reach = torch.maximum(distances, k_distance.gather(1, flat_neighbours).view(batch, n_images, k))
    lrd = 1.0 / (reach.mean(dim=2) + _LRD_EPS)
    return lrd.gather(1, flat_neighbours).view(batch, n_images, k).mean(dim=2) / lrd
