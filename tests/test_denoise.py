"""SoftPatch denoising against scikit-learn's LOF, brute-force loops and the public code's formulas."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.neighbors import LocalOutlierFactor

import adlib.bank.denoise as denoise_module
from adlib.bank.denoise import DENOISERS, DenoiseResult, denoise, outlier_scores


def grouped(n_images=20, positions=5, dims=8, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_images, positions, dims, generator=generator, dtype=dtype)


def sklearn_lof(features, k):
    """-negative_outlier_factor_ of LocalOutlierFactor(n_neighbors=k), one fit per position: [N, P]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate values are leading to incorrect results"
        columns = [
            -LocalOutlierFactor(n_neighbors=k).fit(features[:, p].numpy()).negative_outlier_factor_
            for p in range(features.shape[1])
        ]
    return np.stack(columns, axis=1)


def brute_nearest(features):
    """Eq. 1 by definition: min over the other images n != i of ||x_i - x_n|| at the same position."""
    n_images, positions, _ = features.shape
    x = features.numpy()
    out = np.empty((n_images, positions))
    for p in range(positions):
        for i in range(n_images):
            out[i, p] = min(np.linalg.norm(x[i, p] - x[j, p]) for j in range(n_images) if j != i)
    return out


def numpy_mahalanobis(features, eps, bias=False):
    """Eq. 2-3 per position: np.cov (N - 1, or N with bias=True) + eps I, np.linalg.inv."""
    x = features.numpy()
    out = np.empty(x.shape[:2])
    for p in range(x.shape[1]):
        group = x[:, p]
        inverse = np.linalg.inv(np.cov(group, rowvar=False, bias=bias) + eps * np.eye(group.shape[1]))
        delta = group - group.mean(axis=0)
        out[:, p] = np.sqrt(np.einsum("nd,de,ne->n", delta, inverse, delta))
    return out


# --- outlier scores ---


