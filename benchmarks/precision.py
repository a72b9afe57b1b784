"""Does reduced-precision autocast change PatchCore's detections? PatchCore-10 % with the backbone run in
fp32, under bf16 autocast (adlib's `FeatureSettings(precision="bf16")`) and, where CPU autocast offers it,
under fp16 autocast, on every category of the embedded benchmark, for WideResNet-50 (random init, seeded:
no pretrained weights can be downloaded here) and EfficientNet-Lite0 (ImageNet weights of the default profile).

The control `fp32-channels_last` changes the features by float rounding only (another summation order),
so its AUROC differences show how sensitive the metric is to any tiny change of the features.
A reduced precision passes for a backbone when its image AUROC is within `--tolerance` (0.005) of fp32 on
every category. Writes a Markdown report and the CSV behind it. This is an accuracy trial: the seconds it
prints are not a speed measurement (see benchmarks/features.py for that).

    python benchmarks/precision.py --data data/synthetic --out figures/bench_precision.md
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from pathlib import Path

import pandas as pd
import torch
from common import machine

from adlib.data.datasets import Preprocessing, list_categories, load_category
from adlib.detectors.patchcore import patchcore_settings
from adlib.evaluation.evaluate import evaluate
from adlib.features.extractor import FeatureExtractor, FeatureSettings
from adlib.files import atomic_write_bytes

BACKBONE_SETTINGS = {
    "wide_resnet50_2": FeatureSettings(
        backbone="wide_resnet50_2", weights=None, init_seed=0, preprocessing=Preprocessing()
    ),
    "efficientnet-lite0": FeatureSettings(),
}


class Float16Extractor(FeatureExtractor):
    """The fp32 settings' backbone run under fp16 autocast (channels_last, as adlib's bf16 path): a trial
    only, so it lives here and not as a `FeatureSettings.precision` value."""

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16):
            maps = self.model(images.to(self.device).contiguous(memory_format=torch.channels_last))
        return {name: value.float().contiguous() for name, value in maps.items()}


def fp16_autocast_works() -> bool:
    """Whether CPU autocast runs a convolution in fp16 (older torch builds refuse or ignore it)."""
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            out = torch.nn.functional.conv2d(torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3))
    except (RuntimeError, ValueError):
        return False
    return out.dtype == torch.float16


def extractor_for(backbone: str, precision: str) -> FeatureExtractor:
    """One loaded backbone per (backbone, precision), without the on-disk cache (every map is computed)."""
    settings = BACKBONE_SETTINGS[backbone]
    if precision == "fp32-channels_last":  # the control: rounding-level differences only
        return FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=True)
    if precision == "fp16":
        return Float16Extractor(settings, device="cpu", use_cache=False, channels_last=True)
    return FeatureExtractor(
        dataclasses.replace(settings, precision=precision), device="cpu", use_cache=False, channels_last=False
    )


def trial_rows(
    data: Path, backbones: list[str], precisions: list[str], categories: list[str], progress_file: Path
) -> list[dict]:
    """One row per (backbone, precision, category); every row is also written to `progress_file` at once."""
    rows = []
    for backbone in backbones:
        extractors = {precision: extractor_for(backbone, precision) for precision in precisions}
        for name in categories:  # category by category, so that a stopped run leaves paired rows
            for precision, extractor in extractors.items():
                settings = patchcore_settings(extractor.settings)
                start = time.perf_counter()
                result = evaluate(
                    load_category(data, name), settings, device="cpu", extractor=extractor, progress=False
                )
                rows.append(
                    {
                        "backbone": backbone,
                        "precision": precision,
                        "category": name,
                        "image_auroc": result.metrics["image_auroc"],
                        "pixel_auroc": result.metrics["pixel_auroc"],
                    }
                )
                print(
                    f"{backbone} {precision} {name}: image AUROC {rows[-1]['image_auroc']:.4f} "
                    f"({time.perf_counter() - start:.0f} s, shared machine)",
                    flush=True,
                )
                atomic_write_bytes(progress_file, pd.DataFrame(rows).to_csv(index=False).encode())
    return rows


def differences(rows: pd.DataFrame) -> pd.DataFrame:
    """Per backbone and category: each reduced precision's image AUROC minus fp32's."""
    wide = rows.pivot_table(index=["backbone", "category"], columns="precision", values="image_auroc")
    out = pd.DataFrame({"fp32": wide["fp32"]})
    for precision in [p for p in wide.columns if p != "fp32"]:
        out[precision] = wide[precision]
        out[f"{precision} - fp32"] = wide[precision] - wide["fp32"]
    return out.reset_index()


def verdicts(table: pd.DataFrame, tolerance: float, all_categories: int) -> list[str]:
    """One bold line per (backbone, reduced precision); fewer categories than the benchmark has is no pass."""
    lines = []
    for backbone, part in table.groupby("backbone", sort=False):
        for column in [c for c in part.columns if c.endswith(" - fp32")]:
            label = "fp32 channels_last (control)" if column.startswith("fp32-") else f"{column.split(' ')[0]} autocast"
            tried = part.dropna(subset=[column])
            if tried.empty:
                continue  # not tried with this backbone
            worst = tried.loc[tried[column].abs().idxmax()]
            holds = bool((tried[column].abs() <= tolerance).all())
            if not holds:  # one category outside the tolerance decides, however many are left
                failed = int((tried[column].abs() > tolerance).sum())
                claim = (
                    f"NOT within {tolerance} of fp32 image AUROC on all categories: outside on {failed} "
                    f"of {len(tried)} tried"
                )
            elif len(tried) < all_categories:
                claim = (
                    f"within {tolerance} of fp32 image AUROC on the {len(tried)} of {all_categories} categories "
                    "tried (incomplete: no verdict)"
                )
            else:
                claim = f"within {tolerance} of fp32 image AUROC on all {len(tried)} categories"
            lines.append(
                f"**{backbone}, {label}: {claim}** (largest difference {worst[column]:+.4f}, {worst['category']})."
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="embedded benchmark root")
    parser.add_argument("--out", type=Path, default=Path("figures/bench_precision.md"), help="Markdown report")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONE_SETTINGS), choices=list(BACKBONE_SETTINGS))
    parser.add_argument("--categories", nargs="+", default=None, help="default: every category under --data")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["bf16", "fp16"],
        choices=["bf16", "fp16", "fp32-channels_last"],
        help="reduced precisions to compare with fp32 (fp16 only where CPU autocast runs it); "
        "fp32-channels_last is the control: how far float rounding alone moves the AUROC",
    )
    parser.add_argument(
        "--from-rows",
        nargs="+",
        type=Path,
        default=None,
        help="write the report from the .rows.csv files of earlier (e.g. per-backbone) runs instead",
    )
    parser.add_argument("--tolerance", type=float, default=0.005, help="largest allowed image AUROC difference")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.from_rows:
        rows = pd.concat([pd.read_csv(path) for path in args.from_rows], ignore_index=True)
        categories, precisions = list(rows["category"].unique()), list(rows["precision"].unique())
    else:
        categories = args.categories or list_categories(args.data)
        precisions = ["fp32"] + [p for p in args.precisions if p != "fp16" or fp16_autocast_works()]
        rows = pd.DataFrame(
            trial_rows(args.data, args.backbones, precisions, categories, args.out.with_suffix(".rows.csv"))
        )
    table = differences(rows)
    atomic_write_bytes(args.out.with_suffix(".csv"), table.to_csv(index=False).encode())

    report = io.StringIO()
    report.write("# Reduced-precision backbones: PatchCore-10 % image AUROC against fp32\n\n")
    all_categories = len(list_categories(args.data))
    report.write("\n\n".join(verdicts(table, args.tolerance, all_categories)) + "\n\n")
    report.write(
        f"Made by `python benchmarks/precision.py`: {len(categories)} of the {all_categories} categories of "
        f"{args.data}, each with all its "
        "training and test images; PatchCore-10 % (greedy coreset, Eq. 7 image score), CPU autocast of the "
        "backbone forward (channels_last), aggregation and search in fp32. WideResNet-50 is randomly "
        "initialised (seed 0); EfficientNet-Lite0 has its ImageNet weights. "
        + (
            ""
            if "fp16" in precisions
            else "fp16 is not tried (not asked for, or this torch's CPU autocast does not run it). "
        )
        + (
            ""
            if args.from_rows
            else f"Accuracy only: {time.perf_counter() - start:.0f} s in all, on a possibly "
            "shared machine (not a speed figure)."
        )
        + "\n\n"
    )
    report.write(pd.Series(machine()).to_frame("machine").to_markdown() + "\n\n")
    shown = table.copy()
    for column in shown.columns[2:]:
        shown[column] = shown[column].map(
            lambda v: "" if pd.isna(v) else f"{v:+.4f}" if column.endswith(" - fp32") else f"{v:.4f}"
        )
    report.write(shown.to_markdown(index=False, disable_numparse=True) + "\n")
    atomic_write_bytes(args.out, report.getvalue().encode())
    print(report.getvalue())


if __name__ == "__main__":
    main()
