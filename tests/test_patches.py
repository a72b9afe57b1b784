"""The vectorised patch aggregation against a literal, slow port of the official PatchCore code."""

import pytest
import torch
import torch.nn.functional as F

from adlib.features.patches import adaptive_pool_matrix, layer_kernels, locally_aware_features
from adlib.features.reference import official_patch_features


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
    [
        ((8, 16), 3, 32, 32),
        ((5, 7), 3, 12, 10),
        ((6, 10), 5, 40, 16),
        ((4, 9, 3), 1, 8, 8),
        ((12, 20), 3, 24, 24),
        ((8, 16), 3, 16, 16),
    ],
)
def test_matches_official_aggregation(channels, patch_size, pre_dim, target_dim):
    gen = torch.Generator().manual_seed(0)
    sizes = [(8, 6), (4, 3), (2, 2)]
    maps = [torch.randn(2, c, *sizes[i], generator=gen) for i, c in enumerate(channels)]
    fast = locally_aware_features(maps, patch_size, pre_dim, target_dim)
    slow = official_patch_features(maps, patch_size, pre_dim, target_dim)
    assert fast.shape == slow.shape == (2, 8 * 6, target_dim)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


# (channels, patch size, pre_dim, target_dim, grid of the first layer, grid of the others, the path of each
# layer: g > 0 the grouped convolution with g channels per output, 0 the depthwise one, "+" where the
# grouped layer shares output rows with another one and adds to them)
PATH_CASES = [
    ((512, 1024), 3, 1024, 1024, (6, 6), (3, 3), [1, 2]),  # WideResNet-50, every output written once
    ((512, 1024), 1, 1024, 1024, (5, 7), (3, 4), [1, 2]),
    ((512, 1024), 5, 1024, 1024, (7, 5), (4, 3), [1, 2]),
    ((40, 112), 3, 1024, 1024, (6, 6), (3, 3), [0, 0]),  # EfficientNet-Lite0
    ((40, 112), 1, 1024, 1024, (5, 3), (3, 2), [0, 0]),
    ((40, 112), 5, 1024, 1024, (7, 7), (4, 4), [0, 0]),
    ((8, 16), 3, 32, 32, (7, 5), (4, 3), [0, 1]),  # one grouped and one depthwise layer
    ((3, 5), 3, 4, 1, (5, 5), (3, 3), ["3+", "5+"]),  # both layers pooled into one output: added
    ((3, 5), 5, 4, 2, (3, 5), (2, 3), [3, 5]),
    ((12, 20), 1, 24, 24, (1, 1), (1, 1), [1, 0]),  # a 1 x 1 grid
]


@pytest.mark.parametrize("channels, patch_size, pre_dim, target_dim, grid, deeper, paths", PATH_CASES)
def test_every_path_matches_official_aggregation(channels, patch_size, pre_dim, target_dim, grid, deeper, paths):
    shares = layer_kernels(channels, patch_size, pre_dim, target_dim)
    got = [f"{s.group_size}+" if s.group_size and not s.exclusive else s.group_size for s in shares]
    assert got == paths
    gen = torch.Generator().manual_seed(4)
    maps = [torch.randn(2, c, *(grid if i == 0 else deeper), generator=gen) for i, c in enumerate(channels)]
    fast = locally_aware_features(maps, patch_size, pre_dim, target_dim)
    slow = official_patch_features(maps, patch_size, pre_dim, target_dim)
    assert fast.shape == slow.shape == (2, grid[0] * grid[1], target_dim)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_channels_last_and_half_precision_maps_give_the_same_features():
    """Maps from a channels_last (or bf16 autocast) backbone: the layout does not change the result and
    the float32 computation of the bf16 values equals that of the same values stored as float32."""
    gen = torch.Generator().manual_seed(5)
    maps = [torch.randn(2, 512, 6, 6, generator=gen), torch.randn(2, 1024, 3, 3, generator=gen)]
    plain = locally_aware_features(maps, 3, 1024, 1024)
    channels_last = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    torch.testing.assert_close(locally_aware_features(channels_last, 3, 1024, 1024), plain, rtol=1e-5, atol=1e-6)
    bf16 = [m.bfloat16() for m in maps]
    expected = locally_aware_features([m.float() for m in bf16], 3, 1024, 1024)
    torch.testing.assert_close(locally_aware_features(bf16, 3, 1024, 1024), expected)


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


@pytest.mark.parametrize(
    "channels, patch_size, pre_dim, target_dim", [((64, 128), 3, 64, 48), ((7, 5), 3, 13, 11), ((40, 112), 1, 96, 80)]
)
def test_layer_kernels_do_not_depend_on_the_slicing(monkeypatch, channels, patch_size, pre_dim, target_dim):
    # the composed pooling is built KERNEL_ROWS outputs at a time; one slice of all outputs is the plain form
    import adlib.features.patches as patches

    def kernels_with(rows):
        monkeypatch.setattr(patches, "KERNEL_ROWS", rows)
        layer_kernels.cache_clear()
        return layer_kernels(channels, patch_size, pre_dim, target_dim)

    whole, sliced = kernels_with(10_000), kernels_with(3)
    layer_kernels.cache_clear()
    for a, b in zip(whole, sliced, strict=True):
        assert torch.equal(a.channels, b.channels) and torch.equal(a.outputs, b.outputs) and torch.equal(a.rows, b.rows)
        assert torch.equal(a.kernels, b.kernels) and (a.group_size, a.exclusive) == (b.group_size, b.exclusive)
