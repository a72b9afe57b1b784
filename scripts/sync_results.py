"""Shows the committed results where people read them, without running anything:

    python scripts/sync_results.py      # both steps, for this checkout's notebooks/ and figures/

1. `sync_notebooks`: every notebook in notebooks/ gets ONE markdown cell tagged `committed-result` at the
   start of its figure section, with the committed figure(s) (`../figures/<name>.png`) and the verdict of
   their caption files, so that GitHub's and JupyterLab's renderers show the result of `make reproduce`.
2. `write_index`: figures/index.md, grouped by paper in reading order (quickstart, PatchCore, improved
   PatchCore, SoftPatch, then the speed reports), linking each notebook, with each figure, its caption,
   its PDF and CSV, and the wall time per notebook from figures/reproduce_times.csv.

Both are generated from figures/ and idempotent: a second run changes nothing. `make reproduce` runs
`sync_results` after the notebooks, so the cells and the index follow the captions the notebooks wrote.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd

from adlib.files import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"

TAG = "committed-result"
HEADING = ("**The committed result** (from `make reproduce`; re-running this notebook writes its own copy "
           "under build/)")
VERDICT = "**Verdict.**"
OPENINGS = (VERDICT, "**holds**", "**does not hold**", "**inconclusive**")  # how adlib.report.publish opens a caption
DATASET_FIGURE = "benchmark_overview"  # drawn by scripts/reproduce.py itself, not by a notebook
PAPERS = [  # (heading of figures/index.md, the notebook names it holds), in reading order
    ("Start here: the quickstart", ("00_", "01_")),
    ("PatchCore (Roth et al., *Towards Total Recall in Industrial Anomaly Detection*, CVPR 2022)", ("pc_",)),
    ("Improved PatchCore (K-means sampling + cosine scoring)", ("kc_",)),
    ("SoftPatch (patch-level denoising of noisy training data)", ("sp_",)),
]


@dataclass(frozen=True)
class Figure:
    """One committed figure: `<name>.png` in the figures folder, with its caption `<name>.md` if written."""

    name: str
    folder: Path

    @property
    def caption(self) -> str:
        path = self.folder / f"{self.name}.md"
        return path.read_text().strip() if path.is_file() else ""

    @property
    def verdict(self) -> str:
        """The caption's verdict paragraph: its first one, where `adlib.report.publish` puts the bold verdict
        lines (or `**Verdict.** ...`); a caption without one (the quickstart's) is a single line that ends
        in its verdict: then its last paragraph."""
        paragraphs = [part.strip() for part in self.caption.split("\n\n") if part.strip()]
        marked = [part for part in paragraphs if part.startswith(OPENINGS)]
        return (marked[:1] or paragraphs[-1:] or [""])[0]


def figures_of(notebook: nbformat.NotebookNode, stem: str, folder: Path) -> list[Figure]:
    """The committed figures a notebook makes: every `<name>.png` in `folder` whose name its code quotes
    (`publish(figures_dir, "<name>", ...)`, `name = "<name>"`, `figures / "<name>.png"`), or that is named
    after the notebook (`<stem>.png`, `<stem>_<more>.png`); in the order the code first quotes them."""
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    found = {}
    for png in sorted(folder.glob("*.png")):
        quoted = re.search(rf"""["']{re.escape(png.stem)}(\.png)?["']""", code)
        if quoted or png.stem == stem or png.stem.startswith(f"{stem}_"):
            found[png.stem] = quoted.start() if quoted else len(code)
    return [Figure(name, folder) for name in sorted(found, key=lambda name: (found[name], name))]


def result_cell_source(figures: list[Figure], relative: str) -> str:
    """The generated markdown: heading line, every figure's image, each distinct verdict, a link to the index."""
    lines = [HEADING, ""]
    for figure in figures:
        lines += [f"![{figure.name}]({relative}/{figure.name}.png)", ""]
    verdicts = list(dict.fromkeys(figure.verdict for figure in figures if figure.verdict))
    for verdict in verdicts:
        lines += [verdict, ""]
    lines.append(f"Settings, caption, PDF and CSV: [figures/index.md]({relative}/index.md#{figures[0].name}).")
    return "\n".join(lines)


def result_position(cells: list[nbformat.NotebookNode], figures: list[Figure]) -> int:
    """Where the figure section starts: directly after the heading (the markdown cell) above the first
    code cell that calls `publish(`, so before the code cells that compute its verdict too; else above
    the first code cell that quotes a figure's name (the quickstart draws its figure without `publish`);
    else above the last code cell."""
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code" and not is_parameters(cell)]
    quotes = [rf"""["']{re.escape(figure.name)}(\.png)?["']""" for figure in figures]
    for rule in (lambda source: "publish(" in source,
                 lambda source: any(re.search(pattern, source) for pattern in quotes)):
        hits = [i for i in code if rule(cells[i].source)]
        if hits:
            start = hits[0]
            while start > 0 and cells[start - 1].cell_type == "code" and not is_parameters(cells[start - 1]):
                start -= 1
            return start
    return code[-1] if code else len(cells)


def is_parameters(cell: nbformat.NotebookNode) -> bool:
    """The papermill `parameters` cell, which starts no section."""
    return "parameters" in cell.metadata.get("tags", [])


def sync_notebook(path: Path, figures_dir: Path) -> bool:
    """Finds or inserts the notebook's `committed-result` cell (one; none where it makes no committed
    figure) with generated source; writes the file only if it changed. Returns whether it did."""
    text = path.read_text()
    notebook = nbformat.reads(text, as_version=4)
    old = [cell for cell in notebook.cells if TAG in cell.metadata.get("tags", [])]
    cells = [cell for cell in notebook.cells if TAG not in cell.metadata.get("tags", [])]
    figures = figures_of(notebook, path.stem, figures_dir)
    if figures:
        relative = Path(os.path.relpath(figures_dir, path.parent)).as_posix()
        cell = nbformat.v4.new_markdown_cell(result_cell_source(figures, relative), metadata={"tags": [TAG]})
        cell["id"] = old[0].get("id", TAG) if old else TAG
        cells.insert(result_position(cells, figures), cell)
    notebook.cells = cells
    new = nbformat.writes(notebook) + "\n"
    if new == text:
        return False
    atomic_write_bytes(path, new.encode())
    return True


def sync_notebooks(notebooks_dir: Path = NOTEBOOKS, figures_dir: Path = FIGURES) -> list[Path]:
    """`sync_notebook` for every notebook in `notebooks_dir`; returns the ones it changed."""
    return [path for path in sorted(Path(notebooks_dir).glob("*.ipynb")) if sync_notebook(path, Path(figures_dir))]


def paper_of(stem: str) -> int:
    """Index into PAPERS of the group a notebook belongs to; len(PAPERS) for "Other notebooks"."""
    return next((i for i, (_, prefixes) in enumerate(PAPERS) if stem.startswith(prefixes)), len(PAPERS))


def title_of(notebook: nbformat.NotebookNode, stem: str) -> str:
    """The notebook's first `# ` heading, else its file name."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def figure_lines(figure: Figure) -> list[str]:
    """A figure's section of the index: heading (the anchor the notebooks link to), image, caption, files."""
    lines = [f"#### {figure.name}", "", f"![{figure.name}]({figure.name}.png)", ""]
    if figure.caption:
        lines += [figure.caption, ""]
    files = [f"[{suffix[1:].upper()}]({figure.name}{suffix})" for suffix in (".pdf", ".csv")
             if (figure.folder / f"{figure.name}{suffix}").is_file()]
    if files:
        lines += ["Files: " + ", ".join(files), ""]
    return lines


def wall_times(figures_dir: Path, stems: list[str]) -> pd.DataFrame:
    """figures/reproduce_times.csv, the notebooks that exist only, with a total row per profile."""
    path = figures_dir / "reproduce_times.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["notebook", "profile", "seconds"])
    times = pd.read_csv(path)
    times = times[times["notebook"].isin(stems)].sort_values(["profile", "notebook"], ignore_index=True)
    totals = [{"notebook": "total", "profile": profile if times["profile"].nunique() > 1 else "",
               "seconds": group["seconds"].sum()} for profile, group in times.groupby("profile")]
    return pd.concat([times, pd.DataFrame(totals)], ignore_index=True) if len(times) else times


def index_text(notebooks_dir: Path, figures_dir: Path) -> str:
    """The markdown of figures/index.md (see the module docstring)."""
    notebooks = {path.stem: nbformat.read(path, as_version=4) for path in sorted(notebooks_dir.glob("*.ipynb"))}
    times = wall_times(figures_dir, list(notebooks))
    relative = Path(os.path.relpath(notebooks_dir, figures_dir)).as_posix()
    shown = {DATASET_FIGURE}
    groups = [title for title, _ in PAPERS] + ["Other notebooks"]
    lines = ["# Figures", "",
             "Regenerated by `make reproduce`; each caption names the settings and the verdict. In reading order: "
             + ", ".join(f"[{title.split(' (')[0].split(':')[0]}](#{anchor(title)})" for title in groups[:len(PAPERS)])
             + ", then the [speed reports](#speed-reports) and the [wall time per notebook](#wall-time-per-notebook).", ""]
    for group, title in enumerate(groups):
        members = [stem for stem in notebooks if paper_of(stem) == group]
        if not members and not (group == 0 and (figures_dir / f"{DATASET_FIGURE}.png").is_file()):
            continue
        lines += [f"## {title}", ""]
        if group == 0 and (figures_dir / f"{DATASET_FIGURE}.png").is_file():
            lines += ["### The embedded benchmark", ""] + figure_lines(Figure(DATASET_FIGURE, figures_dir))
        for stem in members:
            seconds = times[times["notebook"] == stem]
            timing = "; ".join(f"{row.seconds:.0f} s ({row.profile} profile)" for row in seconds.itertuples())
            lines += [f"### [{title_of(notebooks[stem], stem)}]({relative}/{stem}.ipynb)", "",
                      f"Notebook `{stem}.ipynb`" + (f", wall time {timing} in the last `make reproduce`." if timing else "."), ""]
            for figure in figures_of(notebooks[stem], stem, figures_dir):
                lines += figure_lines(figure)
                shown.add(figure.name)
    others = [png.stem for png in sorted(figures_dir.glob("*.png")) if png.stem not in shown]
    if others:
        lines += ["## Other figures", ""]
        for name in others:
            lines += figure_lines(Figure(name, figures_dir))
    reports = sorted(figures_dir.glob("bench*.md"))
    if reports:
        lines += ["## Speed reports", "", "Made by `make bench`, not by `make reproduce`.", ""]
        for report in reports:
            heading = next((line[2:].strip() for line in report.read_text().splitlines() if line.startswith("# ")),
                           report.stem)
            lines.append(f"- [{heading}]({report.name})")
        lines.append("")
    if len(times):
        lines += ["## Wall time per notebook", "", times.to_markdown(index=False, floatfmt=".1f"), ""]
    return "\n".join(lines)


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def write_index(notebooks_dir: Path = NOTEBOOKS, figures_dir: Path = FIGURES) -> Path:
    """Writes `figures_dir/index.md` (only if its text changed) and returns its path."""
    path = Path(figures_dir) / "index.md"
    text = index_text(Path(notebooks_dir), Path(figures_dir))
    if not path.is_file() or path.read_text() != text:
        atomic_write_bytes(path, text.encode())
    return path


def sync_results(notebooks_dir: Path = NOTEBOOKS, figures_dir: Path = FIGURES) -> None:
    """Both steps: the notebooks' `committed-result` cells, then figures/index.md."""
    changed = sync_notebooks(notebooks_dir, figures_dir)
    index = write_index(notebooks_dir, figures_dir)
    print(f"committed-result cells: {len(changed)} notebook(s) changed; wrote {index}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="folder of the notebooks (default: %(default)s)")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="folder of the committed figures (default: %(default)s)")
    args = parser.parse_args()
    for folder in (args.notebooks, args.figures):
        if not folder.is_dir():
            raise SystemExit(f"error: {folder} is not a folder")
    sync_results(args.notebooks, args.figures)


if __name__ == "__main__":
    main()
