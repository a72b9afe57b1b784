"""Nearest-neighbour search (exact on torch and faiss, approximate IVF-PQ) against brute force."""

import pytest
import torch

from adlib.bank import search
from adlib.bank.search import NearestNeighbours, ivfpq_layout


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_search_matches_brute_force(backend):
    bank, queries = random(300, 24, seed=1), random(50, 24, seed=2)
    index = NearestNeighbours(bank, backend=backend, chunk_bytes=4 * 300 * 7)  # several query chunks
    distances, indices = index.search(queries, k=5)
    brute = torch.cdist(queries.double(), bank.double()) ** 2
    expected_d, expected_i = brute.topk(5, dim=1, largest=False)
    assert torch.equal(indices, expected_i)
    torch.testing.assert_close(distances.double(), expected_d, rtol=1e-4, atol=1e-4)


def test_backends_agree_and_auto_prefers_faiss():
    bank, queries = random(500, 64, seed=3), random(80, 64, seed=4)
    assert NearestNeighbours(bank).backend == "faiss"
    d_torch, i_torch = NearestNeighbours(bank, backend="torch").search(queries, 3)
    d_faiss, i_faiss = NearestNeighbours(bank, backend="faiss").search(queries, 3)
    assert torch.equal(i_torch, i_faiss)
    torch.testing.assert_close(d_torch, d_faiss, rtol=1e-4, atol=1e-3)


def test_search_errors():
    with pytest.raises(ValueError, match="backend"):
        NearestNeighbours(random(3, 2), backend="annoy")
    with pytest.raises(ValueError, match="non-empty"):
        NearestNeighbours(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="k=4"):
        NearestNeighbours(random(3, 2)).search(random(1, 2), 4)


# --- IVF-PQ approximate search (paper Table 5) -----------------------------------------------------


