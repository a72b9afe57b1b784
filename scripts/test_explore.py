"""The explorer app (`make explore`) in a real browser: Voilà serves it, headless Chromium checks what renders.

    python scripts/test_explore.py --data data/synthetic-quick --out build/test-explore     (make test-explore)

Prepares a quick-mode copy of `app/explore.ipynb` under `<out>/app` (`scripts/explore.py`, 20 training
images), starts Voilà from this virtualenv on it with `make explore`'s command (random token, no browser of
its own) on an ephemeral loopback port, with this checkout first on PYTHONPATH, and drives Debian's
`chromium` through `chromedriver` (`scripts/test_lab.py`'s set-up). It waits for the panel: its controls
and a first "updated in x s" status with the heatmap image; prints how long that took from the page's
request; moves the coreset share slider one step with the keyboard (as a student would: 10 % -> 9 %) and
waits for the next update. It fails on an error or stderr output in the page, an error line of the panel,
a browser console error (a resource that Voilà's template asks of a CDN is let pass: this check runs
offline, and the page must work without it), a traceback or ERROR line in Voilà's log, or a server that
does not stop by itself on SIGTERM. Screenshots go to `<out>/*.png`, the server's log to `<out>/voila.log`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/, also when this file is loaded by path
import explore  # noqa: E402  (the app notebook, its preparation and the Voilà command of make explore)
import test_lab  # noqa: E402  (Chromium, free ports, stopping a server, waiting for the page)

ROOT = Path(__file__).resolve().parent.parent
LabTestError = test_lab.LabTestError
# Voilà 0.5's own requests that its server refuses, whatever the notebook: the MathJax script of an unset
# (deprecated) `mathjax_url`, which it writes as "None", and the favicon.
VOILA_REFUSED = ("/voila/files/None", "/voila/files/favicon.ico")


def console_problems(entries: list[dict], base: str) -> list[str]:
    """The SEVERE browser console entries that count as failures: all, except a resource that did not load
    from another host (a CDN: no network here) and Voilà's own refused requests (`VOILA_REFUSED`)."""
    problems = []
    for entry in entries:
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        url = message.split(" ", 1)[0]
        if entry.get("source") == "network" and "Failed to load resource" in message:
            if urlsplit(url).netloc != urlsplit(base).netloc or urlsplit(url).path in VOILA_REFUSED:
                continue
        problems.append(message)
    return problems


def log_problems(log: str) -> list[str]:
    """The server log's tracebacks (Voilà's own errors, e.g. a template it cannot render), each by its
    last line, and its ERROR lines."""
    problems, lines = [], log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            rest = [later for later in lines[index + 1 :] if later and not later.startswith((" ", "\t"))]
            problems.append(f"traceback in the server log: {rest[0] if rest else line}")
        elif " ERROR " in line or line.startswith("[E "):
            problems.append(f"server log: {line[:300]}")
    return problems


@contextmanager
def voila(notebook: Path, log: Path, scratch: Path, timeout: float = 60):
    """Voilà on `notebook` at 127.0.0.1 (yields its page's URL, token included). Stopped on leaving with
    SIGTERM, which Voilà answers by shutting its kernels down; fails if it had to be killed."""
    port, token = test_lab.free_port(), secrets.token_hex(16)
    env = test_lab.server_environ(scratch)
    with open(log, "w") as log_file:
        command = explore.voila_command(notebook, port, token)
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            explore.wait_until_serving(server, url, str(log), timeout)
            yield f"{url}/?token={token}"
        finally:
            test_lab.stop(server)
    if server.returncode != 0:
        raise LabTestError(f"Voilà did not stop cleanly on SIGTERM (status {server.returncode}): see {log}")


# The panel as the page shows it: its controls by label, the status line, the result's text and image, and
# any error or stderr output of the notebook's cells.
STATE = """(() => {
  const labels = [...document.querySelectorAll('.jupyter-widgets .widget-label')]
    .map(label => label.textContent.trim()).filter(text => text && text !== '\\u200b');
  const status = [...document.querySelectorAll('.widget-html-content')].map(node => node.textContent.trim())
    .find(text => text.startsWith('updated in') || text.startsWith('fitting'));
  const output = document.querySelector('.widget-output');
  return {
    labels,
    status: status ?? null,
    text: output ? output.textContent.trim().slice(0, 500) : null,
    image: output?.querySelector('img')?.src ?? null,
    errors: [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-error')]
      .map(node => node.textContent.slice(0, 500)),
  };
})()"""
# Every text the status line takes, in order, from the moment this runs (the updates in between too).
WATCH_STATUS = """
window.adlibStatus = [];
const node = [...document.querySelectorAll('.widget-html-content')]
  .find(n => n.textContent.trim().startsWith('updated in'));
new MutationObserver(() => window.adlibStatus.push(node.textContent.trim()))
  .observe(node, {childList: true, subtree: true, characterData: true});
"""
CONTROLS = ("category", "method", "coreset share", "τ (drop share)", "LOF k", "noise ratio", "seed", "test images")


