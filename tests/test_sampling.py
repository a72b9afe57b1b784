"""Coreset samplers against the official-style loop and against slow, obvious greedy k-center code;
learned proxies against Eq. 8 written out."""

import math

import numpy as np
import pytest
import torch

from adlib.bank.reference import official_greedy_coreset
from adlib.bank.sampling import (
    ApproximateGreedyCoreset,
    ExactGreedyCoreset,
    LearnedProxies,
    RandomSubset,
    coreset_size,
    reconstruction_gradient,
    reconstruction_loss,
)

SAMPLERS = [
    ApproximateGreedyCoreset(),
    ApproximateGreedyCoreset(projection_dim=8, start_points=3),
    ExactGreedyCoreset(),
    RandomSubset(),
]


def bank(rows, dims, seed=0, dtype=torch.float32):
    return torch.randn(rows, dims, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def obvious_greedy(points, n, initial):
    """Greedy k-center by definition: each pick is the first row farthest from (initial, earlier picks)."""
    picks = []
    for _ in range(n):

        def distance_to_coreset(i):
            return min([initial[i]] + [math.dist(points[i], points[j]) for j in picks])

        picks.append(max(range(len(points)), key=distance_to_coreset))
    return picks


@pytest.mark.parametrize("dims", [64, 200])  # 64 <= 128: no projection; 200: projected to 128
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_approximate_matches_official_loop(dims, seed):
    features = bank(500, dims, seed)
    fast = ApproximateGreedyCoreset().select(features, 50, seed)
    assert torch.equal(fast, official_greedy_coreset(features, 50, seed))


@pytest.mark.parametrize("projection_dim, start_points", [(16, 3), (32, 1), (128, 600)])
def test_settings_reach_the_code(projection_dim, start_points):
    features = bank(400, 48, seed=3)
    sampler = ApproximateGreedyCoreset(projection_dim=projection_dim, start_points=start_points)
    expected = official_greedy_coreset(features, 40, 7, projection_dim=projection_dim, start_points=start_points)
    assert torch.equal(sampler.select(features, 40, 7), expected)


def test_projection_in_chunks_matches_official_loop():
    features = bank(20_000, 160, seed=4)  # more rows than one projection chunk
    assert torch.equal(ApproximateGreedyCoreset().select(features, 10, 5), official_greedy_coreset(features, 10, 5))


def test_half_precision_is_computed_in_float32():
    features = bank(300, 200, seed=6).bfloat16()
    sampler = ApproximateGreedyCoreset()
    assert torch.equal(sampler.select(features, 30, 1), sampler.select(features.float(), 30, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_approximate_is_greedy_k_center(dtype, seed):
    points = bank(30, 2, seed, dtype)
    rows = points.double().tolist()
    initial = [np.mean([math.dist(p, q) for q in rows]) for p in rows]  # start points = all 30 rows
    picks = ApproximateGreedyCoreset(start_points=30).select(points, 12, seed)
    assert picks.tolist() == obvious_greedy(rows, 12, initial)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_is_official_greedy(dtype, seed):
    points = bank(30, 5, seed, dtype)
    rows = points.double().tolist()
    # the official start: each row's distance is the norm of its row of the distance matrix
    initial = [math.sqrt(sum(math.dist(p, q) ** 2 for q in rows)) for p in rows]
    picks = ExactGreedyCoreset().select(points, 12, seed)
    assert picks.tolist() == obvious_greedy(rows, 12, initial)


def test_exact_refuses_a_matrix_over_max_bytes():
    ExactGreedyCoreset(max_bytes=5 * 5 * 4).select(bank(5, 3), 2, 0)  # exactly at the limit: fine
    with pytest.raises(ValueError, match=r"6 x 6 distance matrix.*ApproximateGreedyCoreset"):
        ExactGreedyCoreset(max_bytes=5 * 5 * 4).select(bank(6, 3), 2, 0)


def test_random_subset_is_seeded():
    features = bank(1000, 4)
    first = RandomSubset().select(features, 100, 3)
    assert torch.equal(first, RandomSubset().select(features, 100, 3))
    assert len(set(first.tolist())) == 100
    assert not torch.equal(first, RandomSubset().select(features, 100, 4))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_indices_are_unique_rows_and_deterministic(sampler):
    features = bank(300, 150, seed=8)
    picks = sampler.select(features, 60, 11)
    assert picks.dtype == torch.int64 and picks.device.type == "cpu" and picks.shape == (60,)
    assert len(set(picks.tolist())) == 60 and 0 <= picks.min() and picks.max() < 300
    assert torch.equal(picks, sampler.select(features, 60, 11))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_features_that_require_grad(sampler):
    features = bank(100, 150).requires_grad_()
    assert torch.equal(sampler.select(features, 10, 0), sampler.select(features.detach(), 10, 0))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_whole_bank_with_duplicate_rows(sampler):
    features = bank(10, 3).repeat(3, 1)  # every row three times: distances reach 0 before the end
    assert sorted(sampler.select(features, 30, 0).tolist()) == list(range(30))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_global_rng_state_is_untouched(sampler):
    state = torch.get_rng_state()
    sampler.select(bank(200, 150), 20, 5)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_refuses_bad_sizes(sampler):
    features = bank(10, 3)
    with pytest.raises(ValueError, match="coreset larger than the bank"):
        sampler.select(features, 11, 0)
    with pytest.raises(ValueError, match="at least one row"):
        sampler.select(features, 0, 0)
    with pytest.raises(ValueError, match=r"bank \[N, D\]"):
        sampler.select(features[None], 2, 0)


def test_refuses_bad_settings():
    with pytest.raises(ValueError, match="projection_dim"):
        ApproximateGreedyCoreset(projection_dim=0)
    with pytest.raises(ValueError, match="start_points"):
        ApproximateGreedyCoreset(start_points=0)
    with pytest.raises(ValueError, match="max_bytes"):
        ExactGreedyCoreset(max_bytes=0)


def test_coreset_size():
    assert coreset_size(157_000, 0.1) == 15_700
    assert coreset_size(784, 0.01) == 7
    assert coreset_size(10, 1.0) == 10
    for ratio in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"ratio=.* must be in \(0, 1\]"):
            coreset_size(100, ratio)
    with pytest.raises(ValueError, match="ratio=0.001 too small for N=784 patches"):
        coreset_size(784, 0.001)
    with pytest.raises(ValueError, match="empty"):
        coreset_size(0, 0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    features = bank(2000, 256, seed=9, dtype=torch.float64)
    for sampler in SAMPLERS:
        assert torch.equal(sampler.select(features.cuda(), 100, 2), sampler.select(features, 100, 2))


# --- learned proxies (paper Eq. 8, Fig. 5) ---------------------------------------------------------


def slow_eq8(features, proxies):
    """Eq. 8 by definition, mean over rows, nearest proxies weighing most: softmax over -||m - p_k||."""
    total = 0.0
    for m in features:
        d = [math.dist(m, p) for p in proxies]
        e = [math.exp(-x) for x in d]
        w = [x / sum(e) for x in e]
        recon = [sum(w[k] * proxies[k][j] for k in range(len(proxies))) for j in range(len(m))]
        total += sum((a - b) ** 2 for a, b in zip(m, recon))
    return total / len(features)


def blobs(per, dims, centres, spread, seed):
    g = torch.Generator().manual_seed(seed)
    middles = torch.randn(centres, dims, generator=g) * 4
    return (middles[:, None] + spread * torch.randn(centres, per, dims, generator=g)).reshape(-1, dims)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eq8_loss_and_gradient_match_the_definition(seed):
    features, proxies = bank(6, 3, seed, torch.float64) * 0.7, bank(4, 3, seed + 10, torch.float64) * 0.7
    rows, points = features.tolist(), proxies.tolist()
    expected = slow_eq8(rows, points)
    loss, gradient = reconstruction_gradient(features, proxies)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert reconstruction_loss(features, proxies) == pytest.approx(expected, rel=1e-12)
    h = 1e-6
    for k in range(4):
        for j in range(3):
            up = [list(p) for p in points]
            down = [list(p) for p in points]
            up[k][j] += h
            down[k][j] -= h
            numeric = (slow_eq8(rows, up) - slow_eq8(rows, down)) / (2 * h)
            assert gradient[k, j].item() == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_eq8_weighs_the_nearest_proxy_most():
    """One feature, two proxies at distances 1 and 3: the reconstruction leans to the near one."""
    features = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0], [-3.0, 0.0]], dtype=torch.float64)
    w_near = math.exp(-1) / (math.exp(-1) + math.exp(-3))
    recon = w_near * 1.0 + (1 - w_near) * -3.0  # 0.464: the paper's printed +d would give -2.46
    assert reconstruction_loss(features, proxies) == pytest.approx(recon**2, rel=1e-12)


