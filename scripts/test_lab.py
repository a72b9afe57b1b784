"""JupyterLab in a real browser: runs notebooks in headless Chromium and checks what renders.

    python scripts/test_lab.py --data data/synthetic --out build/test-lab     (make test-lab)

Prepares quick-mode copies of `00_quickstart` and `01_explore` under `<out>/notebooks` (papermill, as
`make test` does; their figures go to `<out>/figures`), starts JupyterLab from this virtualenv on a free
loopback port with a random token and this checkout first on PYTHONPATH, and drives Debian's `chromium`
through `chromedriver` (selenium). For each notebook: open it, check that it runs on the `adlib` kernel,
run all cells, and check that every code cell ran, that no cell shows an error or stderr output and that
images render. In the explorer it then picks another method and checks that the heatmap image changes.
Screenshots go to `<out>/*.png`, the server's log to `<out>/jupyterlab.log`. The server and the browser
stop at the end, on failure too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00_quickstart", "01_explore")
KERNEL = "adlib"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
)


class LabTestError(AssertionError):
    """A check in the browser failed."""


def prepare(data: Path, out: Path, profile: str = "synthetic") -> Path:
    """Quick-mode copies of the notebooks in `<out>/notebooks`, parameters injected, not executed."""
    import papermill

    folder = out / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    parameters = {
        "profile": profile,
        "data_root": str(data.resolve()),
        "figures_dir": str((out / "figures").resolve()),
        "quick": True,
    }
    for name in NOTEBOOKS:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / f"{name}.ipynb"),
            str(folder / f"{name}.ipynb"),
            parameters=parameters,
            prepare_only=True,
            kernel_name=KERNEL,
        )
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environ(scratch: Path) -> dict[str, str]:
    """The environment of a Jupyter server under test: this checkout first on PYTHONPATH, Jupyter's config and
    runtime files in `scratch` (nothing from the user's own set-up)."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
    )


@contextmanager
def jupyterlab(root_dir: Path, log: Path, scratch: Path, timeout: float = 90):
    """A JupyterLab server on 127.0.0.1 (yields its base URL and token); stopped on leaving, whatever happened."""
    port, token = free_port(), secrets.token_hex(16)
    news = scratch / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about Jupyter news?" over the page
    env = server_environ(scratch)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--expose-app-in-browser",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabServerApp.workspaces_dir={scratch / 'workspaces'}",
        f"--LabServerApp.user_settings_dir={scratch / 'settings'}",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI runs as root
        command.append("--allow-root")
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while True:
                if server.poll() is not None:
                    raise LabTestError(f"JupyterLab exited with status {server.returncode}: see {log}")
                try:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabTestError(f"JupyterLab did not answer on {url} within {timeout:.0f} s: see {log}")
                    time.sleep(0.5)
            yield url, token
        finally:
            stop(server)


def stop(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the process group (the server and its kernels), SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def chromium(scratch: Path, console_log: bool = False):
    """Headless Debian chromium through chromedriver (no Selenium Manager download); quit on leaving.
    `console_log`: keep the browser's console messages, for `driver.get_log("browser")`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise SystemExit("error: chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={scratch / 'chromium'}",):
        options.add_argument(flag)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float, what: str):
    """Polls a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.5)
    raise LabTestError(f"timed out after {timeout:.0f} s waiting for {what}")


# The notebook panel that JupyterLab shows, through the app it exposes (--expose-app-in-browser).
PANEL = "window.jupyterapp.shell.currentWidget"
STATE = f"""(() => {{
  const panel = {PANEL};
  const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
  const outputs = cells.flatMap(cell => cell.model.outputs.toJSON());
  return {{
    kernel: panel.sessionContext.session?.kernel?.name ?? null,
    status: panel.sessionContext.session?.kernel?.status ?? null,
    unrun: cells.filter(cell => cell.model.executionCount === null).length,
    busy: cells.filter(cell => cell.node.querySelector('.jp-InputPrompt')?.textContent.includes('*')).length,
    errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    stderr: [...panel.node.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
              .map(node => node.textContent.slice(0, 300)),
    images: panel.node.querySelectorAll('.jp-OutputArea-output img').length,
  }};
}})()"""


