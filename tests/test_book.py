"""scripts/book.py (make book) on a tiny fake project: page order, staging, folded exercises; no Sphinx run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "book.py"
spec = importlib.util.spec_from_file_location("book_site", SCRIPT)
book = importlib.util.module_from_spec(spec)
sys.modules["book_site"] = book  # dataclasses look their module up there
spec.loader.exec_module(book)

EXERCISES = """## Try it yourself

Change one line.

```python
# a comment in a fence is no heading
categories = ["gravel"]
```

<details><summary>What to expect</summary>

Gravel is hard.

</details>"""


def write_notebook(path: Path, title: str, *markdown: str) -> None:
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nThe question.")]
    cells += [nbformat.v4.new_code_cell("x = 1")] + [nbformat.v4.new_markdown_cell(text) for text in markdown]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """notebooks/ (three, one also executed), figures/ (a figure, a caption, the index, two bench reports)."""
    for stem in ("sp_table1_noise", "00_quickstart", "pc_fig3_coreset_toy", "kc_fig2_pixel_distributions"):
        write_notebook(tmp_path / "notebooks" / f"{stem}.ipynb", stem.upper(), EXERCISES)
    write_notebook(tmp_path / "executed" / "pc_fig3_coreset_toy.ipynb", "EXECUTED", "[i](../figures/index.md#pc_figS3)")
    figures = tmp_path / "figures"
    figures.mkdir()
    for name, text in {
        "index.md": "# Figures\n",
        "a.png": "png",
        "a.pdf": "pdf",
        "a.md": "caption",
        "bench.md": "# adlib vs anomalib\n\ntext",
        "benchmark_overview.md": "The embedded benchmark.",
    }.items():
        (figures / name).write_text(text)
    return tmp_path


def test_pages_follow_the_reading_order_of_the_index_and_prefer_executed_copies(project: Path) -> None:
    found = book.pages(project / "notebooks", project / "executed")
    assert [page.stem for page in found] == [
        "00_quickstart",
        "pc_fig3_coreset_toy",
        "kc_fig2_pixel_distributions",
        "sp_table1_noise",
    ]
    assert [page.executed for page in found] == [False, True, False, False]
    assert found[1].source == project / "executed" / "pc_fig3_coreset_toy.ipynb"
    assert book.group_titles() == ["Start here", "PatchCore", "Improved PatchCore", "SoftPatch", "Other notebooks"]


def test_fold_exercises_keeps_the_heading_and_folds_the_body_up_to_the_next_heading() -> None:
    folded = book.fold_exercises(EXERCISES + "\n\n## How fast an update is\n\nQuick.")
    head, rest = folded.split('<details class="exercises">', 1)
    assert head.strip() == "## Try it yourself"
    body, after = rest.split("\n</details>\n", 1)[0], rest.rsplit("</details>", 1)[1]
    assert "# a comment in a fence is no heading" in body and "Gravel is hard." in body
    assert "## How fast an update is" in after and "## How fast" not in body
    assert book.fold_exercises("## Other\n\ntext") == "## Other\n\ntext"


def test_index_anchors_are_lower_cased_and_untitled_reports_get_a_title() -> None:
    text = "[a](../figures/index.md#pc_figS3_curves) [b](other.md#KeepMe)"
    assert book.lower_index_anchors(text) == "[a](../figures/index.md#pc_figs3_curves) [b](other.md#KeepMe)"
    assert book.titled("# Report\n\ntext", "bench") == "# Report\n\ntext"
    assert book.titled("text", "benchmark_overview") == "# benchmark_overview\n\ntext"


def test_stage_writes_the_source_tree(project: Path, tmp_path: Path) -> None:
    src = tmp_path / "build" / "book-src"
    (src / "stale").mkdir(parents=True)
    found = book.stage(src, project / "notebooks", project / "executed", project / "figures")
    assert not (src / "stale").exists()
    assert {p.name for p in (src / "figures").iterdir()} == {
        "index.md",
        "a.png",
        "a.pdf",
        "bench.md",
        "benchmark_overview.md",
    }
    assert (src / "figures" / "benchmark_overview.md").read_text().startswith("# benchmark_overview\n")
    assert (src / "conf.py").is_file() and (src / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert sorted(p.name for p in (src / "_notebooks").iterdir()) == sorted(f"{p.stem}.ipynb" for p in found)
    index = (src / "index.md").read_text()
    assert book.CONTENTS_MARKER not in index
    positions = [index.index(f"notebooks/{page.stem}\n") for page in found]
    assert positions == sorted(positions)
    assert (
        ":caption: Improved PatchCore" in index and "figures/index\nfigures/bench\nfigures/benchmark_overview" in index
    )

    executed = nbformat.read(src / "notebooks" / "pc_fig3_coreset_toy.ipynb", as_version=4)
    title = executed.cells[0].source
    assert title.startswith("# EXECUTED\n\n*Notebook `notebooks/pc_fig3_coreset_toy.ipynb`*")
    assert "<../_notebooks/pc_fig3_coreset_toy.ipynb>" in title and "executed copy" in title
    assert executed.cells[2].source == "[i](../figures/index.md#pc_figs3)"
    committed = nbformat.read(src / "notebooks" / "sp_table1_noise.ipynb", as_version=4)
    assert "the committed notebook" in committed.cells[0].source
    assert '<details class="exercises">' in committed.cells[2].source
    assert nbformat.read(project / "notebooks" / "sp_table1_noise.ipynb", as_version=4).cells[2].source == EXERCISES


def test_stage_refuses_figures_without_their_index(project: Path, tmp_path: Path) -> None:
    (project / "figures" / "index.md").unlink()
    with pytest.raises(SystemExit, match="index.md"):
        book.stage(tmp_path / "src", project / "notebooks", project / "executed", project / "figures")
