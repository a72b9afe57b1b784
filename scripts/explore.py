"""`make explore`: the interactive explorer alone in the browser, served by Voilà (no code, no JupyterLab).

    python scripts/explore.py --profile synthetic --data data/synthetic      (make explore)

Writes a copy of `app/explore.ipynb` (a title, how to use the panel, and the `ExplorerPanel` of
`notebooks/01_explore.ipynb`) with the profile and data root injected (papermill, not executed) to
`build/explore/`, then serves it with Voilà from this virtualenv on the notebook's `adlib` kernel, on
127.0.0.1 (port 8866, or the next free one), sources stripped, light theme, tracebacks shown, and opens
the page in the default browser. Ctrl-C stops the server and its kernel. `scripts/test_explore.py`
(make test-explore) starts the same server in headless Chromium.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "explore.ipynb"
KERNEL = "adlib"
PORT = 8866  # Voilà's own default


def prepare(data: Path, out: Path, profile: str = "synthetic", quick: bool = False) -> Path:
    """A copy of the app notebook in `out` with `profile`, `data` (absolute) and `quick` injected, not executed."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    notebook = out / APP.name
    parameters = {"profile": profile, "data_root": str(data.resolve()), "quick": quick}
    papermill.execute_notebook(
        str(APP), str(notebook), parameters=parameters, prepare_only=True, kernel_name=KERNEL, progress_bar=False
    )
    return notebook


def voila_command(
    notebook: Path, port: int = PORT, token: str | None = None, open_browser: bool = True, port_retries: int = 50
) -> list[str]:
    """The Voilà server for `notebook` on 127.0.0.1:`port` (or one of the next `port_retries` ports), run by
    this interpreter. `token`: required in the page's URL (None: none, Voilà's default, as its kernel runs
    no code the page sends); `open_browser`: open the page in the default browser once it serves."""
    command = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--Voila.ip=127.0.0.1",
        f"--port={port}",
        f"--Voila.port_retries={port_retries}",
        "--strip_sources=True",
        "--theme=light",
        "--progressive_rendering=True",
        "--show_tracebacks=True",  # a missing data root says so on the page, not "there was an error"
    ]
    if token is not None:
        command.append(f"--token={token}")
    if not open_browser:
        command.append("--no-browser")
    return command


def main() -> None:
    from adlib.data.datasets import DataError, require_categories

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the embedded benchmark (make data), or MVTec AD")
    parser.add_argument(
        "--profile",
        default="synthetic",
        choices=["synthetic", "paper"],
        help="the backbone (paper: WideResNet-50 on an MVTec AD --data)",
    )
    args = parser.parse_args()
    try:  # before the server starts: a wrong data root fails here, with what to do
        require_categories(args.data)
    except (FileNotFoundError, DataError) as error:
        raise SystemExit(f"error: {error} (make explore: `make data`, or DATA=folder)") from None
    notebook = prepare(args.data, ROOT / "build" / "explore", args.profile)
    command = voila_command(notebook)
    os.execv(command[0], command)  # Ctrl-C goes to Voilà, which stops its kernel


if __name__ == "__main__":
    main()
