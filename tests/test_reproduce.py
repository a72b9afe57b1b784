"""scripts/reproduce.py: notebooks side by side, each in its own kernel, and a run that resumes where it stopped.

The notebooks here are tiny fakes (standard library only, the `python3` kernel); the real ones are not run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reproduce(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # spawned workers import the script by this name too
    import reproduce

    return reproduce


def fake_notebook(path: Path, body: str = "") -> Path:
    """A notebook with a papermill parameters cell that appends one line per run to `<figures_dir>/<name>.runs`
    (with its start and end times) and writes `<name>.png`, after `body`."""
    name = path.stem
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    parameters = nbformat.v4.new_code_cell('profile = "synthetic"\ndata_root = "."\nfigures_dir = "../build/figures"')
    parameters.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        "import time\nfrom pathlib import Path\nstart = time.time()\n" + body + "\ntime.sleep(2)\n"
        f"out = Path(figures_dir)\nout.mkdir(parents=True, exist_ok=True)\n(out / '{name}.png').write_text('figure')\n"
        f"with open(out / '{name}.runs', 'a') as log:\n    log.write(f'{{start}} {{time.time()}} {{profile}}\\n')\n"
    )
    nb.cells = [parameters, work]
    nbformat.write(nb, path)
    return path


def runs(figures: Path, name: str) -> list[tuple[float, float]]:
    path = figures / f"{name}.runs"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [(float(a), float(b)) for a, b, _ in (line.split() for line in lines)]


def test_notebooks_run_side_by_side_and_an_interrupted_run_resumes(reproduce, tmp_path):
    notebooks, data, figures = tmp_path / "notebooks", tmp_path / "data", tmp_path / "figures"
    notebooks.mkdir()
    data.mkdir()
    (data / "image.png").write_bytes(b"pixels")
    a = fake_notebook(notebooks / "a.ipynb")
    b = fake_notebook(notebooks / "b.ipynb", body="raise RuntimeError('boom')")
    stamps = tmp_path / "build" / "stamps.json"

    def run(**options):
        return reproduce.reproduce(
            [a, b], "synthetic", data, figures, stamps, tmp_path / "executed", kernel="python3", **options
        )

    failed = run(jobs=2)  # b fails: as if the run had been stopped there
    assert set(failed) == {"b"} and "boom" in failed["b"]
    assert set(reproduce.read_stamps(stamps)) == {"a"} and len(runs(figures, "a")) == 1
    fake_notebook(b)  # fixed
    assert run(jobs=2) == {}
    assert len(runs(figures, "a")) == 1 and len(runs(figures, "b")) == 1  # a was kept, b ran
    recorded = reproduce.read_stamps(stamps)
    assert set(recorded) == {"a", "b"} and all(stamp["seconds"] >= 2 for stamp in recorded.values())

    assert run(jobs=2) == {}  # nothing changed: nothing runs
    assert len(runs(figures, "a")) == 1 and len(runs(figures, "b")) == 1

    (data / "more.png").write_bytes(b"more pixels")  # the data changed: both run again, side by side
    assert run(jobs=2) == {}
    (a_start, a_end), (b_start, b_end) = runs(figures, "a")[-1], runs(figures, "b")[-1]
    assert a_start < b_end and b_start < a_end, "with jobs=2 the two notebooks should overlap in time"

    fake_notebook(a, body="x = 1")  # only a's file changed
    assert run(jobs=1) == {}
    assert len(runs(figures, "a")) == 3 and len(runs(figures, "b")) == 2
    assert run(jobs=1, rerun=["b"]) == {}  # --notebook b / --force
    assert len(runs(figures, "a")) == 3 and len(runs(figures, "b")) == 3


def test_each_input_changes_the_digest(reproduce, tmp_path):
    notebook = fake_notebook(tmp_path / "n.ipynb")
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.png").write_bytes(b"1")
    parameters = {"profile": "synthetic", "data_root": str(data), "figures_dir": "/f"}
    base = reproduce.inputs_digest(notebook, parameters, "sources", reproduce.data_fingerprint(data))
    assert base == reproduce.inputs_digest(notebook, dict(parameters), "sources", reproduce.data_fingerprint(data))
    assert base != reproduce.inputs_digest(
        notebook, {**parameters, "profile": "paper"}, "sources", reproduce.data_fingerprint(data)
    )
    assert base != reproduce.inputs_digest(notebook, parameters, "other sources", reproduce.data_fingerprint(data))
    (data / "x.png").write_bytes(b"22")
    assert base != reproduce.inputs_digest(notebook, parameters, "sources", reproduce.data_fingerprint(data))
    sources = tmp_path / "lib"
    sources.mkdir()
    (sources / "m.py").write_text("a = 1")
    before = reproduce.sources_digest(sources)
    (sources / "__pycache__").mkdir()
    (sources / "__pycache__" / "m.pyc").write_bytes(b"cache")
    assert reproduce.sources_digest(sources) == before  # caches are not sources
    (sources / "m.py").write_text("a = 2")
    assert reproduce.sources_digest(sources) != before


def with_parameter(plain: Path, path: Path, line: str) -> Path:
    """A copy of the notebook `plain` at `path` whose parameters cell also assigns `line`."""
    nb = nbformat.read(plain, as_version=4)
    nb.cells[0].source += f"\n{line}"
    nbformat.write(nb, path)
    return path


def test_a_notebook_on_btad_sees_the_btad_folder_beside_the_data(reproduce, tmp_path):
    """Fetching BTAD after a run changes the digest of the notebook that reads it (btad_root), and only its."""
    plain = fake_notebook(tmp_path / "plain.ipynb")
    on_btad = with_parameter(plain, tmp_path / "on_btad.ipynb", "btad_root = None")
    data = tmp_path / "mvtec_ad"
    data.mkdir()
    assert reproduce.other_data(on_btad, data) == reproduce.other_data(plain, data) == ""
    (tmp_path / "btad" / "01").mkdir(parents=True)
    (tmp_path / "btad" / "01" / "a.png").write_bytes(b"1")
    fetched = reproduce.other_data(on_btad, data)
    assert fetched.startswith("\0btad:") and reproduce.other_data(plain, data) == ""
    (tmp_path / "btad" / "01" / "b.png").write_bytes(b"2")
    assert reproduce.other_data(on_btad, data) != fetched


def test_times_come_from_the_stamps_and_keep_earlier_rows(reproduce, tmp_path):
    previous = tmp_path / "reproduce_times.csv"
    previous.write_text(
        "notebook,profile,seconds\na,synthetic,10.0\nb,synthetic,20.0\nb,paper,99.0\ngone,synthetic,5.0\n"
    )
    stamps = {"b": {"digest": "d", "profile": "synthetic", "seconds": 3.0}}
    times = reproduce.merged_times(stamps, previous, "synthetic", ["a", "b"])
    assert times.to_dict("records") == [
        {"notebook": "b", "profile": "paper", "seconds": 99.0},  # another profile's row is kept as it was
        {"notebook": "a", "profile": "synthetic", "seconds": 10.0},
        {"notebook": "b", "profile": "synthetic", "seconds": 3.0},
    ]


def test_one_notebook_run_changes_only_its_own_time(reproduce, tmp_path):
    previous = tmp_path / "reproduce_times.csv"
    previous.write_text("notebook,profile,seconds\na,synthetic,10.0\nb,synthetic,20.0\n")
    stale = {
        "a": {"digest": "d", "profile": "synthetic", "seconds": 1.0},  # an earlier local run of a
        "b": {"digest": "d", "profile": "synthetic", "seconds": 3.0},
    }
    times = reproduce.merged_times(stale, previous, "synthetic", ["a", "b"], ran=["b"])
    assert times.to_dict("records") == [
        {"notebook": "a", "profile": "synthetic", "seconds": 10.0},
        {"notebook": "b", "profile": "synthetic", "seconds": 3.0},
    ]


def test_notebooks_write_to_a_scratch_folder_unless_reproduce_says_figures(reproduce):
    """A notebook run by hand writes under build/ (ignored by git); only make reproduce passes figures/."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        lines = [line for line in cell.source.splitlines() if line.startswith("figures_dir =")]
        if not lines:  # a notebook that writes no figure (the explorer) needs no folder, and writes nowhere
            code = "\n".join(c.source for c in cells if c.cell_type == "code")
            assert "publish(" not in code and "figures" not in code, path.name
            continue
        assert lines[0].split("#")[0].strip() == 'figures_dir = "../build/figures"', path.name
    assert reproduce.FIGURES == ROOT / "figures" and reproduce.STAMPS.is_relative_to(ROOT / "build")
    assert "/build/" in (ROOT / ".gitignore").read_text()


