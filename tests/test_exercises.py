"""adlib.companion.exercises (the checks of the notebooks' exercises) and scripts/run_exercises.py, which runs
them: a wrong expectation is reported, and in strict mode fails the run. The runner's notebooks here are tiny
fakes on the `python3` kernel; the real ones run in `make exercises`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from adlib.companion import exercises
from adlib.companion.exercises import Check, ExerciseFailed, changes, count, direction, report, status
from adlib.evidence.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = {1: {"outliers": 0}, 2: {"n_selected": 200, "seeds": [0]}}


def verdict(source: str, low: float, high: float) -> Verdict:
    return Verdict("s", "q", "f", "above", 0.0, (low + high) / 2, low, high, 0.95, "n = 10", source=source)


def test_changes_returns_the_chosen_overrides_and_names_the_choices_for_an_unknown_number() -> None:
    assert changes(EXERCISES, None) == {}
    assert changes(EXERCISES, 2) == {"n_selected": 200, "seeds": [0]}
    with pytest.raises(ValueError, match=r"exercise=5: this notebook's exercises are \[1, 2\]"):
        changes(EXERCISES, 5)
    smaller = {2: {"seeds": [1]}}
    assert changes(EXERCISES, 2, smaller) == {"n_selected": 200, "seeds": [1]}  # quick mode's smaller sample
    assert changes(EXERCISES, 1, smaller) == {"outliers": 0}


def test_direction_is_strict_and_says_the_number() -> None:
    assert direction("a - b", 0.03, "above") == Check(True, "a - b = +0.03 (is above 0)")
    assert not direction("a - b", 0.0, "above").ok
    assert not direction("a - b", 0.5, "below", 0.5).ok
    assert direction("a - b", -0.2, "below", 0.1).ok
    with pytest.raises(ValueError, match="side='up'"):
        direction("a", 1.0, "up")


def test_count_exact_and_bounded() -> None:
    assert count("missed", 0, 0).ok
    assert count("missed", 1, 0) == Check(False, "missed: 1 (expected 0)")
    assert count("missed", 1, at_most=1).ok
    assert not count("missed", 2, at_most=1).ok
    assert count("rows", 4, at_least=2, at_most=4) == Check(True, "rows: 4 (expected >= 2 and <= 4)")
    assert not count("rows", 1, at_least=2).ok
    with pytest.raises(ValueError, match="either expected or"):
        count("rows", 1)
    with pytest.raises(ValueError, match="either expected or"):
        count("rows", 1, 1, at_most=2)


def test_status_finds_the_verdict_by_its_register_row() -> None:
    verdicts = [verdict("a-holds", 0.1, 0.2), verdict("b-open", -0.1, 0.2)]
    assert status(verdicts, "a-holds", "holds").ok
    assert status(verdicts, "b-open", {"inconclusive", "holds"}).ok
    assert status(verdicts, "b-open", "holds") == Check(False, "b-open: inconclusive (expected holds)")
    missing = status(verdicts, "c", "holds")
    assert not missing.ok and "no verdict in this run" in missing.what


CHECKS = {
    1: ("x is 2", lambda: [count("x", 2, 2), direction("d", 0.1, "above")]),
    2: ("x is 3", lambda: [count("x", 2, 3), direction("d", 0.1, "above")]),
}


def test_report_says_as_expected_or_what_differs(capsys, monkeypatch) -> None:
    monkeypatch.delenv(exercises.STRICT_ENV, raising=False)
    assert report(EXERCISES, CHECKS, 1) == (
        "Exercise 1: as expected - x is 2:\n  ok  x: 2 (expected 2)\n  ok  d = +0.1 (is above 0)"
    )
    text = report(EXERCISES, CHECKS, 2)  # a wrong expectation: reported, not raised outside strict mode
    assert text.startswith(
        "Exercise 2: not as expected - expected x is 3; 1 of 2 checks differ:\n"
        "  NOT x: 2 (expected 3)\n  ok  d = +0.1 (is above 0)\nWhy this can happen:"
    )
    assert "Why this can happen" in text and text in capsys.readouterr().out


def test_strict_mode_raises_on_an_unexpected_outcome_only(monkeypatch) -> None:
    monkeypatch.setenv(exercises.STRICT_ENV, "1")
    report(EXERCISES, CHECKS, 1)
    with pytest.raises(ExerciseFailed, match="Exercise 2: not as expected"):
        report(EXERCISES, CHECKS, 2)


def test_report_without_an_exercise_lists_the_checks_and_rejects_mismatched_numbers() -> None:
    listing = report(EXERCISES, CHECKS, None)
    assert "Exercise 1: outliers = 0 -> expect x is 2" in listing
    assert "Exercise 2: n_selected = 200, seeds = [0] -> expect x is 3" in listing
    with pytest.raises(ValueError, match="same numbers"):
        report(EXERCISES, {1: CHECKS[1]}, None)
    with pytest.raises(ValueError, match="returned no Check"):
        report({1: {}}, {1: ("nothing", lambda: [])}, 1)


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import run_exercises

    return run_exercises


def fake_notebook(folder: Path) -> Path:
    """A notebook with two exercises on one parameter `x`; exercise 2's expectation is wrong."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    parameters = nbformat.v4.new_code_cell(
        'profile = "synthetic"\ndata_root = "."\nfigures_dir = "."\nquick = False\nx = 1\nexercise = None'
    )
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        parameters,
        nbformat.v4.new_code_cell(
            "from adlib.companion import exercises\nEXERCISES = {1: {'x': 2}, 2: {'x': 3}}\n"
            "globals().update(exercises.changes(EXERCISES, exercise))"
        ),
        nbformat.v4.new_code_cell(
            "from adlib.companion.exercises import count\n"
            "CHECKS = {1: ('x is 2', lambda: [count('x', x, 2)]), 2: ('x is 4', lambda: [count('x', x, 4)])}\n"
            "exercises.report(EXERCISES, CHECKS, exercise)"
        ),
    ]
    path = folder / "fake.ipynb"
    nbformat.write(nb, path)
    return path


