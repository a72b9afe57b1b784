"""Did the figures reproduce? Every CSV (and caption verdict) in figures/ against its committed version.

    python scripts/compare_figures.py [--against HEAD] [--out figures/reproduction.md]

`make reproduce` runs it last. For each CSV that a notebook writes (not `make bench`'s `bench*.csv`, not
the wall times), it reads the version in git (`--against`, default HEAD: what the clone was made from)
and says one of:

- **identical**: the same bytes;
- **within tolerance**: the same rows, columns and text, and every number within `RELATIVE` (1e-6) of the
  committed one, relative to its size (or `ABSOLUTE`, 1e-9, near zero). Why 1e-6: the backbones run in
  float32, whose rounding differs between CPU instruction sets (AVX2, AVX-512) and batch shapes by about
  that much relative to a feature; no verdict printed to three decimals can move within it;
- **moved**: anything more: how many numbers moved, the largest move, and every verdict whose status
  changed (the `status` column, and the bold verdict lines of the caption `<name>.md`);
- **new** / **missing**: no committed version / not written by this run.

Timing notebooks (notebook metadata `{"adlib": {"exclusive": true}}`) measure this machine, so their
columns of seconds and ratios are compared by ratio (the median of new / committed is reported, never
called a move); their other numbers and their verdicts are compared as above.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
NOTEBOOKS = ROOT / "notebooks"
RELATIVE = 1e-6
ABSOLUTE = 1e-9
TIMING_COLUMN = re.compile(r"second|ratio|time|_ms|_s$", re.IGNORECASE)
STATUS_LINE = re.compile(r"^\*\*(holds|does not hold|inconclusive)\*\*(.*)$")


@dataclass
class Comparison:
    """The outcome for one figure's CSV: a result word and what backs it."""

    name: str
    result: str
    moved: int = 0
    largest: float = 0.0
    timing_ratio: float | None = None
    status_changes: list[str] = field(default_factory=list)

    def detail(self) -> str:
        parts = []
        if self.moved:
            parts.append(f"{self.moved} number(s) moved, the largest by {self.largest:.3g}")
        if self.timing_ratio is not None:
            parts.append(f"timings x{self.timing_ratio:.2f} of the committed (median)")
        parts += self.status_changes
        return "; ".join(parts) or "-"


