"""Regenerates the figures: the embedded benchmark's contact sheet, then every notebook under papermill.

    python scripts/reproduce.py --profile synthetic --data data/synthetic [--loco-data data/synthetic-loco]
                                [--notebook NAME] [--jobs N] [--force] [--scale full]

Each notebook runs with its `profile`, `data_root`, `figures_dir` (= `figures/`), `scale` and `loco_root`
(= `--loco-data`) parameters (those it declares) into `notebooks/executed/`, in its own kernel. `--jobs N`
runs N at a time, the longest chain first (by their last recorded times), each after the notebooks whose
stored evaluations it reuses (notebook metadata `{"adlib": {"after": [names]}}`); a notebook that times
things (notebook metadata `{"adlib": {"exclusive": true}}`) runs alone, after the others, with every core.
`--scale full` runs every notebook on every category with 5 seeds (its own default sample otherwise).
`figures/index.md` (every figure with the caption file a notebook writes beside it, `<figure>.md`: verdict,
caption, settings) and the wall times, `figures/reproduce_times.csv`, are written once, at the end; last,
`figures/reproduction.md` says for every figure CSV whether it is identical to the committed one, within
float rounding, or moved, and which verdicts changed (`scripts/compare_figures.py`).

A run resumes: `build/reproduce/stamps.json` records, per notebook that finished, a digest of its
inputs (the notebook file, its parameters, the `adlib` sources and a fingerprint of the data folder:
every file's path, size and modification time; for a notebook with a `btad_root` or `mtd_root` parameter,
of the `btad` or `mtd` folder beside the data too; for one with a `loco_root` parameter, of `--loco-data`)
and its wall time. A notebook whose inputs have the recorded digest is not run again and its figures are
kept; `--force` runs every notebook, and `--notebook NAME` always runs that one (the other notebooks' times
are kept from earlier runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
STAMPS = ROOT / "build" / "reproduce" / "stamps.json"
SOURCES = ROOT / "adlib"


def _files(folder: Path) -> list[Path]:
    """Every visible file under `folder`, sorted by path (no caches, no hidden files)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def sources_digest(folder: Path = SOURCES) -> str:
    """SHA-256 over the paths and bytes of the library's files (its code and its paper data)."""
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def data_fingerprint(root: Path) -> str:
    """SHA-256 over every data file's path, size and modification time: cheap on MVTec AD's 5 GB, and it
    changes when a file is added, removed, rewritten or regenerated."""
    digest = hashlib.sha256()
    for path in _files(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def inputs_digest(notebook: Path, parameters: dict, sources: str, data: str) -> str:
    """The digest a finished notebook is recorded with: its file, its parameters, the sources and the data."""
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(f"{sources}\0{data}".encode())
    return digest.hexdigest()


# The data sets a notebook reads beside DATA (its parameter `<name>_root`; adlib.companion.notebook.other_dataset).
OTHER_DATASETS = ("btad", "mtd")


def other_data(notebook: Path, data: Path) -> str:
    """The fingerprints of the other data sets the notebook reads beside `data` (a `btad_root` parameter: the
    `btad` folder next to DATA), so that fetching BTAD after a run re-runs the notebook that drew nothing."""
    wanted = declared(notebook, {f"{name}_root": None for name in OTHER_DATASETS})
    folders = [data.resolve().parent / key.removesuffix("_root") for key in sorted(wanted)]
    return "".join(f"\0{folder.name}:{data_fingerprint(folder)}" for folder in folders if folder.is_dir())


def loco_data(parameters: dict) -> str:
    """The fingerprint of the LOCO-layout root a notebook reads (its `loco_root` parameter), "" for the others."""
    root = Path(parameters["loco_root"]) if "loco_root" in parameters else None
    return f"\0loco:{data_fingerprint(root)}" if root is not None and root.is_dir() else ""


def read_stamps(path: Path) -> dict[str, dict]:
    """{notebook: {"digest": ..., "profile": ..., "seconds": ...}} of the notebooks that finished; {} without a file."""
    return json.loads(path.read_text()) if path.is_file() else {}


def write_stamps(path: Path, stamps: dict[str, dict]) -> None:
    from adlib.files import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(stamps, indent=1, sort_keys=True).encode())


STAGE_PROFILE = "ADLIB_STAGE_PROFILE"  # set by --stage-profile: the folder py-spy's samples go to