def notebook_on(folder: Path, parameter: str, checks: str) -> Path:
    """`fake_notebook` in `folder` with one more parameter and its CHECKS cell replaced by `checks`; returns `folder`."""
    folder.mkdir(exist_ok=True)
    nb = nbformat.read(fake_notebook(folder), as_version=4)
    nb.cells[0].source += f"\n{parameter}"
    report = "exercises.report(EXERCISES, CHECKS, exercise)"
    nb.cells[2].source = f"from adlib.companion.exercises import count\n{checks}\n{report}"
    nbformat.write(nb, folder / "fake.ipynb")
    return folder


def run_runner(runner, monkeypatch, notebooks: Path, data: Path, out: Path) -> None:
    """scripts/run_exercises.py's main on `notebooks` (one worker, the plain python3 kernel, adlib on the path)."""
    monkeypatch.setattr(runner, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(runner, "KERNEL", "python3")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setattr("sys.argv", ["run_exercises.py", "--data", str(data), "--out", str(out), "--workers", "1"])
    runner.main()


def test_the_runner_reads_the_declared_exercises_and_fails_on_a_wrong_expectation(runner, tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    assert runner.declared(fake_notebook(notebooks)) == {1: {"x": 2}, 2: {"x": 3}}
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="1 of 2 exercises not as expected"):
        run_runner(runner, monkeypatch, notebooks, tmp_path, out)
    table = (out / "exercises.md").read_text()
    assert "| fake | 1 | as expected |" in table and "| fake | 2 | not as expected |" in table
    assert runner.outcome(out / "fake.exercise2.ipynb", 2) == ("not as expected", "NOT x: 3 (expected 4)")
    assert runner.outcome(out / "missing.ipynb", 1) == ("no check ran", "")


def test_a_notebook_on_another_data_set_gets_the_layout_fixture(runner, tmp_path, monkeypatch):
    import prepare_notebooks  # scripts/ is on sys.path (the runner fixture)

    notebooks = notebook_on(
        tmp_path / "notebooks",
        "btad_root = None",
        "fixture = btad_root is not None and btad_root.endswith('btad-fixture')\n"
        "CHECKS = {n: ('btad_root is the fixture', lambda: [count('fixture', int(fixture), 1)]) for n in (1, 2)}",
    )
    written = []
    monkeypatch.setitem(prepare_notebooks.FIXTURES, "btad", lambda source, out: written.append(out) or out)
    out = tmp_path / "out"
    run_runner(runner, monkeypatch, notebooks, tmp_path, out)  # both exercises as expected: each saw btad_root
    assert written == [(out / "btad-fixture").resolve()]  # written once for the notebook's two exercises


def test_every_notebook_with_exercises_numbers_them_as_its_text_does(runner) -> None:
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        declared = runner.declared(notebook)
        if not declared:
            continue
        cells = json.loads(notebook.read_text())["cells"]
        text = next("".join(c["source"]) for c in cells if "## Try it yourself" in "".join(c["source"]))
        numbered = sorted(int(n) for n in re.findall(r"^(?:\*\*)?(\d+)\. \**", text, flags=re.MULTILINE))
        assert numbered == sorted(declared), f"{notebook.name}: text numbers {numbered}, EXERCISES {sorted(declared)}"
        assert any("exercises.report(EXERCISES, CHECKS, exercise)" in "".join(c["source"]) for c in cells), notebook


def test_the_runner_finds_the_notebooks_that_take_a_loco_root(runner, tmp_path) -> None:
    import reproduce  # the runner asks reproduce.declared, as make reproduce does (scripts/ is on the path)

    plain = fake_notebook(tmp_path)
    assert not reproduce.declared(plain, {"loco_root": None})
    nb = nbformat.read(plain, as_version=4)
    nb.cells[0].source += '\nloco_root = "../data/synthetic-loco"'
    nbformat.write(nb, tmp_path / "loco.ipynb")
    assert reproduce.declared(tmp_path / "loco.ipynb", {"loco_root": None})
    assert reproduce.declared(ROOT / "notebooks" / "kc_table2_logical.ipynb", {"loco_root": None})


def test_a_notebook_on_mtd_runs_its_exercises_on_the_mtd_fixture(runner, tmp_path, monkeypatch, tiny_benchmark):
    import prepare_notebooks  # on sys.path through the runner fixture

    notebooks = notebook_on(
        tmp_path / "notebooks",
        "mtd_root = None",
        "from pathlib import Path\n"
        "CHECKS = {n: ('on the fixture', lambda: [count('MT_Free', int(Path(mtd_root, 'mtd', 'MT_Free').is_dir()), 1)])"
        " for n in (1, 2)}",
    )
    small = prepare_notebooks.write_mtd_fixture
    monkeypatch.setitem(prepare_notebooks.FIXTURES, "mtd", lambda data, out: small(data, out, 9, 4))
    out = tmp_path / "out"
    run_runner(runner, monkeypatch, notebooks, tiny_benchmark, out)  # both checks find the fixture: no SystemExit
    assert "| fake | 2 | as expected |" in (out / "exercises.md").read_text()
    assert (out / "mtd-fixture" / "mtd" / "MT_Free").is_dir()
