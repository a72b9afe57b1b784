"""Feature-extraction costs: backbone forward vs. patch aggregation (fast and official-style), and the
time to embed one embedded-benchmark category with EfficientNet-Lite0. Writes a Markdown report and
the CSV behind it. Ratios are measured in one run, so the shared machine's noise mostly cancels.

    python benchmarks/features.py --data data/synthetic --out figures/bench_features.md
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pandas as pd
import torch

from adlib.backbones import load_backbone
from adlib.data import list_categories, load_category
from adlib.features import FeatureExtractor, profile_settings
from adlib.files import atomic_write_bytes
from adlib.patches import locally_aware_features
from adlib.reference import official_patch_features
from common import machine, median_seconds


@torch.inference_mode()
def aggregation_rows(backbone: str, batch: int, repeats: int) -> list[dict[str, object]]:
    """Per-image ms of the backbone (to layer3) and of the aggregation, fast and official-style."""
    model = load_backbone(backbone, ["layer2", "layer3"], weights=None).model
    images = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    maps = list(model(images).values())
    steps = {
        "backbone forward to layer3": lambda: model(images),
        "aggregation (adlib)": lambda: locally_aware_features(maps, 3, 1024, 1024),
        "aggregation (official-style reference)": lambda: official_patch_features(maps, 3, 1024, 1024),
    }
    times = {name: median_seconds(step, repeats) / batch * 1000 for name, step in steps.items()}
    forward = times["backbone forward to layer3"]
    return [
        {"backbone": backbone, "step": name, "ms per image": ms, "ratio to backbone forward": ms / forward}
        for name, ms in times.items()
    ]


def category_row(data: Path) -> dict[str, object]:
    """Seconds to embed every image of the first benchmark category with EfficientNet-Lite0, no cache."""
    category = load_category(data, list_categories(data)[0])
    samples = category.train + category.test
    extractor = FeatureExtractor(profile_settings("synthetic"), device="cpu", use_cache=False)
    start = time.perf_counter()
    extractor.embed(samples, progress=False)
    seconds = time.perf_counter() - start
    return {"category": category.name, "images": len(samples), "seconds (no cache)": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="embedded benchmark root")
    parser.add_argument("--out", type=Path, default=Path("figures/bench_features.md"), help="Markdown report")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per step (median reported)")
    args = parser.parse_args()

    aggregation = pd.DataFrame(aggregation_rows("wide_resnet50_2", batch=8, repeats=args.repeats))
    category = pd.DataFrame([category_row(args.data)])
    atomic_write_bytes(args.out.with_suffix(".csv"), aggregation.to_csv(index=False).encode())

    report = io.StringIO()
    report.write("# Feature extraction costs\n\n")
    report.write("Made by `make bench` (`python benchmarks/features.py`); medians of %d repeats.\n\n" % args.repeats)
    report.write(pd.Series(machine()).to_frame("machine").to_markdown() + "\n\n")
    report.write("## WideResNet-50 (random init), 224 px, batch 8, layer2 + layer3 -> 1024 dims\n\n")
    report.write(aggregation.to_markdown(index=False, floatfmt=".3g") + "\n\n")
    fast = aggregation.set_index("step")["ms per image"]
    report.write(
        f"Target: aggregation at most the backbone's forward time: "
        f"{fast['aggregation (adlib)']:.1f} ms vs {fast['backbone forward to layer3']:.1f} ms per image "
        f"({'met' if fast['aggregation (adlib)'] <= fast['backbone forward to layer3'] else 'NOT met'}); "
        f"{fast['aggregation (official-style reference)'] / fast['aggregation (adlib)']:.1f}x faster than the "
        "official-style aggregation.\n\n"
    )
    report.write("## EfficientNet-Lite0 (ImageNet), one embedded-benchmark category, 224 px, fp32\n\n")
    report.write(category.to_markdown(index=False, floatfmt=".3g") + "\n\n")
    seconds = float(category["seconds (no cache)"].iloc[0])
    report.write(f"Target: at most 30 s: {'met' if seconds <= 30 else 'NOT met'}.\n")
    atomic_write_bytes(args.out, report.getvalue().encode())
    print(report.getvalue())


if __name__ == "__main__":
    main()
