"""A slow, literal port of the official PatchCore patch aggregation, kept as a reference.

Tests check adlib's fast aggregation against it on small inputs, and `make bench` times both in one run.
It is written the way the official code is, on purpose: do not use it for real work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def official_patch_features(
    maps: Sequence[torch.Tensor], patch_size: int, pre_dim: int, target_dim: int
) -> torch.Tensor:
    """Step by step as the official `PatchCore._embed`: unfold, resize every unfolded map, pool."""
    padding = (patch_size - 1) // 2
    unfolded, shapes = [], []
    for fmap in maps:
        cols = F.unfold(fmap, kernel_size=patch_size, stride=1, padding=padding, dilation=1)
        h = (fmap.shape[-2] + 2 * padding - (patch_size - 1) - 1) + 1
        w = (fmap.shape[-1] + 2 * padding - (patch_size - 1) - 1) + 1
        cols = cols.reshape(*fmap.shape[:2], patch_size, patch_size, -1).permute(0, 4, 1, 2, 3)
        unfolded.append(cols)
        shapes.append((h, w))
    ref_h, ref_w = shapes[0]
    for i in range(1, len(unfolded)):
        feats = unfolded[i]
        h, w = shapes[i]
        feats = feats.reshape(feats.shape[0], h, w, *feats.shape[2:])
        feats = feats.permute(0, -3, -2, -1, 1, 2)
        base = feats.shape
        feats = feats.reshape(-1, *feats.shape[-2:])
        feats = F.interpolate(feats.unsqueeze(1), size=(ref_h, ref_w), mode="bilinear", align_corners=False)
        feats = feats.squeeze(1).reshape(*base[:-2], ref_h, ref_w)
        feats = feats.permute(0, -2, -1, 1, 2, 3)
        unfolded[i] = feats.reshape(len(feats), -1, *feats.shape[-3:])
    flat = [x.reshape(-1, *x.shape[-3:]) for x in unfolded]
    pooled = [F.adaptive_avg_pool1d(x.reshape(len(x), 1, -1), pre_dim).squeeze(1) for x in flat]
    stacked = torch.stack(pooled, dim=1).reshape(len(pooled[0]), 1, -1)
    out = F.adaptive_avg_pool1d(stacked, target_dim).reshape(len(stacked), -1)
    return out.reshape(maps[0].shape[0], ref_h * ref_w, target_dim)
