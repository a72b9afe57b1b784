"""adlib.companion.feature_geometry against slow, obvious loops on small inputs."""

import numpy as np
import torch

from adlib.companion.feature_geometry import nearest_parts, patch_groups, separation, separation_verdict, weighted_auroc
from adlib.evaluation.metrics import image_auroc


def slow_parts(queries: np.ndarray, bank: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: [] for name in ("euclidean", "norm_part", "direction_part", "cross_part", "cosine_nn", "norm")}
    for p in queries:
        distances = [float(((p - b) ** 2).sum()) for b in bank]
        m = bank[int(np.argmin(distances))]
        cos = float(p @ m / (np.linalg.norm(p) * np.linalg.norm(m)))
        best = max(float(p @ b / (np.linalg.norm(p) * np.linalg.norm(b))) for b in bank)
        out["euclidean"].append(min(distances))
        out["norm_part"].append((np.linalg.norm(p) - np.linalg.norm(m)) ** 2)
        out["direction_part"].append(1 - cos)
        out["cross_part"].append(2 * np.linalg.norm(p) * np.linalg.norm(m) * (1 - cos))
        out["cosine_nn"].append(1 - best)
        out["norm"].append(np.linalg.norm(p))
    return {name: np.array(values) for name, values in out.items()}


def test_nearest_parts_match_loops_and_sum_to_the_distance():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(40, 6)) * rng.uniform(0.5, 3, size=(40, 1))
    bank = rng.normal(size=(15, 6)) * rng.uniform(0.5, 3, size=(15, 1))
    fast = nearest_parts(torch.tensor(queries), torch.tensor(bank))
    slow = slow_parts(queries, bank)
    for name, values in slow.items():
        np.testing.assert_allclose(fast[name].numpy(), values, rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_allclose((fast["norm_part"] + fast["cross_part"]).numpy(), slow["euclidean"], rtol=1e-4)
    # a pure rescaling of p changes only the norm part's direction-free twin, never the direction part
    scaled = nearest_parts(torch.tensor(queries * 3.0), torch.tensor(bank))
    np.testing.assert_allclose(scaled["cosine_nn"].numpy(), fast["cosine_nn"].numpy(), atol=1e-5)


def test_patch_groups_pool_the_mask_to_the_grid():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[1, :2, :2] = True  # image 1: the top-left grid cell of a 2 x 2 grid is all defect
    masks[2, 2:, 2:] = True
    masks[2, 2, 0] = True  # a quarter of cell (1, 0): neither group
    defect, normal = patch_groups(masks, [0, 1, 1], (2, 2))
    assert defect.tolist() == [False] * 4 + [True, False, False, False] + [False, False, False, True]
    assert normal.tolist() == [True] * 4 + [False] * 8


def test_weighted_auroc_is_auroc_of_the_repeated_samples():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 5, 30).astype(float)  # many ties
    positive = rng.random(30) < 0.4
    weights = rng.integers(0, 4, 30)
    weights[positive.argmax()] += 1
    weights[(~positive).argmax()] += 1
    repeated = np.repeat(np.arange(30), weights)
    expected = image_auroc(positive[repeated].astype(int), values[repeated])
    assert abs(weighted_auroc(values, positive, weights.astype(float)) - expected) < 1e-12
    assert abs(weighted_auroc(values, positive, np.ones(30)) - image_auroc(positive.astype(int), values)) < 1e-12


def test_separation_estimate_is_plain_auroc_and_interval_brackets_it():
    rng = np.random.default_rng(2)
    n_images, per_image = 8, 9
    defect = np.zeros(n_images * per_image, bool)
    defect[4 * per_image : 4 * per_image + 3] = True
    normal = np.zeros_like(defect)
    normal[: 4 * per_image] = True
    parts = {
        name: rng.normal(size=defect.size) + 2 * defect
        for name in ("euclidean", "norm_part", "direction_part", "cross_part", "cosine_nn", "norm")
    }
    table = separation({"c": parts}, {"c": (defect, normal)}, {"c": per_image}, n_resamples=50, seed=0)
    keep = defect | normal
    row = table[(table.category == "c") & (table.quantity == "euclidean")].iloc[0]
    assert abs(row.estimate - image_auroc(defect[keep].astype(int), parts["euclidean"][keep])) < 1e-12
    assert row.low <= row.estimate <= row.high
    mean = table[(table.category == "mean") & (table.quantity == "euclidean")].iloc[0]
    assert mean.estimate == row.estimate
    diff = table[(table.category == "c") & (table.quantity == "norm_minus_direction")].iloc[0]
    by = table[table.category == "c"].set_index("quantity")["estimate"]
    assert abs(diff.estimate - (by["norm_part"] - by["direction_part"])) < 1e-12


def test_separation_verdict_reads_the_paired_difference():
    rng = np.random.default_rng(3)
    defect = np.zeros(40, bool)
    defect[20:24] = True
    normal = np.zeros(40, bool)
    normal[:20] = True
    parts = {name: rng.normal(size=40) for name in ("euclidean", "direction_part", "cross_part", "cosine_nn", "norm")}
    parts["norm_part"] = rng.normal(size=40) + 5 * defect  # the norm carries the signal
    table = separation({"c": parts}, {"c": (defect, normal)}, {"c": 4}, n_resamples=100)
    verdict = separation_verdict(table)
    line = verdict.caption()
    assert verdict.status == "holds"
    assert line.startswith("**holds** (n = 1 category, 10 test images, 4 defect / 20 normal patches)")
    assert line.endswith(
        "the difference per category: c "
        + line.split(" by ")[1].split(" patch AUROC")[0]
        + " ["
        + line.split("CI [")[1].split("]")[0]
        + "]"
    )


def test_category_separation_verdicts_weigh_each_category_alone():
    from adlib.companion.feature_geometry import category_separation_verdicts

    rng = np.random.default_rng(4)
    defect = (np.arange(160) >= 80) & (np.arange(160) % 4 == 0)  # one defect patch in each of images 20-39
    normal = np.arange(160) < 80
    names = ("euclidean", "direction_part", "cross_part", "cosine_nn", "norm")
    norm_side = {name: rng.normal(size=160) for name in names} | {"norm_part": rng.normal(size=160) + 5 * defect}
    direction_side = {name: rng.normal(size=160) for name in names} | {"norm_part": rng.normal(size=160)}
    direction_side["direction_part"] = rng.normal(size=160) + 5 * defect
    groups = {"a": (defect, normal), "b": (defect, normal)}
    table = separation({"a": norm_side, "b": direction_side}, groups, {"a": 4, "b": 4}, n_resamples=100)
    verdicts = category_separation_verdicts(table)
    assert [v.status for v in verdicts] == ["holds", "does not hold"]
    assert verdicts[0].n == "1 category (a), 40 test images, 20 defect / 80 normal patches"
    row = table[(table.category == "b") & (table.quantity == "norm_minus_direction")].iloc[0]
    assert (verdicts[1].estimate, verdicts[1].low, verdicts[1].high) == (row.estimate, row.low, row.high)
