"""Command line: `python -m adlib run --data ROOT --categories ... --method patchcore --coreset 0.1`.

Prints a per-category table (image AUROC, pixel AUROC, PRO, fit and predict time), writes the tidy
results CSV and one heatmap-overlay figure per category into `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

PROFILE_DATA = {"synthetic": "data/synthetic"}
# The methods (`--method`), their settings presets and their options are `adlib.detectors.registry.METHODS`.


def build_parser() -> argparse.ArgumentParser:
    from adlib.bank.search import BACKENDS
    from adlib.data.fetch import add_parser as add_fetch_parser
    from adlib.detectors.registry import METHODS
    from adlib.features.backbones import BACKBONES
    from adlib.features.extractor import PROFILES

    parser = argparse.ArgumentParser(prog="python -m adlib", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="fit and evaluate a detector on categories of a data set",
        description="Fit a detector on each category's training images, score its test images, report metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_data_options(run, PROFILES, BACKBONES, METHODS)
    _add_method_options(run)
    _add_run_options(run, BACKENDS)
    add_fetch_parser(commands)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for command in commands.choices.values():  # `--debug` after the command too
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
        )
    return parser


def _add_data_options(run: argparse.ArgumentParser, profiles, backbones, methods) -> None:
    """What to run on: the data, the method, the features."""
    run.add_argument(
        "--data",
        type=Path,
        help="data root in the MVTec AD (or LOCO/BTAD) layout; default: data/synthetic for the synthetic profile",
    )
    run.add_argument("--categories", nargs="+", help="categories to run (default: all under --data)")
    run.add_argument(
        "--method",
        default="patchcore",
        choices=list(methods),
        help="detector: "
        + "; ".join(f"{name} = {method.summary}" for name, method in methods.items())
        + " (a method sets only some of the options below; the others keep its own defaults)",
    )
    run.add_argument(
        "--profile",
        default="synthetic",
        choices=profiles,
        help="feature defaults: synthetic = EfficientNet-Lite0, paper = WideResNet-50, 256->224",
    )
    run.add_argument("--backbone", choices=backbones, help="override the profile's backbone")
    run.add_argument("--weights", default="imagenet", help="'imagenet', a state-dict file, or 'none' for a random init")
    run.add_argument("--init-seed", type=int, default=0, help="seed of the random init (with --weights none)")
    run.add_argument("--layers", nargs="+", help="backbone layers (default: layer2 layer3)")
    run.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="backbone precision")


def _add_method_options(run: argparse.ArgumentParser) -> None:
    """The methods' own settings, as their detectors declare them (`adlib.detectors.options`); an option the
    chosen method does not read is refused."""
    from adlib.detectors.registry import command_line_options

    for option in command_line_options().values():
        if option.negates:
            run.add_argument(option.flag, action="store_true", help=option.help)
        else:
            run.add_argument(
                option.flag, type=option.type, default=option.default, choices=option.choices, help=option.help
            )


def _add_run_options(run: argparse.ArgumentParser, backends) -> None:
    """The protocol (noise, shots, seeds) and where and how the grid runs."""
    run.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="SoftPatch's noise protocol: move int(NOISE * |train|) anomalous test images into train",
    )
    run.add_argument("--overlap", action="store_true", help="with --noise: the moved images also stay in the test set")
    run.add_argument(
        "--shots", type=int, help="keep a seeded random subset of this many training images (drawn anew for each seed)"
    )
    run.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (the coreset's projection and starts)")
    run.add_argument("--backend", default="auto", choices=backends, help="nearest-neighbour search")
    run.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    run.add_argument("--out", type=Path, default=Path("results"), help="folder for results.csv and heatmaps")
    run.add_argument("--heatmaps", type=int, default=8, help="test images per category in the heatmap figure")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--no-store",
        action="store_true",
        help="compute every evaluation and keep none (the result store replays stored timings)",
    )
    cluster = run.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler",
        default=os.environ.get("ADLIB_SCHEDULER"),
        help="run the grid on an existing Dask cluster, e.g. tcp://host:8786 (default: "
        "$ADLIB_SCHEDULER); data, ADLIB_CACHE_DIR and ADLIB_STORE_DIR must be shared paths",
    )
    cluster.add_argument(
        "--workers", type=int, help="run the grid on a local Dask cluster of this many worker processes"
    )


def features_from_args(args: argparse.Namespace):
    """The profile's feature settings with the backbone options (`--backbone`, `--weights`, ...) applied."""
    from adlib.features.extractor import profile_settings

    weights = None if args.weights.lower() in ("none", "random") else args.weights
    changes = {"precision": args.precision, "init_seed": args.init_seed, "weights": weights}
    if args.backbone:
        changes["backbone"] = args.backbone
    if args.layers:
        changes["layers"] = tuple(args.layers)
    return dataclasses.replace(profile_settings(args.profile), **changes)


