"""The vectorised patch aggregation against a literal, slow port of the official PatchCore code."""

import pytest
import torch
import torch.nn.functional as F

from adlib.patches import adaptive_pool_matrix, locally_aware_features
from adlib.reference import official_patch_features


def neighbourhood_by_loops(fmap, patch_size):
    """The p x p zero-padded neighbourhood of every position, gathered with plain loops."""
    b, c, h, w = fmap.shape
    r = patch_size // 2
    padded = F.pad(fmap, (r, r, r, r))
    out = torch.empty(b, h * w, c * patch_size * patch_size)
    for i in range(h):
        for j in range(w):
            out[:, i * w + j] = padded[:, :, i : i + patch_size, j : j + patch_size].reshape(b, -1)
    return out


@pytest.mark.parametrize(
    "channels, patch_size, pre_dim, target_dim",
    [((8, 16), 3, 32, 32), ((5, 7), 3, 12, 10), ((6, 10), 5, 40, 16), ((4, 9, 3), 1, 8, 8), ((12, 20), 3, 24, 24), ((8, 16), 3, 16, 16)],
)
def test_matches_official_aggregation(channels, patch_size, pre_dim, target_dim):
    gen = torch.Generator().manual_seed(0)
    sizes = [(8, 6), (4, 3), (2, 2)]
    maps = [torch.randn(2, c, *sizes[i], generator=gen) for i, c in enumerate(channels)]
    fast = locally_aware_features(maps, patch_size, pre_dim, target_dim)
    slow = official_patch_features(maps, patch_size, pre_dim, target_dim)
    assert fast.shape == slow.shape == (2, 8 * 6, target_dim)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_single_layer_is_pooled_neighbourhood_in_raster_order():
    fmap = torch.randn(1, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    expected = F.adaptive_avg_pool1d(neighbourhood_by_loops(fmap, 3).reshape(25, 1, 36), 36).reshape(1, 25, 36)
    torch.testing.assert_close(locally_aware_features([fmap], 3, 36, 36), expected)
    pooled = locally_aware_features([fmap], 3, 9, 9)  # 36 values -> 9 bins of 4 consecutive values
    torch.testing.assert_close(pooled, neighbourhood_by_loops(fmap, 3).reshape(1, 25, 9, 4).mean(-1))


@pytest.mark.parametrize("bad", [0, 2, 4])
def test_even_or_empty_neighbourhood_is_rejected(bad):
    with pytest.raises(ValueError, match="patch_size"):
        locally_aware_features([torch.zeros(1, 2, 4, 4)], bad, 4, 4)


@pytest.mark.parametrize("length, bins", [(36, 9), (4608, 1024), (360, 1024), (7, 3), (5, 5)])
def test_adaptive_pool_matrix_is_torchs_adaptive_pooling(length, bins):
    values = torch.randn(3, 1, length, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = F.adaptive_avg_pool1d(values, bins)[:, 0]
    torch.testing.assert_close(values[:, 0] @ adaptive_pool_matrix(length, bins).T, expected)


def test_wide_resnet_dimensions_match_the_official_aggregation():
    """WRN-50's layer2 (512 channels) and layer3 (1024, half the grid) pooled to 1024, on a small grid."""
    gen = torch.Generator().manual_seed(3)
    maps = [torch.randn(2, 512, 6, 6, generator=gen), torch.randn(2, 1024, 3, 3, generator=gen)]
    fast = locally_aware_features(maps, 3, 1024, 1024)
    torch.testing.assert_close(fast, official_patch_features(maps, 3, 1024, 1024), rtol=1e-5, atol=1e-6)
    # Each layer2 output reads one channel with the kernel [[1,1,1],[1,2,1],[1,1,1]] / 10 (see the module).
    kernel = torch.tensor([[1.0, 1, 1], [1, 2, 1], [1, 1, 1]]).div(10).view(1, 1, 3, 3)
    first = F.conv2d(maps[0][:, :1], kernel, padding=1).flatten(1)
    torch.testing.assert_close(fast[:, :, 0], first, rtol=1e-5, atol=1e-6)
