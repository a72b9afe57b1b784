"""The command line: ``python -m adlib.synth --out DIR``, then optionally a contact sheet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from adlib.synth.categories import CATEGORIES
from adlib.synth.writer import generate


def _parser() -> argparse.ArgumentParser:
    """The argument parser; its epilog lists the categories with their kind and defect types."""
    listing = "\n".join(
        f"  {name:<8} {info.kind:<8} {', '.join(info.defect_types)}" for name, info in CATEGORIES.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m adlib.synth",
        description="Generate adlib's embedded MVTec-AD-style anomaly-detection benchmark, offline and "
        "deterministically, from photos bundled with scikit-image and mvtb-data plus drawn objects.",
        epilog="categories (kind, defect types):\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("data/synthetic"), help="output folder (default: data/synthetic)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    parser.add_argument(
        "--categories",
        nargs="+",
        metavar="NAME",
        choices=list(CATEGORIES),
        default=None,
        help="categories to generate (default: all)",
    )
    parser.add_argument("--n-train", type=int, default=80, help="train/good images per category (default: 80)")
    parser.add_argument("--n-test-good", type=int, default=80, help="test/good images per category (default: 80)")
    parser.add_argument(
        "--n-test-defect",
        type=int,
        default=160,
        help="defective test images per category, shared over its defect types (default: 160)",
    )
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    parser.add_argument(
        "--overview",
        type=Path,
        default=None,
        metavar="PNG",
        help="also write a contact sheet of the generated categories to this PNG",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate, then optionally draw the contact sheet."""
    args = _parser().parse_args(argv)
    try:
        out = generate(
            args.out,
            args.categories,
            seed=args.seed,
            n_train=args.n_train,
            n_test_good=args.n_test_good,
            n_test_defect=args.n_test_defect,
            size=args.size,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    if args.overview is not None:
        from adlib.synth.overview import benchmark_overview

        names = args.categories or list(CATEGORIES)
        print(f"wrote {benchmark_overview(out, args.overview, categories=names)}")
    return 0
