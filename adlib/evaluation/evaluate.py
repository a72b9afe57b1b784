"""One evaluation: fit the detector that settings describe on a category's training images, score its test
images, and summarise the scores in the papers' metrics (image AUROC, pixel AUROC, PRO) and timings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adlib.bank.scoring import Scores
from adlib.data.datasets import Category, read_mask
from adlib.detectors.base import Detector
from adlib.detectors.registry import build_detector
from adlib.evaluation.metrics import image_auroc, pixel_auroc, pro
from adlib.features.extractor import FeatureExtractor


@dataclass(frozen=True)
class CategoryResult:
    """A fitted model's scores on one category's test set, with the numbers that summarise them."""

    category: Category
    model: Detector
    scores: Scores
    masks: torch.Tensor  # [N, crop, crop] bool
    metrics: dict[str, float]


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


def restricted(result: CategoryResult, category: Category) -> CategoryResult:
    """`result` on the test images of `category` only (a subset of its own, same training set): the
    scores, maps and masks of those images, their metrics recomputed, the timings kept (per image)."""
    position = {sample: index for index, sample in enumerate(result.category.test)}
    index = torch.tensor([position[sample] for sample in category.test], dtype=torch.long)
    scores = Scores(image=result.scores.image[index], maps=result.scores.maps[index])
    masks = result.masks[index]
    metrics = {**result.metrics, **score_metrics(category, scores, masks)}
    return CategoryResult(category, result.model, scores, masks, metrics)