@pytest.mark.parametrize("k", [3, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_lof_equals_sklearn(k, seed):
    features = grouped(seed=seed)
    scores = outlier_scores(features, "lof", lof_k=k, projection_dim=None)
    np.testing.assert_allclose(scores.numpy(), sklearn_lof(features, k), rtol=1e-10)


@pytest.mark.parametrize("k", [3, 6])
def test_lof_equals_sklearn_in_float32(k):
    features = grouped(seed=2, dtype=torch.float32)
    scores = outlier_scores(features, "lof", lof_k=k, projection_dim=None)
    assert scores.dtype == torch.float32
    np.testing.assert_allclose(scores.numpy(), sklearn_lof(features.double(), k), rtol=1e-5)


@pytest.mark.parametrize("k", [3, 6])
def test_lof_equals_sklearn_with_duplicates(k):
    features = grouped(seed=3)
    features[3] = features[5]  # a duplicate pair at every position
    features[7:15, 1] = features[0, 1]  # 9 equal patches at position 1: more duplicates than k, lrd = 1e10
    scores = outlier_scores(features, "lof", lof_k=k, projection_dim=None)
    expected = sklearn_lof(features, k)
    assert expected.max() > 1e8  # the degenerate case really happens
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-8)


def test_lof_k_reaches_the_computation():
    features = grouped(seed=4)
    k3 = outlier_scores(features, "lof", lof_k=3, projection_dim=None)
    k6 = outlier_scores(features, "lof", lof_k=6, projection_dim=None)
    assert not torch.allclose(k3, k6)
    np.testing.assert_allclose(k6.numpy(), sklearn_lof(features, 6), rtol=1e-10)


def test_nearest_equals_brute_force():
    features = grouped(n_images=12, positions=4, dims=6, seed=5)
    features[2, 1] = features[9, 1]  # a duplicate: distance 0
    scores = outlier_scores(features, "nearest", projection_dim=None)
    np.testing.assert_allclose(scores.numpy(), brute_nearest(features), rtol=1e-10, atol=1e-12)
    assert scores[2, 1] == 0 and scores[9, 1] == 0


@pytest.mark.parametrize("eps", [0.01, 0.5])
def test_gaussian_equals_numpy_with_n_minus_1_covariance(eps):
    features = grouped(n_images=25, positions=4, dims=6, seed=6)
    scores = outlier_scores(features, "gaussian", eps=eps, projection_dim=None).numpy()
    np.testing.assert_allclose(scores, numpy_mahalanobis(features, eps), rtol=1e-9)
    assert not np.allclose(scores, numpy_mahalanobis(features, eps, bias=True), rtol=1e-3)  # not 1 / N


def test_gaussian_with_more_dims_than_images():
    features = grouped(n_images=10, positions=3, dims=16, seed=7)  # rank-deficient covariance, eps makes it invertible
    scores = outlier_scores(features, "gaussian", eps=0.01, projection_dim=None)
    np.testing.assert_allclose(scores.numpy(), numpy_mahalanobis(features, 0.01), rtol=1e-7)


@pytest.mark.parametrize("method", DENOISERS)
def test_chunks_of_positions_give_the_same_scores(method, monkeypatch):
    features = grouped(n_images=15, positions=7, dims=5, seed=8)
    whole = outlier_scores(features, method, lof_k=4, projection_dim=None)
    monkeypatch.setattr(denoise_module, "_CHUNK_BYTES", 1)  # one position per chunk
    assert torch.allclose(outlier_scores(features, method, lof_k=4, projection_dim=None), whole, rtol=1e-12)


def test_public_nearest_plus_one_is_our_weight():
    """Public `nearest`: the two smallest ||a||^2 + ||b||^2 - 2ab distances (self included) summed, + 1."""
    features = grouped(n_images=16, positions=3, dims=5, seed=9)
    embedding = features.permute(1, 0, 2)  # [P, N, D] as the public code groups it
    patch, batch, _ = embedding.shape
    x_x = (embedding**2).sum(dim=-1, keepdim=True).expand(patch, batch, batch)
    dist_mat = (x_x + x_x.transpose(-1, -2) - 2 * embedding.matmul(embedding.transpose(-1, -2))).abs() ** 0.5
    public = torch.topk(dist_mat, dim=-1, largest=False, k=2)[0].sum(dim=-1).t() + 1  # [N, P]
    ours = denoise(outlier_scores(features, "nearest", projection_dim=None), "nearest", tau=0.15).weights
    torch.testing.assert_close(ours, public, rtol=0, atol=1e-6)  # the public self-distance is float noise


@pytest.mark.parametrize("method", DENOISERS)
def test_planted_outlier_scores_highest_and_is_dropped(method):
    features = grouped(n_images=40, positions=6, dims=4, seed=10)
    features[7, 3] = 25.0  # one image's patch at one position replaced by a far vector
    scores = outlier_scores(features, method, projection_dim=None)
    assert scores[:, 3].argmax() == 7
    result = denoise(scores, method, tau=0.02)  # drops ceil(0.02 * 239) = 5 of 240 patches
    assert (~result.keep).sum() == 5
    assert not result.keep[7, 3]


# --- projection ---


def test_projection_is_a_seeded_fresh_linear_layer():
    features = grouped(n_images=12, positions=3, dims=40, seed=11)
    torch.manual_seed(5)
    layer = torch.nn.Linear(40, 16, bias=False).double()  # nn.Linear's default init from seed 5
    with torch.no_grad():
        projected = layer(features)
    for method in DENOISERS:
        ours = outlier_scores(features, method, lof_k=3, projection_dim=16, seed=5)
        expected = outlier_scores(projected, method, lof_k=3, projection_dim=None)
        torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-12)


def test_projection_seed_and_determinism():
    features = grouped(n_images=12, positions=3, dims=40, seed=12, dtype=torch.float32)
    first = outlier_scores(features, "lof", lof_k=3, projection_dim=16, seed=1)
    assert torch.equal(first, outlier_scores(features, "lof", lof_k=3, projection_dim=16, seed=1))
    assert not torch.allclose(first, outlier_scores(features, "lof", lof_k=3, projection_dim=16, seed=2))
    unprojected = outlier_scores(features, "lof", lof_k=3, projection_dim=None)
    assert not torch.allclose(first, unprojected)


