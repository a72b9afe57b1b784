"""The explorer app (make explore, make test-explore): the app notebook and its preparation, the Voilà command
(parsed by Voilà itself), the port and the start-up, and how the browser test reads the console, page and log."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


explore = load("explore")
browser_test = load("test_explore")


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


def test_voila_command_serves_on_loopback_with_a_token_and_opens_no_browser():
    notebook = Path("/x/build/explore/explore.ipynb")
    app = parsed(explore.voila_command(notebook, 4567, "abc"))
    assert app.extra_args == [str(notebook)]
    assert (app.ip, app.port, app.port_retries, app.token, app.open_browser) == ("127.0.0.1", 4567, 0, "abc", False)
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager  # Voilà's kernel manager

    culling = AsyncMappingKernelManager(config=app.config)  # a closed page's kernel goes after a minute unused
    assert (culling.cull_idle_timeout, culling.cull_interval, culling.cull_connected) == (60, 30, False)
    shown = ("strip_sources", "theme", "progressive_rendering", "show_tracebacks")
    assert {name: app.config.VoilaConfiguration[name] for name in shown} == dict(
        zip(shown, (True, "light", True, True))
    )


def test_opens_a_browser_only_where_there_is_a_display():
    assert explore.opens_browser({}, "darwin") and explore.opens_browser({}, "win32")
    assert explore.opens_browser({"DISPLAY": ":0"}, "linux") and explore.opens_browser(
        {"WAYLAND_DISPLAY": "w"}, "linux"
    )
    assert not explore.opens_browser({"DISPLAY": ""}, "linux")  # over ssh: the address only


def test_free_port_skips_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert explore.free_port(port, tries=2) != port
        with pytest.raises(explore.ServeError, match=f"no free port in {port}-{port}"):
            explore.free_port(port, tries=1)


def test_wait_until_serving_returns_when_the_template_answers_and_fails_when_voila_exits(tmp_path):
    css = tmp_path / "voila" / "templates" / "lab" / "static" / "index.css"
    css.parent.mkdir(parents=True)
    css.write_text("body {}")
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with load("test_book").serve(tmp_path) as folder_url:  # the site test's static server
            url = folder_url.rstrip("/")
            explore.wait_until_serving(running, url, "log.txt", timeout=10)
            css.unlink()
            with pytest.raises(explore.ServeError, match=f"did not answer on {url} within 1 s: see log.txt"):
                explore.wait_until_serving(running, url, "log.txt", timeout=1)
    finally:
        running.kill()
        running.wait()
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    with pytest.raises(explore.ServeError, match="Voilà exited with status 3: see log.txt"):
        explore.wait_until_serving(exited, "http://127.0.0.1:9", "log.txt")


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
    assert browser_test.console_problems(entries, base) == [entries[3]["message"], entries[4]["message"]]


def test_page_problems_name_error_output_error_lines_and_missing_controls():
    good = {
        "labels": list(browser_test.CONTROLS),
        "status": "updated in 1.0 s",
        "text": "PatchCore on pill",
        "errors": [],
    }
    assert browser_test.page_problems(good) == []
    assert browser_test.page_problems({**good, "errors": ["ValueError: boom"]}) == ["error output: ValueError: boom"]
    assert browser_test.page_problems({**good, "text": "error: too much noise"}) == [
        "the panel says 'error: too much noise'"
    ]
    [missing] = browser_test.page_problems({**good, "labels": ["category", "method"]})
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
    assert browser_test.log_problems(log) == [
        "traceback in the server log: ValueError: no",
        "server log: [Voila] ERROR | Error at server while executing cell",
    ]
    assert browser_test.log_problems("[Voila] Kernel shutdown: 1\n") == []
