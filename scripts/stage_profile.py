"""Where `make reproduce` spends its time: py-spy's samples of every notebook kernel, summed by stage.

    make reproduce STAGES=build/stages          # samples each kernel (py-spy, 20 Hz) into build/stages/
    python scripts/stage_profile.py build/stages [--times figures/reproduce_times.csv]

Each sample is one stack of the kernel's Python thread; it goes to the stage of the innermost frame that
names one (`STAGES`, first match from the leaf up), so a K-means call inside a fit counts as "bank", and
a pandas call inside the bootstrap as "bootstrap". py-spy samples only Python threads that are running,
so seconds here are the kernel's busy time; the rest of the notebook's wall time (`reproduce_times.csv`)
is kernel start, papermill's cell round trips and waiting: the "unsampled" column. Prints a markdown table,
seconds per notebook and stage, with the totals.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import pandas as pd

RATE = 20  # samples per second: scripts/reproduce.py's SAMPLE_RATE
STAGES = (  # (stage, pattern on a frame "function (file:line)"), searched from the innermost frame out
    ("imports", r"<frozen importlib|importlib/__init__"),
    ("reading images", r"adlib/data/|PIL/"),
    ("features", r"adlib/features/"),
    ("denoising", r"adlib/bank/denoise|adlib/detectors/image_denoise"),
    ("bank (coreset, K-means)", r"adlib/bank/(sampling|clustering)"),
    ("search, scoring and maps", r"adlib/bank/(search|scoring)|adlib/detectors/"),
    ("pixel statistics and metrics", r"adlib/evaluation/(pixel_stats|metrics)"),
    ("bootstrap and verdicts", r"adlib/evidence/"),
    ("toys and companion analyses", r"adlib/companion/(toy|grey_values|feature_geometry|bank_|softpatch_sweeps)"),
    ("plotting", r"matplotlib/|adlib/companion/plot|adlib/style|adlib/synth/overview|seaborn/"),
    ("store and cache", r"adlib/evaluation/(store|executors)|adlib/files"),
    ("evaluation (other)", r"adlib/evaluation/"),
)
KERNEL = re.compile(r"^process \d+:\"[^\"]*ipykernel")
LAUNCHER = "(ipykernel_launcher.py:"  # the kernel's own first frames, when py-spy names it by its parent's command


def stage_of(frames: list[str]) -> str:
    """The stage of one stack (frames root first): that of the innermost frame matching a pattern."""
    for frame in reversed(frames):
        for stage, pattern in STAGES:
            if re.search(pattern, frame):
                return stage
    return "other (pandas, numpy, kernel)"


def kernel_frames(line: str) -> list[str] | None:
    """The kernel's frames of one folded line ('process ...;process ...;frame;frame count'), root first;
    None for a stack of another process (papermill's worker). The kernel is known by its command line, or,
    where py-spy labels it with its parent's (the worker's), by ipykernel_launcher among its first frames."""
    stack, _, _ = line.rpartition(" ")
    parts = stack.split(";")
    processes = [i for i, part in enumerate(parts) if part.startswith("process ")]
    if not processes:
        return None
    frames = parts[processes[-1] + 1 :]
    if not KERNEL.match(parts[processes[-1]]) and not any(LAUNCHER in frame for frame in frames[:4]):
        return None
    return frames


def notebook_stages(path: Path) -> Counter:
    """Seconds per stage of one notebook's samples."""
    seconds: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        frames = kernel_frames(line)
        if frames is not None:
            seconds[stage_of(frames)] += int(line.rpartition(" ")[2]) / RATE
    return seconds


def stage_table(folder: Path, times: Path | None = None) -> pd.DataFrame:
    """Seconds per notebook (rows) and stage (columns), 'sampled' their sum, and with `times` the wall time
    and the unsampled rest; a last row of totals."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise SystemExit(f"no samples in {folder}: run make reproduce STAGES={folder} first")
    table = pd.DataFrame({path.stem: notebook_stages(path) for path in files}).T.fillna(0.0)
    order = [stage for stage, _ in STAGES] + ["other (pandas, numpy, kernel)"]
    table = table[[stage for stage in order if stage in table.columns]]
    table["sampled"] = table.sum(axis=1)
    if times is not None and times.is_file():
        wall = pd.read_csv(times).drop_duplicates("notebook", keep="last").set_index("notebook").seconds
        table["wall"] = wall.reindex(table.index)
        table["unsampled"] = table.wall - table.sampled
    table.loc["total"] = table.sum()
    return table.round(0).astype(int)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where make reproduce STAGES=... wrote the samples")
    parser.add_argument("--times", type=Path, default=Path("figures/reproduce_times.csv"))
    args = parser.parse_args()
    print(stage_table(args.folder, args.times).to_markdown())


if __name__ == "__main__":
    main()
