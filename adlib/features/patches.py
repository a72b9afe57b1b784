"""PatchCore's locally aware patch features (paper Sec. 3.1, official `PatchMaker` + `Preprocessing`
+ `Aggregator`), computed as one small convolution per layer.

The official code, for each layer map [B, C, h, w]:
1. unfolds every p x p neighbourhood (stride 1, zero padding (p-1)/2) into a C*p*p vector,
   ordered channel-major, then by kernel row and column;
2. bilinearly resizes the unfolded maps of deeper layers to the first layer's grid
   (one 2-D interpolation per channel *and* kernel offset);
3. adaptive-average-pools each layer's C*p*p vector to `pre_dim`;
4. stacks the layers' vectors and adaptive-average-pools the `n_layers * pre_dim` vector to `target_dim`.

Every step is linear. Steps 3 and 4 act on the feature vector and compose into one matrix per layer,
`target_dim x (C*p*p)`, whose rows touch only a few channels each (adaptive pooling averages
neighbouring entries); with step 1 it is a convolution whose kernel for output j and channel c is that
matrix's p x p block. Step 2 acts on space alone, so it commutes with the others and is applied to the
few output maps instead of the C*p*p unfolded ones. `locally_aware_features` runs that convolution as a
depthwise one over the (output, channel) pairs with a non-zero kernel, or, where every output reads the
same number g of consecutive channels (all of them, in order), as one grouped convolution of the layer map
itself (weight [R, g, p, p], no channel gather and no index_add), written straight into its slice of the
output. For WideResNet-50 (layer2 512 and layer3 1024 channels, p = 3, 1024 -> 1024) both layers are
regular: each output reads one channel of layer2 with the kernel [[1,1,1],[1,2,1],[1,1,1]] / 10 (g = 1),
or two consecutive channels of layer3 with 1/18 each (g = 2). EfficientNet-Lite0's 40 and 112 channels
are not (an output reads one or two channels, and neighbouring outputs share some), so they take the
depthwise path. A layer's outputs are always consecutive, so each layer's result is written as one
block of the output. It equals the step-by-step form up to float rounding (tested against a literal port
of the official code in tests/test_patches.py, on shapes that reach every path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F


def adaptive_pool_matrix(length: int, bins: int, first: int = 0, last: int | None = None) -> torch.Tensor:
    """[bins, length]: row i averages the entries that `adaptive_avg_pool1d(length -> bins)` puts in bin i
    (from floor(i * length / bins) to ceil((i + 1) * length / bins), exclusive); only rows first .. last - 1
    when given (so that a large matrix can be built in slices)."""
    last = bins if last is None else last
    matrix = torch.zeros(last - first, length, dtype=torch.float64)
    for i in range(first, last):
        start, end = (i * length) // bins, -((-(i + 1) * length) // bins)
        matrix[i - first, start:end] = 1.0 / (end - start)
    return matrix


@dataclass(frozen=True)
class LayerKernels:
    """One layer's share of the aggregation as a depthwise convolution over (output, channel) pairs.

    `group_size` g > 0 marks the regular case: the outputs are the consecutive rows `rows[0]` ..
    `rows[0] + R - 1` and output j reads exactly channels j*g .. j*g + g - 1 (all C = R*g of them, in
    order), so the share is one grouped convolution of the layer map itself with `grouped` [R, g, p, p]."""

    channels: torch.Tensor  # [P] input channel of each pair
    outputs: torch.Tensor  # [P] position of each pair's output in `rows`
    rows: torch.Tensor  # [R] the outputs (of target_dim) this layer contributes to: always consecutive
    kernels: torch.Tensor  # [P, 1, p, p] float32
    group_size: int  # g of the regular case, 0 otherwise
    exclusive: bool  # no other layer contributes to `rows` (its result can be written, not added)

    @property
    def first_row(self) -> int:
        return int(self.rows[0])

    @property
    def grouped(self) -> torch.Tensor:
        """[R, g, p, p]: the kernels as one grouped convolution's weight (regular case only)."""
        return self.kernels.reshape(len(self.rows), self.group_size, *self.kernels.shape[-2:])


def _group_size(pairs: torch.Tensor, rows: torch.Tensor, channels: int) -> int:
    """g when the (output, channel) pairs, sorted by output then channel, are output j <- channels
    j*g .. j*g + g - 1 for all channels and consecutive outputs; 0 otherwise."""
    count = len(rows)
    if channels % count or len(pairs) != channels:
        return 0
    group = channels // count
    expected_outputs = torch.arange(rows[0], rows[0] + count).repeat_interleave(group)
    regular = torch.equal(pairs[:, 0], expected_outputs) and torch.equal(pairs[:, 1], torch.arange(channels))
    return group if regular else 0


KERNEL_ROWS = 64  # outputs per slice of `layer_kernels`' composed pooling


