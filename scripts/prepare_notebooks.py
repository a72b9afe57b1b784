"""Prepares every notebook for nbval in `quick` mode: papermill injects the parameters without running.

    python scripts/prepare_notebooks.py --data data/synthetic --out build/nbval [--profile paper]

nbval then executes the prepared copies (`make test`); their figures go to `<out>/figures`, so tests
never overwrite the committed figures. `--profile paper` with an MVTec AD root checks the paper
profile's code paths in quick mode (`make test PROFILE=paper DATA=/path/to/mvtec_anomaly_detection`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import papermill

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="data root: the embedded benchmark, or MVTec AD")
    parser.add_argument("--profile", default="synthetic", choices=["synthetic", "paper"])
    parser.add_argument("--out", type=Path, required=True, help="folder for the prepared notebooks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.ipynb"):
        stale.unlink()
    parameters = {
        "profile": args.profile,
        "data_root": str(args.data.resolve()),
        "figures_dir": str((args.out / "figures").resolve()),
        "quick": True,
    }
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        papermill.execute_notebook(
            str(notebook), str(args.out / notebook.name), parameters=parameters, prepare_only=True, kernel_name="adlib"
        )


if __name__ == "__main__":
    main()