def run_notebook(driver, url: str, token: str, name: str, out: Path, timeout: float) -> dict:
    """Opens `name`, checks the kernel, runs all cells, checks the outputs; returns the final state."""
    driver.get(f"{url}/lab/tree/{name}.ipynb?token={token}")
    wait_for(
        driver,
        f"window.jupyterapp && {PANEL} && {PANEL}.context?.path === '{name}.ipynb' && "
        f"{PANEL}.sessionContext.session?.kernel?.status === 'idle'",
        90,
        f"{name} with an idle kernel",
    )
    state = driver.execute_script(f"return {STATE}")
    if state["kernel"] != KERNEL:
        raise LabTestError(f"{name} runs on kernel {state['kernel']!r}, not {KERNEL!r} (make setup installs it)")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # Done when every cell ran, or when an error stopped the run (the later cells then never run).
    wait_for(
        driver,
        f"(s => s.busy === 0 && s.status === 'idle' && (s.unrun === 0 || s.errors.length))({STATE})",
        timeout,
        f"all cells of {name} to run",
    )
    state = driver.execute_script(f"return {STATE}")
    driver.execute_script(f"{PANEL}.node.querySelector('.jp-OutputArea-output img')?.scrollIntoView()")
    driver.save_screenshot(str(out / f"{name}.png"))
    if state["errors"] or state["stderr"]:
        raise LabTestError(f"{name}: error output {state['errors']}, stderr {state['stderr']}")
    if state["images"] == 0:
        raise LabTestError(f"{name}: no image rendered in the outputs")
    return state


WIDGET_IMAGE = f"{PANEL}.node.querySelector('.widget-output img')?.src ?? null"


def move_widget(driver, out: Path, method: str = "PatchCore-random", timeout: float = 60) -> None:
    """In the explorer, chooses another method and checks that the heatmap image changes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    before = wait_for(driver, WIDGET_IMAGE, 30, "the explorer's heatmap image")
    panel = driver.find_element(By.CSS_SELECTOR, ".widget-hbox")
    driver.execute_script("arguments[0].scrollIntoView()", panel)
    driver.save_screenshot(str(out / "01_explore_widget_before.png"))
    dropdowns = [
        d
        for d in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown")
        if d.find_element(By.CSS_SELECTOR, "label").text.strip() == "method"
    ]
    if len(dropdowns) != 1:
        raise LabTestError(f"expected one 'method' dropdown in the explorer, found {len(dropdowns)}")
    Select(dropdowns[0].find_element(By.CSS_SELECTOR, "select")).select_by_visible_text(method)
    wait_for(
        driver,
        f"(src => src && src !== {json.dumps(before)})({WIDGET_IMAGE})",
        timeout,
        f"the heatmap image to change after choosing {method}",
    )
    status = driver.execute_script(f"return {PANEL}.node.querySelector('.widget-output').textContent")
    if not status.startswith(method):
        raise LabTestError(f"after choosing {method} the explorer says {status[:200]!r}")
    driver.save_screenshot(str(out / "01_explore_widget_after.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the embedded benchmark (make data), or MVTec AD")
    parser.add_argument(
        "--profile",
        default="synthetic",
        choices=["synthetic", "paper"],
        help="the notebooks' profile (paper: WideResNet-50 on an MVTec AD --data)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "test-lab", help="screenshots and log")
    parser.add_argument("--timeout", type=float, default=150, help="seconds for one notebook's cells to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.png"):
        stale.unlink()
    start = time.monotonic()
    folder = prepare(args.data, args.out, args.profile)
    with tempfile.TemporaryDirectory(prefix="adlib-test-lab-") as scratch:
        scratch = Path(scratch)
        try:
            with jupyterlab(folder, args.out / "jupyterlab.log", scratch) as (url, token), chromium(scratch) as driver:
                try:
                    for name in NOTEBOOKS:
                        state = run_notebook(driver, url, token, name, args.out, args.timeout)
                        print(
                            f"{name}: all cells ran on kernel {state['kernel']}, {state['images']} images, "
                            f"no errors ({time.monotonic() - start:.0f} s)",
                            flush=True,
                        )
                    move_widget(driver, args.out)
                    print(f"01_explore: the heatmap changed with the method ({time.monotonic() - start:.0f} s)")
                except Exception:
                    driver.save_screenshot(str(args.out / "failure.png"))
                    raise
        except LabTestError as error:
            raise SystemExit(f"error: {error}") from None
    print(f"screenshots: {', '.join(sorted(p.name for p in args.out.glob('*.png')))} in {args.out}")


if __name__ == "__main__":
    main()