def clustered(seed=0):
    """A bank of 16 well-separated blobs in 128 dims, and queries that are bank rows moved by a little
    noise: each query's true nearest neighbour is its own row, far closer than any other."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(16, 128, generator=g) * 10
    bank = (centres[:, None] + torch.randn(16, 40, 128, generator=g)).reshape(-1, 128)
    rows = torch.randperm(len(bank), generator=g)[:200]
    return bank, bank[rows] + 0.05 * torch.randn(200, 128, generator=g), rows


def test_ivfpq_layout_follows_the_official_index_within_what_faiss_can_train():
    assert ivfpq_layout(157_000, 1024) == (512, 64, 8)
    assert ivfpq_layout(19_968, 1024) == (512, 64, 8)  # 39 points for each of 512 lists
    assert ivfpq_layout(19_967, 1024) == (511, 64, 8)
    assert ivfpq_layout(640, 128) == (16, 64, 8)
    assert ivfpq_layout(384, 24) == (9, 24, 8)  # 64 does not divide 24: its largest divisor <= 64
    assert ivfpq_layout(300, 96) == (7, 48, 8)
    with pytest.raises(ValueError, match="at least 256 features"):
        ivfpq_layout(255, 64)


@pytest.mark.parametrize("seed", [0, 1])
def test_ivfpq_finds_the_exact_neighbours_of_clustered_data(seed):
    bank, queries, rows = clustered(seed)
    exact_d, exact_i = NearestNeighbours(bank, backend="torch").search(queries, 1)
    assert torch.equal(exact_i[:, 0], rows)  # the data are what the docstring says
    index = NearestNeighbours(bank, index="ivfpq", seed=seed)
    distances, indices = index.search(queries, 1)
    assert (indices == exact_i).float().mean() >= 0.9  # recall@1 with one probed list of 16
    # faiss's distances are exact squared distances to the PQ reconstructions of the neighbours ...
    decoded = index.decoded_bank()
    to_decoded = (queries - decoded[indices[:, 0]]).pow(2).sum(1)
    torch.testing.assert_close(distances[:, 0], to_decoded, rtol=1e-4, atol=1e-3)
    # ... so they miss the true distance by at most the reconstruction error (triangle inequality)
    true = (queries - bank[indices[:, 0]]).norm(dim=1)
    error = (bank - decoded).norm(dim=1)
    assert ((distances[:, 0].sqrt() - true).abs() <= error[indices[:, 0]] + 1e-3).all()
    assert error.mean() < 0.05 * bank.norm(dim=1).mean()  # the codes describe the bank (a broken PQ would not)


def test_ivfpq_over_all_lists_is_exact_search_in_the_decoded_bank():
    bank, queries, _ = clustered(2)
    index = NearestNeighbours(bank, index="ivfpq", seed=0, nprobe=10_000)  # every list
    distances, indices = index.search(queries, 5)
    brute = torch.cdist(queries.double(), index.decoded_bank().double()) ** 2
    expected_d, expected_i = brute.topk(5, dim=1, largest=False)
    assert torch.equal(indices, expected_i)
    torch.testing.assert_close(distances.double(), expected_d, rtol=1e-4, atol=1e-3)


def test_ivfpq_is_seeded():
    bank, queries, _ = clustered(3)
    first = NearestNeighbours(bank, index="ivfpq", seed=4)
    again = NearestNeighbours(bank, index="ivfpq", seed=4)
    other = NearestNeighbours(bank, index="ivfpq", seed=5)
    d1, i1 = first.search(queries, 3)
    d2, i2 = again.search(queries, 3)
    assert torch.equal(d1, d2) and torch.equal(i1, i2)
    assert torch.equal(first.decoded_bank(), again.decoded_bank())
    assert not torch.equal(first.decoded_bank(), other.decoded_bank())  # the seed reaches faiss's k-means


def test_ivfpq_returns_k_neighbours_when_the_probed_list_is_short():
    bank = random(300, 16, seed=9)  # 7 lists of ~43 features: 100 neighbours need more than one list
    distances, indices = NearestNeighbours(bank, index="ivfpq", seed=0).search(random(20, 16, seed=10), 100)
    assert (indices >= 0).all() and (indices < 300).all()
    assert all(len(set(row)) == 100 for row in indices.tolist())
    assert torch.isfinite(distances).all() and (distances >= 0).all()
    assert (distances[:, 1:] >= distances[:, :-1]).all()


def test_ivfpq_errors(monkeypatch):
    with pytest.raises(ValueError, match="index='hnsw'"):
        NearestNeighbours(random(300, 8), index="hnsw")
    with pytest.raises(ValueError, match="backend='faiss' or 'auto'"):
        NearestNeighbours(random(300, 8), backend="torch", index="ivfpq")
    with pytest.raises(ValueError, match="at least 256 features"):
        NearestNeighbours(random(100, 8), index="ivfpq")
    with pytest.raises(ValueError, match="nprobe=0"):
        NearestNeighbours(random(300, 8), index="ivfpq", nprobe=0)
    with pytest.raises(ValueError, match="seed="):
        NearestNeighbours(random(300, 8), index="ivfpq", seed=2**31)
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        NearestNeighbours(random(300, 8), index="ivfpq")
    assert NearestNeighbours(random(300, 8)).backend == "torch"  # exact search still works without faiss


# --- the bfloat16 screen with float32 rescoring (exact) ------------------------------------------------


def brute_force(bank, queries, k):
    """The k nearest rows in float64, ties to the lower index (as the screened search breaks them)."""
    squared = torch.cdist(queries.double(), bank.double()) ** 2
    order = torch.sort(squared, dim=1, stable=True).indices[:, :k]
    return squared.gather(1, order), order


def near_ties(seed=0):
    """Queries with 40 rows at squared distances 1, 1.0005, 1.001, ...: closer together than bfloat16's
    8 bits can tell apart, so only the float32 rescoring picks the nearest; plus a large common offset,
    which centring must remove."""
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(30, 96, generator=g) + 50
    directions = torch.nn.functional.normalize(torch.randn(30, 40, 96, generator=g), dim=-1)
    radii = (1 + 0.0005 * torch.randperm(40, generator=g).double()).sqrt()
    bank = (queries[:, None].double() + radii[None, :, None] * directions.double()).reshape(-1, 96).float()
    return bank, queries


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("data", ["gaussian", "offset", "clustered", "near ties"])
def test_screened_search_is_exact(k, data):
    if data == "near ties":
        bank, queries = near_ties()
    elif data == "clustered":
        bank, queries, _ = clustered(seed=5)
    else:
        bank, queries = random(1001, 48, seed=6), random(70, 48, seed=7)  # 1001 rows: padded to 1008
        if data == "offset":
            bank, queries = bank + 1000, queries + 1000
    index = search.ScreenedExact(bank, chunk_bytes=2 * 1008 * 16)  # 16 queries a chunk
    distances, indices = index.search(queries, k)
    expected_d, expected_i = brute_force(index.bank, queries, k)
    assert torch.equal(indices, expected_i)
    torch.testing.assert_close(distances.double(), expected_d, rtol=1e-5, atol=1e-4)


def test_screened_search_keeps_few_candidates_and_breaks_ties_by_index():
    bank, queries, _ = clustered(seed=8)
    index = search.ScreenedExact(bank)
    query, _ = index._candidates(*index._screened(queries), 1)
    # bfloat16's error grows with the vectors' norms, so it cannot tell rows of one blob apart, but it drops
    # the other 15 blobs: at most the 40 rows of the query's own blob are rescored
    assert len(query) <= 40 * len(queries)
    twice = torch.cat([bank, bank])  # every row twice: the nearest is always the first copy
    _, indices = search.ScreenedExact(twice).search(queries, 2)
    assert torch.equal(indices[:, 1], indices[:, 0] + len(bank))
    one = search.ScreenedExact(bank[:1])
    assert one.search(queries, 1)[1].eq(0).all()


def test_auto_takes_the_screen_for_large_banks_on_amx(monkeypatch):
    monkeypatch.setattr(search, "bfloat16_products_are_fast", lambda: True)
    assert isinstance(NearestNeighbours(random(search.SCREEN_MIN_ROWS, 8)), search.ScreenedExact)
    assert not isinstance(NearestNeighbours(random(search.SCREEN_MIN_ROWS - 1, 8)), search.ScreenedExact)
    assert isinstance(NearestNeighbours(random(search.SCREEN_MIN_ROWS, 8), backend="faiss"), search.FaissExact)
    monkeypatch.setattr(search, "bfloat16_products_are_fast", lambda: False)
    assert isinstance(NearestNeighbours(random(search.SCREEN_MIN_ROWS, 8)), search.FaissExact)


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_screened_values_keep_within_the_documented_bound(offset):
    """Two rows' screened values differ from their true squared distances' difference by at most
    2 E(q) + u (|v_a| + |v_b|) (the class docstring; rounding |q|^2 shifts both alike)."""
    bank, queries = random(400, 200, seed=9) * 3 + offset, random(25, 200, seed=10) * 3 + offset
    index = search.ScreenedExact(bank)
    centred = queries - index._mean
    norms = centred.pow(2).sum(1)
    widened = torch.cat([centred, torch.ones(len(centred), 2), norms[:, None]], 1).to(torch.bfloat16)
    screened = torch.mm(widened, index._widened)[:, : len(bank)].double()
    true = torch.cdist(queries.double(), bank.double()) ** 2
    error = 0.016 * norms.double().sqrt() * index._largest_norm + 1e-4 * (index._largest_norm**2 + norms.double())
    drift = (screened - true) - (screened - true)[:, :1]
    allowed = 2 * error[:, None] + 2**-8 * (screened.abs() + screened[:, :1].abs())
    assert (drift.abs() <= allowed).all()
    assert (drift.abs() / allowed).max() > 0.01  # the bound is not vacuous for this data


def test_screened_search_refuses_features_that_are_not_finite():
    bank = random(50, 8)
    with pytest.raises(ValueError, match="query features hold NaN"):
        search.ScreenedExact(bank).search(torch.full((2, 8), float("nan")), 1)
    bank[3, 1] = float("inf")
    with pytest.raises(ValueError, match="memory bank holds NaN"):
        search.ScreenedExact(bank)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_screened_search_refuses_a_single_bad_query_among_good_ones(value):
    queries = random(20, 8, seed=11)
    queries[7, 3] = value
    with pytest.raises(ValueError, match="query features hold NaN"):
        search.ScreenedExact(random(50, 8)).search(queries, 1)


# --- the nearest row within each prefix of the bank, from one screened product ---------------------------


def screened_data(data):
    """(bank, queries) of one of the screened search's data sets."""
    if data == "near ties":
        return near_ties()
    if data == "clustered":
        bank, queries, _ = clustered(seed=5)
        return bank, queries
    bank, queries = random(1001, 48, seed=6), random(70, 48, seed=7)
    return (bank + 1000, queries + 1000) if data == "offset" else (bank, queries)


