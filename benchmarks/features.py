"""Feature-extraction costs, measured as ratios in one run (the machine's noise mostly cancels):

- the backbone forward to layer3 (WideResNet-50, random init, and EfficientNet-Lite0) in fp32 on
  contiguous tensors, in fp32 channels-last (`FeatureExtractor(channels_last=True)`) and under bf16
  autocast (`FeatureSettings(precision="bf16")`, channels-last), at batch sizes 1 / 4 / 8 / 16 and with
  1 and 2 torch threads (bf16 once, at batch 8, 2 threads: it is an accuracy-for-speed trade only where
  it is faster);
- the patch aggregation: adlib's (`adlib.features.patches.locally_aware_features`), the previous adlib form (a
  depthwise convolution over gathered channels for every layer, kept below as `previous_aggregation`)
  and the official-style step-by-step one (`adlib.features.reference.official_patch_features`), same grid, each
  up to a contiguous [B, H*W, D] result (what the memory bank and the search read);
- the time to embed one embedded-benchmark category with EfficientNet-Lite0 (the offline profile).

Writes a Markdown report, with the defaults the measurements pick, and the CSV behind it.

    python benchmarks/features.py --data data/synthetic --out figures/bench_features.md
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from common import machine, median_seconds

from adlib.data.datasets import list_categories, load_category
from adlib.features.backbones import load_backbone
from adlib.features.extractor import FeatureExtractor, FeatureSettings, profile_settings
from adlib.features.patches import layer_kernels, locally_aware_features
from adlib.features.reference import official_patch_features
from adlib.files import atomic_write_bytes

BACKBONES = ("wide_resnet50_2", "efficientnet-lite0")
BATCHES = (1, 4, 8, 16)
THREADS = (1, 2)


def previous_aggregation(
    feature_maps: Sequence[torch.Tensor], patch_size: int = 3, pre_dim: int = 1024, target_dim: int = 1024
) -> torch.Tensor:
    """adlib's aggregation before the grouped-convolution path (kept to time against): every layer as a
    depthwise convolution over its gathered (output, channel) pairs, index_add into the rows, and a
    transposed [B, H*W, D] view of the [B, D, H, W] result."""
    batch, grid = feature_maps[0].shape[0], tuple(feature_maps[0].shape[-2:])
    shares = layer_kernels(tuple(m.shape[1] for m in feature_maps), patch_size, pre_dim, target_dim)
    features = torch.zeros(batch, target_dim, *grid)
    for feature_map, share in zip(feature_maps, shares):
        pairs = feature_map.float()[:, share.channels]
        convolved = F.conv2d(pairs, share.kernels, padding=patch_size // 2, groups=len(share.kernels))
        summed = torch.zeros(batch, len(share.rows), *feature_map.shape[-2:])
        summed.index_add_(1, share.outputs, convolved)
        if tuple(summed.shape[-2:]) != grid:
            summed = F.interpolate(summed, size=grid, mode="bilinear", align_corners=False)
        features.index_add_(1, share.rows, summed)
    return features.flatten(2).transpose(1, 2)


AGGREGATIONS = {
    "aggregation (adlib)": locally_aware_features,
    "aggregation (previous adlib)": previous_aggregation,
    "aggregation (official-style reference)": official_patch_features,
}


def settings_of(backbone: str) -> FeatureSettings:
    """Random init for WRN-50 (no pretrained weights here), the offline profile's ImageNet Lite0."""
    if backbone == "efficientnet-lite0":
        return profile_settings("synthetic")
    return FeatureSettings(backbone=backbone, weights=None)


def per_image_ms(step: Callable[[], object], batch: int, repeats: int) -> float:
    return median_seconds(step, repeats) / batch * 1000


