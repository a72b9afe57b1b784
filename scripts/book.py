"""The course site: a static HTML book of the notebooks, built offline and without running them.

    python scripts/book.py --out build/book     (make book)

Stages a Sphinx source tree in `<out>-src` (never touching notebooks/ or figures/), then runs `sphinx-build -W`
(book/conf.py: myst-nb, sphinx-book-theme) into `<out>`. The staged tree:

- `index.md`: book/landing.md, then one table of contents per group of figures/index.md (quickstart, PatchCore,
  improved PatchCore, SoftPatch: `sync_results.PAPERS`, notebooks by name within a group, as in the index),
  then the figure index and the speed reports;
- `notebooks/<stem>.ipynb`: the executed copy in notebooks/executed/ where `make reproduce` left one (with its
  outputs), else the committed notebook (its `committed-result` cell shows the committed figures); under the
  title a line names the source and links the committed .ipynb (a download), and the "Try it yourself"
  exercises are folded into a `<details>` block;
- `figures/`: the committed figures, PDFs and CSVs, figures/index.md and the speed reports figures/bench*.md, so
  that the notebooks' `../figures/<name>.png` resolve;
- `_notebooks/`: the committed notebooks, for the download links; `_static/mathjax`: MathJax, served locally.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CONTENTS_MARKER = "<!-- contents: the table of contents is generated here by scripts/book.py -->"
EXERCISES = "## Try it yourself"
FIGURE_SUFFIXES = (".png", ".pdf", ".csv")
INDEX_ANCHOR = re.compile(r"(\]\(\.\./figures/index\.md#)([^)\s]+)\)")
MATHJAX_PARTS = ("tex-mml-chtml.js", "a11y", "adaptors", "input", "output", "sre", "ui")


sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/sync_results.py, also when loaded by path
import sync_results  # noqa: E402  (the reading order of figures/index.md (PAPERS) lives there)


@dataclass(frozen=True)
class Page:
    """One notebook page: the committed notebook, and the file the page is built from (it or its executed copy)."""

    stem: str
    committed: Path
    source: Path

    @property
    def executed(self) -> bool:
        return self.source != self.committed


def pages(notebooks_dir: Path, executed_dir: Path) -> list[Page]:
    """Every committed notebook, in the order of figures/index.md (`sync_results.reading_key`): by group
    (sync_results.PAPERS), then by name, its numbers read as numbers."""
    committed = sorted(Path(notebooks_dir).glob("*.ipynb"), key=lambda p: sync_results.reading_key(p.stem))
    found = []
    for path in committed:
        executed = Path(executed_dir) / path.name
        found.append(Page(path.stem, path, executed if executed.is_file() else path))
    return found


def group_titles() -> list[str]:
    """The short group names of figures/index.md's reading order: Start here, PatchCore, ..., Other notebooks."""
    return [title.split(" (")[0].split(":")[0] for title, _ in sync_results.PAPERS] + ["Other notebooks"]


def fold_exercises(source: str) -> str:
    """The "Try it yourself" section of a markdown cell, its heading kept and its body (up to the next heading
    outside a code fence) folded into a `<details>` block; other text unchanged."""
    lines = source.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == EXERCISES), None)
    if start is None:
        return source
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and lines[i].startswith("#"):
            end = i
            break
    body = "\n".join(lines[start + 1 : end]).strip("\n")
    folded = ['<details class="exercises"><summary>The exercises (click to open)</summary>', "", body, "", "</details>"]
    return "\n".join(lines[: start + 1] + [""] + folded + ([""] + lines[end:] if end < len(lines) else []))


def source_note(page: Page) -> str:
    """The line under a page's title: which file it shows, and a download of the committed notebook."""
    shown = (
        "the executed copy in `notebooks/executed/` (outputs of the last `make reproduce`)"
        if page.executed
        else "the committed notebook (no stored outputs; the committed result below shows the figures)"
    )
    download = f"{{download}}`{page.stem}.ipynb <../_notebooks/{page.stem}.ipynb>`"
    return f"*Notebook `notebooks/{page.stem}.ipynb`* ({download}; open it with `make lab`). This page shows {shown}."


