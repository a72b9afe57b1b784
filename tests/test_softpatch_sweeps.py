"""adlib.companion.softpatch_sweeps: the cuts of a per-image table, the paper's points, the LOF grid."""

import pandas as pd
import pytest

from adlib.companion.softpatch_sweeps import (
    lof_grid,
    lof_rows,
    paper_gap,
    paper_lof_points,
    paper_noise_points,
    setting_rows,
)
from adlib.detectors.patchcore import softpatch_settings


def _images(methods, ratios=(0.0, 0.1)):
    rows = []
    for ratio in ratios:
        for overlap in [False] if ratio == 0 else [False, True]:
            for method in methods:
                for image in range(3):
                    rows.append(
                        {
                            "category": "c",
                            "seed": 0,
                            "method": method,
                            "noise_ratio": ratio,
                            "noise_overlap": overlap,
                            "image": image,
                            "label": image % 2,
                            "score": 0.5,
                        }
                    )
    return pd.DataFrame(rows)


def test_setting_rows_keep_the_clean_run_and_that_settings_noisy_runs():
    images = _images(["A"])
    for overlap in (False, True):
        rows = setting_rows(images, overlap)
        assert sorted(rows["noise_ratio"].unique()) == [0.0, 0.1]
        assert (rows.loc[rows["noise_ratio"] > 0, "noise_overlap"] == overlap).all() and len(rows) == 6
        assert set(setting_rows(images, overlap, tagged=True)["method"]) == {
            f"A, {'overlap' if overlap else 'no overlap'}"
        }


def test_paper_points_are_table_1_means_and_their_gaps():
    from adlib.evidence.claims import reported_value

    points = paper_noise_points(["PatchCore", "PaDiM"]).set_index(["setting", "method", "noise_ratio"])["value"]
    noisy = reported_value("SP", 1, "PatchCore", "image_auroc", "noise=0.1;overlap=yes")
    gap = reported_value("SP", 1, "PatchCore", "image_auroc_gap", "noise=0.1;overlap=yes")
    assert points[("overlap", "PatchCore", 0.1)] == noisy
    assert points[("overlap", "PatchCore", 0.0)] == pytest.approx(noisy - gap)
    assert ("overlap", "PaDiM", 0.1) in points.index  # the paper's PaDiM* under overlap
    lead = paper_gap("SoftPatch-lof", True, "PatchCore")
    assert lead == pytest.approx(
        reported_value("SP", 1, "SoftPatch-lof", "image_auroc_gap", "noise=0.1;overlap=yes") - gap
    )
    assert paper_gap("SoftPatch-gaussian", True) is None  # Table 1 has no overlap row for it


def test_lof_grid_and_rows_cut_one_sweep_at_the_other_knobs_default():
    grid = lof_grid(softpatch_settings(), [3, 6, 9], [0.0, 0.15, 0.3], lof_k=6, tau=0.15)
    assert len(grid) == 5 and grid["k=3, tau=0.15"].lof_k == 3 and grid["k=6, tau=0.3"].tau == 0.3
    images = _images(list(grid), ratios=(0.1,))
    k_rows = lof_rows(images, grid, overlap=True, vary="lof_k", at=0.15)
    assert sorted(k_rows["method"].unique()) == ["k=3, overlap", "k=6, overlap", "k=9, overlap"]
    assert (k_rows["tau"] == 0.15).all()
    tau_rows = lof_rows(images, grid, overlap=False, vary="tau", at=6, method="SoftPatch-lof")
    assert set(tau_rows["method"]) == {"SoftPatch-lof"} and sorted(tau_rows["tau"].unique()) == [0.0, 0.15, 0.3]
    assert (tau_rows["setting"] == "no overlap").all()
    with pytest.raises(ValueError, match="vary"):
        lof_rows(images, grid, True, "coreset_ratio", 0.1)


def test_paper_lof_points_hold_table_5():
    points = paper_lof_points()
    assert len(points) == 28 and set(points["lof_k"]) == set(range(3, 10))
    assert set(points["setting"]) == {"overlap", "no overlap"}


def test_noise_sweep_runs_the_clean_grid_once_and_refuses_a_ratio_a_category_cannot_give(
    tiny_benchmark, small_features, tmp_path, monkeypatch
):
    from adlib.companion.softpatch_sweeps import noise_sweep
    from adlib.detectors.patchcore import patchcore_settings

    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ADLIB_STORE_DIR", raising=False)
    methods = {"PatchCore": patchcore_settings(small_features, 0.1)}
    with pytest.raises(ValueError, match="gives noise ratios up to"):
        noise_sweep(tiny_benchmark, ["pill"], methods, [0], [0.0, 0.9])
    metrics, images, pixel_stats = noise_sweep(tiny_benchmark, ["pill"], methods, [0], [0.0, 0.34])
    assert set(images["result_key"]) == set(pixel_stats) and len(pixel_stats) == 3
    grids = images.drop_duplicates(["noise_ratio", "noise_overlap"])[["noise_ratio", "noise_overlap"]]
    assert sorted(map(tuple, grids.to_numpy().tolist())) == [(0.0, False), (0.34, False), (0.34, True)]
    assert (
        len(images[(images.noise_ratio > 0) & ~images.noise_overlap.astype(bool)]) == 9 - 2
    )  # moved images left the test set
    assert (metrics.loc[metrics.noise_ratio > 0, "noise_moved"] == 2).all()
    from adlib.companion.notebook import judge
    from adlib.evidence.claims import Claim

    tagged = setting_rows(images, overlap=True, tagged=True)  # renamed methods keep their result keys
    claim = Claim.trend(
        "falls", "pixel_auroc", "PatchCore, overlap", "noise_ratio", "decreasing", statistic="last_minus_first"
    )
    verdict = judge([claim], tagged, n_resamples=20, pixel_stats=pixel_stats)[0]
    by_ratio = metrics[
        (metrics.metric == "pixel_auroc") & (metrics.noise_overlap.astype(bool) | (metrics.noise_ratio == 0))
    ]
    values = by_ratio.sort_values("noise_ratio")["value"].to_numpy()
    assert verdict.estimate == pytest.approx(values[-1] - values[0], abs=1e-3)  # binned pixel statistics
