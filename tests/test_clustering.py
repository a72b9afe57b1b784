"""PCA and K-means against scikit-learn, and the K-means memory bank against its definition."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

import adlib.bank.clustering as clustering
from adlib.bank.clustering import KMeansBank, kmeans, pca_projection
from adlib.bank.search import faiss_available

BACKENDS = ["torch", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="no faiss"))]


def generator(seed):
    return torch.Generator().manual_seed(seed)


def spectrum_data(rows=400, dims=12, seed=0, dtype=torch.float64):
    """Gaussian data with clearly separated variances along random orthogonal axes, and an offset."""
    g = generator(seed)
    axes, _ = torch.linalg.qr(torch.randn(dims, dims, generator=g, dtype=torch.float64))
    scales = 2.0 ** -torch.arange(dims, dtype=torch.float64)  # variances 1, 1/4, 1/16, ...
    points = (torch.randn(rows, dims, generator=g, dtype=torch.float64) * scales) @ axes.T + 3.0
    return points.to(dtype)


def blobs(rows=1000, dims=8, clusters=5, spread=20.0, seed=0):
    """`clusters` unit Gaussian blobs with centres ~`spread` apart; returns (points, true labels)."""
    g = generator(seed)
    centres = torch.randn(clusters, dims, generator=g) * spread
    labels = torch.arange(rows) % clusters
    return centres[labels] + torch.randn(rows, dims, generator=g), labels


def inertia(points, centroids, assignment):
    return (points.double() - centroids.double()[assignment]).pow(2).sum().item()


# PCA


@pytest.mark.parametrize("dim", [1, 5, 12])
def test_pca_matches_sklearn(dim):
    points = spectrum_data()
    mean, components = pca_projection(points, dim)
    reference = PCA(n_components=dim).fit(points.numpy())
    assert mean.shape == (12,) and components.shape == (12, dim)
    np.testing.assert_allclose(mean.numpy(), reference.mean_, atol=1e-12)
    signs = np.sign(np.sum(components.numpy().T * reference.components_, axis=1))
    np.testing.assert_allclose(components.numpy().T * signs[:, None], reference.components_, atol=1e-8)
    projected_variance = ((points - mean) @ components).var(dim=0).numpy()  # unbiased, as sklearn's
    np.testing.assert_allclose(projected_variance, reference.explained_variance_, rtol=1e-6)
    assert np.all(np.diff(projected_variance) < 0)  # largest variance first


def test_pca_chunked_float32_and_sign_convention(monkeypatch):
    points = spectrum_data(rows=1000, dtype=torch.float32)
    mean, components = pca_projection(points, 4)
    assert torch.equal(pca_projection(points, 4)[1], components)  # reproducible
    monkeypatch.setattr(clustering, "_CHUNK_ROWS", 7)  # many uneven chunks
    mean_chunked, components_chunked = pca_projection(points, 4)
    assert mean.dtype == components.dtype == torch.float32
    torch.testing.assert_close(mean_chunked, mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(components_chunked, components, rtol=0, atol=1e-4)
    exact_mean, exact_components = pca_projection(points.double(), 4)
    torch.testing.assert_close(components.double(), exact_components, rtol=0, atol=1e-4)
    largest = components.abs().argmax(dim=0)
    assert torch.all(components[largest, torch.arange(4)] > 0)


@pytest.mark.parametrize("dim", [0, 13])
def test_pca_refuses_bad_dim(dim):
    with pytest.raises(ValueError, match=f"dim={dim}"):
        pca_projection(spectrum_data(), dim)


def test_pca_refuses_bad_shape():
    with pytest.raises(ValueError, match="non-empty bank"):
        pca_projection(torch.zeros(0, 4), 2)
    with pytest.raises(ValueError, match="non-empty bank"):
        pca_projection(torch.zeros(3, 4, 5), 2)


# K-means


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_torch_kmeans_recovers_separated_blobs_as_sklearn(seed):
    points, truth = blobs(seed=seed)
    centroids, assignment = kmeans(points, 5, seed, backend="torch")
    reference = KMeans(5, n_init=10, random_state=seed).fit(points.numpy())
    assert assignment.dtype == torch.int64 and centroids.shape == (5, 8)
    assert adjusted_rand_score(reference.labels_, assignment.numpy()) == 1.0
    assert adjusted_rand_score(truth.numpy(), assignment.numpy()) == 1.0
    order = [int(np.argmin(((reference.cluster_centers_ - c) ** 2).sum(1))) for c in centroids.numpy()]
    np.testing.assert_allclose(centroids.numpy(), reference.cluster_centers_[order], atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_objective_close_to_sklearn(backend):
    points = torch.randn(3000, 16, generator=generator(5))  # no cluster structure: many local optima
    reference = KMeans(30, n_init=10, random_state=0).fit(points.numpy())
    centroids, assignment = kmeans(points, 30, 0, backend=backend)
    assert inertia(points, centroids, assignment) < 1.03 * reference.inertia_


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_of_many_separated_blobs_is_as_good_as_sklearns(backend, seed):
    """Many blobs, as the benchmark draws them (centres 3 apart in 16-d, unit noise, K = the number of
    blobs): a start of K random points leaves blobs shared and others empty-handed (faiss's own start:
    2.3x scikit-learn's inertia, plain k-means++: 1.6x); the greedy k-means++ start reaches scikit-learn's."""
    g = generator(seed)
    centres = torch.randn(60, 16, generator=g) * 3
    points = centres[torch.randint(60, (3000,), generator=g)] + torch.randn(3000, 16, generator=g)
    reference = KMeans(60, init="k-means++", n_init=1, max_iter=25, tol=0.0, random_state=seed).fit(points.numpy())
    centroids, assignment = kmeans(points, 60, seed, iterations=25, backend=backend)
    assert inertia(points, centroids, assignment) < 1.05 * reference.inertia_


@pytest.mark.parametrize("backend", BACKENDS)
def test_assignment_is_nearest_centroid(backend):
    points = torch.randn(2000, 6, generator=generator(1))
    centroids, assignment = kmeans(points, 25, 0, backend=backend)
    distances = torch.cdist(points.double(), centroids.double())
    chosen = distances.gather(1, assignment[:, None]).squeeze(1)
    torch.testing.assert_close(chosen, distances.min(dim=1).values, rtol=0, atol=1e-5)


def test_torch_chunked_assignment_matches_one_chunk(monkeypatch):
    points = torch.randn(1500, 8, generator=generator(2))
    centroids, assignment = kmeans(points, 20, 0, backend="torch")
    monkeypatch.setattr(clustering, "_ASSIGN_CHUNK_BYTES", 20 * 4 * 7)  # 7 rows of scores per chunk
    chunked_centroids, chunked_assignment = kmeans(points, 20, 0, backend="torch")
    assert torch.equal(chunked_assignment, assignment)
    torch.testing.assert_close(chunked_centroids, centroids, rtol=0, atol=1e-5)


def test_torch_lloyd_steps_are_member_means():
    points = torch.randn(800, 5, generator=generator(3), dtype=torch.float64)
    centroids, _ = kmeans(points, 10, 0, iterations=3, backend="torch")
    previous, assignment = kmeans(points, 10, 0, iterations=2, backend="torch")
    # one more step from the 2-step centroids: assignment to them, then member means
    nearest = torch.cdist(points, previous).argmin(dim=1)
    assert torch.equal(nearest, assignment)
    means = torch.stack([points[nearest == j].mean(dim=0) for j in range(10)])
    torch.testing.assert_close(centroids, means, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_is_deterministic_per_seed(backend):
    points = torch.randn(2000, 8, generator=generator(4))
    first = kmeans(points, 40, 7, backend=backend)
    again = kmeans(points, 40, 7, backend=backend)
    other = kmeans(points, 40, 8, backend=backend)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [30, 50])
def test_duplicates_leave_no_cluster_empty(backend, k):
    """10 distinct points, 5 copies each: k above the 10 distinct values still gets k non-empty clusters."""
    distinct = torch.randn(10, 4, generator=generator(6))
    points = distinct.repeat(5, 1)
    centroids, assignment = kmeans(points, k, 0, backend=backend)
    assert torch.isfinite(centroids).all()
    assert torch.equal(torch.bincount(assignment, minlength=k) > 0, torch.ones(k, dtype=torch.bool))
    if k == len(points):  # one point per cluster: the assignment is a permutation
        assert torch.equal(assignment.sort().values, torch.arange(k))
    # every point's cluster sits on a copy of that point, or the point was moved into an empty cluster
    own = (points - centroids[assignment]).norm(dim=1)
    assert (own < 1e-5).sum() >= len(distinct)


def test_torch_kmeans_with_k_equal_n_puts_each_point_alone():
    points = torch.randn(40, 3, generator=generator(8))
    centroids, assignment = kmeans(points, 40, 0, backend="torch")
    assert torch.equal(assignment.sort().values, torch.arange(40))
    torch.testing.assert_close(centroids[assignment], points)


def test_kmeans_errors(monkeypatch):
    points = torch.randn(10, 2)
    with pytest.raises(ValueError, match="k=11"):
        kmeans(points, 11, 0)
    with pytest.raises(ValueError, match="k=0"):
        kmeans(points, 0, 0)
    with pytest.raises(ValueError, match="iterations=0"):
        kmeans(points, 2, 0, iterations=0)
    with pytest.raises(ValueError, match="backend='sklearn'"):
        kmeans(points, 2, 0, backend="sklearn")
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        kmeans(points[0], 2, 0)
    if faiss_available():
        with pytest.raises(ValueError, match="32-bit seed"):
            kmeans(points, 2, 2**40, backend="faiss")
    monkeypatch.setattr(clustering, "faiss_available", lambda: False)
    with pytest.raises(ImportError, match="faiss"):
        kmeans(points, 2, 0, backend="faiss")
    kmeans(points, 2, 0, backend="auto")  # falls back to torch


# the memory bank


def bank_features(rows=600, dims=48, seed=9):
    """Clustered features in `dims` dimensions whose variance lives mostly in a few directions."""
    points, _ = blobs(rows=rows, dims=dims, clusters=12, spread=3.0, seed=seed)
    return points


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pca_dim", [8, 64])  # 8 < D = 48: PCA; 64 >= D: K-means on the features themselves
def test_bank_holds_full_dimension_member_means(backend, pca_dim):
    features = bank_features()
    bank = KMeansBank(pca_dim=pca_dim, backend=backend).sample(features, 20, seed=3).bank
    assert bank.shape == (20, 48) and bank.dtype == features.dtype
    if pca_dim < 48:
        mean, components = pca_projection(features, pca_dim)
        points = (features - mean) @ components
    else:
        points = features
    _, assignment = kmeans(points, 20, 3, backend=backend)
    members = [features.double()[assignment == j] for j in range(20)]
    expected = torch.stack([m.mean(dim=0) for m in members]).float()
    torch.testing.assert_close(bank, expected, rtol=0, atol=1e-5)
    assert torch.equal(bank, KMeansBank(pca_dim=pca_dim, backend=backend).sample(features, 20, seed=3).bank)


def test_bank_of_float64_and_half_features():
    features = bank_features()
    assert KMeansBank(pca_dim=8, backend="torch").sample(features.double(), 10, 0).bank.dtype == torch.float64
    half = KMeansBank(pca_dim=8, backend="torch").sample(features.half(), 10, 0).bank
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


def test_bank_keeps_global_rng():
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    for backend in ["torch"] + (["faiss"] if faiss_available() else []):
        KMeansBank(pca_dim=8, backend=backend).sample(bank_features(), 10, seed=1).bank
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


def test_bank_errors():
    features = bank_features()
    with pytest.raises(ValueError, match="pca_dim=0"):
        KMeansBank(pca_dim=0)
    with pytest.raises(ValueError, match="iterations=0"):
        KMeansBank(iterations=0)
    with pytest.raises(ValueError, match="backend='gpu'"):
        KMeansBank(backend="gpu")
    with pytest.raises(ValueError, match="n=601"):
        KMeansBank(pca_dim=8).sample(features, 601, 0).bank
    with pytest.raises(ValueError, match="n=0"):
        KMeansBank(pca_dim=8).sample(features, 0, 0).bank
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        KMeansBank(pca_dim=8).sample(features[None], 5, 0).bank
