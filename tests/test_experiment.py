"""experiment.run over several methods, seeds and training-set sizes: one tidy table, shared draws."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CATEGORIES

from adlib.data.datasets import load_category
from adlib.data.protocol import low_shot
from adlib.detectors.patchcore import PatchCoreSettings
from adlib.evaluation.evaluate import evaluate
from adlib.evaluation.experiment import run, run_grid, summary
from adlib.evaluation.store import ResultStore
from adlib.features.extractor import FeatureExtractor


@pytest.fixture
def settings(small_features):
    return PatchCoreSettings(features=small_features, coreset_ratio=0.25, reweight_neighbours=1)


def test_run_is_tidy_over_methods_seeds_and_sizes(tiny_benchmark, settings, tmp_path):
    methods = {"patchcore": settings, "patchcore-random": dataclasses.replace(settings, sampler="random")}
    table = run(tiny_benchmark, ["pill"], methods, seeds=[0, 1], shots=[3, 6], cache_dir=tmp_path, progress=False)
    keys = ["category", "method", "seed", "shots", "metric"]
    assert not table.duplicated(keys).any()
    assert len(table) == 1 * 2 * 2 * 2 * 5  # categories x methods x seeds x sizes x metrics
    assert set(table["shots"]) == {3, 6} and set(table["seed"]) == {0, 1}
    assert set(table["sampler"]) == {"approximate_greedy", "random"}
    # every row equals a separate evaluation on the same seeded draw: the methods saw the same images
    row = table.query("method == 'patchcore-random' and seed == 1 and shots == 3 and metric == 'image_auroc'")
    category = low_shot(load_category(tiny_benchmark, "pill"), 3, 1)
    alone = evaluate(
        category, dataclasses.replace(methods["patchcore-random"], seed=1), cache_dir=tmp_path, progress=False
    )
    assert row["value"].item() == pytest.approx(alone.metrics["image_auroc"])
    assert set(summary(table).index) == {"pill", "mean"}


def test_run_names_a_lone_settings_and_rejects_nothing_to_run(tiny_benchmark, settings, tmp_path):
    table = run(tiny_benchmark, ["brick"], settings, cache_dir=tmp_path, progress=False)
    assert set(table["method"]) == {"patchcore"}
    with pytest.raises(ValueError, match="methods is empty"):
        run(tiny_benchmark, ["brick"], {}, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="noise_overlap=True only acts"):
        run(tiny_benchmark, ["brick"], settings, noise_overlap=True, cache_dir=tmp_path, progress=False)


def test_shared_extractor_must_match(tiny_benchmark, settings, small_features, tmp_path):
    category = load_category(tiny_benchmark, "pill")
    other = FeatureExtractor(dataclasses.replace(small_features, patch_size=1), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="shared feature extractor"):
        evaluate(category, settings, extractor=other, progress=False)
    shared = FeatureExtractor(small_features, cache_dir=tmp_path)
    result = evaluate(category, settings, extractor=shared, progress=False)
    assert result.model.extractor is shared
    assert isinstance(pd.Series(result.metrics)["image_auroc"], float)


def test_run_cache_dir_reaches_every_extractor(tiny_benchmark, settings, small_features, tmp_path, monkeypatch):
    """The image-denoising filter builds its own extractor: it must use the run's cache too."""
    from adlib.detectors.image_denoise import ImageDenoisedSettings
    from adlib.detectors.padim import PADIM_LAYERS, PaDiMSettings

    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "default"))
    padim = PaDiMSettings(
        features=dataclasses.replace(small_features, layers=PADIM_LAYERS, pre_dim=1024, target_dim=1024), channels=16
    )
    denoised = ImageDenoisedSettings(filter=padim, detector=settings, drop=0.34)
    run(tiny_benchmark, ["pill"], denoised, cache_dir=tmp_path / "mine", progress=False)
    assert not (tmp_path / "default").exists()
    assert list((tmp_path / "mine").rglob("*.layer1.pt"))  # the filter's layer1 maps went to the run's cache