@torch.inference_mode()
def aggregation_rows(backbone: str, batch: int, repeats: int) -> list[dict[str, object]]:
    """Per-image ms of the backbone (fp32, to layer3) and of the aggregations, at the current thread count.
    (Also used by reference_loops.py.)"""
    model = load_backbone(backbone, ["layer2", "layer3"], weights=None).model
    images = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    maps = list(model(images).values())
    reference = official_patch_features(maps, 3, 1024, 1024)
    steps: dict[str, Callable[[], object]] = {"backbone forward to layer3": lambda: model(images)}
    for name, aggregate in AGGREGATIONS.items():
        torch.testing.assert_close(aggregate(maps, 3, 1024, 1024), reference, rtol=1e-4, atol=1e-5)
        steps[name] = lambda aggregate=aggregate: aggregate(maps, 3, 1024, 1024).contiguous()
    times = {name: per_image_ms(step, batch, repeats) for name, step in steps.items()}
    forward = times["backbone forward to layer3"]
    return [
        {"backbone": backbone, "step": name, "ms per image": ms, "ratio to backbone forward": ms / forward}
        for name, ms in times.items()
    ]


@torch.inference_mode()
def sweep_rows(backbone: str, repeats: int) -> list[dict[str, object]]:
    """ms per image of every forward variant and aggregation, per batch size and thread count."""
    settings = settings_of(backbone)
    extractors = {
        "fp32 contiguous": FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=False),
        "fp32 channels_last": FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=True),
    }
    bf16 = FeatureExtractor(dataclasses.replace(settings, precision="bf16"), device="cpu", use_cache=False)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        for batch in BATCHES:
            images = torch.randn(batch, 3, 224, 224, generator=generator)
            maps = list(extractors["fp32 contiguous"]._forward(images).values())
            if threads == min(THREADS) and batch == min(BATCHES):  # all three compute the same features
                reference = official_patch_features(maps, 3, 1024, 1024)
                for aggregate in AGGREGATIONS.values():
                    torch.testing.assert_close(aggregate(maps, 3, 1024, 1024), reference, rtol=1e-4, atol=1e-5)
            steps: dict[str, Callable[[], object]] = {
                f"forward {name}": (lambda e=e: e._forward(images)) for name, e in extractors.items()
            }
            if threads == max(THREADS) and batch == 8:
                steps["forward bf16 autocast (channels_last)"] = lambda: bf16._forward(images)
            for name, aggregate in AGGREGATIONS.items():
                steps[name] = lambda aggregate=aggregate: aggregate(maps, 3, 1024, 1024).contiguous()
            for name, step in steps.items():
                once = name.startswith("forward bf16") or ("official" in name and batch > 8)
                ms = per_image_ms(step, batch, 1 if once else repeats)
                rows.append(
                    {"backbone": backbone, "threads": threads, "batch": batch, "step": name, "ms per image": ms}
                )
    torch.set_num_threads(max(THREADS))
    return rows


def category_row(data: Path, batch_size: int, channels_last: bool) -> dict[str, object]:
    """Seconds to embed every image of the first benchmark category with EfficientNet-Lite0, no cache."""
    category = load_category(data, list_categories(data)[0])
    samples = category.train + category.test
    extractor = FeatureExtractor(
        profile_settings("synthetic"), device="cpu", use_cache=False, batch_size=batch_size, channels_last=channels_last
    )
    start = time.perf_counter()
    extractor.embed(samples, progress=False)
    seconds = time.perf_counter() - start
    return {
        "category": category.name,
        "images": len(samples),
        "batch size": batch_size,
        "channels_last": channels_last,
        "seconds (no cache)": seconds,
    }