def test_eq8_in_blocks_equals_whole():
    features, proxies = bank(37, 5, 3), bank(6, 5, 4)
    loss, gradient = reconstruction_gradient(features, proxies)
    blocked_loss, blocked = reconstruction_gradient(features, proxies, block=6 * 4)  # 4 rows per block
    torch.testing.assert_close(blocked, gradient)
    torch.testing.assert_close(blocked_loss, loss)
    assert reconstruction_loss(features, proxies, block=1) == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learned_proxies_lower_the_loss_from_their_start(seed):
    features = blobs(60, 16, 8, 0.5, seed)
    start = LearnedProxies(steps=0).sample(features, 12, seed).bank
    trained = LearnedProxies(steps=60, batch_size=64).sample(features, 12, seed).bank
    assert torch.isfinite(trained).all()  # the start has features sitting on proxies: d = 0 is handled
    assert reconstruction_loss(features, trained) < reconstruction_loss(features, start)


def test_learned_proxies_start_at_the_random_subset_and_are_seeded():
    features = bank(200, 10, 5)
    start = LearnedProxies(steps=0).sample(features, 20, 3).bank
    assert torch.equal(start, features[RandomSubset().select(features, 20, 3)])
    proxies = LearnedProxies(steps=15, batch_size=32)
    first = proxies.sample(features, 20, 3).bank
    assert first.shape == (20, 10) and first.dtype == torch.float32
    assert torch.equal(first, proxies.sample(features, 20, 3).bank)
    assert not torch.equal(first, proxies.sample(features, 20, 4).bank)
    assert not torch.equal(first, start)


