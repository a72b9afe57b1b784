"""A grid's unit of work: one job = one evaluation (category, method with seeded settings, protocol),
described by paths and settings only, so that it pickles to any worker; `execute` runs it, through the
result store."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adlib.data.datasets import Category, load_category
from adlib.data.protocol import Protocol
from adlib.evaluation.evaluate import CategoryResult, evaluate, restricted
from adlib.evaluation.keys import evaluation_request
from adlib.evaluation.pixel_stats import PixelStats
from adlib.evaluation.sibling import sibling_to_store
from adlib.evaluation.store import ResultStore, StoredResult, relative_path
from adlib.features.extractor import FeatureExtractor


@dataclass(frozen=True)
class Runtime:
    """Where and how a grid's jobs run: the device, the feature cache, the search backend, the result store
    (None: keep nothing) and whether to show progress. None of it changes a number but the device type and
    the backend, which the store's keys record."""

    device: str | None = None
    cache_dir: Path | None = None
    backend: str = "auto"
    store: ResultStore | None = None
    progress: bool = True


@dataclass(frozen=True)
class Job:
    """One evaluation of a grid: a worker loads the data and its own feature extractor. The seed is the
    settings' own (`settings.seed`): it seeds the detector and the protocol's draws alike."""

    data_root: Path
    category: str
    method: str
    settings: object
    protocol: Protocol
    runtime: Runtime

    @property
    def seed(self) -> int:
        return self.settings.seed

    def prepare(self) -> tuple[Category, dict[str, object]]:
        """The job's category with its protocol applied, and the protocol columns of its rows."""
        return self.protocol.apply(load_category(self.data_root, self.category), self.seed)


@dataclass(frozen=True)
class JobResult:
    """What a job gives back: the stored form of its result, the protocol columns, the evaluation's key
    (the store's key; computed the same way without a store) and, only when asked for in this process,
    the full `CategoryResult`."""

    stored: StoredResult
    extra: dict[str, object]
    key: str
    result: CategoryResult | None = None


# Feature extractors of this worker process, by (feature settings, device, cache dir): a worker loads a
# backbone once and keeps it for the jobs that follow.
_WORKER_EXTRACTORS: dict[tuple, FeatureExtractor] = {}
_EXTRACTOR_LOCK = threading.Lock()


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


def _extractor(job: Job, extractors: dict[tuple, FeatureExtractor]) -> FeatureExtractor:
    """The loaded feature extractor for the job's feature settings, device and cache (loaded once)."""
    runtime = job.runtime
    slot = (job.settings.features, runtime.device, runtime.cache_dir)
    with _EXTRACTOR_LOCK:  # a random init draws from torch's global generator: one thread at a time
        if slot not in extractors:
            extractors[slot] = FeatureExtractor(
                job.settings.features, device=runtime.device, cache_dir=runtime.cache_dir
            )
    return extractors[slot]


def execute(job: Job, extractors: dict[tuple, FeatureExtractor] | None = None, keep_result: bool = False) -> JobResult:
    """Runs one job: reads its result from the store, or fits and scores (and stores) it.

    A noisy job that is computed also stores its sibling under the other overlap setting (one fit and
    one prediction of the overlap test set give both, `adlib.evaluation.sibling`), unless the store has it.
    `extractors`: loaded feature extractors to share (default: this worker process's own).
    `keep_result`: compute even on a store hit and return the full `CategoryResult` (fitted model,
    maps, masks), for callers in this process that look inside the model.
    """
    category, extra = job.prepare()
    runtime, request = job.runtime, evaluation_request(job, category)
    store = runtime.store
    key = (store if store is not None else ResultStore()).key(request)  # without a store: the key it would use
    if store is not None and not keep_result:
        stored = store.get(key)
        if stored is not None:
            return JobResult(stored, extra, key)
    extractor = _extractor(job, _WORKER_EXTRACTORS if extractors is None else extractors)
    other = sibling_to_store(job, category)
    wide = category if other is None or job.protocol.noise_overlap else other[1]
    result = evaluate(
        wide,
        job.settings,
        device=runtime.device,
        cache_dir=runtime.cache_dir,
        progress=runtime.progress,
        extractor=extractor,
        backend=runtime.backend,
    )
    keep_maps = store is not None and store.keep_maps
    if other is not None:
        other_job, other_category, other_key, other_request = other
        other_result = result if other_job.protocol.noise_overlap else restricted(result, other_category)
        store.put(other_key, other_request, stored_form(other_result, keep_maps))
        result = result if job.protocol.noise_overlap else restricted(result, category)
    stored = stored_form(result, keep_maps=keep_maps)
    if store is not None:
        store.put(key, request, stored)
    return JobResult(stored, extra, key, result if keep_result else None)
