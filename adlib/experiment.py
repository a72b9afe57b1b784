"""Run detectors over categories and seeds and collect one tidy table of results.

One row per (category, method, seed, shots, metric); the settings that made a row are columns too, so tables
from several runs concatenate and pivot cleanly. Backbone features come from the on-disk cache, so a
grid of settings over the same images costs one feature extraction.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from adlib.data import Category, add_training_noise, load_category, low_shot, read_mask
from adlib.detector import Detector
from adlib.features import FeatureExtractor, FeatureSettings
from adlib.methods import PatchCore
from adlib.metrics import image_auroc, pixel_auroc, pro
from adlib.registry import detector_class
from adlib.scoring import Scores

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
    """The detector that `settings` describe (its class is chosen by the settings' type, `adlib.registry`)."""
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
    labels = torch.tensor([sample.label for sample in category.test])
    metrics = {
        "image_auroc": image_auroc(labels.numpy(), scores.image.numpy()),
        "pixel_auroc": pixel_auroc(masks.numpy(), scores.maps.numpy()),
        "pro": pro(masks.numpy(), scores.maps.numpy(), anomalous_only=True),
        "fit_seconds": fit_seconds,
        "predict_seconds_per_image": predict_seconds / len(category.test),
    }
    return CategoryResult(category, model, scores, masks, metrics)


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
) -> pd.DataFrame:
    """A tidy DataFrame: one row per (category, method, seed, shots, metric), with the settings as columns.

    `methods` maps a method name to its settings (a lone settings object is named by `default_name`);
    every method sees the same noisy / low-shot training set of a (category, seed), and methods with
    equal feature settings share one loaded backbone (the features themselves come from the cache).
    `noise_ratio` > 0 applies SoftPatch's protocol (`adlib.data.add_training_noise`) seeded by each
    seed: int(ratio * |train|) anomalous test images join the training set, and leave the test set
    unless `noise_overlap`. `shots` keeps a seeded random subset of that many training images
    (`adlib.data.low_shot`, seeded by each seed; applied after the noise, so noisy images may be drawn);
    a sequence of sizes is a training-set-size sweep. `on_result(result, settings)` sees every
    evaluation (the CLI draws heatmaps with it).
    """
    if noise_overlap and noise_ratio == 0:
        raise ValueError("noise_overlap=True only acts with noise_ratio > 0: set a noise ratio or drop the overlap")
    if not isinstance(methods, Mapping):
        methods = {default_name(methods): methods}
    if not methods:
        raise ValueError("methods is empty: name at least one method and its settings")
    sizes = [shots] if shots is None or isinstance(shots, int) else list(shots)
    extractors: dict[FeatureSettings, FeatureExtractor] = {}
    rows = []
    for name in categories:
        clean = load_category(data_root, name)
        for seed in seeds:
            noisy, extra = clean, {"noise_ratio": noise_ratio, "noise_overlap": noise_overlap, "noise_moved": 0}
            if noise_ratio > 0:
                noisy, record = add_training_noise(clean, noise_ratio, noise_overlap, seed)
                extra["noise_moved"] = len(record.moved)
            for size in sizes:
                category = noisy if size is None else low_shot(noisy, size, seed)
                extra["shots"] = len(category.train)
                for method, settings in methods.items():
                    seeded = dataclasses.replace(settings, seed=seed)
                    features = seeded.features
                    if features not in extractors:
                        extractors[features] = FeatureExtractor(features, device=device, cache_dir=cache_dir)
                    result = evaluate(category, seeded, device=device, cache_dir=cache_dir, progress=progress,
                                      extractor=extractors[features], backend=backend)
                    rows += result_rows(name, method, seeded, result.metrics, extra)
                    if on_result is not None:
                        on_result(result, seeded)
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Categories x metrics (mean over seeds), with a mean row: the table the CLI prints."""
    table = results.pivot_table(index="category", columns="metric", values="value", aggfunc="mean")
    table = table[[metric for metric in METRICS if metric in table.columns]]
    table.loc["mean"] = table.mean()
    return table