def page_problems(state: dict) -> list[str]:
    """What is wrong in the page's state: error output, an error line of the panel, missing controls."""
    problems = [f"error output: {text}" for text in state["errors"]]
    if state["text"] and state["text"].startswith("error:"):
        problems.append(f"the panel says {state['text']!r}")
    missing = [label for label in CONTROLS if label not in state["labels"]]
    if missing and state["status"]:
        problems.append(f"controls missing from the panel: {missing} (found {state['labels']})")
    return problems


def first_update(driver, url: str, timeout: float) -> tuple[dict, dict[str, float]]:
    """Opens the page and waits for the panel's first update with its image (or an error); returns the state
    and the seconds from the page's request until the title, the controls and that update first showed."""
    start, seen = time.monotonic(), {}
    driver.get(url)
    while time.monotonic() - start < timeout:
        state = driver.execute_script(f"return {STATE}")
        now = time.monotonic() - start
        if driver.execute_script("return document.querySelector('h1')?.offsetParent != null"):
            seen.setdefault("title", now)
        if state["labels"]:
            seen.setdefault("controls", now)
        if state["errors"] or ((state["status"] or "").startswith("updated in") and state["image"]):
            seen.setdefault("controls", now)
            return state, {**seen, "first update": now}
        time.sleep(0.2)
    raise LabTestError(f'timed out after {timeout:.0f} s waiting for the panel\'s first "updated in" status and image')


def move_slider(driver, timeout: float) -> dict:
    """Moves the coreset share slider one step left with the keyboard and waits for the next update."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sliders = [
        s
        for s in driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
        if s.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == "coreset share"
    ]
    if len(sliders) != 1:
        raise LabTestError(f"expected one 'coreset share' slider, found {len(sliders)}")
    before = sliders[0].find_element(By.CSS_SELECTOR, ".widget-readout").text.strip()
    image = driver.execute_script(f"return {STATE}")["image"]
    driver.execute_script(WATCH_STATUS)
    sliders[0].find_element(By.CSS_SELECTOR, ".noUi-handle").send_keys(Keys.ARROW_LEFT)
    # The status says "updated in" once the output is redrawn; the image must be a new one too.
    test_lab.wait_for(
        driver,
        "(s => s.some(t => t.startsWith('fitting')) && s.at(-1).startsWith('updated in'))(window.adlibStatus) && "
        f"(s => (s.image && s.image !== {json.dumps(image)}) || s.errors.length)({STATE})",
        timeout,
        f"a new update and heatmap after moving the coreset share from {before}",
    )
    after = sliders[0].find_element(By.CSS_SELECTOR, ".widget-readout").text.strip()
    if after == before:
        raise LabTestError(f"the coreset share slider still reads {before} after one step left")
    print(f"coreset share {before} -> {after}: {driver.execute_script('return window.adlibStatus').pop()}")
    return driver.execute_script(f"return {STATE}")


def check(driver, url: str, out: Path, log: Path, timeout: float) -> float:
    """The whole browser check; returns the seconds from the page's request to the first update."""
    state, seen = first_update(driver, url, timeout)
    driver.save_screenshot(str(out / "explore_first_update.png"))
    problems = page_problems(state) + console_problems(driver.get_log("browser"), url) + log_problems(log.read_text())
    if problems:
        raise LabTestError("the page has problems:\n  " + "\n  ".join(problems))
    shown = ", ".join(f"{what} {seconds:.1f} s" for what, seconds in seen.items())
    print(f"from the page's request: {shown} ({state['status']}; {state['text']})")
    state = move_slider(driver, timeout)
    driver.save_screenshot(str(out / "explore_after_slider.png"))
    problems = page_problems(state) + console_problems(driver.get_log("browser"), url) + log_problems(log.read_text())
    if problems:
        raise LabTestError("after moving the slider the page has problems:\n  " + "\n  ".join(problems))
    return seen["first update"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the quick benchmark (make data-quick), or MVTec AD")
    parser.add_argument(
        "--profile",
        default="synthetic",
        choices=["synthetic", "paper"],
        help="the backbone (paper: WideResNet-50 on an MVTec AD --data)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "test-explore", help="screenshots and log")
    parser.add_argument("--timeout", type=float, default=150, help="seconds for one update to show")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.png"):
        stale.unlink()
    start = time.monotonic()
    notebook = explore.prepare(args.data, args.out / "app", args.profile, quick=True)
    log = args.out / "voila.log"
    with tempfile.TemporaryDirectory(prefix="adlib-test-explore-") as scratch:
        scratch = Path(scratch)
        try:
            with voila(notebook, log, scratch) as url:
                with test_lab.chromium(scratch, console_log=True) as driver:
                    try:
                        check(driver, url, args.out, log, args.timeout)
                    except Exception:
                        driver.save_screenshot(str(args.out / "failure.png"))
                        raise
        except (LabTestError, explore.ServeError) as error:
            found = [problem for problem in log_problems(log.read_text()) if problem not in str(error)]
            raise SystemExit("\n  ".join([f"error: {error}", *found])) from None
    print(f"the server stopped; {time.monotonic() - start:.0f} s in all; screenshots in {args.out}")


if __name__ == "__main__":
    main()
