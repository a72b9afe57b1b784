"""Slow, literal ports of the official implementations, kept as references.

Tests check adlib's fast code against them on small inputs, and `make bench` times both in one run.
They are written the way the official code is, on purpose: do not use them for real work.
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


def official_greedy_coreset(
    features: torch.Tensor, n: int, seed: int, projection_dim: int = 128, start_points: int = 10
) -> torch.Tensor:
    """The official `ApproximateGreedyCoresetSampler` loop: per pick, a fresh [N, D] difference, a norm,
    a `torch.cat` and a `torch.min` over [N, 2].

    Projection and start points are drawn as `adlib.sampling.ApproximateGreedyCoreset` draws them (an
    `nn.Linear` built after seeding the CPU generator, then `randperm`; the global RNG state is restored),
    so with the same seed both return the same indices, up to float ties. Like the fast version it skips
    the projection when D <= projection_dim (the official code skips it only at D == projection_dim).
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        if features.shape[1] > projection_dim:
            dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
            mapper = torch.nn.Linear(features.shape[1], projection_dim, bias=False)
            mapper = mapper.to(features.device, dtype)
            with torch.no_grad():
                features = mapper(features.to(dtype))
        start = torch.randperm(len(features))[: min(start_points, len(features))].tolist()

    def batchwise_distances(matrix_a: torch.Tensor, matrix_b: torch.Tensor) -> torch.Tensor:
        a_times_a = matrix_a.unsqueeze(1).bmm(matrix_a.unsqueeze(2)).reshape(-1, 1)
        b_times_b = matrix_b.unsqueeze(1).bmm(matrix_b.unsqueeze(2)).reshape(1, -1)
        a_times_b = matrix_a.mm(matrix_b.T)
        return (-2 * a_times_b + a_times_a + b_times_b).clamp(0, None).sqrt()

    min_distances = torch.mean(batchwise_distances(features, features[start]), axis=-1).reshape(-1, 1)
    indices = []
    with torch.no_grad():
        for _ in range(n):
            select_idx = torch.argmax(min_distances).item()
            indices.append(select_idx)
            distances = torch.linalg.norm(features - features[select_idx : select_idx + 1], dim=1, keepdims=True)
            min_distances = torch.cat([min_distances, distances], dim=-1)
            min_distances = torch.min(min_distances, dim=1).values.reshape(-1, 1)
    return torch.tensor(indices, dtype=torch.int64)
