"""adlib's side of `anomalib_vs_adlib.py`, one category in its own process: fit (features + coreset)
and predict (features + search + maps), timed; then the peak memory of this process.

    python benchmarks/adlib_worker.py --data data/synthetic --category pill --shots 20 \
        --backbone wide_resnet50_2 --weights build/bench/wide_resnet50_2-seed0.pt --threads 2 \
        --maps build/bench/pill-adlib.npz --result build/bench/pill-adlib.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch
from capped import current_rss_mb, peak_rss_mb
from worker_common import (
    PREPROCESSING,
    RunSettings,
    Timing,
    add_run_arguments,
    batches,
    load_data,
    set_threads,
    settings_from,
    timed,
    write_outputs,
)

from adlib.bank.sampling import coreset_size
from adlib.bank.search import faiss_available
from adlib.data.datasets import Sample
from adlib.detectors.patchcore import PatchCore, PatchCoreSettings
from adlib.features.extractor import FeatureSettings


def build_model(settings: RunSettings) -> PatchCore:
    """adlib's PatchCore with its defaults (the paper's aggregation to 1024 dims, approximate greedy
    coreset, faiss search, Eq. 7), the shared weights and no feature cache: every fit computes features."""
    features = FeatureSettings(
        backbone=settings.backbone, layers=settings.layers, weights=str(settings.weights), preprocessing=PREPROCESSING
    )
    patchcore = PatchCoreSettings(
        features=features, coreset_ratio=settings.ratio, reweight_neighbours=settings.neighbours, seed=settings.seed
    )
    model = PatchCore(patchcore, device="cpu", use_cache=False, backend="faiss" if faiss_available() else "torch")
    model.extractor.batch_size = settings.batch
    return model


def fit_parts(model: PatchCore, train: Sequence[Sample], settings: RunSettings) -> tuple[Timing, Timing]:
    """The two halves of `PatchCore.fit` timed apart, once: the training features, then the coreset of
    them with the sampler and seed the fit uses (PatchCore.fit is one call, so this is a separate run)."""
    held = []
    features = timed(lambda: held.append(model.extractor.embed(train, progress=False).features), 1)
    patches = held[-1].reshape(-1, held[-1].shape[-1])
    size = coreset_size(len(patches), settings.ratio)
    sampler = model.settings.bank_sampler
    coreset = timed(lambda: sampler.sample(patches, size, model.settings.seed), 1)
    return features, coreset


def predict(model: PatchCore, test: Sequence[Sample], batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Image scores [N] and maps [N, H, W], `predict` called per batch of test images (as anomalib's
    forward is), so that neither side holds the features of the whole test set at once."""
    parts = [model.predict(chunk, progress=False) for chunk in batches(test, batch)]
    return torch.cat([p.image for p in parts]).numpy(), torch.cat([p.maps for p in parts]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument(
        "--no-parts",
        action="store_true",
        help="skip the separate timing of the fit's two halves (a second fit's worth of time)",
    )
    args = parser.parse_args()
    settings = settings_from(args)
    set_threads(settings.threads)
    train, test = load_data(settings)
    model = build_model(settings)
    model.extractor.layer_maps(train[: settings.batch], progress=False)  # warm-up: thread pool, allocator
    rss_start = current_rss_mb()

    untimed = Timing([float("nan")], [float("nan")])
    features, coreset = (untimed, untimed) if args.no_parts else fit_parts(model, train, settings)
    fit = timed(lambda: model.fit(train, progress=False), settings.fit_repeats)
    outputs = []
    predicted = timed(lambda: outputs.append(predict(model, test, settings.batch)), settings.predict_repeats)
    scores, maps = outputs[-1]
    result = {
        "side": "adlib",
        "category": settings.category,
        "n_train": len(train),
        "n_test": len(test),
        "bank": list(model.bank.shape),
        "search": model.backend,
        "fit": fit.to_dict(),
        "fit_features": features.to_dict(),
        "fit_coreset": coreset.to_dict(),
        "predict": predicted.to_dict(),
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
        "versions": {"torch": torch.__version__},
    }
    write_outputs(settings, scores, maps, result)


if __name__ == "__main__":
    main()
