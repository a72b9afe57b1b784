"""What an evaluation costs on a Dask worker against in process: fit and predict time, one core each.

    .venv/bin/python benchmarks/dask_overhead.py [--data data/synthetic-quick] [--category pill] [--rounds 3]

Both sides run the same grid (one category, seeds 0-1, PatchCore-10 %, 20 training images by default) on a feature
cache filled beforehand, each round with an empty result store of its own, so that every evaluation is
fitted and scored. In process runs with one torch thread; the cluster is `adlib.evaluation.executors`'s
local one with one worker of one thread. The fit and predict times are those the evaluations record
themselves (`fit_seconds`, `predict_seconds_per_image`); the rounds alternate, and the report gives each
round's ratio worker / in process and the load average. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from adlib.detectors.patchcore import patchcore_settings
from adlib.evaluation.executors import grid_executor
from adlib.evaluation.experiment import run_grid
from adlib.evaluation.store import ResultStore
from adlib.features.extractor import profile_settings

TIMES = ("fit_seconds", "predict_seconds_per_image")


def timed_grid(data: Path, category: str, shots: int | None, cache: Path, store: Path, executor=None) -> pd.Series:
    """The grid's mean fit and predict times (and its wall time) with an empty store at `store`."""
    methods = {"PatchCore-10%": patchcore_settings(profile_settings("synthetic"), coreset_ratio=0.1)}
    start = time.perf_counter()
    grid = run_grid(
        data, [category], methods, seeds=[0, 1], shots=shots, progress=False, cache_dir=cache,
        store=ResultStore(store), executor=executor,
    )  # fmt: skip
    wall = time.perf_counter() - start
    times = grid.metrics[grid.metrics.metric.isin(TIMES)].groupby("metric").value.mean()
    return pd.concat([times, pd.Series({"wall_seconds": wall})])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic-quick"))
    parser.add_argument("--category", default="pill")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shots", type=int, default=20, help="training images (0: all of them)")
    args = parser.parse_args()
    shots = args.shots or None
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        timed_grid(args.data, args.category, shots, root / "cache", root / "warm")  # fills the feature cache
        rows = []
        with grid_executor(workers=1) as executor:
            timed_grid(
                args.data, args.category, shots, root / "cache", root / "warm-worker", executor
            )  # loads the worker
            for round_ in range(args.rounds):
                here = timed_grid(args.data, args.category, shots, root / "cache", root / f"here{round_}")
                there = timed_grid(args.data, args.category, shots, root / "cache", root / f"there{round_}", executor)
                rows.append(
                    {"round": round_, "load": os.getloadavg()[0]}
                    | {f"{name} in process": here[name] for name in here.index}
                    | {f"{name} worker": there[name] for name in there.index}
                    | {f"{name} ratio": there[name] / here[name] for name in here.index}
                )
    print(pd.DataFrame(rows).round(3).T.to_markdown())


if __name__ == "__main__":
    main()
