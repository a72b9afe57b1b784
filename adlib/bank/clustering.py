"""PCA and K-means for the improved PatchCore memory bank (KC: Sec. 1.3 of the improved-PatchCore paper).

- `pca_projection`: principal axes of a feature bank [N, D] from its D x D scatter matrix, accumulated
  in row chunks (157k x 1024 never gets a float64 copy) and diagonalised by `torch.linalg.eigh` in
  float64. Largest variance first; each axis is signed so that its largest-magnitude entry is
  positive, so the same features always give the same components.
- `kmeans`: Lloyd's algorithm from a greedy k-means++ start, on faiss (`faiss.Kmeans`) or in torch. Both
  return the centroids after
  `iterations` Lloyd steps and every point's nearest centroid (ties to the lower index), with one
  repair: a cluster that ends up empty takes the point farthest from its centroid among the clusters
  with two or more members (see `_fill_empty_clusters`), so for N >= k every cluster has a member.
- `KMeansBank`: the improved-PatchCore memory bank: PCA, K-means with K = bank size, then the member
  means of each cluster in full dimension.

Each Lloyd step costs N * K * d multiply-adds, which is why K-means runs after the PCA rather than on
the 1024-dim bank (measured times in benchmarks/NOTES.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from adlib.bank.sampling import Sampled, augmented_bank, check_request, compute_dtype
from adlib.bank.search import BACKENDS, check_faiss_seed, faiss_available

_CHUNK_ROWS = 16384  # rows cast / projected / summed at once: bounds the copies of a [N, D] bank
_ASSIGN_CHUNK_BYTES = 256 * 1024**2  # bound of one [rows, k] block of scores in the torch assignment


def pca_projection(features: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and the `dim` leading principal axes [D, dim] (columns, largest variance first) of
    `features` [N, D]; project with `(x - mean) @ components`.

    Computed on the features' device. The mean is summed in float64; the scatter matrix is summed
    over chunks of centred rows, each chunk's product in float32 (float64 for float64 input) and the
    running sum in float64, then `eigh` in float64. Returned in float32 (float64 for float64 input).
    Sign convention: the largest-|.| entry of each component is positive. Axes beyond the rank of
    the data (N - 1) carry no variance and are an arbitrary (but deterministic) orthonormal completion.
    """
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features of shape {tuple(features.shape)}: pass a non-empty bank [N, D]")
    width = features.shape[1]
    if not 1 <= dim <= width:
        raise ValueError(f"dim={dim}: the PCA keeps between 1 and D={width} dimensions; pick dim in that range")
    dtype = compute_dtype(features)
    mean = torch.zeros(width, dtype=torch.float64, device=features.device)
    for chunk in features.split(_CHUNK_ROWS):
        mean += chunk.sum(dim=0, dtype=torch.float64)
    mean /= features.shape[0]
    centre = mean.to(dtype)
    scatter = torch.zeros(width, width, dtype=torch.float64, device=features.device)
    for chunk in features.split(_CHUNK_ROWS):
        centred = chunk.to(dtype) - centre
        scatter += centred.t() @ centred
    _, vectors = torch.linalg.eigh(scatter)  # eigenvalues ascending
    components = vectors[:, -dim:].flip(1)
    largest = components.abs().argmax(dim=0)
    components *= torch.sign(components[largest, torch.arange(dim, device=components.device)])
    return centre, components.to(dtype)


