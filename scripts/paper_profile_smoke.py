"""Runs every notebook's quick mode on the `paper` profile without MVTec AD or the ImageNet weights.

    python scripts/paper_profile_smoke.py --work build/paper-smoke [--categories pill screw]

It checks the paper profile's code paths (WideResNet-50 features, 256 -> 224 preprocessing, every
category under the data root, the paper's per-category numbers beside ours, PaDiM* on ResNet-18) where
neither the data set nor the weights can be downloaded: random-init WideResNet-50 / ResNet-50 /
ResNet-18 state dicts are saved under the file names of torchvision's ImageNet weights in a private
TORCH_HOME, and the data root links categories of the embedded benchmark that MVTec AD also has. The
numbers it produces mean nothing; only that every notebook runs and validates under nbval does.
With the real data and weights, `make test PROFILE=paper DATA=/path/to/mvtec_anomaly_detection` is the check.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
BACKBONES = ("wide_resnet50_2", "resnet50", "resnet18")  # the paper profile's and PC Table S6's / SP's PaDiM*


def fake_imagenet_weights(torch_home: Path) -> None:
    """Random-init state dicts where torchvision's cache would hold the ImageNet files."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for name in BACKBONES:
        url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
        path = checkpoints / url.rsplit("/", 1)[-1]
        if not path.is_file():
            torch.manual_seed(0)
            torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), path)


def data_root(work: Path, source: Path, categories: list[str]) -> Path:
    """A data root that links the chosen categories of the embedded benchmark."""
    root = work / "mvtec"
    root.mkdir(parents=True, exist_ok=True)
    for name in categories:
        if not (source / name).is_dir():
            raise SystemExit(f"{source / name} does not exist: run `make data` or pick categories under {source}")
        link = root / name
        if not link.exists():
            link.symlink_to((source / name).resolve(), target_is_directory=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "paper-smoke")
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "synthetic", help="embedded benchmark root")
    parser.add_argument(
        "--categories",
        nargs="+",
        default=["pill", "screw"],
        help="categories the embedded benchmark shares with MVTec AD (default: pill screw)",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    fake_imagenet_weights(work / "torch")
    root = data_root(work, args.source, args.categories)
    env = dict(os.environ, TORCH_HOME=str(work / "torch"), ADLIB_CACHE_DIR=str(work / "cache"))
    notebooks = work / "notebooks"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "prepare_notebooks.py"),
            "--profile",
            "paper",
            "--data",
            str(root),
            "--out",
            str(notebooks),
        ],
        check=True,
        env=env,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            str(notebooks),
            "--nbval-lax",
            "--nbval-kernel-name",
            "adlib",
            "-q",
        ],
        env=env,
        cwd=ROOT,
    )
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