def test_only_declared_parameters_are_passed_and_exclusive_notebooks_are_marked(reproduce, tmp_path):
    plain = fake_notebook(tmp_path / "plain.ipynb")
    assert reproduce.declared(plain, {"profile": "paper", "scale": "full", "figures_dir": "f"}) == {
        "profile": "paper",
        "figures_dir": "f",
    }  # no `scale` in its parameters cell: not injected
    assert not reproduce.is_exclusive(plain)
    nb = nbformat.read(plain, as_version=4)
    nb.metadata["adlib"] = {"exclusive": True}
    nbformat.write(nb, tmp_path / "timed.ipynb")
    assert reproduce.is_exclusive(tmp_path / "timed.ipynb")


def test_last_times_prefer_the_stamps_over_the_committed_csv(reproduce, tmp_path):
    previous = tmp_path / "reproduce_times.csv"
    previous.write_text("notebook,profile,seconds\na,synthetic,10\nb,synthetic,20\nc,paper,99\n")
    got = reproduce.last_times({"a": {"seconds": 30.0}}, previous, "synthetic")
    assert got == {"a": 30.0, "b": 20.0}


def test_a_notebook_waits_for_the_ones_it_reuses_and_long_chains_start_first(reproduce, tmp_path):
    paths = {name: tmp_path / f"{name}.ipynb" for name in ("table1", "table4", "table7", "other")}
    for name, path in paths.items():
        fake_notebook(path)
    for name, before in (("table4", ["table1"]), ("table7", ["table4"])):
        nb = nbformat.read(paths[name], as_version=4)
        nb.metadata["adlib"] = {"after": before}
        nbformat.write(nb, paths[name])
    after = {name: reproduce.prerequisites(path) for name, path in paths.items()}
    assert after == {"table1": [], "table4": ["table1"], "table7": ["table4"], "other": []}
    priority = reproduce.schedule_priority(
        list(paths.values()), after, {"table1": 10, "table4": 5, "table7": 5, "other": 15}
    )
    assert priority == {"table1": 20, "table4": 10, "table7": 5, "other": 15}  # the chain beats the longest one