def kmeans(
    points: torch.Tensor, k: int, seed: int, iterations: int = 25, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means of `points` [N, d]: (centroids [k, d], assignment [N] int64), on the points' device.

    `iterations` Lloyd steps (assign every point to its nearest centroid, then move each centroid
    to its members' mean), then a final assignment to the returned centroids. Empty clusters after an
    assignment are filled by `_fill_empty_clusters`, so every cluster in the returned assignment has
    at least one member. Same seed -> same result (on the same machine and thread count).

    Both backends start from the same greedy k-means++ seeds (`_kmeans_plus_plus`, seeded with `seed`,
    scikit-learn's start): faiss's own start (k points drawn at random) left the clustering of the
    benchmark's well-separated points at 2.3x scikit-learn's inertia, a worse bank than KC's method implies.
    backend "faiss": `faiss.Kmeans(d, k, niter=iterations)` on the CPU in float32 from those seeds, with
    faiss's empty-cluster handling (split a big cluster), on all N points (faiss's subsampling to 256
    points per centroid is switched off). It runs all `iterations` steps. The final assignment is a search
    in its index of centroids.
    backend "torch": Lloyd steps from those seeds with the assignment in chunks of at most 256 MB of
    scores; the loop stops early at a fixed point (the assignment did not change, so neither would
    anything after it).
    backend "auto": faiss when it imports, torch otherwise. The two do not give the same clusters.
    """
    if points.ndim != 2:
        raise ValueError(f"points of shape {tuple(points.shape)}: pass a matrix [N, d]")
    total = points.shape[0]
    if not 1 <= k <= total:
        raise ValueError(f"k={k} clusters for N={total} points: k-means needs 1 <= k <= N")
    if iterations < 1:
        raise ValueError(f"iterations={iterations}: k-means needs at least one Lloyd step (faiss uses 25)")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "faiss" and not faiss_available():
        raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu, or use backend='torch'")
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        check_faiss_seed(seed)
        return _kmeans_faiss(points, k, seed, iterations)
    return _kmeans_torch(points, k, seed, iterations)


@dataclass(frozen=True)
class KMeansBank:
    """The improved-PatchCore memory bank: K-means centroids instead of a greedy coreset.

    `sample` projects the features to their `pca_dim` leading principal axes (`pca_projection`;
    skipped when D <= pca_dim: centring and rotating leave Euclidean distances, hence the clusters,
    unchanged), runs `kmeans` with K = n in that space, and returns for each cluster the mean of
    its members' *full-dimension* features. The paper (Sec. 1.3) sends the PCA-reduced features to
    the sampler and scores test features against "core features"; it does not print the bank's
    dimension. This keeps it full-dimensional, so test features are scored without the PCA, as
    for the greedy coreset; only the clustering happens after PCA.
    Memory: the projected features [N, pca_dim] and one more such copy (transposed) during the
    k-means++ start.
    """

    pca_dim: int = 128
    iterations: int = 25
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.pca_dim < 1:
            raise ValueError(f"pca_dim={self.pca_dim}: must be >= 1 (128 as the greedy coreset's projection)")
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations}: K-means needs at least one Lloyd step (faiss uses 25)")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: choose one of {', '.join(BACKENDS)}")

    @torch.no_grad()
    def sample(self, features: torch.Tensor, n: int, seed: int) -> Sampled:
        """The bank [n, D] (dtype and device of `features` [N, D]): the full-dimension member means of
        the n K-means clusters found after PCA, no source. The same seed gives the same bank."""
        check_request(features, n)
        if features.shape[1] > self.pca_dim:
            mean, components = pca_projection(features, self.pca_dim)
            points = _project(features, mean, components)
        else:
            points = features.to(compute_dtype(features))
        _, assignment = kmeans(points, n, seed, self.iterations, self.backend)
        return Sampled(_member_means(features, assignment, n).to(features.dtype), None)


def _project(features: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """[N, D] -> (x - mean) @ components [N, dim], chunk by chunk."""
    projected = torch.empty(features.shape[0], components.shape[1], dtype=components.dtype, device=features.device)
    for first in range(0, features.shape[0], _CHUNK_ROWS):
        chunk = features[first : first + _CHUNK_ROWS].to(components.dtype) - mean
        torch.mm(chunk, components, out=projected[first : first + len(chunk)])
    return projected


def _member_means(features: torch.Tensor, assignment: torch.Tensor, k: int) -> torch.Tensor:
    """float64 [k, D]: the mean of the rows of `features` in each cluster (every cluster non-empty)."""
    sums = torch.zeros(k, features.shape[1], dtype=torch.float64, device=features.device)
    for first in range(0, features.shape[0], _CHUNK_ROWS):
        rows = features[first : first + _CHUNK_ROWS].to(torch.float64)
        sums.index_add_(0, assignment[first : first + len(rows)], rows)
    counts = torch.bincount(assignment, minlength=k)
    return sums / counts[:, None]


def _kmeans_faiss(points: torch.Tensor, k: int, seed: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    import faiss

    x = points.detach().to("cpu", torch.float32).contiguous()
    start = x[_kmeans_plus_plus(x, k, torch.Generator().manual_seed(seed))].numpy()
    x = x.numpy()
    total, width = x.shape
    model = faiss.Kmeans(
        width, k, niter=iterations, seed=seed, max_points_per_centroid=total, min_points_per_centroid=1
    )  # no subsampling, and no warning for fewer than 39 points per centroid
    model.train(x, init_centroids=start)
    distances, labels = model.index.search(x, 1)
    labels = torch.from_numpy(labels[:, 0]).to(points.device)
    distances = torch.from_numpy(distances[:, 0]).to(points.device)
    centroids = torch.from_numpy(model.centroids).to(points.device, compute_dtype(points))
    return centroids, _fill_empty_clusters(labels, distances, k)


def _kmeans_torch(points: torch.Tensor, k: int, seed: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = compute_dtype(points)
    x = points.to(dtype)
    generator = torch.Generator().manual_seed(seed)
    centroids = x[_kmeans_plus_plus(x, k, generator)]
    previous = None
    for _ in range(iterations):
        assignment = _fill_empty_clusters(*_nearest_centroids(x, centroids), k)
        if previous is not None and torch.equal(assignment, previous):
            return centroids, assignment  # a fixed point: the centroids are already these members' means
        previous = assignment
        centroids = _member_means(x, assignment, k).to(dtype)
    return centroids, _fill_empty_clusters(*_nearest_centroids(x, centroids), k)


def local_trials(k: int) -> int:
    """Candidates per k-means++ step: 2 + floor(ln k), the number Arthur & Vassilvitskii suggest and
    scikit-learn uses."""
    return 2 + int(math.log(k))


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices [k] of greedy k-means++ seeds (Arthur & Vassilvitskii 2007; scikit-learn's default).

    The first uniformly; then, per step, `local_trials(k)` candidates drawn with probability proportional
    to the squared distance to their nearest seed so far, and the candidate that lowers the sum of those
    distances most is kept. (One candidate per step, plain k-means++, left the clustering of the
    benchmark's points at 1.56x scikit-learn's inertia after Lloyd; the greedy step is what closes it.)
    The points are kept transposed with their squared norms, so a step is one [trials, d + 2] x [d + 2, N]
    product. Once every point sits on a seed (fewer distinct points than k), the next seeds are drawn
    uniformly among the rows not yet taken, so the k indices are always distinct.
    """
    total, width = x.shape
    trials = local_trials(k)
    bank = augmented_bank(x, width, generator)  # [d + 2, N]; no projection, the generator is unused
    uniforms = torch.rand(k, trials, generator=generator, dtype=torch.float64).to(x.device)
    picks = torch.empty(k, dtype=torch.int64, device=x.device)
    picks[0] = torch.randint(total, (1,), generator=generator).item()
    min_dist = _squared_distances(bank, picks[:1])[0]
    untaken = torch.ones(total, dtype=torch.float64, device=x.device)
    untaken[picks[0]] = 0
    for i in range(1, k):
        cumulative = torch.cumsum(min_dist, dim=0, dtype=torch.float64)
        if cumulative[-1] <= 0:
            cumulative = torch.cumsum(untaken, dim=0)
        candidates = torch.searchsorted(cumulative, uniforms[i] * cumulative[-1], right=True).clamp_(max=total - 1)
        distances = _squared_distances(bank, candidates)  # [trials, N]
        torch.minimum(distances, min_dist, out=distances)
        best = torch.argmin(distances.sum(dim=1, dtype=torch.float64))
        picks[i] = candidates[best]
        untaken[picks[i]] = 0
        min_dist = distances[best]
    return picks


def _squared_distances(bank: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[len(rows), N]: squared distances (clamped at 0) of every point of an augmented bank [d + 2, N]
    (`adlib.bank.sampling.augmented_bank`) to the points `rows`, in one product [-2c, 1, ||c||^2] @ bank."""
    d = bank.shape[0] - 2
    centres = torch.empty(len(rows), d + 2, dtype=bank.dtype, device=bank.device)
    centres[:, :d] = bank[:d, rows].t() * -2
    centres[:, d] = 1
    centres[:, d + 1] = bank[d, rows]
    return (centres @ bank).clamp_(min=0)


def _nearest_centroids(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index [N] int64 of each point's nearest centroid, ties to the lower index; its squared distance [N]).

    Scores ||c||^2 - 2 x.c for a chunk of rows at a time, at most `_ASSIGN_CHUNK_BYTES` of them."""
    total, k = x.shape[0], centroids.shape[0]
    rows = max(1, min(total, _ASSIGN_CHUNK_BYTES // (k * x.element_size())))
    norms = centroids.pow(2).sum(dim=1)
    scores = torch.empty(rows, k, dtype=x.dtype, device=x.device)
    labels = torch.empty(total, dtype=torch.int64, device=x.device)
    distances = torch.empty(total, dtype=x.dtype, device=x.device)
    for first in range(0, total, rows):
        chunk = x[first : first + rows]
        block = scores[: len(chunk)]
        torch.addmm(norms, chunk, centroids.t(), alpha=-2, out=block)
        torch.min(block, dim=1, out=(distances[first : first + len(chunk)], labels[first : first + len(chunk)]))
    distances += x.pow(2).sum(dim=1)
    return labels, distances.clamp_(min=0)


def _fill_empty_clusters(labels: torch.Tensor, distances: torch.Tensor, k: int) -> torch.Tensor:
    """`labels` with every empty cluster given one point (a new tensor; `labels` itself if none is empty).

    Points are taken farthest first (by `distances` to their centroid, ties to the lower row) and
    only from clusters that keep at least one member; the i-th taken point goes to the i-th empty
    cluster in index order. Each move fills one cluster and empties none, so with N >= k all k
    clusters end up with members, also when points coincide (then some centroids coincide too).
    (sklearn relocates empty clusters to the farthest points too, without the donor rule.)
    """
    counts = torch.bincount(labels, minlength=k)
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty) == 0:
        return labels
    order = torch.sort(distances, descending=True, stable=True).indices.cpu().numpy()
    owners = labels.cpu().numpy()
    remaining = counts.cpu().numpy().copy()
    moved = []
    for row in order:
        if remaining[owners[row]] > 1:
            remaining[owners[row]] -= 1
            moved.append(row)
            if len(moved) == len(empty):
                break
    filled = labels.clone()
    filled[torch.as_tensor(moved, dtype=torch.int64, device=labels.device)] = empty
    return filled
