"""scripts/sync_results.py on a tiny fake project: notebooks/ with four notebooks, figures/ with captions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sync_results.py"
spec = importlib.util.spec_from_file_location("sync_results", SCRIPT)
sync_results = importlib.util.module_from_spec(spec)
sys.modules["sync_results"] = sync_results  # dataclasses look their module up there
spec.loader.exec_module(sync_results)


def notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    """A notebook of (kind, source) cells; kind "parameters" is a code cell tagged like papermill's."""
    made = []
    for number, (kind, source) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell["id"] = f"cell-{number}"
        made.append(cell)
    return nbformat.v4.new_notebook(
        cells=made, metadata={"kernelspec": {"name": "adlib", "display_name": "Python (adlib)"}}
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    notebooks, figures = tmp_path / "notebooks", tmp_path / "figures"
    notebooks.mkdir()
    figures.mkdir()
    nbformat.write(
        notebook(
            ("markdown", "# Two figures, one study"),
            ("parameters", 'figures_dir = "../figures"'),
            ("markdown", "## Run"),
            ("code", "x = 1"),
            ("markdown", "## Verdict"),
            ("code", 'verdict = "holds"'),
            (
                "code",
                'publish(figures_dir, "pc_two", fig, t, c, verdict, s)\n'
                'publish(figures_dir, "pc_two_errors", fig, t, c, verdict, s)',
            ),
            ("markdown", "## How to read it"),
        ),
        notebooks / "pc_two.ipynb",
    )
    nbformat.write(
        notebook(
            ("markdown", "# Quick"),
            ("parameters", "quick = False"),
            ("markdown", "## What the model sees"),
            ("code", 'heatmaps(result, figures / "quick_maps.png")'),
            ("markdown", "## Verdict"),
            ("code", 'write(figures / "quick_maps.md", caption)'),
        ),
        notebooks / "00_start.ipynb",
    )
    nbformat.write(
        notebook(
            ("markdown", "# Noise"),
            ("parameters", "tau = 0.15"),
            ("code", "a = 1"),
            ("code", "b = 2"),
        ),
        notebooks / "sp_noise.ipynb",
    )
    nbformat.write(
        notebook(("markdown", "# Kmeans"), ("code", 'publish(figures_dir, "kc_a", f, t, c, v, s)')),
        notebooks / "kc_a.ipynb",
    )
    for name in ["pc_two", "pc_two_errors", "quick_maps", "sp_noise", "kc_a", "benchmark_overview", "stray"]:
        (figures / f"{name}.png").write_bytes(b"png")
    (figures / "pc_two.pdf").write_bytes(b"pdf")
    (figures / "pc_two.csv").write_text("a\n1\n")
    (figures / "pc_two.md").write_text("Two curves.\n\n*Settings:* seeds = 0.\n\n**Verdict.** It holds here.\n")
    (figures / "pc_two_errors.md").write_text("The errors.\n\n*Settings:* seeds = 0.\n\n**Verdict.** It holds here.\n")
    (figures / "quick_maps.md").write_text("Maps on pill. Image AUROC 0.87.")
    (figures / "sp_noise.md").write_text("Noise.\n\n**Verdict.** Partly holds.\n")
    (figures / "bench.md").write_text("# adlib vs anomalib\n\ntext\n")
    (figures / "bench_features.md").write_text("# Feature extraction costs\n")
    (figures / "reproduce_times.csv").write_text(
        "notebook,profile,seconds\n00_start,synthetic,23.1\npc_two,synthetic,70.0\nsp_noise,synthetic,5.5\n"
        "gone,synthetic,99.0\nkc_a,synthetic,1.0\n"
    )
    return tmp_path


def result_cells(path: Path) -> list[tuple[int, nbformat.NotebookNode]]:
    cells = nbformat.read(path, as_version=4).cells
    return [(i, cell) for i, cell in enumerate(cells) if sync_results.TAG in cell.metadata.get("tags", [])]


def test_cell_sits_after_the_heading_of_the_section_that_publishes(project: Path) -> None:
    sync_results.sync_notebooks(project / "notebooks", project / "figures")
    cells = nbformat.read(project / "notebooks" / "pc_two.ipynb", as_version=4).cells
    [(position, cell)] = result_cells(project / "notebooks" / "pc_two.ipynb")
    assert cells[position - 1].source == "## Verdict"  # before the verdict's code, not between the code cells
    assert cells[position + 1].source == 'verdict = "holds"'
    assert cell.cell_type == "markdown"
    assert cell.source.startswith("**The committed result** (from `make reproduce`")
    assert "![pc_two](../figures/pc_two.png)" in cell.source
    assert "![pc_two_errors](../figures/pc_two_errors.png)" in cell.source
    assert cell.source.index("![pc_two]") < cell.source.index("![pc_two_errors]")
    assert cell.source.count("**Verdict.** It holds here.") == 1  # the same verdict twice is shown once
    assert "Two curves" not in cell.source and "*Settings:*" not in cell.source


def test_quickstart_without_publish_and_fallback_to_the_last_code_cell(project: Path) -> None:
    sync_results.sync_notebooks(project / "notebooks", project / "figures")
    cells = nbformat.read(project / "notebooks" / "00_start.ipynb", as_version=4).cells
    [(position, cell)] = result_cells(project / "notebooks" / "00_start.ipynb")
    assert cells[position - 1].source == "## What the model sees"
    assert "![quick_maps](../figures/quick_maps.png)" in cell.source
    assert "Maps on pill. Image AUROC 0.87." in cell.source  # a caption without a Verdict marker: all of it
    cells = nbformat.read(project / "notebooks" / "sp_noise.ipynb", as_version=4).cells
    [(position, cell)] = result_cells(project / "notebooks" / "sp_noise.ipynb")
    assert cells[position + 1].source == "b = 2" and cells[position - 1].source == "a = 1"  # before the last code cell
    assert "**Verdict.** Partly holds." in cell.source


def test_idempotent_one_cell_and_output_free(project: Path) -> None:
    notebooks, figures = project / "notebooks", project / "figures"
    first = sync_results.sync_notebooks(notebooks, figures)
    assert len(first) == 4
    texts = {path: path.read_text() for path in notebooks.glob("*.ipynb")}
    assert sync_results.sync_notebooks(notebooks, figures) == []
    assert {path: path.read_text() for path in notebooks.glob("*.ipynb")} == texts
    # a new verdict replaces the cell in place: still one cell, same id
    (figures / "pc_two.md").write_text("Two curves.\n\n**Verdict.** It no longer holds.\n")
    (figures / "pc_two_errors.md").unlink()
    assert sync_results.sync_notebooks(notebooks, figures) == [notebooks / "pc_two.ipynb"]
    [(_, cell)] = result_cells(notebooks / "pc_two.ipynb")
    assert "It no longer holds." in cell.source and "It holds here." not in cell.source
    assert cell["id"] == sync_results.TAG
    for path in notebooks.glob("*.ipynb"):
        for code in (c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"):
            assert code.outputs == [] and code.execution_count is None
        nbformat.validate(nbformat.read(path, as_version=4))


def test_index_grouped_by_paper_in_reading_order(project: Path) -> None:
    path = sync_results.write_index(project / "notebooks", project / "figures")
    text = path.read_text()
    order = [
        "## Start here",
        "![benchmark_overview](benchmark_overview.png)",
        "(../notebooks/00_start.ipynb)",
        "## PatchCore",
        "(../notebooks/pc_two.ipynb)",
        "#### pc_two\n",
        "#### pc_two_errors",
        "## Improved PatchCore",
        "(../notebooks/kc_a.ipynb)",
        "## SoftPatch",
        "(../notebooks/sp_noise.ipynb)",
        "## Other figures",
        "#### stray",
        "## Speed reports",
        "[adlib vs anomalib](bench.md)",
        "[Feature extraction costs](bench_features.md)",
        "## Wall time per notebook",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "Files: [PDF](pc_two.pdf), [CSV](pc_two.csv)" in text
    assert "**Verdict.** It holds here." in text and "*Settings:* seeds = 0." in text
    assert "wall time 70 s (synthetic profile)" in text
    table = text[text.index("## Wall time per notebook") :]
    assert "gone" not in table  # a notebook that no longer exists
    assert "| total" in table and "99.6" in table  # 23.1 + 70.0 + 5.5 + 1.0
    assert sync_results.write_index(project / "notebooks", project / "figures").read_text() == text


def test_the_readme_table_of_verdicts_is_made_from_the_captions(tmp_path):
    notebooks, figures = tmp_path / "notebooks", tmp_path / "figures"
    notebooks.mkdir()
    figures.mkdir()
    nbformat.write(
        notebook(("markdown", "# PC Table 1: detection"), ("code", 'publish(f, "pc_table1_detection")')),
        notebooks / "pc_table1_detection.ipynb",
    )
    nbformat.write(notebook(("markdown", "# SP Fig. 5"), ("code", "x = 1")), notebooks / "sp_fig5_tsne.ipynb")
    (figures / "pc_table1_detection.png").write_bytes(b"png")
    (figures / "pc_table1_detection.md").write_text(
        "**holds** (n = 9 categories x 1 seed x 60 test images): A above B, 95 % CI [+0.01, +0.05]  \n"
        "**inconclusive** (n = 9 categories x 1 seed x 60 test images): C | D\n\nThe caption.\n\n*Settings:* x = 1.\n"
    )
    (figures / "pc_table1_detection_maps.png").write_bytes(b"png")  # a picture beside the verdicts: not in the row
    (figures / "pc_table1_detection_maps.md").write_text("**Verdict.** An illustration: no claim is weighed here.\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{sync_results.README_START}\nold typed table\n{sync_results.README_END}\nafter\n")
    assert sync_results.write_readme_verdicts(readme, notebooks, figures)
    text = readme.read_text()
    assert "old typed table" not in text and text.startswith("intro\n") and text.endswith("after\n")
    row = next(line for line in text.splitlines() if "pc_table1_detection" in line)
    assert "PC Table 1: detection" in row and "**holds** (n = 9 categories" in row
    assert "<br>**inconclusive**" in row and "C \\| D" in row  # a pipe inside a verdict is escaped
    assert "An illustration" not in row
    assert "no committed figure" in next(line for line in text.splitlines() if "sp_fig5_tsne" in line)
    assert not sync_results.write_readme_verdicts(readme, notebooks, figures)  # idempotent
    plain = tmp_path / "OTHER.md"
    plain.write_text("no markers")
    assert not sync_results.write_readme_verdicts(plain, notebooks, figures) and plain.read_text() == "no markers"


def test_every_verdict_paragraph_reaches_the_notebook_and_the_readme_and_the_index_lists_each_once(tmp_path):
    notebooks, figures = tmp_path / "notebooks", tmp_path / "figures"
    notebooks.mkdir()
    figures.mkdir()
    code = 'publish(f, "pc_table5_time")\npublish(f, "pc_table5_time_maps")'
    nbformat.write(notebook(("markdown", "# PC Table 5"), ("code", code)), notebooks / "pc_table5_time.ipynb")
    accuracy = "**holds** (n = 3 categories x 1 seed x 60 test images): A above B, 95 % CI [+0.01, +0.05]"
    timing = "**inconclusive** (9 repeats): A faster than C: 0.99x its time per image"
    for name in ("pc_table5_time", "pc_table5_time_maps"):
        (figures / f"{name}.png").write_bytes(b"png")
        (figures / f"{name}.md").write_text(f"{accuracy}\n\n{timing}\n\nThe caption of {name}.\n")
    figure = sync_results.Figure("pc_table5_time", figures)
    assert figure.verdict == f"{accuracy}  \n{timing}"  # the second paragraph is not dropped
    readme = tmp_path / "README.md"
    readme.write_text(f"{sync_results.README_START}\n{sync_results.README_END}\n")
    sync_results.write_readme_verdicts(readme, notebooks, figures)
    assert accuracy in readme.read_text() and timing in readme.read_text()
    cell = sync_results.result_cell_source(
        sync_results.figures_of(
            nbformat.read(notebooks / "pc_table5_time.ipynb", as_version=4), "pc_table5_time", figures
        ),
        "../figures",
    )
    assert cell.count(timing) == 1 and cell.count(accuracy) == 1
    index = sync_results.index_text(notebooks, figures)
    assert index.count(timing) == 1 and index.count(accuracy) == 1  # the second figure shares them
    assert "The caption of pc_table5_time_maps." in index and "*Verdicts: those of the figure above.*" in index


def test_the_scorecard_opens_the_readme_and_the_index(tmp_path):
    notebooks, figures = tmp_path / "notebooks", tmp_path / "figures"
    notebooks.mkdir()
    figures.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{sync_results.SCORECARD_START}\nold\n{sync_results.SCORECARD_END}\nrest\n")
    assert sync_results.write_readme_verdicts(readme, notebooks, figures)
    assert "No scorecard yet" in readme.read_text() and readme.read_text().endswith("rest\n")
    (figures / "scorecard.png").write_bytes(b"png")
    (figures / "scorecard.md").write_text("**Verdict.** 1 of 3 claims hold here.\n\n| | holds |\n| --- | --- |\n")
    assert sync_results.write_readme_verdicts(readme, notebooks, figures)
    text = readme.read_text()
    assert "![The scorecard](figures/scorecard.png)" in text and "1 of 3 claims hold here" in text
    index = sync_results.index_text(notebooks, figures)
    assert "## The scorecard: every claim at a glance" in index and "![scorecard](scorecard.png)" in index
    assert "## Other figures" not in index  # shown once, at the top


def test_reading_order_reads_the_numbers_in_names_as_numbers() -> None:
    stems = ["sp_table10_transformed_overlap", "sp_table4_softweight", "pc_figS3_curves", "sp_fig3_noise_trends",
             "01_explore", "sp_table1_noise", "kc_fig5_trainsize", "pc_fig6_lowshot", "00_quickstart", "pc_table1_x"]  # fmt: skip
    assert sorted(stems, key=sync_results.reading_key) == [
        "00_quickstart", "01_explore", "pc_fig6_lowshot", "pc_figS3_curves", "pc_table1_x", "kc_fig5_trainsize",
        "sp_fig3_noise_trends", "sp_table1_noise", "sp_table4_softweight", "sp_table10_transformed_overlap",
    ]  # fmt: skip
    real = sorted(path.stem for path in (SCRIPT.parent.parent / "notebooks").glob("*.ipynb"))
    by_name = sorted(real, key=lambda stem: (sync_results.paper_of(stem), stem))
    moved = [stem for stem, old in zip(sorted(real, key=sync_results.reading_key), by_name) if stem != old]
    assert set(moved) <= {"sp_table10_transformed_overlap", "sp_table1_noise", "sp_table3_btad", "sp_table4_softweight",
                          "sp_table5_lofk_tau", "sp_table7_image_vs_patch_denoise", "sp_table9_timing"}  # fmt: skip


def test_a_notebook_that_drew_nothing_gets_no_result_cell_and_is_listed_without_figures(project: Path) -> None:
    """A notebook whose data set is absent (sp_table3_btad without BTAD) publishes nothing: no cell, no error."""
    notebooks, figures = project / "notebooks", project / "figures"
    absent = notebook(
        ("markdown", "# BTAD"),
        ("parameters", "btad_root = None"),
        ("code", 'if btad is not None:\n    publish(figures_dir, "sp_btad", fig, t, c, v, s)'),
    )
    nbformat.write(absent, notebooks / "sp_btad.ipynb")
    before = (notebooks / "sp_btad.ipynb").read_text()
    readme = project / "README.md"
    readme.write_text(f"{sync_results.README_START}\n{sync_results.README_END}\n")
    sync_results.sync_results(notebooks, figures, readme)
    assert "| [`sp_btad`](" in readme.read_text() and "| BTAD | no committed figure |" in readme.read_text()
    assert (notebooks / "sp_btad.ipynb").read_text() == before
    index = (figures / "index.md").read_text()
    section = index.split("sp_btad.ipynb)", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    assert "Notebook `sp_btad.ipynb`." in section and "![" not in section
