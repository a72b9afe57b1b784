"""`make explore`: the interactive explorer alone in the browser, served by Voilà (no code, no JupyterLab).

    python scripts/explore.py --profile synthetic --data data/synthetic      (make explore)

Writes a copy of `app/explore.ipynb` (a title, how to use the panel, and the `ExplorerPanel` of
`notebooks/01_explore.ipynb`) with the profile and data root injected (papermill, not executed) to
`build/explore/`, then serves it with Voilà from this virtualenv on the notebook's `adlib` kernel: on
127.0.0.1, port 8866 or the next free one, with a random token as JupyterLab has (Voilà has none by
default), sources stripped, light theme, cells shown as they finish, tracebacks shown. Once it answers,
prints the page's address and opens it in the default browser (where there is a display). Ctrl-C stops the server and its kernel.
`scripts/test_explore.py` (make test-explore) starts the same server for headless Chromium.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "explore.ipynb"
KERNEL = "adlib"
PORT = 8866  # Voilà's own default


class ServeError(RuntimeError):
    """Voilà did not start, or did not answer."""


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


def free_port(first: int = PORT, tries: int = 50) -> int:
    """The first of `tries` ports from `first` on that nothing listens on at 127.0.0.1."""
    for port in range(first, first + tries):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed one is free
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServeError(f"no free port in {first}-{first + tries - 1} on 127.0.0.1")


def voila_command(notebook: Path, port: int, token: str) -> list[str]:
    """The Voilà server for `notebook` on 127.0.0.1:`port` (that port or none) with `token`, run by this
    interpreter; it opens no browser (its own launch would leave the token out of the page's address)."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--Voila.ip=127.0.0.1",
        f"--port={port}",
        "--Voila.port_retries=0",
        f"--token={token}",
        "--no-browser",
        "--strip_sources=True",
        "--theme=light",
        "--progressive_rendering=True",  # the title, then the controls, while the first update runs
        "--show_tracebacks=True",  # a wrong data root says so on the page, not "there was an error"
        # A closed or reloaded page's kernel (Voilà 0.5's own shutdown of it is refused for want of an XSRF
        # token) goes once it has been idle and unconnected for a minute; an open page's kernel stays.
        "--MappingKernelManager.cull_idle_timeout=60",
        "--MappingKernelManager.cull_interval=30",
    ]


def wait_until_serving(server: subprocess.Popen, url: str, log: str, timeout: float = 60) -> None:
    """Waits until Voilà at `url` serves a static file of its template (no kernel starts for it); fails,
    naming `log` (where its output goes), if it exits first or does not answer within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise ServeError(f"Voilà exited with status {server.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"{url}/voila/templates/lab/static/index.css", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ServeError(f"Voilà did not answer on {url} within {timeout:.0f} s: see {log}") from None
            time.sleep(0.3)


def opens_browser(environ: dict[str, str], platform: str) -> bool:
    """Whether to open the page in the default browser: on macOS and Windows, and on Linux with a display
    (without one, Python's `webbrowser` would start a text browser in this terminal)."""
    return platform in ("darwin", "win32") or bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


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
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(voila_command(notebook, port, token))
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}", "the lines above")
        page = f"http://127.0.0.1:{port}/?token={token}"
        opening = opens_browser(dict(os.environ), sys.platform)
        print(
            f"\nThe explorer: {page}\n({'opening it in your browser; ' if opening else ''}Ctrl-C stops the server)\n",
            flush=True,
        )
        if opening:
            webbrowser.open(page)
        raise SystemExit(server.wait())
    except ServeError as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:  # Ctrl-C reached Voilà too, which stops its kernel and exits
        server.wait()


if __name__ == "__main__":
    main()