def choices(sweep: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Ratios at 2 threads, batch 8 (the current defaults), and the defaults the sweep picks, with reasons."""
    table = sweep.pivot_table(index=["backbone", "threads", "batch"], columns="step", values="ms per image")
    lines, ratios = [], []
    for backbone in table.index.get_level_values(0).unique():
        part = table.loc[backbone]
        at = part.loc[(max(THREADS), 8)]
        contiguous, nhwc = at["forward fp32 contiguous"], at["forward fp32 channels_last"]
        bf16 = at["forward bf16 autocast (channels_last)"]
        new, previous = at["aggregation (adlib)"], at["aggregation (previous adlib)"]
        official = at["aggregation (official-style reference)"]
        ratios.append(
            {
                "backbone": backbone,
                "channels_last / contiguous (fp32 forward)": nhwc / contiguous,
                "bf16 autocast / fp32 contiguous (forward)": bf16 / contiguous,
                "aggregation adlib / previous adlib": new / previous,
                "aggregation adlib / official-style": new / official,
                "aggregation adlib / fp32 forward": new / contiguous,
            }
        )
        forward = part[["forward fp32 contiguous", "forward fp32 channels_last"]]
        best_threads, best_batch = forward.min(axis=1).idxmin()
        best_format = forward.loc[(best_threads, best_batch)].idxmin().removeprefix("forward ")
        two = forward.loc[max(THREADS)].min(axis=1)
        one = forward.loc[min(THREADS)].min(axis=1)
        lines.append(
            f"- **{backbone}**: memory format **{'channels_last' if nhwc < contiguous else 'contiguous'}** "
            f"(channels_last takes {nhwc / contiguous:.2f}x the contiguous fp32 forward at batch 8, 2 threads); "
            f"precision **{'bf16 only if benchmarks/precision.py passes' if bf16 < contiguous else 'fp32'}** "
            f"(bf16 autocast takes {bf16 / contiguous:.2f}x the fp32 forward"
            f"{'' if bf16 < contiguous else ': slower'}); "
            f"batch size **{int(two.idxmin())}** (fastest per image at 2 threads; batch "
            f"{', '.join(f'{b}: {ms:.1f}' for b, ms in two.items())} ms per image); fastest overall: "
            f"{best_format}, batch {best_batch}, {best_threads} thread(s). Two threads take "
            f"{(two / one).median():.2f}x the one-thread time per image (median over batch sizes; 0.5 would be "
            f"perfect scaling): for throughput on the 2 cores "
            f"{'one process with 2 threads' if (two / one).median() < 0.5 else 'two 1-thread processes (JOBS=2)'} "
            "is better, if two processes do not slow each other down (not measured here). Aggregation: adlib's takes "
            f"{new / previous:.2f}x the previous form and {new / official:.2f}x the official-style one.\n"
        )
    return pd.DataFrame(ratios), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="embedded benchmark root")
    parser.add_argument("--out", type=Path, default=Path("figures/bench_features.md"), help="Markdown report")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per step (median reported)")
    args = parser.parse_args()

    start = time.perf_counter()
    sweep = pd.DataFrame([row for backbone in BACKBONES for row in sweep_rows(backbone, args.repeats)])
    ratios, lines = choices(sweep)
    best_lite0 = sweep[(sweep.backbone == "efficientnet-lite0") & (sweep.threads == max(THREADS))]
    forward = best_lite0[best_lite0.step.str.startswith("forward fp32")].set_index(["batch", "step"])["ms per image"]
    batch, step = forward.idxmin()
    category = pd.DataFrame(
        [category_row(args.data, 8, False), category_row(args.data, int(batch), "channels_last" in step)]
    )
    atomic_write_bytes(args.out.with_suffix(".csv"), sweep.to_csv(index=False).encode())

    report = io.StringIO()
    report.write("# Feature extraction costs\n\n")
    report.write(
        f"Made by `make bench` (`python benchmarks/features.py`); medians of {args.repeats} repeats "
        "(bf16, and the official-style aggregation above batch 8: one), after a warm-up; "
        f"{time.perf_counter() - start:.0f} s in all. 224 px, layer2 + layer3 -> 1024 dims, p = 3.\n\n"
    )
    report.write(pd.Series(machine()).to_frame("machine").to_markdown() + "\n\n")
    report.write("## Defaults the measurements pick\n\n" + "".join(lines) + "\n")
    report.write("## Ratios at 2 threads, batch 8\n\n" + ratios.to_markdown(index=False, floatfmt=".2f") + "\n\n")
    table = sweep.pivot_table(index=["backbone", "threads", "batch"], columns="step", values="ms per image")
    report.write("## ms per image\n\n" + table.reset_index().to_markdown(index=False, floatfmt=".3g") + "\n\n")
    report.write("## EfficientNet-Lite0 (ImageNet), one embedded-benchmark category, fp32, no cache\n\n")
    report.write(category.to_markdown(index=False, floatfmt=".3g") + "\n\n")
    seconds = float(category["seconds (no cache)"].min())
    report.write(f"Target: at most 30 s: {'met' if seconds <= 30 else 'NOT met'}.\n")
    atomic_write_bytes(args.out, report.getvalue().encode())
    print(report.getvalue())


if __name__ == "__main__":
    main()