def staged_notebook(page: Page) -> nbformat.NotebookNode:
    """The page's notebook with the source note under its title and its exercises folded."""
    notebook = nbformat.read(page.source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if title is not None:
            cell.source = "\n".join(lines[: title + 1] + ["", source_note(page)] + lines[title + 1 :])
            break
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = lower_index_anchors(fold_exercises(cell.source))
    return notebook


def lower_index_anchors(source: str) -> str:
    """Links to `../figures/index.md#<figure name>` with the anchor in lower case: GitHub finds a heading's anchor
    whatever the case (`#pc_figS3_curves`), Sphinx only by its lower-case slug."""
    return INDEX_ANCHOR.sub(lambda match: f"{match.group(1)}{match.group(2).lower()})", source)


def titled(text: str, name: str) -> str:
    """A markdown page with a `# ` title: `text`, or `# <name>` above it when it has none (a toctree needs one)."""
    return text if any(line.startswith("# ") for line in text.splitlines()) else f"# {name}\n\n{text}"


def contents(found: list[Page], reports: list[str]) -> str:
    """The landing page's tables of contents: one per group, then the figures and the speed reports."""
    blocks, titles = [], group_titles()
    for group, title in enumerate(titles):
        members = [page.stem for page in found if sync_results.paper_of(page.stem) == group]
        if members:
            blocks.append(toctree(title, [f"notebooks/{stem}" for stem in members]))
    blocks.append(toctree("Results", ["figures/index"] + [f"figures/{stem}" for stem in reports]))
    return "\n".join(blocks)


def toctree(caption: str, entries: list[str]) -> str:
    """A MyST toctree directive."""
    return "\n".join(["```{toctree}", f":caption: {caption}", ":maxdepth: 1", "", *entries, "```", ""])


def copy_mathjax(static: Path) -> None:
    """MathJax 3 from the django-static-mathjax wheel into `<static>/mathjax` (the parts a page loads)."""
    import mathjax

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    for part in MATHJAX_PARTS:
        source, target = es5 / part, static / "mathjax" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)


def stage(src: Path, notebooks_dir: Path, executed_dir: Path, figures_dir: Path) -> list[Page]:
    """Writes the Sphinx source tree `src` (emptied first); returns the notebook pages in order."""
    if not (Path(figures_dir) / "index.md").is_file():
        raise SystemExit(f"error: no {Path(figures_dir) / 'index.md'}: python scripts/sync_results.py writes it")
    if src.exists():
        shutil.rmtree(src)
    for folder in ("notebooks", "figures", "_notebooks", "_static"):
        (src / folder).mkdir(parents=True)
    for name in ("conf.py", "favicon.svg"):
        shutil.copy2(BOOK / name, src / name)
    figures = [p for p in sorted(Path(figures_dir).iterdir()) if p.suffix in FIGURE_SUFFIXES]
    reports = sorted(Path(figures_dir).glob("bench*.md"))
    for path in figures + [Path(figures_dir) / "index.md"]:
        shutil.copy2(path, src / "figures" / path.name)
    for path in reports:
        (src / "figures" / path.name).write_text(titled(path.read_text(), path.stem))
    found = pages(notebooks_dir, executed_dir)
    for page in found:
        shutil.copy2(page.committed, src / "_notebooks" / page.committed.name)
        nbformat.write(staged_notebook(page), src / "notebooks" / f"{page.stem}.ipynb")
    landing = (BOOK / "landing.md").read_text()
    if CONTENTS_MARKER not in landing:
        raise SystemExit(f"error: {BOOK / 'landing.md'} lacks the line {CONTENTS_MARKER}")
    (src / "index.md").write_text(landing.replace(CONTENTS_MARKER, contents(found, [p.stem for p in reports])))
    copy_mathjax(src / "_static")
    return found


def build(src: Path, out: Path) -> None:
    """sphinx-build, warnings as errors (book/conf.py lists the few let through); `out` is rebuilt from scratch."""
    if out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E"]
    command += ["-d", str(src.parent / f"{src.name}-doctrees"), str(src), str(out)]
    if subprocess.run(command).returncode:
        raise SystemExit("error: sphinx-build failed (warnings are errors): see the messages above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "book", help="the HTML site (default: %(default)s)"
    )
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the committed notebooks")
    parser.add_argument(
        "--executed", type=Path, default=ROOT / "notebooks" / "executed", help="executed copies, used where present"
    )
    parser.add_argument("--figures", type=Path, default=ROOT / "figures", help="the committed figures")
    args = parser.parse_args()
    start = time.monotonic()
    src = args.out.parent / f"{args.out.name}-src"
    found = stage(src, args.notebooks, args.executed, args.figures)
    executed = sum(page.executed for page in found)
    print(f"staged {len(found)} notebooks ({executed} executed copies, {len(found) - executed} committed) in {src}")
    build(src, args.out)
    print(f"built {args.out / 'index.html'} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
