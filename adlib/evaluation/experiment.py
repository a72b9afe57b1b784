"""Run detectors over categories and seeds and collect one tidy table of results.

One row per (category, method, seed, shots, metric); the settings that made a row are columns too, so tables
from several runs concatenate and pivot cleanly. Backbone features come from the on-disk cache, so a
grid of settings over the same images costs one feature extraction, and each evaluation's result is
kept in the result store (`adlib.evaluation.store`), so a grid shared by several notebooks, or run again, is
computed once. Every evaluation also keeps its pixel statistics (`adlib.evaluation.pixel_stats.PixelStats`), from
which `adlib.evidence.verdicts` bootstraps pixel AUROC and PRO without the maps. A grid is a list of independent jobs (one evaluation each: category, method, seed,
protocol) that run in process or on any `concurrent.futures.Executor` (a Dask cluster among them).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from adlib.bank.scoring import Scores
from adlib.data.datasets import Category, load_category, read_mask
from adlib.data.protocol import add_training_noise, low_shot, subsample_test
from adlib.detectors.base import Detector
from adlib.detectors.patchcore import PatchCore
from adlib.detectors.registry import detector_class
from adlib.evaluation.metrics import image_auroc, pixel_auroc, pro
from adlib.evaluation.pixel_stats import PixelStats
from adlib.evaluation.store import (
    ResultStore,
    StoredResult,
    content_digest,
    data_fingerprint,
    default_store_root,
    relative_path,
)
from adlib.features.extractor import FeatureExtractor, default_device

METRICS = ("image_auroc", "pixel_auroc", "pro", "fit_seconds", "predict_seconds_per_image")


@dataclass(frozen=True)
class CategoryResult:
    """A fitted model's scores on one category's test set, with the numbers that summarise them."""

    category: Category
    model: Detector
    scores: Scores
    masks: torch.Tensor  # [N, crop, crop] bool
    metrics: dict[str, float]


def build_detector(
    settings,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    extractor: FeatureExtractor | None = None,
    backend: str = "auto",
) -> Detector:
    """The detector that `settings` describe (its class is chosen by the settings' type, `adlib.detectors.registry`)."""
    detector = detector_class(settings)
    if detector is PatchCore:
        return PatchCore(settings, device=device, cache_dir=cache_dir, extractor=extractor, backend=backend)
    if backend != "auto":
        raise ValueError(f"backend={backend!r} only applies to PatchCore's memory-bank search")
    return detector(settings, device=device, cache_dir=cache_dir, extractor=extractor)


def ground_truth(category: Category, settings) -> torch.Tensor:
    """The test masks with the model's preprocessing, [N, crop, crop] bool."""
    prep = settings.features.preprocessing
    return torch.stack([read_mask(sample, prep) for sample in category.test])


def evaluate(
    category: Category,
    settings,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    extractor: FeatureExtractor | None = None,
    backend: str = "auto",
) -> CategoryResult:
    """Fits the detector that `settings` describe on the category's training images and scores its test images.

    `extractor`: an already-loaded feature extractor with the same feature settings, shared between
    evaluations so that a grid of settings loads the backbone once.
    """
    model = build_detector(settings, device=device, cache_dir=cache_dir, extractor=extractor, backend=backend)
    start = time.perf_counter()
    model.fit(category.train, progress)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = model.predict(category.test, progress)
    predict_seconds = time.perf_counter() - start
    masks = ground_truth(category, settings)
    metrics = {
        **score_metrics(category, scores, masks),
        "fit_seconds": fit_seconds,
        "predict_seconds_per_image": predict_seconds / len(category.test),
    }
    return CategoryResult(category, model, scores, masks, metrics)


def score_metrics(category: Category, scores: Scores, masks: torch.Tensor) -> dict[str, float]:
    """Image AUROC, pixel AUROC and PRO of `scores` on `category`'s test images (masks [N, crop, crop])."""
    labels = np.array([sample.label for sample in category.test])
    return {
        "image_auroc": image_auroc(labels, scores.image.numpy()),
        "pixel_auroc": pixel_auroc(masks.numpy(), scores.maps.numpy()),
        "pro": pro(masks.numpy(), scores.maps.numpy(), anomalous_only=True),
    }


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


@dataclass(frozen=True)
class Job:
    """One evaluation of a grid, as paths and settings only (picklable): a worker loads the data and its
    own feature extractor. `settings` are already seeded with `seed`."""

    data_root: Path
    category: str
    method: str
    settings: object
    seed: int
    noise_ratio: float
    noise_overlap: bool
    shots: int | None
    test_images: int | None
    device: str | None
    cache_dir: Path | None
    backend: str
    store: ResultStore | None
    progress: bool


@dataclass(frozen=True)
class JobResult:
    """What a job gives back: the stored form of its result, the protocol columns, the evaluation's key
    (the store's key; computed the same way without a store) and, only when asked for in this process,
    the full `CategoryResult`."""

    stored: StoredResult
    extra: dict[str, object]
    key: str
    result: CategoryResult | None = None


class GridResults(NamedTuple):
    """`run_grid`'s two tables, the tidy metrics (what `run` returns) and the per-image scores, and each
    evaluation's pixel statistics by the images table's `result_key` (for `adlib.evidence.verdicts`'s pixel metrics)."""

    metrics: pd.DataFrame
    images: pd.DataFrame
    pixel_stats: dict[str, PixelStats]


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

# Feature extractors of this worker process, by (feature settings, device, cache dir): a worker loads a
# backbone once and keeps it for the jobs that follow.
_WORKER_EXTRACTORS: dict[tuple, FeatureExtractor] = {}
_EXTRACTOR_LOCK = threading.Lock()


def prepare(job: Job) -> tuple[Category, dict[str, object]]:
    """The job's category with its protocol applied, and the protocol columns of its rows.

    The order is the protocol's: noise (seeded), then the low-shot draw (seeded), then the test subset
    (seeded), so every method of a (category, seed) sees the same images.
    """
    clean = load_category(job.data_root, job.category)
    category, moved = clean, 0
    if job.noise_ratio > 0:
        category, record = add_training_noise(clean, job.noise_ratio, job.noise_overlap, job.seed)
        moved = len(record.moved)
    if job.shots is not None:
        category = low_shot(category, job.shots, job.seed)
    if job.test_images is not None:
        category = subsample_test(category, job.test_images, job.seed)
    extra = {
        "noise_ratio": job.noise_ratio,
        "noise_overlap": job.noise_overlap,
        "noise_moved": moved,
        "shots": len(category.train),
    }
    if job.test_images is not None:
        extra["test_images"] = len(category.test)
    return category, extra


def _weights_files(values: object) -> dict[str, str]:
    """Content digests of the backbone weights files the settings name (not 'imagenet' or a random init)."""
    found: dict[str, str] = {}
    if isinstance(values, dict):
        for name, value in values.items():
            if name == "weights" and isinstance(value, str) and value != "imagenet" and Path(value).is_file():
                found[value] = content_digest(Path(value))
            else:
                found.update(_weights_files(value))
    return found


def evaluation_request(job: Job, category: Category) -> dict[str, object]:
    """Everything that decides the job's numbers, as JSON values: the store keys the result by it."""
    settings = job.settings.to_dict()
    device = torch.device(job.device) if job.device is not None else default_device()
    return {
        "data": data_fingerprint(category.train, category.test, category.root.parent),
        "category": job.category,
        "settings_type": type(job.settings).__qualname__,
        "settings": settings,
        "protocol": {
            "noise_ratio": job.noise_ratio,
            "noise_overlap": job.noise_overlap,
            "shots": job.shots,
            "test_images": job.test_images,
        },
        "seed": job.seed,
        "backend": job.backend,
        "device": device.type,
        "weights_files": _weights_files(settings),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }


def stored_form(result: CategoryResult, keep_maps: bool) -> StoredResult:
    """A `CategoryResult` as the store keeps it: metrics, per-image scores, pixel statistics, float16 maps
    if asked."""
    root = result.category.root.parent
    test = result.category.test
    images = tuple(relative_path(sample.image, root) for sample in test)
    return StoredResult(
        metrics={name: float(value) for name, value in result.metrics.items()},
        images=images,
        labels=np.array([sample.label for sample in test], dtype=np.int64),
        defects=tuple(sample.defect for sample in test),
        scores=result.scores.image.numpy(),
        maps=result.scores.maps.numpy().astype(np.float16) if keep_maps else None,
        pixel_stats=PixelStats.from_maps(result.masks.numpy(), result.scores.maps.numpy(), images=images),
    )


def sibling(job: Job) -> Job | None:
    """The same evaluation under the other overlap setting, when one fit and one prediction give both.

    With training noise the two settings share the training set (the same seeded draw moves the same
    anomalous images into it, and the low-shot draw acts on that set), and the overlap test set is the
    no-overlap one plus the moved images. Scores are per image, so predicting the overlap test set once
    and dropping the moved images gives the no-overlap evaluation. Not with a test subset (it is drawn
    from each setting's own test set) and not without a store (nothing would keep the second result).
    """
    if job.noise_ratio <= 0 or job.test_images is not None or job.store is None:
        return None
    return dataclasses.replace(job, noise_overlap=not job.noise_overlap)


def restricted(result: CategoryResult, category: Category) -> CategoryResult:
    """`result` on the test images of `category` only (a subset of its own, same training set): the
    scores, maps and masks of those images, their metrics recomputed, the timings kept (per image)."""
    position = {sample: index for index, sample in enumerate(result.category.test)}
    index = torch.tensor([position[sample] for sample in category.test], dtype=torch.long)
    scores = Scores(image=result.scores.image[index], maps=result.scores.maps[index])
    masks = result.masks[index]
    metrics = {**result.metrics, **score_metrics(category, scores, masks)}
    return CategoryResult(category, result.model, scores, masks, metrics)


def execute(job: Job, extractors: dict[tuple, FeatureExtractor] | None = None, keep_result: bool = False) -> JobResult:
    """Runs one job: reads its result from the store, or fits and scores (and stores) it.

    A noisy job that is computed also stores its `sibling` under the other overlap setting (one fit and
    one prediction of the overlap test set give both), unless the store has it already.
    `extractors`: loaded feature extractors to share (default: this worker process's own).
    `keep_result`: compute even on a store hit and return the full `CategoryResult` (fitted model,
    maps, masks), for callers in this process that look inside the model.
    """
    category, extra = prepare(job)
    store, request = job.store, evaluation_request(job, category)
    key = (store if store is not None else ResultStore()).key(request)  # without a store: the key it would use
    if store is not None:
        if not keep_result:
            stored = store.get(key)
            if stored is not None:
                return JobResult(stored, extra, key)
    extractors = _WORKER_EXTRACTORS if extractors is None else extractors
    features = job.settings.features
    slot = (features, job.device, job.cache_dir)
    with _EXTRACTOR_LOCK:  # a random init draws from torch's global generator: one thread at a time
        if slot not in extractors:
            extractors[slot] = FeatureExtractor(features, device=job.device, cache_dir=job.cache_dir)
    other = _sibling_to_store(job, category)
    wide = category if other is None or job.noise_overlap else other[1]
    result = evaluate(
        wide,
        job.settings,
        device=job.device,
        cache_dir=job.cache_dir,
        progress=job.progress,
        extractor=extractors[slot],
        backend=job.backend,
    )
    keep_maps = store is not None and store.keep_maps
    if other is not None:
        other_job, other_category, other_key, other_request = other
        other_result = result if other_job.noise_overlap else restricted(result, other_category)
        store.put(other_key, other_request, stored_form(other_result, keep_maps))
        result = result if job.noise_overlap else restricted(result, category)
    stored = stored_form(result, keep_maps=keep_maps)
    if store is not None:
        store.put(key, request, stored)
    return JobResult(stored, extra, key, result if keep_result else None)


def _sibling_to_store(job: Job, category: Category) -> tuple[Job, Category, str, dict[str, object]] | None:
    """The sibling of `job` (whose prepared category is `category`): its job, category, key and request,
    when it can be derived and the store lacks it."""
    other = sibling(job)
    if other is None:
        return None
    try:
        other_category, _ = prepare(other)
    except ValueError:  # the ratio fits one setting's limit but not the other's
        return None
    if other_category.train != category.train:
        return None
    other_request = evaluation_request(other, other_category)
    other_key = job.store.key(other_request)
    if job.store.path(other_key).is_file():
        return None
    return other, other_category, other_key, other_request


def grid_jobs(
    data_root: Path,
    categories: Sequence[str],
    methods: Mapping[str, object] | object,
    seeds: Sequence[int] = (0,),
    noise_ratio: float = 0.0,
    noise_overlap: bool = False,
    shots: int | Sequence[int] | None = None,
    test_images: int | None = None,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    backend: str = "auto",
    store: bool | ResultStore = True,
    progress: bool = True,
) -> list[Job]:
    """The grid's jobs in the in-process order: category, seed, training-set size, method."""
    if noise_overlap and noise_ratio == 0:
        raise ValueError("noise_overlap=True only acts with noise_ratio > 0: set a noise ratio or drop the overlap")
    if not isinstance(methods, Mapping):
        methods = {default_name(methods): methods}
    if not methods:
        raise ValueError("methods is empty: name at least one method and its settings")
    if isinstance(store, bool):
        store = ResultStore(default_store_root(cache_dir)) if store else None
    sizes = [shots] if shots is None or isinstance(shots, int) else list(shots)
    device = str(device) if device is not None else None
    return [
        Job(
            Path(data_root),
            name,
            method,
            dataclasses.replace(settings, seed=seed),
            seed,
            noise_ratio,
            noise_overlap,
            size,
            test_images,
            device,
            cache_dir,
            backend,
            store,
            progress,
        )
        for name in categories
        for seed in seeds
        for size in sizes
        for method, settings in methods.items()
    ]


def run_grid(
    data_root: Path,
    categories: Sequence[str],
    methods: Mapping[str, object] | object,
    seeds: Sequence[int] = (0,),
    noise_ratio: float = 0.0,
    noise_overlap: bool = False,
    shots: int | Sequence[int] | None = None,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    on_result: Callable[[CategoryResult, object], None] | None = None,
    backend: str = "auto",
    store: bool | ResultStore = True,
    executor: Executor | None = None,
    test_images: int | None = None,
) -> GridResults:
    """`run`'s metrics table and the per-image scores of the same evaluations (one job loop).

    The per-image table has one row per (evaluation, test image): category, method, seed, shots,
    noise_ratio, noise_overlap, image (path relative to the data root), label, defect, score, and
    result_key (the evaluation's key in the store, the same digest without one; `ResultStore.get(key).maps`
    has its maps when the store keeps them). `pixel_stats[result_key]` is that evaluation's
    `PixelStats` (images in its test order), for `adlib.evidence.verdicts.assess(..., pixel_stats=...)`.
    See `run` for the arguments.
    """
    if on_result is not None and executor is not None:
        raise ValueError(
            "on_result sees the fitted models, which stay in the executor's workers: use "
            "executor=None with on_result, or read per-image scores and maps from run_grid and the store"
        )
    jobs = grid_jobs(
        data_root,
        categories,
        methods,
        seeds,
        noise_ratio,
        noise_overlap,
        shots,
        test_images,
        device,
        cache_dir,
        backend,
        store,
        progress and executor is None,
    )
    outcomes: list[JobResult] = []
    bar = tqdm(total=len(jobs), desc="evaluations", unit="eval", disable=not progress)
    if executor is None:
        extractors: dict[tuple, FeatureExtractor] = {}
        for job in jobs:
            outcome = execute(job, extractors, keep_result=on_result is not None)
            if on_result is not None:
                on_result(outcome.result, job.settings)
                outcome = dataclasses.replace(outcome, result=None)
            outcomes.append(outcome)
            bar.update()
    else:
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
        outcomes = [done[index] for index in range(len(jobs))]
    bar.close()
    rows, images, pixel_stats = [], [], {}
    for job, outcome in zip(jobs, outcomes):
        pixel_stats[outcome.key] = outcome.stored.pixel_stats
        rows += result_rows(job.category, job.method, job.settings, outcome.stored.metrics, outcome.extra)
        stored = outcome.stored
        common = {
            "category": job.category,
            "method": job.method,
            "seed": job.seed,
            "shots": outcome.extra["shots"],
            "noise_ratio": job.noise_ratio,
            "noise_overlap": job.noise_overlap,
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


def run(
    data_root: Path,
    categories: Sequence[str],
    methods: Mapping[str, object] | object,
    seeds: Sequence[int] = (0,),
    noise_ratio: float = 0.0,
    noise_overlap: bool = False,
    shots: int | Sequence[int] | None = None,
    device: torch.device | str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    on_result: Callable[[CategoryResult, object], None] | None = None,
    backend: str = "auto",
    store: bool | ResultStore = True,
    executor: Executor | None = None,
    test_images: int | None = None,
) -> pd.DataFrame:
    """A tidy DataFrame: one row per (category, method, seed, shots, metric), with the settings as columns.

    `methods` maps a method name to its settings (a lone settings object is named by `default_name`);
    every method sees the same noisy / low-shot training set of a (category, seed), and methods with
    equal feature settings share one loaded backbone (the features themselves come from the cache).
    `noise_ratio` > 0 applies SoftPatch's protocol (`adlib.data.protocol.add_training_noise`) seeded by each
    seed: int(ratio * |train|) anomalous test images join the training set, and leave the test set
    unless `noise_overlap`. `shots` keeps a seeded random subset of that many training images
    (`adlib.data.protocol.low_shot`, seeded by each seed; applied after the noise, so noisy images may be drawn);
    a sequence of sizes is a training-set-size sweep. `test_images` keeps a seeded, stratified subset of
    that many test images per category (`adlib.data.protocol.subsample_test`; the same for every method of a seed;
    the rows then get a `test_images` column).

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
    and no executor can be used. Per-image scores: `run_grid`.
    """
    return run_grid(
        data_root,
        categories,
        methods,
        seeds,
        noise_ratio,
        noise_overlap,
        shots,
        device,
        cache_dir,
        progress,
        on_result,
        backend,
        store,
        executor,
        test_images,
    ).metrics


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Categories x metrics (mean over seeds), with a mean row: the table the CLI prints."""
    table = results.pivot_table(index="category", columns="metric", values="value", aggfunc="mean")
    table = table[[metric for metric in METRICS if metric in table.columns]]
    table.loc["mean"] = table.mean()
    return table