def test_a_notebook_on_loco_gets_the_loco_root_and_its_fingerprint(reproduce, tmp_path):
    """--loco-data reaches only the notebooks that declare `loco_root`, and a change in it re-runs only those."""
    plain = fake_notebook(tmp_path / "plain.ipynb")
    on_loco = with_parameter(plain, tmp_path / "on_loco.ipynb", 'loco_root = "../data/synthetic-loco"')
    loco = tmp_path / "synthetic-loco"
    (loco / "kit").mkdir(parents=True)
    (loco / "kit" / "a.png").write_bytes(b"1")
    common = {"profile": "synthetic", "loco_root": str(loco)}
    assert reproduce.declared(on_loco, common) == common and "loco_root" not in reproduce.declared(plain, common)
    before = reproduce.loco_data(reproduce.declared(on_loco, common))
    assert before.startswith("\0loco:") and reproduce.loco_data(reproduce.declared(plain, common)) == ""
    (loco / "kit" / "b.png").write_bytes(b"2")
    assert reproduce.loco_data(reproduce.declared(on_loco, common)) != before
    assert reproduce.loco_data({"loco_root": str(tmp_path / "absent")}) == ""


def test_a_notebook_on_mtd_sees_the_mtd_folder_beside_the_data_and_not_btad(reproduce, tmp_path):
    """Cloning MTD into data/mtd changes the digest of the notebook that reads it (mtd_root); BTAD does not."""
    on_mtd = with_parameter(fake_notebook(tmp_path / "plain.ipynb"), tmp_path / "on_mtd.ipynb", "mtd_root = None")
    data = tmp_path / "mvtec_ad"
    data.mkdir()
    (tmp_path / "btad" / "01").mkdir(parents=True)
    (tmp_path / "btad" / "01" / "a.png").write_bytes(b"1")
    assert reproduce.other_data(on_mtd, data) == ""
    (tmp_path / "mtd" / "mtd" / "MT_Free" / "Imgs").mkdir(parents=True)
    (tmp_path / "mtd" / "mtd" / "MT_Free" / "Imgs" / "a.jpg").write_bytes(b"1")
    assert reproduce.other_data(on_mtd, data).startswith("\0mtd:")