def test_no_projection_when_features_are_already_narrow():
    features = grouped(dims=8)
    unprojected = outlier_scores(features, "lof", projection_dim=None)
    assert torch.equal(outlier_scores(features, "lof", projection_dim=128), unprojected)
    assert torch.equal(outlier_scores(features, "lof", projection_dim=8), unprojected)


# --- denoise ---


def random_scores(n_images=30, positions=7, seed=13):
    return torch.rand(n_images, positions, generator=torch.Generator().manual_seed(seed)) * 5


@pytest.mark.parametrize("tau", [0.0, 0.01, 0.15, 0.5, 0.9])
def test_tau_drops_the_expected_count_above_the_global_quantile(tau):
    scores = random_scores()
    total = scores.numel()
    result = denoise(scores, "lof", tau=tau)
    assert isinstance(result, DenoiseResult)
    assert (~result.keep).sum() == total - 1 - math.floor((1 - tau) * (total - 1))
    quantile = torch.quantile(scores.flatten().double(), 1 - tau).item()
    assert result.threshold == pytest.approx(quantile, rel=1e-12)
    assert torch.equal(result.keep, scores.double() <= quantile)
    if tau > 0:
        assert scores[~result.keep].min() > scores[result.keep].max()


def test_tau_is_one_global_quantile_not_one_per_position():
    scores = random_scores()
    scores[:, 2] += 100  # every outlier lives at position 2
    result = denoise(scores, "lof", tau=0.1)
    dropped_positions = (~result.keep).nonzero()[:, 1]
    assert len(dropped_positions) == math.ceil(0.1 * (scores.numel() - 1))  # 21 of 210
    assert (dropped_positions == 2).all()


def test_ties_at_the_threshold_are_kept():
    result = denoise(torch.ones(10, 4), "lof", tau=0.3)
    assert result.keep.all() and result.threshold == 1.0


@pytest.mark.parametrize("method, offset", [("nearest", 1.0), ("gaussian", 1.0), ("lof", 0.0)])
def test_weights_match_the_public_code(method, offset):
    scores = random_scores(seed=14)
    result = denoise(scores, method, tau=0.15)
    public_weight = (scores + offset).reshape(-1)  # the public code adds 1 to nearest / gaussian scores
    threshold = torch.quantile(public_weight, 1 - 0.15)
    public_keep = torch.where(public_weight > threshold, 0, 1).bool().reshape(scores.shape)
    torch.testing.assert_close(result.weights, public_weight.clamp(min=0).reshape(scores.shape))
    assert torch.equal(result.keep, public_keep)


def test_weights_are_clamped_at_zero():
    scores = random_scores(seed=15) - 3  # scores from elsewhere can be negative
    result = denoise(scores, "lof", tau=0.15)
    assert (result.weights >= 0).all()
    torch.testing.assert_close(result.weights, scores.clamp(min=0))
    assert (denoise(scores, "gaussian").weights == (scores + 1).clamp(min=0)).all()


# --- errors ---


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "knn"}, "method='knn'"),
        ({"method": "lof", "lof_k": 0}, "lof_k=0"),
        ({"method": "lof", "lof_k": 20}, "lof_k=20 with N=20"),
        ({"method": "gaussian", "eps": 0.0}, "eps=0.0"),
        ({"method": "gaussian", "eps": -1.0}, "eps=-1.0"),
        ({"method": "nearest", "projection_dim": 0}, "projection_dim=0"),
    ],
)
def test_outlier_score_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        outlier_scores(grouped(), **kwargs)


def test_shape_errors():
    with pytest.raises(ValueError, match="N=1"):
        outlier_scores(grouped(n_images=1), "nearest")
    with pytest.raises(ValueError, match=r"\[N_images, P, D\]"):
        outlier_scores(grouped()[:, 0], "nearest")
    with pytest.raises(ValueError, match=r"\[N, P\]"):
        denoise(torch.rand(3), "lof")


@pytest.mark.parametrize("tau", [-0.1, 1.0, 1.5])
def test_tau_errors(tau):
    with pytest.raises(ValueError, match=f"tau={tau}"):
        denoise(random_scores(), "lof", tau=tau)


def test_denoise_needs_a_known_method():
    with pytest.raises(ValueError, match="method='mahalanobis'"):
        denoise(random_scores(), "mahalanobis")
