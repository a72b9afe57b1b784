"""Where adlib's PatchCore predict spends its time: the CPU seconds of each step of `PatchCore.predict`
(image decoding and resizing, backbone forward, patch aggregation and projection, nearest-neighbour
search, Eq. 7, map upsampling, Gaussian blur), as shares of the whole.

The steps are run one by one, as `PatchCore.predict` runs them, in batches of `--batch` test images
(as `adlib_worker.py` calls predict); the staged result is checked equal to `PatchCore.predict`'s, so
the shares are those of the real path. CPU time (`time.process_time`) rather than wall time, so that a
busy machine inflates the shares less; the shares, not the seconds, are what this measures.

    python benchmarks/predict_profile.py --data data/synthetic --category pill --weights build/bench/wide_resnet50_2-seed0.pt
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from adlib.bank.scoring import gaussian_blur, reweighted_image_scores, to_distance
from adlib.bank.search import faiss_available
from adlib.data.datasets import Preprocessing, load_category, read_batch
from adlib.data.protocol import low_shot
from adlib.detectors.patchcore import PatchCore, PatchCoreSettings
from adlib.features.extractor import FeatureSettings, PatchEmbedding
from adlib.features.patches import locally_aware_features


class Clock:
    """Sums the process CPU seconds of named steps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def step(self, name: str, run):
        start = time.process_time()
        value = run()
        self.seconds[name] += time.process_time() - start
        return value


def staged_predict(model: PatchCore, chunk, clock: Clock) -> tuple[torch.Tensor, torch.Tensor]:
    """`PatchCore.predict(chunk)` (Euclidean distance, no cache, no soft weights) step by step."""
    s, extractor = model.settings, model.extractor
    f = s.features
    images = clock.step("read + decode + resize + normalise (read_batch)", lambda: read_batch(chunk, f.preprocessing))
    maps = clock.step("backbone forward to layer3 (incl. NHWC copies)", lambda: extractor._forward(images))
    maps = clock.step(
        "per-image split and re-stack (layer_maps)",
        lambda: {k: torch.stack([v[i].cpu() for i in range(len(chunk))]) for k, v in maps.items()},
    )
    with torch.inference_mode():
        features = clock.step(
            "patch aggregation + projection to 1024 (locally_aware_features)",
            lambda: locally_aware_features([maps[k] for k in f.layers], f.patch_size, f.pre_dim, f.target_dim),
        )
    embedding = PatchEmbedding(features, tuple(maps[f.layers[0]].shape[-2:]))
    feats = embedding.features
    squared, nearest = clock.step(
        "nearest-neighbour search (faiss / torch, k=1)",
        lambda: model._index.search(feats.reshape(-1, feats.shape[-1]), s.top_k),
    )
    n, patches, _ = feats.shape
    patch_scores = to_distance(squared, s.distance).mean(1).reshape(n, patches)
    nearest = nearest[:, 0].reshape(n, patches)
    image = clock.step(
        "Eq. 7 re-weighting (second search, b neighbours)",
        lambda: reweighted_image_scores(patch_scores, nearest, feats, model._index, s.reweight_neighbours, s.distance),
    )
    size = f.preprocessing.crop
    up = clock.step(
        "map upsampling (bilinear to 224)",
        lambda: F.interpolate(
            patch_scores.reshape(n, 1, *model.grid).float(), size=(size, size), mode="bilinear", align_corners=False
        ).squeeze(1),
    )
    blurred = clock.step("Gaussian blur (sigma 4)", lambda: gaussian_blur(up, s.blur_sigma))
    return image, blurred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--category", default="pill")
    parser.add_argument("--backbone", default="wide_resnet50_2")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="torchvision state-dict file (none: random init, seed 0; only the shares matter)",
    )
    parser.add_argument("--shots", type=int, default=80, help="training images (sets the bank size)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if faiss_available():
        import faiss

        faiss.omp_set_num_threads(args.threads)
    category = low_shot(load_category(args.data, args.category), args.shots, seed=0)
    train, test = list(category.train), list(category.test)
    features = FeatureSettings(
        backbone=args.backbone,
        layers=("layer2", "layer3"),
        weights=None if args.weights is None else str(args.weights),
        preprocessing=Preprocessing(),
    )
    model = PatchCore(
        PatchCoreSettings(features=features, coreset_ratio=0.1, reweight_neighbours=9),
        device="cpu",
        use_cache=False,
        backend="faiss" if faiss_available() else "torch",
    )
    model.extractor.batch_size = args.batch
    model.fit(train, progress=False)
    clock = Clock()
    batches = [test[i : i + args.batch] for i in range(0, len(test), args.batch)]
    staged = [staged_predict(model, chunk, clock) for chunk in batches]
    start = time.process_time()
    real = [model.predict(chunk, progress=False) for chunk in batches]
    whole = time.process_time() - start
    for (image, maps), scores in zip(staged, real):
        torch.testing.assert_close(image, scores.image, rtol=0, atol=0)
        torch.testing.assert_close(maps, scores.maps, rtol=0, atol=0)
    total = sum(clock.seconds.values())
    print(
        f"{args.backbone}, {args.category}: {len(test)} test images, bank {tuple(model.bank.shape)}, "
        f"{args.threads} thread(s), batches of {args.batch}; staged {total:.1f} CPU s, "
        f"PatchCore.predict {whole:.1f} CPU s (same outputs)"
    )
    for name, seconds in sorted(clock.seconds.items(), key=lambda item: -item[1]):
        print(f"{seconds / total:7.1%}  {1e3 * seconds / len(test):8.1f} ms/img  {name}")


if __name__ == "__main__":
    main()