# -- the result store, per-image scores, test subsets and executors ----------------------------------

TIMINGS = ["fit_seconds", "predict_seconds_per_image"]


def without_timings(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table.metric.isin(TIMINGS)].reset_index(drop=True)


def entries(root) -> list:
    return sorted(root.rglob("*.result"))


@pytest.fixture
def two_methods(settings):
    return {"patchcore": settings, "softpatch": dataclasses.replace(settings, denoise="lof", lof_k=3)}


def count_evaluations(monkeypatch) -> list:
    """Counts the fits: every call of `evaluate` by a job (a store hit makes none)."""
    import adlib.evaluation.jobs as jobs

    calls, real = [], jobs.evaluate
    monkeypatch.setattr(jobs, "evaluate", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    return calls


def test_the_store_computes_once_and_replays_the_same_tables(tiny_benchmark, two_methods, tmp_path, monkeypatch):
    grid = dict(
        categories=["pill"], methods=two_methods, seeds=[0, 1], noise_ratio=0.34, cache_dir=tmp_path, progress=False
    )
    plain = run_grid(tiny_benchmark, **grid, store=False)
    assert not (tmp_path / "results").exists()  # store=False writes nothing
    calls = count_evaluations(monkeypatch)
    first = run_grid(tiny_benchmark, **grid)
    assert len(calls) == 4 and len(entries(tmp_path / "results")) == 8  # a miss each, stored with its overlap sibling
    again = run_grid(tiny_benchmark, **grid)
    assert len(calls) == 4  # all hits: nothing fitted
    pd.testing.assert_frame_equal(again.metrics, first.metrics)  # timings too: a hit replays them
    pd.testing.assert_frame_equal(again.images, first.images)
    pd.testing.assert_frame_equal(without_timings(first.metrics), without_timings(plain.metrics))
    pd.testing.assert_frame_equal(first.images.drop(columns="result_key"), plain.images.drop(columns="result_key"))
    assert first.images.result_key.nunique() == 4
    assert plain.images.result_key.tolist() == first.images.result_key.tolist()  # without a store: the same keys
    assert set(first.pixel_stats) == set(first.images.result_key) == set(plain.pixel_stats)
    for key, stats in again.pixel_stats.items():  # a hit replays the computed statistics
        np.testing.assert_array_equal(stats.normal, plain.pixel_stats[key].normal)
        np.testing.assert_array_equal(stats.regions, plain.pixel_stats[key].regions)
        assert stats.images == tuple(first.images.query("result_key == @key").image)
    run_grid(tiny_benchmark, **grid, store=False)
    assert len(calls) == 8  # store=False computes even when the entries are there


def test_a_broken_entry_or_new_scoring_code_recomputes(tiny_benchmark, settings, tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "store", scoring_version="v1")
    first = run(tiny_benchmark, ["pill", "brick"], settings, store=store, cache_dir=tmp_path, progress=False)
    calls = count_evaluations(monkeypatch)
    broken = entries(tmp_path / "store")[0]
    broken.write_bytes(broken.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="broken"):
        again = run(tiny_benchmark, ["pill", "brick"], settings, store=store, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(without_timings(again), without_timings(first))
    run(
        tiny_benchmark,
        ["pill", "brick"],
        settings,
        store=ResultStore(tmp_path / "store", scoring_version="v2"),
        cache_dir=tmp_path,
        progress=False,
    )
    assert len(calls) == 3  # another scoring version: every entry is a miss
    assert len(entries(tmp_path / "store")) == 4


def test_per_image_scores_are_the_detectors_scores(tiny_benchmark, settings, tmp_path):
    images = run_grid(
        tiny_benchmark,
        ["pill"],
        settings,
        seeds=[1],
        shots=4,
        cache_dir=tmp_path,
        progress=False,
        store=ResultStore(tmp_path / "store", keep_maps=True),
    ).images
    assert list(images.columns) == [
        "category",
        "method",
        "seed",
        "shots",
        "noise_ratio",
        "noise_overlap",
        "image",
        "label",
        "defect",
        "score",
        "result_key",
    ]
    category = low_shot(load_category(tiny_benchmark, "pill"), 4, 1)
    alone = evaluate(category, dataclasses.replace(settings, seed=1), cache_dir=tmp_path, progress=False)
    assert images.image.tolist() == [s.image.relative_to(tiny_benchmark.resolve()).as_posix() for s in category.test]
    assert images.image.str.startswith("pill/test/").all()
    assert images.label.tolist() == [s.label for s in category.test]
    assert images.defect.tolist() == [s.defect for s in category.test]
    assert images.score.tolist() == alone.scores.image.tolist()
    assert (images.shots == 4).all() and (images.seed == 1).all()
    stored = ResultStore(tmp_path / "store", keep_maps=True).get(images.result_key.iloc[0])
    np.testing.assert_allclose(stored.maps, alone.scores.maps.numpy(), rtol=1e-3)  # float16 maps
    ones = np.ones((1, len(category.test)))  # the stored pixel statistics give the evaluation's pixel metrics
    for metric in ("pixel_auroc", "pro"):
        bound = stored.pixel_stats.binning_error(metric, ones)[0]
        assert stored.pixel_stats.metric(metric, ones)[0] == pytest.approx(alone.metrics[metric], abs=bound + 1e-9)


def test_test_images_is_one_seeded_stratified_subset_for_every_method(tiny_benchmark, two_methods, tmp_path):
    grid = run_grid(
        tiny_benchmark, ["pill"], two_methods, seeds=[0, 1], test_images=6, cache_dir=tmp_path, progress=False
    )
    subsets = grid.images.groupby(["seed", "method"]).image.apply(tuple)
    for seed in (0, 1):
        assert subsets[seed, "patchcore"] == subsets[seed, "softpatch"]  # every method sees the same images
        assert len(subsets[seed, "patchcore"]) == 6
    assert subsets[0, "patchcore"] != subsets[1, "patchcore"]
    labels = grid.images.query("seed == 0 and method == 'patchcore'").label
    assert labels.sum() == 4  # 6 of the defective share 6/9, rounded: 4 defective, 2 good
    assert (grid.metrics.test_images == 6).all()
    again = run_grid(
        tiny_benchmark, ["pill"], two_methods, seeds=[0], test_images=6, cache_dir=tmp_path, progress=False, store=False
    )
    assert tuple(again.images.query("method == 'patchcore'").image) == subsets[0, "patchcore"]
    assert (
        "test_images"
        not in run(tiny_benchmark, ["pill"], two_methods["patchcore"], cache_dir=tmp_path, progress=False).columns
    )  # the default table keeps its shape


def sorted_tables(grid):
    keys = ["category", "method", "seed", "shots", "metric"]
    metrics = without_timings(grid.metrics).sort_values(keys).reset_index(drop=True)
    images = grid.images.sort_values(["category", "method", "seed", "image"]).reset_index(drop=True)
    return metrics, images


# Both executor tests share the feature cache that the in-process run fills, as workers do, and give each
# run its own store, so that every evaluation is fitted and scored by the executor's workers. (Workers with
# cold caches of their own race to fill them, so an image may share its backbone batch with other images;
# batches of one fixed shape, `adlib.features.extractor.fixed_shape`, keep its bits the same.)


def test_a_thread_pool_gives_the_in_process_tables(tiny_benchmark, two_methods, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    grid = dict(
        categories=list(TINY_CATEGORIES), methods=two_methods, seeds=[0], progress=False, cache_dir=tmp_path / "cache"
    )
    here = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "here"))
    with ThreadPoolExecutor(2) as pool:
        there = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "there"), executor=pool)
    assert len(entries(tmp_path / "there")) == 4
    for a, b in zip(sorted_tables(here), sorted_tables(there)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    with pytest.raises(ValueError, match="on_result sees the fitted models"):
        run(tiny_benchmark, ["pill"], two_methods, executor=pool, on_result=lambda result, settings: None)


def test_a_dask_cluster_gives_the_in_process_tables_and_shares_the_store(
    tiny_benchmark, settings, tmp_path, monkeypatch
):
    """2 categories x 2 seeds on a 2-worker LocalCluster (processes, one thread each), with a store of its
    own: every evaluation is fitted and scored by the workers and must equal the in-process run."""
    pytest.importorskip("distributed")
    from adlib.evaluation.executors import grid_executor

    grid = dict(
        categories=list(TINY_CATEGORIES),
        methods=settings,
        seeds=[0, 1],
        noise_ratio=0.34,
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    here = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "here"))
    with grid_executor(workers=2) as executor:
        there = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "there"), executor=executor)
    assert len(entries(tmp_path / "there")) == 8  # 4 evaluations, each with its overlap sibling
    assert there.metrics.columns.tolist() == here.metrics.columns.tolist() and len(there.metrics) == len(here.metrics)
    for a, b in zip(sorted_tables(here), sorted_tables(there)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    # the workers' entries serve this process: nothing is fitted again
    calls = count_evaluations(monkeypatch)
    replay = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "there"))
    assert calls == []
    pd.testing.assert_frame_equal(replay.metrics, there.metrics)


