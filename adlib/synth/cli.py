"""The command line: ``python -m adlib.synth --out DIR``, then optionally a contact sheet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adlib.synth.categories import CATEGORIES
from adlib.synth.loco import DEFAULT_COUNTS, LOCO_CATEGORIES, QUICK_COUNTS, generate_loco
from adlib.synth.writer import generate

# Options of the MVTec-layout benchmark only: the LOCO-style one has its own fixed split sizes.
_MVTEC_ONLY = {"n_train": 80, "n_test_good": 80, "n_test_defect": 160, "overview": None}


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
        "--out",
        type=Path,
        default=None,
        help="output folder (default: data/synthetic; with --layout loco: data/synthetic-loco)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    parser.add_argument(
        "--categories",
        nargs="+",
        metavar="NAME",
        choices=[*CATEGORIES, *LOCO_CATEGORIES],
        default=None,
        help=f"categories to generate (default: all of the layout; loco: {', '.join(LOCO_CATEGORIES)})",
    )
    parser.add_argument(
        "--layout",
        choices=["mvtec", "loco"],
        default="mvtec",
        help="mvtec (default): the MVTec-AD-style benchmark; loco: the LOCO-style scenes with logical "
        "anomalies (adlib.synth.loco; write them to their own folder, e.g. data/synthetic-loco)",
    )
    parser.add_argument("--n-train", type=int, default=None, help="train/good images per category (default: 80)")
    parser.add_argument("--n-test-good", type=int, default=None, help="test/good images per category (default: 80)")
    parser.add_argument(
        "--n-test-defect",
        type=int,
        default=None,
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="with --layout loco: the quick copy's split sizes (adlib.synth.loco.QUICK_COUNTS, the first images "
        "of each split of the default root), e.g. --out data/synthetic-loco-quick",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate, then optionally draw the contact sheet."""
    args = _parser().parse_args(argv)
    if args.layout == "loco":
        return _main_loco(args)
    if args.quick:
        print("error: --quick only acts with --layout loco (the MVTec layout takes --n-train etc.)", file=sys.stderr)
        return 2
    wrong = [name for name in args.categories or () if name not in CATEGORIES]
    if wrong:
        print(f"error: {', '.join(wrong)}: LOCO-style categories; add --layout loco", file=sys.stderr)
        return 2
    for name, default in _MVTEC_ONLY.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    out = _written(
        lambda: generate(
            args.out or Path("data/synthetic"),
            args.categories,
            seed=args.seed,
            n_train=args.n_train,
            n_test_good=args.n_test_good,
            n_test_defect=args.n_test_defect,
            size=args.size,
            progress=not args.no_progress,
        )
    )
    if out is None:
        return 2
    if args.overview is not None:
        from adlib.synth.overview import benchmark_overview

        names = args.categories or list(CATEGORIES)
        print(f"wrote {benchmark_overview(out, args.overview, categories=names)}")
    return 0


def _main_loco(args: argparse.Namespace) -> int:
    """`--layout loco`: the LOCO-style categories; the MVTec-only options are refused, not ignored."""
    given = [f"--{name.replace('_', '-')}" for name in _MVTEC_ONLY if getattr(args, name) is not None]
    wrong = [name for name in args.categories or () if name not in LOCO_CATEGORIES]
    if given or wrong:
        what = f"{', '.join(given)} only act(s) without --layout loco" if given else ""
        what += ("; " if what else "") + (f"not LOCO-style categories: {', '.join(wrong)}" if wrong else "")
        print(
            f"error: {what} (--layout loco takes --out, --seed, --size, --categories, --quick, --no-progress)",
            file=sys.stderr,
        )
        return 2
    out = _written(
        lambda: generate_loco(
            args.out or Path("data/synthetic-loco"),
            args.categories,
            seed=args.seed,
            size=args.size,
            counts=QUICK_COUNTS if args.quick else DEFAULT_COUNTS,
            progress=not args.no_progress,
        )
    )
    return 2 if out is None else 0


def _written(generate_root: Callable[[], Path]) -> Path | None:
    """Runs a generator and prints the root it wrote, or its error (then None: the caller exits with 2)."""
    try:
        out = generate_root()
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    print(f"wrote {out}")
    return out
