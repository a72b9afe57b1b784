"""A slow, literal port of the official approximate greedy coreset loop, kept as a reference.

Tests check adlib's fast sampler against it on small inputs, and `make bench` times both in one run.
It is written the way the official code is, on purpose: do not use it for real work.
"""

from __future__ import annotations

import torch


def official_greedy_coreset(
    features: torch.Tensor, n: int, seed: int, projection_dim: int = 128, start_points: int = 10
) -> torch.Tensor:
    """The official `ApproximateGreedyCoresetSampler` loop: per pick, a fresh [N, D] difference, a norm,
    a `torch.cat` and a `torch.min` over [N, 2].

    Projection and start points are drawn as `adlib.bank.sampling.ApproximateGreedyCoreset` draws them (an
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