def settings_from_args(args: argparse.Namespace):
    """The method's settings from the options (`adlib.detectors.registry.method_settings`): an option the chosen
    method does not read is an error, and so is one its settings refuse, each named as typed. An option
    left at its default is not applied: the default is what the method has anyway."""
    from adlib.detectors.registry import METHODS, command_line_options, does_nothing, method_settings

    method = METHODS[args.method]
    typed = {
        flag: getattr(args, option.dest)
        for flag, option in command_line_options().items()
        if getattr(args, option.dest) != option.default
    }
    unread = [flag for flag in typed if flag not in method.options]
    if args.backend != "auto" and not method.detector.takes_backend:
        unread.append("--backend")
    if unread:
        raise ValueError(does_nothing(unread, args.method))
    return method_settings(args.method, features_from_args(args), typed)


PROTOCOL_FLAGS = {"noise_ratio": "--noise", "noise_overlap": "--overlap", "shots": "--shots"}


def protocol_from_args(args: argparse.Namespace):
    """The protocol the options ask for, checked before any work: a refusal names the options as typed
    (`--noise -1` or `--noise nan` is an error that names `--noise`, not a Python field)."""
    from adlib.data.protocol import Protocol

    try:
        return Protocol(args.noise, args.overlap, args.shots)
    except ValueError as error:
        message = str(error)
        for name, flag in PROTOCOL_FLAGS.items():
            message = re.sub(rf"(?<![-\w]){name}=", f"{flag} ", message)
            message = re.sub(rf"(?<![-\w]){name}\b(?!=)", flag, message)
        raise ValueError(message.replace("--overlap True", "--overlap").replace("or None", "or leave it out")) from None


def run_command(args: argparse.Namespace) -> None:
    import pandas as pd

    from adlib.companion.plotting import heatmap_overlays
    from adlib.data.datasets import require_categories
    from adlib.evaluation.executors import grid_executor
    from adlib.evaluation.experiment import run, summary
    from adlib.files import atomic_write_bytes

    data = args.data or Path(PROFILE_DATA.get(args.profile, ""))
    if args.data is None and args.profile not in PROFILE_DATA:
        raise SystemExit(f"--data is required with --profile {args.profile} (e.g. the MVTec AD folder)")
    protocol_from_args(args)
    settings = settings_from_args(args)
    categories = args.categories or require_categories(data)

    def draw(result, seeded) -> None:
        if args.heatmaps > 0 and seeded.seed == args.seeds[0]:
            path = args.out / "heatmaps" / f"{result.category.name}.png"
            heatmap_overlays(result, seeded.features.preprocessing, path, args.heatmaps)

    scheduler = None if args.workers else args.scheduler  # --workers beats $ADLIB_SCHEDULER
    with grid_executor(scheduler, args.workers) as executor:
        # the heatmaps need the fitted models, which stay in the workers of a cluster
        heatmaps = args.heatmaps > 0 and executor is None
        results = run(
            data,
            categories,
            {args.method: settings},
            seeds=args.seeds,
            noise_ratio=args.noise,
            noise_overlap=args.overlap,
            shots=args.shots,
            device=args.device,
            progress=not args.no_progress,
            on_result=draw if heatmaps else None,
            backend=args.backend,
            store=not args.no_store,
            executor=executor,
        )
    atomic_write_bytes(args.out / "results.csv", results.to_csv(index=False).encode())
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200, "display.max_columns", 20):
        print(summary(results))
    note = ""
    if args.heatmaps > 0:
        note = f" and heatmaps in {args.out / 'heatmaps'}" if heatmaps else " (heatmaps are drawn in process only)"
    print(f"\nwrote {args.out / 'results.csv'}{note}")


def main(argv: Sequence[str] | None = None) -> None:
    """Runs a command; a bad input ends in one line `error: ...` on stderr and exit status 2 (--debug: the traceback)."""
    from adlib.data.fetch import FetchError, fetch_command

    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            run_command(args)
        elif args.command == "fetch":
            fetch_command(args)
    except (ValueError, OSError, ImportError, FetchError, SystemExit) as error:
        if isinstance(error, SystemExit) and not isinstance(error.code, str):
            raise  # an exit status, not a message
        if args.debug:
            raise
        message = error.code if isinstance(error, SystemExit) else str(error)
        print("error: " + " ".join(message.split()), file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main(sys.argv[1:])