def run_notebook(notebook: Path, executed: Path, parameters: dict, kernel: str, threads: int | None) -> float:
    """Runs one notebook in its own kernel (papermill) and returns its wall time in seconds; under
    `--stage-profile DIR`, py-spy samples the kernel meanwhile into `DIR/<notebook>.txt`."""
    import papermill

    if threads is not None:  # N kernels side by side share the cores instead of each taking all of them
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(name, str(threads))
    executed.parent.mkdir(parents=True, exist_ok=True)
    folder = os.environ.get(STAGE_PROFILE)
    sampler = None if not folder else start_sampler(Path(folder) / f"{notebook.stem}.txt")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    finally:
        seconds = time.perf_counter() - start
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            sampler.wait(timeout=120)
    return seconds


SAMPLE_RATE = 20  # py-spy samples per second: enough for stages of seconds, light beside the kernel


def start_sampler(out: Path) -> subprocess.Popen:
    """py-spy sampling this process and its children (the notebook's kernel), folded stacks to `out`."""
    binary = shutil.which("py-spy")
    if binary is None:
        raise SystemExit("--stage-profile needs py-spy: pip install py-spy (a sampling profiler; not a dependency)")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [binary, "record", "--pid", str(os.getpid()), "--subprocesses", "--nonblocking", "--format", "raw"]
    command += ["--rate", str(SAMPLE_RATE), "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def declared(notebook: Path, parameters: dict) -> dict:
    """The parameters among `parameters` that the notebook's parameters cell assigns (papermill would
    inject the others too, with a warning, as new variables that nothing reads)."""
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    source = "\n".join(c.source for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
    names = set(re.findall(r"^(\w+)\s*=", source, flags=re.MULTILINE))
    return {name: value for name, value in parameters.items() if name in names}


def is_exclusive(notebook: Path) -> bool:
    """Whether the notebook times things and must run alone (metadata `{"adlib": {"exclusive": true}}`)."""
    import nbformat

    return bool(nbformat.read(notebook, as_version=4).metadata.get("adlib", {}).get("exclusive", False))


def reproduce(
    notebooks: Sequence[Path],
    profile: str,
    data: Path,
    figures: Path,
    stamps_path: Path,
    executed: Path,
    jobs: int = 1,
    rerun: Sequence[str] = (),
    kernel: str = "adlib",
    scale: str = "default",
    loco: Path | None = None,
) -> dict[str, str]:
    """Runs the notebooks whose inputs changed since they last finished (and those named in `rerun`), `jobs` at a
    time, longest chain first and after their prerequisites, the exclusive ones alone at the end; records each one that finishes in the stamps at
    once. Returns {notebook: error} of those that failed."""
    common = {
        "profile": profile,
        "data_root": str(data.resolve()),
        "figures_dir": str(figures.resolve()),
        "scale": scale,
        **({"loco_root": str(loco.resolve())} if loco is not None else {}),
    }
    parameters = {nb.stem: declared(nb, common) for nb in notebooks}
    sources, fingerprint = sources_digest(), data_fingerprint(data)
    stamps = read_stamps(stamps_path)
    digests = {
        nb.stem: inputs_digest(
            nb, parameters[nb.stem], sources, fingerprint + other_data(nb, data) + loco_data(parameters[nb.stem])
        )
        for nb in notebooks
    }
    todo = [nb for nb in notebooks if nb.stem in rerun or stamps.get(nb.stem, {}).get("digest") != digests[nb.stem]]
    for nb in notebooks:
        if nb not in todo:
            print(f"{nb.stem}: inputs unchanged since it finished, figures kept", flush=True)
    last = last_times(stamps, figures / "reproduce_times.csv", profile)
    shared = [nb for nb in todo if not is_exclusive(nb)]
    alone = [nb for nb in todo if is_exclusive(nb)]
    failed: dict[str, str] = {}
    for batch, width in ((shared, jobs), (alone, 1)):
        _run_batch(batch, width, executed, parameters, digests, profile, kernel, stamps, stamps_path, failed, last)
    return failed


def last_times(stamps: dict[str, dict], previous: Path, profile: str) -> dict[str, float]:
    """Each notebook's last wall time: from the stamps, else from the committed times CSV (a fresh clone)."""
    times = {}
    if previous.is_file():
        old = pd.read_csv(previous)
        times = {row.notebook: float(row.seconds) for row in old[old["profile"] == profile].itertuples()}
    return {**times, **{name: float(stamp["seconds"]) for name, stamp in stamps.items() if "seconds" in stamp}}


def prerequisites(notebook: Path) -> list[str]:
    """The notebooks whose stored evaluations this one reuses (metadata `{"adlib": {"after": [names]}}`):
    it starts after they finish, so that the result store computes each shared evaluation once."""
    import nbformat

    return list(nbformat.read(notebook, as_version=4).metadata.get("adlib", {}).get("after", []))


def schedule_priority(batch: Sequence[Path], after: dict[str, list[str]], last: dict[str, float]) -> dict[str, float]:
    """Each notebook's own last time plus the longest chain of notebooks waiting for it (critical path)."""
    waiting = {nb.stem: [other.stem for other in batch if nb.stem in after[other.stem]] for nb in batch}
    memo: dict[str, float] = {}

    def chain(name: str, seen: tuple[str, ...] = ()) -> float:
        if name not in memo:
            rest = [chain(other, seen + (name,)) for other in waiting[name] if other not in seen]
            memo[name] = last.get(name, 0.0) + max(rest, default=0.0)
        return memo[name]

    return {nb.stem: chain(nb.stem) for nb in batch}


def _run_batch(
    batch: Sequence[Path],
    jobs: int,
    executed: Path,
    parameters: dict,
    digests: dict,
    profile: str,
    kernel: str,
    stamps: dict,
    stamps_path: Path,
    failed: dict[str, str],
    last: dict[str, float],
) -> None:
    """Runs `batch`, `jobs` at a time (each kernel with cores / jobs threads), the longest chain first and
    each notebook after its prerequisites in the batch; records stamps and failures as they finish."""
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    after = {nb.stem: prerequisites(nb) for nb in batch}
    priority = schedule_priority(batch, after, last)
    pending = sorted(batch, key=lambda nb: -priority[nb.stem])
    unfinished = {nb.stem for nb in batch}
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as pool:
        running: dict = {}
        while pending or running:
            ready = [nb for nb in pending if not unfinished & set(after[nb.stem]) - {nb.stem}]
            if not ready and not running:  # a cycle: run the next one anyway rather than stall
                ready = pending[:1]
            for nb in ready[: max(1, jobs) - len(running)]:
                pending.remove(nb)
                running[pool.submit(run_notebook, nb, executed / nb.name, parameters[nb.stem], kernel, threads)] = nb
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                nb = running.pop(future)
                unfinished.discard(nb.stem)
                try:
                    seconds = future.result()
                except Exception as error:  # papermill's error names the cell; the executed copy shows it
                    last_line = (str(error).strip().splitlines() or [""])[-1]
                    failed[nb.stem] = f"{type(error).__name__}: {last_line}"
                    stamps.pop(nb.stem, None)
                    print(f"{nb.stem}: FAILED (see {executed / nb.name})", flush=True)
                else:
                    stamps[nb.stem] = {"digest": digests[nb.stem], "profile": profile, "seconds": round(seconds, 3)}
                    print(f"{nb.stem}: {seconds:.1f} s", flush=True)
                write_stamps(stamps_path, stamps)  # after every notebook: an interruption loses only running ones


def merged_times(
    stamps: dict[str, dict], previous: Path, profile: str, names: Sequence[str], ran: Sequence[str] | None = None
) -> pd.DataFrame:
    """Wall times of the notebooks in `names` for `profile`: from the stamps for the notebooks this run
    covered (`ran`: all of `names` by default; `--notebook x` covers x alone, so stale stamps of others
    never replace their committed times), else the earlier CSV's; the earlier CSV's rows of other
    profiles are kept as they were."""
    ran = set(names if ran is None else ran)
    rows = [
        {"notebook": name, "profile": profile, "seconds": stamp["seconds"]}
        for name, stamp in stamps.items()
        if name in names and name in ran and stamp.get("profile") == profile
    ]
    times = pd.DataFrame(rows, columns=["notebook", "profile", "seconds"])
    if previous.is_file():
        old = pd.read_csv(previous)
        same = old["profile"] == profile
        keep = (same & ~old["notebook"].isin(times["notebook"]) & old["notebook"].isin(names)) | ~same
        times = pd.concat([old[keep], times], ignore_index=True) if keep.any() else times
    return times.sort_values(["profile", "notebook"], ignore_index=True)


def contact_sheet(data: Path, name: str, order: Sequence[str], caption: str) -> None:
    """figures/<name>.png and its caption: a benchmark's categories under `data`, one row each, in `order`."""
    from adlib.data.datasets import list_categories
    from adlib.files import atomic_write_bytes
    from adlib.synth.overview import benchmark_overview

    present = set(list_categories(data))
    benchmark_overview(
        data, FIGURES / f"{name}.png", categories=[category for category in order if category in present]
    )
    atomic_write_bytes(FIGURES / f"{name}.md", caption.encode())


def contact_sheets(data: Path, loco: Path | None) -> None:
    """The embedded benchmark's contact sheet, and the LOCO-style scenes' where `loco` holds them."""
    from adlib.synth import CATEGORIES, GENERATOR_VERSION
    from adlib.synth.loco import LOCO_CATEGORIES, LOCO_VERSION

    contact_sheet(
        data,
        "benchmark_overview",
        CATEGORIES,
        f"The embedded benchmark (`adlib.synth` version {GENERATOR_VERSION}, `{data.name}`): one row per "
        "category, two good test images, then defective ones cycling over the defect types, with "
        "the ground truth outlined. Textures are cut from real photographs; pill, nut and screw are drawn objects.",
    )
    if loco is not None and loco.is_dir():
        contact_sheet(
            loco,
            "benchmark_overview_loco",
            LOCO_CATEGORIES,
            f"The LOCO-style scenes (`adlib.synth.loco` version {LOCO_VERSION}, `{loco.name}`, MVTec LOCO AD's "
            "layout): one row per category, two good test images, then anomalous ones alternating between the "
            "logical (a part missing, one too many, the wrong kind, swapped or turned) and the structural (a "
            "damaged part) test folder, with the ground truth outlined (for a missing part: where it should be).",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="synthetic", choices=["synthetic", "paper"])
    parser.add_argument("--data", type=Path, required=True, help="data root (MVTec layout)")
    parser.add_argument(
        "--loco-data",
        type=Path,
        default=None,
        help="root in MVTec LOCO AD's layout, the `loco_root` of the notebooks that declare it (make data's "
        "data/synthetic-loco, or MVTec LOCO AD)",
    )
    parser.add_argument("--notebook", help="run only this notebook (name without .ipynb), whatever its stamp says")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time, each in its own kernel")
    parser.add_argument(
        "--force", action="store_true", help="run every notebook, even those whose inputs are unchanged"
    )
    parser.add_argument(
        "--scale",
        default="default",
        choices=["default", "full"],
        help="default: each notebook's own sample (the 45-minute budget); full: every category, 5 seeds",
    )
    parser.add_argument(
        "--stage-profile",
        type=Path,
        help="sample every kernel with py-spy into this folder (scripts/stage_profile.py sums it by stage)",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give 1 or more")
    if args.stage_profile is not None:
        os.environ[STAGE_PROFILE] = str(args.stage_profile.resolve())  # the spawned workers inherit it

    if args.profile == "synthetic":
        contact_sheets(args.data, args.loco_data)
    every = sorted(NOTEBOOKS.glob("*.ipynb"))
    notebooks = every
    if args.notebook:
        notebooks = [nb for nb in every if nb.stem == args.notebook]
        if not notebooks:
            names = ", ".join(nb.stem for nb in every) or "none yet"
            raise SystemExit(f"no notebook named {args.notebook!r} in {NOTEBOOKS}; there are: {names}")
    rerun = [nb.stem for nb in notebooks] if (args.force or args.notebook) else []
    failed = reproduce(
        notebooks,
        args.profile,
        args.data,
        FIGURES,
        STAMPS,
        NOTEBOOKS / "executed",
        jobs=args.jobs,
        rerun=rerun,
        scale=args.scale,
        loco=args.loco_data,
    )
    from adlib.files import atomic_write_bytes

    times = merged_times(
        read_stamps(STAMPS),
        FIGURES / "reproduce_times.csv",
        args.profile,
        [nb.stem for nb in every],
        ran=[nb.stem for nb in notebooks],
    )
    atomic_write_bytes(FIGURES / "reproduce_times.csv", times.to_csv(index=False).encode())
    from scorecard import write_scorecard  # scripts/ is on sys.path when this file runs as a script
    from sync_results import sync_results

    if any(FIGURES.glob("*.verdicts.csv")):
        write_scorecard(FIGURES)  # from the captions' verdicts, before the index and README show it
    sync_results(NOTEBOOKS, FIGURES)  # each notebook's committed-result cell and figures/index.md
    from compare_figures import compare_figures, report

    table = report(compare_figures(FIGURES, NOTEBOOKS, "HEAD"), "HEAD")  # what reproduced, against git's version
    atomic_write_bytes(FIGURES / "reproduction.md", table.encode())
    print(table)
    if failed:
        lines = "\n".join(f"  {name}: {error}" for name, error in sorted(failed.items()))
        sys.exit(f"{len(failed)} notebook(s) failed (executed copies in {NOTEBOOKS / 'executed'}):\n{lines}")


if __name__ == "__main__":
    main()
