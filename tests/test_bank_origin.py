"""adlib.companion.bank_origin: patch origins against a cell-by-cell loop, bank shares, the t interval, the map sample."""

import numpy as np
import pytest

from adlib.companion.bank_origin import BankOrigins, bank_origins, origin_shares, patch_origins, tsne_map, tsne_sample
from adlib.data.datasets import load_category, read_mask
from adlib.detectors.patchcore import patchcore_settings, softpatch_settings


def test_patch_origins_match_a_cell_by_cell_loop(tiny_benchmark, small_features):
    category = load_category(tiny_benchmark, "pill")
    samples = category.train[:2] + tuple(s for s in category.test if s.label == 1)[:2]
    prep, grid = small_features.preprocessing, (8, 8)
    codes = patch_origins(samples, grid, prep)
    expected = []
    for sample in samples:
        mask = read_mask(sample, prep).numpy()
        step = mask.shape[0] // grid[0]
        for h in range(grid[0]):
            for w in range(grid[1]):
                touched = mask[h * step : (h + 1) * step, w * step : (w + 1) * step].any()
                expected.append(0 if sample.label == 0 else 2 if touched else 1)
    assert codes.tolist() == expected
    assert (codes == 2).any() and (codes == 1).any() and (codes[: 2 * 64] == 0).all()


def test_origin_shares_count_every_row():
    origin = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    banks = BankOrigins("c", 0, 4, 1, origin, np.zeros((8, 2), np.float32), {"a": np.array([0, 5, 6, 7])})
    shares = origin_shares(banks).set_index("bank")
    assert shares.loc["a", "size"] == 4 and shares.loc["a", "noisy image, defect region"] == 0.75
    assert shares.loc["training set (all patches)", "normal image"] == 3 / 8


def test_bank_origins_name_real_training_patches_and_the_sample_keeps_every_defect_row(tiny_benchmark, small_features):
    methods = {
        "PatchCore": patchcore_settings(small_features, 0.1),
        "SoftPatch-lof": softpatch_settings(small_features, "lof", 0.1),
    }
    banks = bank_origins(tiny_benchmark, "pill", methods, seed=0, noise_ratio=0.34)
    assert banks.train_images == 6 + 2 and banks.noisy_images == 2  # int(0.34 * 6) noisy images join 6 clean
    assert set(banks.sources) == set(methods) and (banks.origin == 2).any()
    features, owners, kinds = tsne_sample(banks, points=20, seed=0)
    for name, rows in banks.sources.items():
        assert ((owners == name) & (kinds == 2)).sum() == (banks.origin[rows] == 2).sum()
        defects, others = (banks.origin[rows] == 2).sum(), (banks.origin[rows] != 2).sum()
        assert (owners == name).sum() == defects + min(max(0, 20 - defects), others)
    coords = tsne_map(features, seed=0, perplexity=5.0)
    assert coords.shape == (len(features), 2) and np.isfinite(coords).all()


def test_normal_coverage_is_the_mean_nearest_distance_of_the_normal_patches():
    from adlib.companion.bank_origin import normal_coverage

    origin = np.array([0, 0, 1, 2, 0])
    features = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [100.0, 0.0], [0.0, 1.0]], np.float32)
    banks = BankOrigins("c", 1, 4, 1, origin, features, {"near": np.array([0, 1, 2]), "far": np.array([3])})
    table = normal_coverage(banks, chunk=2).set_index("bank")["normal_coverage_distance"]
    assert table["near"] == pytest.approx(0.25)  # patches 0, 1, 2 are in the bank; patch 4 is 1 from patch 0
    expected = np.mean([100.0, np.hypot(97, 4), np.hypot(94, 8), np.hypot(100, 1)])  # the defect patch is not asked
    assert table["far"] == pytest.approx(expected, rel=1e-6)
