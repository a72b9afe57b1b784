"""Run detectors over categories, seeds and protocols, and collect one tidy table of results.

One row per (category, method, seed, shots, metric); the settings that made a row are columns too, so
tables from several runs concatenate and pivot cleanly. A grid is a list of independent jobs
(`adlib.evaluation.jobs`: one evaluation each) that run in process or on any
`concurrent.futures.Executor` (a Dask cluster among them). Backbone features come from the on-disk
cache, so a grid of settings over the same images costs one feature extraction, and each evaluation's
result is kept in the result store (`adlib.evaluation.store`), so a grid shared by several notebooks,
or run again, is computed once. Every evaluation also keeps its pixel statistics
(`adlib.evaluation.pixel_stats.PixelStats`), from which `adlib.evidence` bootstraps pixel AUROC and
PRO without the maps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from tqdm.auto import tqdm

from adlib.data.protocol import Protocol, protocols
from adlib.evaluation.evaluate import CategoryResult
from adlib.evaluation.jobs import Job, JobResult, Runtime, execute
from adlib.evaluation.pixel_stats import PixelStats
from adlib.evaluation.store import ResultStore, default_store_root
from adlib.features.extractor import FeatureExtractor

# The summary table's metrics, in its column order (`summary`).
TABLE_METRICS = ("image_auroc", "pixel_auroc", "pro", "fit_seconds", "predict_seconds_per_image")
IMAGE_COLUMNS = (
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
)


class GridResults(NamedTuple):
    """`run_grid`'s two tables, the tidy metrics (what `run` returns) and the per-image scores, and each
    evaluation's pixel statistics by the images table's `result_key` (for the pixel metrics' bootstrap)."""

    metrics: pd.DataFrame
    images: pd.DataFrame
    pixel_stats: dict[str, PixelStats]


def settings_columns(settings) -> dict[str, object]:
    """The settings as flat columns (nested fields joined with '.')."""
    flat = pd.json_normalize(settings.to_dict()).iloc[0].to_dict()
    return {key: (", ".join(map(str, value)) if isinstance(value, list) else value) for key, value in flat.items()}


def result_rows(
    category: str, method: str, settings, metrics: dict[str, float], extra: dict[str, object]
) -> list[dict]:
    """Tidy rows for one evaluation: one per metric, the settings (and `extra`, e.g. noise) as columns."""
    columns = settings_columns(settings)
    return [
        {"category": category, "method": method, **columns, **extra, "metric": metric, "value": value}
        for metric, value in metrics.items()
    ]


def default_name(settings) -> str:
    """A method name for a lone settings object: its class name without 'Settings', lower case."""
    return type(settings).__name__.removesuffix("Settings").lower()


def grid_jobs(
    data_root: Path,
    categories: Sequence[str],
    methods: Mapping[str, object] | object,
    *,
    seeds: Sequence[int],
    protocols: Sequence[Protocol],
    runtime: Runtime,
) -> list[Job]:
    """The grid's jobs in the in-process order: category, seed, protocol (training-set size), method;
    each method's settings seeded with the job's seed."""
    if not isinstance(methods, Mapping):
        methods = {default_name(methods): methods}
    if not methods:
        raise ValueError("methods is empty: name at least one method and its settings")
    return [
        Job(Path(data_root), name, method, dataclasses.replace(settings, seed=seed), protocol, runtime)
        for name in categories
        for seed in seeds
        for protocol in protocols
        for method, settings in methods.items()
    ]


def _outcomes(jobs: Sequence[Job], executor: Executor | None, on_result, progress: bool) -> list[JobResult]:
    """Each job's result, in the jobs' order: in process one after another, or on the executor."""
    bar = tqdm(total=len(jobs), desc="evaluations", unit="eval", disable=not progress)
    if executor is None:
        extractors: dict[tuple, FeatureExtractor] = {}
        outcomes = []
        for job in jobs:
            outcome = execute(job, extractors, keep_result=on_result is not None)
            if on_result is not None:
                on_result(outcome.result, job.settings)
                outcome = dataclasses.replace(outcome, result=None)
            outcomes.append(outcome)
            bar.update()
        bar.close()
        return outcomes
    futures = {executor.submit(execute, job): index for index, job in enumerate(jobs)}
    done: dict[int, JobResult] = {}
    try:
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    bar.close()
    return [done[index] for index in range(len(jobs))]


def _tables(jobs: Sequence[Job], outcomes: Sequence[JobResult]) -> GridResults:
    """The metrics table, the per-image table and the pixel statistics of finished jobs."""
    rows, images, pixel_stats = [], [], {}
    for job, outcome in zip(jobs, outcomes):
        stored = outcome.stored
        pixel_stats[outcome.key] = stored.pixel_stats
        rows += result_rows(job.category, job.method, job.settings, stored.metrics, outcome.extra)
        common = {
            "category": job.category,
            "method": job.method,
            "seed": job.seed,
            "shots": outcome.extra["shots"],
            "noise_ratio": job.protocol.noise_ratio,
            "noise_overlap": job.protocol.noise_overlap,
        }
        images += [
            {
                **common,
                "image": image,
                "label": int(label),
                "defect": defect,
                "score": float(score),
                "result_key": outcome.key,
            }
            for image, label, defect, score in zip(stored.images, stored.labels, stored.defects, stored.scores)
        ]
    return GridResults(pd.DataFrame(rows), pd.DataFrame(images, columns=list(IMAGE_COLUMNS)), pixel_stats)


def run_grid(
    data_root: Path,
    categories: Sequence[str],
    methods: Mapping[str, object] | object,
    *,
    seeds: Sequence[int] = (0,),
    noise_ratio: float = 0.0,
    noise_overlap: bool = False,
    shots: int | Sequence[int] | None = None,
    test_images: int | None = None,
    noise_transform: str | None = None,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    backend: str = "auto",
    store: bool | ResultStore = True,
    executor: Executor | None = None,
    progress: bool = True,
    on_result: Callable[[CategoryResult, object], None] | None = None,
) -> GridResults:
    """The tidy metrics table (one row per category, method, seed, shots and metric, the settings as
    columns), the per-image scores of the same evaluations, and their pixel statistics.

    The per-image table has one row per (evaluation, test image): category, method, seed, shots,
    noise_ratio, noise_overlap, image (path relative to the data root), label, defect, score, and
    result_key (the evaluation's key in the store, the same digest without one; `ResultStore.get(key).maps`
    has its maps when the store keeps them). `pixel_stats[result_key]` is that evaluation's
    `PixelStats` (images in its test order), for `adlib.evidence`'s pixel metrics.

    `methods` maps a method name to its settings (a lone settings object is named by `default_name`);
    every method sees the same noisy / low-shot training set of a (category, seed), and methods with
    equal feature settings share one loaded backbone (the features themselves come from the cache).
    `noise_ratio` > 0 applies SoftPatch's protocol (`adlib.data.protocol.add_training_noise`) seeded by each
    seed: int(ratio * |train|) anomalous test images join the training set, and leave the test set
    unless `noise_overlap`. `shots` keeps a seeded random subset of that many training images
    (`adlib.data.protocol.low_shot`, seeded by each seed; applied after the noise, so noisy images may be drawn);
    a sequence of sizes is a training-set-size sweep. `test_images` keeps a seeded, stratified subset of
    that many test images per category (`adlib.data.protocol.subsample_test`; the same for every method of a seed;
    the rows then get a `test_images` column). `noise_transform` (with `noise_overlap`; SP Table 10) makes the
    moved images' training copies transformed copies (`adlib.data.transforms`); the metrics rows then get a
    `noise_transform` column.

    `store`: True (default) reads and writes evaluations in the result store at
    `adlib.evaluation.store.default_store_root(cache_dir)`; a `ResultStore` uses that one; False computes everything
    and writes nothing. A stored result replays the timings measured when it was computed: pass
    `store=False` to time things.
    `executor`: None runs the evaluations here, in order; any `concurrent.futures.Executor` (e.g.
    `adlib.evaluation.executors.grid_executor`'s Dask executor) runs them as independent jobs, each worker
    loading its own backbone; the feature cache and the store on disk are the shared state, so on a
    shared path workers reuse each other's results. The table is the same either way.
    `on_result(result, settings)` sees every evaluation with its fitted model (the CLI draws heatmaps
    with it): the store keeps no models, so with `on_result` every evaluation is computed (and stored),
    and no executor can be used.
    """
    if on_result is not None and executor is not None:
        raise ValueError(
            "on_result sees the fitted models, which stay in the executor's workers: use executor=None with "
            "on_result, or read per-image scores and maps from run_grid and the store"
        )
    if isinstance(store, bool):
        store = ResultStore(default_store_root(cache_dir)) if store else None
    runtime = Runtime(
        str(device) if device is not None else None, cache_dir, backend, store, progress and executor is None
    )
    jobs = grid_jobs(
        data_root,
        categories,
        methods,
        seeds=seeds,
        protocols=protocols(noise_ratio, noise_overlap, shots, test_images, noise_transform),
        runtime=runtime,
    )
    return _tables(jobs, _outcomes(jobs, executor, on_result, progress))


def run(data_root: Path, categories: Sequence[str], methods: Mapping[str, object] | object, **options) -> pd.DataFrame:
    """`run_grid(...).metrics`: the tidy table alone (the options are `run_grid`'s, keyword-only; an unknown
    one is a TypeError there)."""
    return run_grid(data_root, categories, methods, **options).metrics


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Categories x metrics (mean over seeds), with a mean row: the table the CLI prints."""
    table = results.pivot_table(index="category", columns="metric", values="value", aggfunc="mean")
    table = table[[metric for metric in TABLE_METRICS if metric in table.columns]]
    table.loc["mean"] = table.mean()
    return table
