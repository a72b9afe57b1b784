"""anomalib's side of `anomalib_vs_adlib.py`; runs in the separate anomalib virtualenv
(`build/anomalib-venv`, pinned by benchmarks/anomalib-requirements.txt), never in the project's.

    check    load the shared backbone weights into anomalib's timm feature extractor and write its
             layer maps of one image (the driver compares them with adlib's)
    run      one category in this process: fit (features + coreset) and predict (features + search +
             maps) of anomalib's `PatchcoreModel`, timed; then the peak memory of this process
    metrics  anomalib's AUROC (image, pixel) and AUPRO on given scores and maps (adlib's and anomalib's)

anomalib's torch model is driven directly, without its Engine (Lightning Trainer) and data module:
it gets the tensors that adlib.data.datasets.read_batch makes, the same ones adlib gets. So the timings leave
out Lightning's loop, anomalib's post-processing (score normalisation, thresholds), evaluator and
visualiser: they are a lower bound of what `Engine.fit` / `Engine.predict` take.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # anomalib's coreset loop draws a progress bar per pick
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded: pre_trained=False throughout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # adlib.data.datasets / adlib.files, not installed here

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from capped import current_rss_mb, peak_rss_mb  # noqa: E402
from worker_common import (  # noqa: E402
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

from adlib.data.datasets import load_category, read_batch  # noqa: E402
from adlib.files import atomic_write_bytes  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)  # anomalib's deprecation notices at import
warnings.filterwarnings("ignore", category=DeprecationWarning)


def build_model(backbone: str, weights: Path, layers: tuple[str, ...], neighbours: int):
    """anomalib's PatchcoreModel (timm backbone, random init) with the shared torchvision weights loaded
    into its feature extractor. timm's ResNet keys are torchvision's; the extractor holds the stages up
    to the deepest requested layer, so only the later stages' and the classifier's keys are unused.
    Refuses a load that leaves any extractor parameter or buffer unset."""
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    model = PatchcoreModel(layers=list(layers), backbone=backbone, pre_trained=False, num_neighbors=neighbours)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    extractor = model.feature_extractor.feature_extractor
    missing, unexpected = extractor.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{weights} leaves {len(missing)} keys of anomalib's {backbone} unset, e.g. {missing[:3]}")
    return model, sorted({key.split(".")[0] for key in unexpected})


def check_record(
    image: Path, unused: list[str], maps: dict[str, np.ndarray], embedding_dim: int, versions: dict[str, str]
) -> dict[str, np.ndarray]:
    """The arrays of the check's .npz: the image, the unused state-dict keys, each layer's map, the
    dimension of anomalib's patch features and its library versions (the driver's `read_check` reads them;
    the check always runs, so the report has them even when no anomalib fit ends within the caps)."""
    return {
        "image": np.array(str(image)),
        "unused": np.array(unused, dtype=str),
        "embedding_dim": np.array(embedding_dim),
        "versions": np.array(json.dumps(versions)),
    } | maps


def command_check(args: argparse.Namespace) -> None:
    """Layer maps of one image from anomalib's extractor, for the driver to compare with adlib's, with
    the dimension of the patch features anomalib's forward makes of them and the versions."""
    import anomalib
    import timm

    set_threads(args.threads)
    model, unused = build_model(args.backbone, args.weights, tuple(args.layers), 9)
    sample = next(s for s in load_category(args.data, args.category).test)
    with torch.no_grad():
        maps = model.feature_extractor(read_batch([sample], PREPROCESSING))
        embedding = model.generate_embedding({layer: model.feature_pooler(value) for layer, value in maps.items()})
    versions = {"anomalib": anomalib.__version__, "timm": timm.__version__, "torch": torch.__version__}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **check_record(
            sample.image,
            unused,
            {layer: value.numpy() for layer, value in maps.items()},
            int(embedding.shape[1]),
            versions,
        ),
    )
    atomic_write_bytes(args.out, buffer.getvalue())


def fit(model, train, batch: int, ratio: float, seed: int, parts: list[tuple[float, float]]) -> None:
    """As anomalib's Lightning module does: the training forward stores the embeddings of each batch,
    then `subsample_embedding` runs its k-center-greedy coreset. Its random steps (the sparse projection
    and the start point) draw from the global numpy and torch generators, so both are seeded.
    Appends the wall seconds of the two halves (features, coreset) to `parts`."""
    start = time.perf_counter()
    model.embedding_store.clear()
    model.memory_bank = torch.empty(0)
    model.train()
    with torch.no_grad():
        for chunk in batches(train, batch):
            model(read_batch(chunk, PREPROCESSING))
    middle = time.perf_counter()
    np.random.seed(seed)
    torch.manual_seed(seed)
    model.subsample_embedding(ratio)
    parts.append((middle - start, time.perf_counter() - middle))