@lru_cache(maxsize=32)
def layer_kernels(
    channel_counts: tuple[int, ...], patch_size: int, pre_dim: int, target_dim: int
) -> tuple[LayerKernels, ...]:
    """The composed pooling of steps 3 and 4 for each layer, as sparse p x p kernels (computed once per shape)."""
    area = patch_size * patch_size
    stack = adaptive_pool_matrix(len(channel_counts) * pre_dim, target_dim)  # step 4
    parts = []
    for layer, channels in enumerate(channel_counts):
        per_layer = stack[:, layer * pre_dim : (layer + 1) * pre_dim]
        # Steps 3 + 4 composed, KERNEL_ROWS outputs at a time: each slice reads only the step-3 rows its
        # outputs average, so no dense [target_dim, channels * area] float64 matrix is ever held (for
        # WRN-50 it was a small fit's peak memory: benchmarks/NOTES.md).
        pair_parts, kernel_parts = [], []
        for top in range(0, target_dim, KERNEL_ROWS):
            outputs_slice = per_layer[top : top + KERNEL_ROWS]
            used = outputs_slice.abs().sum(0).nonzero().flatten()
            if not len(used):
                continue
            first, last = int(used[0]), int(used[-1]) + 1
            composed = torch.sparse.mm(
                outputs_slice[:, first:last].to_sparse(), adaptive_pool_matrix(channels * area, pre_dim, first, last)
            )
            blocks = composed.reshape(len(outputs_slice), channels, area)
            pairs = blocks.abs().sum(-1).nonzero()  # (output, channel) with a non-zero kernel, sorted
            kernel_parts.append(blocks[pairs[:, 0], pairs[:, 1]])
            pair_parts.append(pairs + torch.tensor([top, 0]))
        pairs = torch.cat(pair_parts)  # [P, 2], sorted by output, then channel
        rows, outputs = torch.unique(pairs[:, 0], return_inverse=True)
        # Each pooling bin is an interval and every pre_dim entry reaches an output, so a layer's rows are
        # consecutive (its slice of the output can be written as a block).
        assert torch.equal(rows, torch.arange(rows[0], rows[0] + len(rows))), "non-consecutive output rows"
        kernels = torch.cat(kernel_parts).reshape(-1, 1, patch_size, patch_size).float()
        parts.append((pairs, rows, outputs, kernels, _group_size(pairs, rows, channels)))
    uses = torch.zeros(target_dim, dtype=torch.int64)
    for _, rows, *_ in parts:
        uses[rows] += 1
    return tuple(
        LayerKernels(pairs[:, 1], outputs, rows, kernels, group, bool((uses[rows] == 1).all()))
        for pairs, rows, outputs, kernels, group in parts
    )


def locally_aware_features(
    feature_maps: Sequence[torch.Tensor], patch_size: int = 3, pre_dim: int = 1024, target_dim: int = 1024
) -> torch.Tensor:
    """Layer maps (the first one sets the grid) -> patch features [B, H*W, target_dim], rows in raster order.

    The result is a transposed view of the [B, target_dim, H, W] output maps: every layer's share is then
    a contiguous block copy (or index_add_) into them, and the one transposition happens where the caller
    copies anyway (`FeatureExtractor.embed`'s torch.cat). A channels-last [B, H, W, target_dim] buffer
    would make the view free but every write a strided one (and index_add_ a strided, slow one).
    """
    if not feature_maps:
        raise ValueError("no feature maps: name at least one layer")
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size={patch_size}: use an odd neighbourhood size (1, 3, 5, ...)")
    if pre_dim < 1 or target_dim < 1:
        raise ValueError(f"pre_dim={pre_dim}, target_dim={target_dim}: dimensions must be positive")
    batch, grid = feature_maps[0].shape[0], tuple(feature_maps[0].shape[-2:])
    shares = layer_kernels(tuple(m.shape[1] for m in feature_maps), patch_size, pre_dim, target_dim)
    device = feature_maps[0].device
    written = sum(len(share.rows) for share in shares if share.group_size and share.exclusive)
    allocate = torch.empty if written == target_dim else torch.zeros  # every output written once: no zeroing
    features = allocate(batch, target_dim, *grid, device=device)
    for feature_map, share in zip(feature_maps, shares):
        feature_map = feature_map.float()
        target = features[:, share.first_row : share.first_row + len(share.rows)]
        if share.group_size:
            summed = F.conv2d(feature_map, share.grouped.to(device), padding=patch_size // 2, groups=len(share.rows))
        else:
            pairs = feature_map[:, share.channels.to(device)]  # [B, P, h, w]
            kernels = share.kernels.to(device)
            convolved = F.conv2d(pairs, kernels, padding=patch_size // 2, groups=len(kernels))
            if tuple(convolved.shape[-2:]) == grid:  # no resize: sum the pairs straight into the output rows
                target.index_add_(1, share.outputs.to(device), convolved)
                continue
            summed = torch.zeros(batch, len(share.rows), *feature_map.shape[-2:], device=device)
            summed.index_add_(1, share.outputs.to(device), convolved)
        if tuple(summed.shape[-2:]) != grid:
            summed = F.interpolate(summed, size=grid, mode="bilinear", align_corners=False)
        if share.exclusive:
            target.copy_(summed)
        else:
            target.add_(summed)
    return features.flatten(2).transpose(1, 2)
