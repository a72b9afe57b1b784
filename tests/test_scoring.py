"""Patch distances, Eq. 7 and anomaly maps against independent computations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from adlib.bank.scoring import anomaly_maps, gaussian_blur, map_matrix, reweighted_image_scores, to_distance
from adlib.bank.search import NearestNeighbours


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_unknown_distance_is_refused():
    with pytest.raises(ValueError, match="distance"):
        to_distance(torch.ones(2), "manhattan")


def eq7_by_hand(patch_scores, test_features, bank, b, distance):
    """Eq. 7 image by image with explicit loops and math.exp."""
    out = []
    for scores, features in zip(patch_scores, test_features):
        top = int(scores.argmax())
        m_test = features[top].double()
        dists = ((bank.double() - m_test) ** 2).sum(1)
        m_star = bank[int(dists.argmin())].double()
        support = ((bank.double() - m_star) ** 2).sum(1).argsort()[:b]
        d = [float(((bank[j].double() - m_test) ** 2).sum()) for j in support]
        d = [math.sqrt(x) for x in d] if distance == "euclidean" else d
        weight = 1 - math.exp(d[0]) / sum(math.exp(x) for x in d)
        out.append(weight * float(scores[top]))
    return torch.tensor(out)


@pytest.mark.parametrize("distance", ["euclidean", "squared"])
@pytest.mark.parametrize("b", [1, 3, 9])
def test_eq7_matches_hand_computation(distance, b):
    bank, test = random(120, 6, seed=5) * 0.3, random(4, 10, 6, seed=6) * 0.3
    index = NearestNeighbours(bank, backend="torch")
    squared, nearest = index.search(test.reshape(-1, 6), 1)
    patch_scores = to_distance(squared[:, 0], distance).reshape(4, 10)
    got = reweighted_image_scores(patch_scores, nearest[:, 0].reshape(4, 10), test, index, b, distance)
    if b == 1:
        expected = patch_scores.amax(1)
    else:
        expected = eq7_by_hand(patch_scores, test, bank, b, distance).float()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, sigma", [((2, 40, 40), 4.0), ((1, 9, 7), 4.0), ((3, 30, 20), 1.5)])
def test_gaussian_blur_matches_scipy(shape, sigma):
    maps = random(*shape, seed=7)
    expected = np.stack([gaussian_filter(m.double().numpy(), sigma=sigma) for m in maps])
    torch.testing.assert_close(gaussian_blur(maps.double(), sigma), torch.from_numpy(expected))


def test_anomaly_maps_are_upsampled_then_blurred_as_officially():
    scores = random(2, 28 * 28, seed=8).abs()
    maps = anomaly_maps(scores, (28, 28), 224, sigma=4.0)
    upsampled = F.interpolate(scores.reshape(2, 1, 28, 28), size=224, mode="bilinear", align_corners=False)
    expected = np.stack([gaussian_filter(m[0].numpy(), sigma=4) for m in upsampled])
    assert maps.shape == (2, 224, 224)
    torch.testing.assert_close(maps, torch.from_numpy(expected), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "grid, size, sigma", [((28, 28), 224, 4.0), ((7, 5), 40, 1.5), ((4, 6), 9, 4.0), ((3, 3), 12, 0.0)]
)
def test_map_matrices_equal_upsampling_then_blurring_in_float64(grid, size, sigma):
    """The folded per-axis products give, in float64, what the two steps give one after the other (the
    reference: torch's bilinear upsampling, then scipy's filter; sigma 0: no blur)."""
    scores = random(3, grid[0] * grid[1], seed=9).double()
    upsampled = F.interpolate(scores.reshape(3, 1, *grid), size=size, mode="bilinear", align_corners=False)[:, 0]
    expected = np.stack([gaussian_filter(m.numpy(), sigma=sigma) if sigma else m.numpy() for m in upsampled])
    rows, columns = map_matrix(grid[0], size, sigma), map_matrix(grid[1], size, sigma)
    torch.testing.assert_close(rows @ scores.reshape(3, *grid) @ columns.T, torch.from_numpy(expected))
