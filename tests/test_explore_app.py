"""The explorer app (make explore, make test-explore): the app notebook, its preparation, the Voilà command that
serves it (parsed by Voilà itself), and how the browser test reads console entries, the page and the server log."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


explore = load("explore")
test_explore = load("test_explore")


def test_app_notebook_runs_on_adlib_and_declares_what_is_injected(tmp_path):
    nb = nbformat.read(explore.APP, as_version=4)
    assert nb.metadata.kernelspec.name == "adlib"
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # committed clean
    assert "notebooks" not in explore.APP.parts  # not one of the reproduced notebooks
    [parameters] = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    declared = {line.split("=")[0].strip() for line in parameters.source.splitlines() if "=" in line}
    assert {"profile", "data_root", "quick"} <= declared

    prepared = nbformat.read(explore.prepare(tmp_path / "data", tmp_path / "out", "paper", quick=True), as_version=4)
    [injected] = [cell for cell in prepared.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert f'data_root = "{(tmp_path / "data").resolve()}"' in injected.source
    assert 'profile = "paper"' in injected.source and "quick = True" in injected.source
    assert not any(cell.get("outputs") for cell in prepared.cells if cell.cell_type == "code")  # not executed


def parsed(command: list[str]):
    """The Voilà application as `command`'s options configure it (nothing started)."""
    from voila.app import Voila

    assert command[:3] == [sys.executable, "-m", "voila"]
    app = Voila()
    app.parse_command_line(command[3:])
    return app


def test_voila_command_for_make_explore():
    notebook = Path("/x/build/explore/explore.ipynb")
    command = explore.voila_command(notebook)
    app = parsed(command)
    assert app.extra_args == [str(notebook)]
    assert (app.ip, app.port, app.port_retries, app.open_browser) == ("127.0.0.1", 8866, 50, True)
    config = app.config.VoilaConfiguration
    assert (config.strip_sources, config.theme, config.show_tracebacks) == (True, "light", True)
    assert app.token is None  # Voilà's default: no token


def test_voila_command_for_the_browser_test():
    command = explore.voila_command(Path("app.ipynb"), 4567, token="abc", open_browser=False, port_retries=0)
    app = parsed(command)
    assert (app.port, app.port_retries, app.open_browser, app.token) == (4567, 0, False, "abc")


def test_console_problems_let_pass_only_unreachable_hosts_and_voilas_refusals():
    base = "http://127.0.0.1:5000/?token=t"
    network = "Failed to load resource: net::ERR_NAME_NOT_RESOLVED"
    entries = [
        {"level": "SEVERE", "source": "network", "message": f"https://cdnjs.example.org/require.min.js - {network}"},
        {
            "level": "SEVERE",
            "source": "network",
            "message": "http://127.0.0.1:5000/voila/files/None - Failed to load resource: 403",
        },
        {"level": "WARNING", "source": "console-api", "message": "something odd"},
        {
            "level": "SEVERE",
            "source": "network",
            "message": "http://127.0.0.1:5000/voila/x.js - Failed to load resource: 404",
        },
        {"level": "SEVERE", "source": "javascript", "message": "http://127.0.0.1:5000/a.js 3:1 Uncaught TypeError: x"},
        {
            "level": "SEVERE",
            "source": "network",
            "message": "http://127.0.0.1:6000/voila/files/None - Failed to load resource",
        },
    ]
    assert test_explore.console_problems(entries, base) == [entries[3]["message"], entries[4]["message"]]


def test_page_problems_name_error_output_error_lines_and_missing_controls():
    good = {
        "labels": list(test_explore.CONTROLS),
        "status": "updated in 1.0 s",
        "text": "PatchCore on pill",
        "errors": [],
    }
    assert test_explore.page_problems(good) == []
    assert test_explore.page_problems({**good, "errors": ["ValueError: boom"]}) == ["error output: ValueError: boom"]
    assert test_explore.page_problems({**good, "text": "error: too much noise"}) == [
        "the panel says 'error: too much noise'"
    ]
    [missing] = test_explore.page_problems({**good, "labels": ["category", "method"]})
    assert missing.startswith("controls missing from the panel: ['coreset share',")


def test_log_problems_name_each_traceback_by_its_last_line_and_error_lines():
    log = "\n".join(
        [
            "[Voila] Kernel started: 1",
            "403 GET /voila/files/None (127.0.0.1): File not allowlisted",
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            "    raise ValueError('no')",
            "ValueError: no",
            "[Voila] ERROR | Error at server while executing cell",
        ]
    )
    assert test_explore.log_problems(log) == [
        "traceback in the server log: ValueError: no",
        "server log: [Voila] ERROR | Error at server while executing cell",
    ]
    assert test_explore.log_problems("[Voila] Kernel shutdown: 1\n") == []