def predict(model, test, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Image scores [N] and anomaly maps [N, H, W] from anomalib's inference forward."""
    model.eval()
    scores, maps = [], []
    with torch.no_grad():
        for chunk in batches(test, batch):
            output = model(read_batch(chunk, PREPROCESSING))
            scores.append(output.pred_score.reshape(-1))
            maps.append(output.anomaly_map.reshape(len(chunk), *output.anomaly_map.shape[-2:]))
    return torch.cat(scores).numpy(), torch.cat(maps).numpy()


def command_run(settings: RunSettings) -> None:
    import anomalib
    import timm

    set_threads(settings.threads)
    train, test = load_data(settings)
    model, _ = build_model(settings.backbone, settings.weights, settings.layers, settings.neighbours)
    with torch.no_grad():  # warm-up: thread pool, allocator
        model.feature_extractor(read_batch(train[: settings.batch], PREPROCESSING))
    rss_start = current_rss_mb()

    parts = []
    fitted = timed(
        lambda: fit(model, train, settings.batch, settings.ratio, settings.seed, parts), settings.fit_repeats
    )
    outputs = []
    predicted = timed(lambda: outputs.append(predict(model, test, settings.batch)), settings.predict_repeats)
    scores, maps = outputs[-1]
    result = {
        "side": "anomalib",
        "category": settings.category,
        "n_train": len(train),
        "n_test": len(test),
        "bank": list(model.memory_bank.shape),
        "search": "torch (anomalib euclidean_dist, chunks of 1024 queries)",
        "fit": fitted.to_dict(),
        "fit_features": Timing([p[0] for p in parts], [float("nan")] * len(parts)).to_dict(),
        "fit_coreset": Timing([p[1] for p in parts], [float("nan")] * len(parts)).to_dict(),
        "predict": predicted.to_dict(),
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
        "versions": {"anomalib": anomalib.__version__, "timm": timm.__version__, "torch": torch.__version__},
    }
    write_outputs(settings, scores, maps, result)


def command_metrics(args: argparse.Namespace) -> None:
    """anomalib's metric classes on each side's scores and maps, with the driver's masks and labels:
    once on the values as they are, once min-max scaled to [0, 1] in float64 (a strictly increasing map,
    so the exact metrics do not change). The second is what anomalib's own pipeline feeds its metrics
    (its post-processor normalises), and torchmetrics' ROC passes values outside [0, 1] through a
    sigmoid, which saturates in float32 for large raw scores and merges neighbours into ties."""
    import anomalib
    from anomalib.metrics import AUPRO, AUROC

    set_threads(args.threads)
    truth = np.load(args.masks)
    masks = torch.from_numpy(truth["masks"]).to(torch.int64)
    labels = torch.from_numpy(truth["labels"]).to(torch.int64)
    results = {"anomalib": anomalib.__version__}
    for path in args.maps:
        side = np.load(path)
        results[str(path)] = {}
        for variant in ("raw", "min-max"):
            scores, maps = torch.from_numpy(side["scores"]), torch.from_numpy(side["maps"])
            if variant == "min-max":
                scores, maps = _min_max(scores), _min_max(maps)
            batch = SimpleNamespace(pred_score=scores, gt_label=labels, anomaly_map=maps, gt_mask=masks)
            metrics = {
                "image AUROC": AUROC(fields=["pred_score", "gt_label"]),
                "pixel AUROC": AUROC(fields=["anomaly_map", "gt_mask"]),
                "PRO": AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=args.fpr_limit),
            }
            values = {}
            for name, metric in metrics.items():
                metric.update(batch)
                values[name] = float(metric.compute())
            results[str(path)][variant] = values
    atomic_write_bytes(args.result, json.dumps(results, indent=1).encode())


def _min_max(values: torch.Tensor) -> torch.Tensor:
    values = values.double()
    return (values - values.min()) / (values.max() - values.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="layer maps of one image from anomalib's extractor")
    check.add_argument("--data", type=Path, required=True)
    check.add_argument("--category", required=True)
    check.add_argument("--backbone", required=True)
    check.add_argument("--weights", type=Path, required=True)
    check.add_argument("--layers", nargs="+", default=["layer2", "layer3"])
    check.add_argument("--threads", type=int, required=True)
    check.add_argument("--out", type=Path, required=True)
    run = commands.add_parser("run", help="fit + predict one category, timed")
    add_run_arguments(run)
    metrics = commands.add_parser("metrics", help="anomalib's AUROC and AUPRO on given maps")
    metrics.add_argument("--masks", type=Path, required=True, help=".npz with masks [N, H, W] and labels [N]")
    metrics.add_argument("--maps", type=Path, nargs="+", required=True, help=".npz files with scores and maps")
    metrics.add_argument("--fpr-limit", type=float, default=0.3)
    metrics.add_argument("--threads", type=int, required=True)
    metrics.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "check":
        command_check(args)
    elif args.command == "run":
        command_run(settings_from(args))
    else:
        command_metrics(args)


if __name__ == "__main__":
    main()