@pytest.mark.parametrize("data", ["gaussian", "offset", "clustered", "near ties"])
def test_prefix_nearest_matches_a_brute_force_search_of_each_prefix(data):
    bank, queries = screened_data(data)
    bank = torch.cat([bank, bank[:5]])  # repeated rows at the end: ties go to the earlier copy
    ends = [1, 7, len(bank) // 3, len(bank) // 3 + 1, len(bank) - 5, len(bank)]
    index = search.ScreenedExact(bank, chunk_bytes=2 * 1024 * 16)
    distances, indices = index.prefix_nearest(queries, ends)
    for column, end in enumerate(ends):
        expected_d, expected_i = brute_force(bank[:end], queries, 1)
        assert torch.equal(indices[:, column], expected_i[:, 0]), end
        torch.testing.assert_close(distances[:, column].double(), expected_d[:, 0], rtol=1e-5, atol=1e-4)


def test_prefix_nearest_rescores_only_rows_closer_than_what_is_reached():
    bank, queries = random(600, 32, seed=12), random(90, 32, seed=13)
    ends = [100, 350, 600]
    true = torch.cdist(queries.double(), bank.double()) ** 2
    reached = true[:, 40] * torch.linspace(0.6, 1.4, len(queries)).double()  # some below every prefix's nearest
    reached[::7] = float("inf")  # nothing reached yet
    index = search.ScreenedExact(bank)
    distances, indices = index.prefix_nearest(queries, ends, reached.float())
    for column, end in enumerate(ends):
        nearest, row = true[:, :end].min(1)
        closer = nearest < reached * (1 - 1e-5)  # clearly closer than what is reached: found exactly
        assert torch.equal(indices[closer, column], row[closer])
        farther = nearest > reached * (1 + 1e-5)  # clearly not: no row is closer, +inf or a row as far
        assert (distances[farther, column].double() >= reached[farther] * (1 - 1e-5)).all()
        assert farther.any() and closer.any()
    assert torch.isinf(distances).any()  # some queries have no candidate left at all
    assert torch.equal(
        index.prefix_nearest(queries, ends)[1], index.prefix_nearest(queries, ends, reached * 0 + 1e9)[1]
    )


@pytest.mark.parametrize("ends", [[], [3, 2, 600], [10, 599], [0, 600], [600, 600]])
def test_prefix_nearest_refuses_ends_that_are_not_increasing_up_to_the_bank(ends):
    with pytest.raises(ValueError, match="ends="):
        search.ScreenedExact(random(600, 8)).prefix_nearest(random(3, 8), ends)


def test_pair_distances_agree_with_and_without_faiss(monkeypatch):
    queries, bank = random(50, 40, seed=14), random(30, 40, seed=15)
    query, row = torch.randint(0, 50, (300,)), torch.randint(0, 30, (300,))
    expected = ((queries[query].double() - bank[row].double()) ** 2).sum(1)
    with_faiss = search.pair_distances(queries, query, bank, row)
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    without = search.pair_distances(queries, query, bank, row)
    torch.testing.assert_close(with_faiss.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(without.double(), expected, rtol=1e-6, atol=1e-6)
    assert len(search.pair_distances(queries, query[:0], bank, row[:0])) == 0
