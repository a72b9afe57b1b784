"""Runs every notebook's "Try it yourself" exercises in quick mode and fails when one is not as expected.

    python scripts/run_exercises.py --data data/synthetic-quick --out build/exercises [--workers 2] [--notebook NAME]

Each exercise is declared in its notebook as `EXERCISES = {number: {parameter: value}}` (literals; see
`adlib.companion.exercises`). Every (notebook, exercise) runs through papermill with `quick=True` and
`exercise=N`, with ADLIB_EXERCISE_STRICT=1 so that an unexpected outcome raises in the notebook's check
cell. A notebook on another data set runs on the layout fixture that `make test` uses (a `btad_root` parameter:
`prepare_notebooks.write_layout_fixture`, in `<out>/btad-fixture`; an `mtd_root` one: `write_mtd_fixture`, in
`<out>/mtd-fixture`): its checks are what holds there. The table (notebook, exercise, status, seconds) is
printed and written to `<out>/exercises.md`; the exit status is 1 when any exercise is not as expected or
fails to run, naming them.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "adlib"  # the project kernel (make setup installs it)
OUTCOME = re.compile(r"Exercise (\d+): (as expected|not as expected)")


def declared(notebook: Path) -> dict[int, dict[str, object]]:
    """The notebook's `EXERCISES` dict, read from its source without running it ({} when it has none)."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["EXERCISES"]:
                try:
                    return ast.literal_eval(node.value)
                except ValueError as error:
                    raise ValueError(f"{notebook.name}: EXERCISES must be literals ({error})") from None
    return {}


def outcome(executed: Path, exercise: int) -> tuple[str, str]:
    """('as expected', 'not as expected' or 'no check ran', the checks that differ), from the executed
    notebook's printed lines."""
    if not executed.is_file():
        return "no check ran", ""
    for cell in json.loads(executed.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", ""))
            for number, status in OUTCOME.findall(text):
                if int(number) == exercise:
                    return status, "; ".join(line.strip() for line in text.splitlines() if line.startswith("  NOT"))
    return "no check ran", ""


def run_one(job: tuple[str, int, dict[str, object], Path]) -> tuple[str, int, str, float, str]:
    """One exercise in quick mode: (notebook, exercise, status, seconds, error)."""
    import papermill

    name, exercise, parameters, out = job
    executed = out / f"{name}.exercise{exercise}.ipynb"
    os.environ["ADLIB_EXERCISE_STRICT"] = "1"
    start, error = time.perf_counter(), ""
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(executed),
            parameters={**parameters, "exercise": exercise},
            kernel_name=KERNEL,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
        )
    except Exception as failure:  # papermill's PapermillExecutionError carries the notebook's error
        error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1][:300]}"
    status, differs = outcome(executed, exercise)
    if error and status == "as expected":
        status = "failed after its check"
    return name, exercise, status, time.perf_counter() - start, differs or error


def main() -> None:
    from prepare_notebooks import other_data_parameters  # scripts/ is on sys.path when this file runs as a script

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="data root of quick mode, e.g. data/synthetic-quick")
    parser.add_argument(
        "--loco-data",
        type=Path,
        default=None,
        help="root in MVTec LOCO AD's layout for the notebooks with a `loco_root` parameter, e.g. "
        "data/synthetic-loco-quick",
    )
    parser.add_argument("--profile", default="synthetic", choices=["synthetic", "paper"])
    parser.add_argument("--out", type=Path, required=True, help="folder for the executed notebooks and the table")
    parser.add_argument("--workers", type=int, default=2, help="exercises run at a time (default 2)")
    parser.add_argument("--notebook", action="append", help="only this notebook (a stem; may be repeated)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.notebook or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    if missing := [n for n in names if not (NOTEBOOKS / f"{n}.ipynb").is_file()]:
        sys.exit(f"--notebook {' '.join(missing)}: no such notebook in {NOTEBOOKS}")
    jobs, written = [], {}
    for name in names:
        notebook = NOTEBOOKS / f"{name}.ipynb"
        exercises = sorted(declared(notebook))
        parameters = {"profile": args.profile, "data_root": str(args.data.resolve()), "quick": True}
        if exercises:  # the layout fixtures of make test, written once
            parameters |= other_data_parameters(notebook, args.data, args.loco_data, args.out, written)
        for exercise in exercises:
            figures = (args.out / "figures" / f"{name}.exercise{exercise}").resolve()
            jobs.append((name, exercise, {**parameters, "figures_dir": str(figures)}, args.out.resolve()))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = sorted(pool.map(run_one, jobs))
    rows = ["| notebook | exercise | status | seconds |", "|---|---|---|---|"]
    rows += [f"| {name} | {n} | {status} | {seconds:.0f} |" for name, n, status, seconds, _ in results]
    table = "\n".join(rows) + f"\n\n{len(results)} exercises in {time.perf_counter() - start:.0f} s\n"
    (args.out / "exercises.md").write_text(table)
    print(table)
    failed = [r for r in results if r[2] != "as expected"]
    for name, n, status, _, error in failed:
        print(f"{name} exercise {n}: {status}{': ' + error if error else ''}", file=sys.stderr)
    if failed:
        sys.exit(f"{len(failed)} of {len(results)} exercises not as expected (executed notebooks in {args.out})")


if __name__ == "__main__":
    main()