def committed_text(path: Path, revision: str) -> str | None:
    """The file's text at `revision` in git, None when it is not there."""
    relative = path.resolve().relative_to(ROOT).as_posix()
    shown = subprocess.run(["git", "show", f"{revision}:{relative}"], cwd=ROOT, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def close(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Element-wise: equal (NaN with NaN), or within the relative / absolute tolerance."""
    both_nan = np.isnan(new) & np.isnan(old)
    return both_nan | (np.abs(new - old) <= np.maximum(ABSOLUTE, RELATIVE * np.abs(old)))


def compare_tables(name: str, new_text: str, old_text: str, timing: bool) -> Comparison:
    """The comparison of two versions of one CSV (see the module docstring)."""
    if new_text == old_text:
        return Comparison(name, "identical")
    new, old = pd.read_csv(io.StringIO(new_text)), pd.read_csv(io.StringIO(old_text))
    if list(new.columns) != list(old.columns) or len(new) != len(old):
        return Comparison(name, "moved", status_changes=[f"shape {old.shape} -> {new.shape} or other columns"])
    comparison = Comparison(name, "within tolerance")
    ratios = []
    for column in new.columns:
        a, b = new[column], old[column]
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
        if not numeric:
            if column == "status":
                comparison.status_changes += status_changes(new, old)
            elif not a.astype(object).fillna("").astype(str).equals(b.astype(object).fillna("").astype(str)):
                comparison.status_changes.append(f"text of column {column!r} changed")
            continue
        values, before = a.to_numpy(np.float64), b.to_numpy(np.float64)
        if timing and TIMING_COLUMN.search(column):
            ok = (before != 0) & np.isfinite(before) & np.isfinite(values)
            ratios += list(values[ok] / before[ok])
            continue
        moved = ~close(values, before)
        if moved.any():
            comparison.moved += int(moved.sum())
            comparison.largest = max(comparison.largest, float(np.nanmax(np.abs(values - before)[moved])))
    if ratios:
        comparison.timing_ratio = float(np.median(ratios))
    if comparison.moved or comparison.status_changes:
        comparison.result = "moved"
    return comparison


def status_changes(new: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    """'claim (metric): old -> new' for every row whose verdict status differs."""
    label = [column for column in ("claim", "statement", "metric") if column in new.columns]
    changes = []
    now, before = (table["status"].astype(object).fillna("").astype(str).to_numpy() for table in (new, old))
    for row in np.flatnonzero(now != before):  # rows without a verdict (NaN on both sides) are no change
        what = " / ".join(str(new[column].iloc[row]) for column in label) or f"row {row}"
        changes.append(f"{what}: {old['status'].iloc[row]} -> {new['status'].iloc[row]}")
    return changes


def caption_statuses(text: str) -> dict[str, str]:
    """The caption's verdict lines as {claim with its numbers blanked: status}."""
    found = {}
    for line in text.splitlines():
        matched = STATUS_LINE.match(line.strip())
        if matched:
            found[re.sub(r"[-+]?\d[\d.]*", "#", matched.group(2)).strip()] = matched.group(1)
    return found


def caption_changes(caption: Path, revision: str) -> list[str]:
    """Verdicts of the caption whose status differs from the committed caption's."""
    old_text = committed_text(caption, revision)
    if old_text is None or not caption.is_file():
        return []
    old, new = caption_statuses(old_text), caption_statuses(caption.read_text())
    return [
        f"caption: {claim[:90]}: {old[claim]} -> {status}"
        for claim, status in new.items()
        if claim in old and old[claim] != status
    ]


def timing_notebooks(notebooks: Path) -> set[str]:
    """Stems of the notebooks that time things (their figures are named after them)."""
    import nbformat

    return {
        nb.stem
        for nb in notebooks.glob("*.ipynb")
        if nbformat.read(nb, as_version=4).metadata.get("adlib", {}).get("exclusive", False)
    }


def compare_figures(figures: Path, notebooks: Path, revision: str) -> list[Comparison]:
    """One `Comparison` per figure CSV, now or committed, in name order."""
    timed = timing_notebooks(notebooks)
    names = {p.name for p in figures.glob("*.csv")}
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, f"{figures.relative_to(ROOT).as_posix()}/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    names |= {Path(name).name for name in listed if name.endswith(".csv")}
    results = []
    for name in sorted(n for n in names if not n.startswith("bench") and n != "reproduce_times.csv"):
        path = figures / name
        old = committed_text(path, revision)
        if not path.is_file():
            results.append(Comparison(name, "missing"))
            continue
        if old is None:
            results.append(Comparison(name, "new"))
            continue
        timing = any(name.startswith(stem) for stem in timed)
        comparison = compare_tables(name, path.read_text(), old, timing)
        comparison.status_changes += caption_changes(path.with_suffix(".md"), revision)
        if comparison.status_changes and comparison.result != "moved":
            comparison.result = "moved"
        results.append(comparison)
    return results


def report(results: list[Comparison], revision: str) -> str:
    """The markdown table `make reproduce` prints and writes."""
    counts = pd.Series([r.result for r in results]).value_counts()
    lines = [
        "# Did the figures reproduce?",
        "",
        f"Every figure CSV of this run against the committed one (`git show {revision}:figures/...`), by "
        "`scripts/compare_figures.py` (tolerance and the timing rule in its docstring): "
        + ", ".join(f"{count} {result}" for result, count in counts.items())
        + ".",
        "",
        "| CSV | result | detail |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r.name} | {r.result} | {r.detail().replace('|', '/')} |" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="HEAD", help="the git revision holding the committed figures")
    parser.add_argument("--out", type=Path, default=FIGURES / "reproduction.md", help="where to write the table")
    args = parser.parse_args()
    text = report(compare_figures(FIGURES, NOTEBOOKS, args.against), args.against)
    from adlib.files import atomic_write_bytes

    atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