def test_learned_proxies_keep_dtype_and_rng_and_take_any_batch():
    features = bank(50, 4, 6, torch.float64)
    state = torch.get_rng_state()
    proxies = LearnedProxies(steps=5, batch_size=1024).sample(features.requires_grad_(), 7, 0).bank  # batch > N
    assert torch.equal(state, torch.get_rng_state())
    assert proxies.dtype == torch.float64 and not proxies.requires_grad
    bf16 = LearnedProxies(steps=3).sample(features.detach().bfloat16(), 7, 0).bank
    assert bf16.dtype == torch.bfloat16


def test_learned_proxies_refuse_bad_settings_and_sizes():
    for bad in ({"steps": -1}, {"batch_size": 0}, {"learning_rate": 0.0}, {"learning_rate": math.nan}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LearnedProxies(**bad)
    with pytest.raises(ValueError, match="coreset larger than the bank"):
        LearnedProxies().sample(bank(10, 3), 11, 0).bank
    with pytest.raises(ValueError, match=r"bank \[N, D\]"):
        LearnedProxies().sample(bank(10, 3)[None], 2, 0).bank
    with pytest.raises(ValueError, match="block"):
        reconstruction_loss(bank(10, 3), bank(2, 3), block=0)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sample_is_the_selected_rows_with_their_source(sampler):
    features = bank(120, 16, 8)
    sampled = sampler.sample(features, 30, 4)
    assert torch.equal(sampled.source, sampler.select(features, 30, 4))
    assert torch.equal(sampled.bank, features[sampled.source])
    whole = sampler.sample(features, 120, 4)  # nothing to choose: the bank as it is, in its order
    assert torch.equal(whole.bank, features) and torch.equal(whole.source, torch.arange(120))


def test_built_banks_have_no_source():
    assert LearnedProxies(steps=2).sample(bank(60, 4, 9), 6, 0).source is None


@pytest.mark.parametrize("tile", [1, 64, 500, 5000])
def test_the_tiled_greedy_loop_picks_what_the_streamed_loop_picks(tile):
    """In float64 (no rounding ties) the lazy, tiled loop and one streamed pass per pick pick the same rows,
    for tiles of one row, of many, and of the whole bank; duplicate rows tie and go to the lower index."""
    from adlib.bank.greedy import StreamedDistances, greedy_picks, tiled_greedy_picks
    from adlib.bank.sampling import augmented_bank

    features = bank(3000, 40, seed=8, dtype=torch.float64)
    features[100:110] = features[5]  # exact ties
    augmented = augmented_bank(features, 128, torch.Generator().manual_seed(0))
    start = torch.rand(3000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    streamed = greedy_picks(start.clone(), 400, StreamedDistances(augmented))
    assert torch.equal(tiled_greedy_picks(augmented, start.clone(), 400, tile=tile), streamed)
    assert len(set(streamed.tolist())) == 400