def test_local_dask_workers_keep_the_allocator_as_it_is(monkeypatch):
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in every worker; adlib's local cluster leaves it out
    (a worker's predict was 1.2-1.3x slower with it) and keeps the one-thread limits."""
    pytest.importorskip("distributed")
    import os

    from adlib.evaluation.executors import grid_executor, worker_environ

    assert worker_environ({"MALLOC_TRIM_THRESHOLD_": 65536, "OMP_NUM_THREADS": 1}) == {"OMP_NUM_THREADS": 1}
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with grid_executor(workers=1) as executor:
        seen = executor.submit(os.environ.get, "MALLOC_TRIM_THRESHOLD_").result()
        threads = executor.submit(os.environ.get, "OMP_NUM_THREADS").result()
    assert seen is None and threads == "1"


def test_a_grid_survives_a_worker_killed_in_its_middle(tiny_benchmark, two_methods, tmp_path):
    """2 local workers; once the first evaluation is stored, one worker process is killed (SIGKILL) while
    others still run or wait: Dask's nanny starts a new worker, the lost task runs again, and the grid ends
    with the in-process tables."""
    pytest.importorskip("distributed")
    import os
    import signal
    import threading
    import time

    from adlib.evaluation.executors import grid_executor

    grid = dict(
        categories=list(TINY_CATEGORIES), methods=two_methods, seeds=[0, 1, 2], progress=False,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    here = run_grid(tiny_benchmark, **grid, store=ResultStore(tmp_path / "here"))
    total = len(entries(tmp_path / "here"))
    outcome: dict = {}
    with grid_executor(workers=2) as executor:
        pids = list(executor._client.run(os.getpid).values())  # the two worker processes

        def run_there() -> None:
            try:
                outcome["grid"] = run_grid(
                    tiny_benchmark, **grid, store=ResultStore(tmp_path / "there"), executor=executor
                )
            except Exception as error:  # pragma: no cover - reported by the assertion below
                outcome["error"] = error

        runner = threading.Thread(target=run_there)
        runner.start()
        deadline = time.monotonic() + 120
        while not entries(tmp_path / "there") and time.monotonic() < deadline:
            time.sleep(0.05)
        stored_at_kill = len(entries(tmp_path / "there"))
        os.kill(pids[0], signal.SIGKILL)
        runner.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert 0 < stored_at_kill < total  # the kill came in the middle of the grid
    for a, b in zip(sorted_tables(here), sorted_tables(outcome["grid"])):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
