"""How long the explorer (notebooks/01_explore.ipynb) takes to answer each control, once a category is loaded.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explorer_latency.py [--data data/synthetic] [--category pill]
        [--shots N] [--other-category brick]

Loads `--category` with all its training images (or the first `--shots`), runs one update to read its
features from the disk cache (filling it first if need be: that first update is reported, not in the table),
then walks the controls from PatchCore-10 %, each change starting from the state the one before left. A row is
one kind of change: "new" values the explorer has not seen for this training set, "seen" ones it has. The
seconds are `Exploration.seconds`, what the panel's "updated in x s" shows; "figure s" is the heatmap PNG
drawn after it. The last method row is PaDiM, PaDiM filter + PatchCore and improved PatchCore (K-means: a new
bank for every share), which the explorer fits afresh; SPADE is left out (minutes: a search of its own gallery
per test image). Last comes one change of category (its features read from the disk cache). The load average
is printed before and after: on a busy machine the numbers are not worth much. `OMP_NUM_THREADS` sets the
threads (the notebook's kernel uses every core).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

import torch

from adlib.companion.explore import Choice, Explorer
from adlib.features.extractor import profile_settings

# (row, changes): each change replaces some fields of the current choice.
SCENARIO = (
    ("coreset share, smaller", [{"coreset_ratio": 0.05}, {"coreset_ratio": 0.02}, {"coreset_ratio": 0.01}]),
    ("coreset share, larger (seen)", [{"coreset_ratio": 0.05}, {"coreset_ratio": 0.1}]),
    ("coreset share, larger (new)", [{"coreset_ratio": 0.11}, {"coreset_ratio": 0.12}, {"coreset_ratio": 0.13}]),
    ("method (new)", [{"method": "softpatch", "coreset_ratio": 0.1}, {"method": "patchcore-random"}]),
    ("method (seen)", [{"method": "softpatch"}, {"method": "patchcore"}, {"method": "softpatch"}]),
    ("τ (new)", [{"tau": 0.1}, {"tau": 0.2}]),
    ("τ (seen)", [{"tau": 0.15}, {"tau": 0.1}, {"tau": 0.2}]),
    ("SoftPatch share, smaller", [{"coreset_ratio": 0.05}, {"coreset_ratio": 0.02}]),
    ("LOF k (new)", [{"coreset_ratio": 0.1, "lof_k": 5}, {"lof_k": 8}]),
    ("noise ratio (new)", [{"lof_k": 6, "tau": 0.15, "noise_ratio": 0.05}, {"noise_ratio": 0.1}]),
    ("seed (new)", [{"seed": 1}, {"seed": 2}]),
    (
        "method, other families (new)",
        [{"method": "padim"}, {"method": "image-denoised-patchcore"}, {"method": "improved-patchcore"}],
    ),
)  # every "new" row runs at a 10 % coreset share, the default


def timed(explorer: Explorer, choice: Choice) -> tuple[float, float]:
    """(update seconds as the panel shows them, seconds to draw the heatmap PNG)."""
    exploration = explorer.update(choice)
    start = time.perf_counter()
    exploration.png()
    return exploration.seconds, time.perf_counter() - start


def run(data: Path, category: str, shots: int | None, other: str | None) -> list[tuple[str, list[float], float]]:
    """The rows of the table: (control, update seconds of each change, median figure seconds)."""
    explorer = Explorer(data, profile_settings("synthetic"), shots=shots, device="cpu")
    choice = Choice(category, shown=explorer.default_shown(category))
    start = time.perf_counter()
    explorer.update(choice)
    print(
        f"{category}: {len(explorer.category(category).train)} training, {len(explorer.category(category).test)} test "
        f"images; first update (features from the disk cache, PatchCore-10 %) {time.perf_counter() - start:.1f} s"
    )
    rows = []
    for row, changes in SCENARIO:
        seconds, figures = [], []
        for change in changes:
            choice = dataclasses.replace(choice, **change)
            update, figure = timed(explorer, choice)
            seconds.append(update)
            figures.append(figure)
        rows.append((row, seconds, statistics.median(figures)))
    if other is not None:
        choice = Choice(other, shown=explorer.default_shown(other))
        update, figure = timed(explorer, choice)
        rows.append(("category (features from the disk cache)", [update], figure))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--category", default="pill")
    parser.add_argument("--shots", type=int, default=None, help="training images (default: all)")
    parser.add_argument("--other-category", default="brick", help="the category to change to last ('' to skip)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    before = os.getloadavg()
    rows = run(args.data, args.category, args.shots, args.other_category or None)
    after = os.getloadavg()
    print(f"\ntorch threads {torch.get_num_threads()}; load average before {before[0]:.2f}, after {after[0]:.2f}\n")
    print("| control | changes | median s | max s | figure s |")
    print("|---|---|---|---|---|")
    for row, seconds, figure in rows:
        print(f"| {row} | {len(seconds)} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {figure:.2f} |")


if __name__ == "__main__":
    main()
