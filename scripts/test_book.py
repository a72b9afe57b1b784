"""The course site in a real browser: opens every page of `make book`'s build in headless Chromium.

    python scripts/test_book.py --book build/book --out build/test-book     (make test-book)

Serves the built site on a free loopback port (Python's http.server, in this process) and drives Debian's
`chromium` through `chromedriver` (selenium, the set-up of scripts/test_lab.py). Every HTML page of the build
is opened (the search page with a query) and fails the test on:

- an error in the browser console (level SEVERE: a script error, a file that does not load);
- an image that does not load (naturalWidth 0) or a formula MathJax left untypeset;
- a link into the site to a file that is not in the build, or to an #anchor with no such id on its page;
- an empty page (no main text), or a search that finds nothing.

Every problem found is listed, then the test fails. Screenshots of the landing page, one notebook page and the
search results go to `<out>/*.png`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_PAGE = "notebooks/00_quickstart.html"  # the notebook page whose screenshot is kept
SEARCH_QUERY = "coreset"
MIN_TEXT = 200  # characters of main text below which a page counts as empty


sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/test_lab.py, also when this file is loaded by path
import test_lab  # noqa: E402  (its Chromium flags, `wait_for` and error type are shared)


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request."""

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path):
    """The folder over HTTP on 127.0.0.1 (yields the base URL, ending in /); stopped on leaving."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def site_pages(book: Path) -> list[str]:
    """The site's HTML pages, relative to its root, the landing page first (Sphinx's own folders left out)."""
    found = [p.relative_to(book).as_posix() for p in book.rglob("*.html")]
    found = [page for page in found if not page.startswith(("_static/", "_images/", "_downloads/", "_sources/"))]
    return sorted(found, key=lambda page: (page != "index.html", page))


@dataclass
class PageState:
    """What one page showed: its main text length, broken images, untypeset formulas, links and ids."""

    text: int
    broken_images: list[str]
    untypeset: int
    links: list[str]
    ids: set[str] = field(default_factory=set)


# All images loaded eagerly; the state read once every image has finished (loaded or failed).
STATE = """
const main = document.querySelector('article') || document.querySelector('main');
return {
  text: (main ? main.innerText : '').trim().length,
  pending: [...document.images].filter(img => !img.complete).map(img => img.src),
  broken: [...document.images].filter(img => img.complete && img.naturalWidth === 0).map(img => img.src),
  untypeset: [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container')).length,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id).concat(
        [...document.querySelectorAll('a[name]')].map(a => a.getAttribute('name'))),
};
"""


SETTLED = (
    "[...document.images].every(img => img.complete) && "
    "(!window.MathJax || [...document.querySelectorAll('.math')].every(m => m.querySelector('mjx-container')))"
)


def open_page(driver, url: str, timeout: float = 20) -> PageState:
    """Loads a page, waits (up to `timeout` s) for its images to finish and MathJax to typeset, reads its state."""
    driver.get(url)
    driver.execute_script("document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
    deadline = time.monotonic() + timeout
    while not driver.execute_script(f"return {SETTLED}") and time.monotonic() < deadline:
        time.sleep(0.2)
    state = driver.execute_script(STATE)
    pending = [f"{src} (still loading)" for src in state["pending"]]
    return PageState(state["text"], state["broken"] + pending, state["untypeset"], state["links"], set(state["ids"]))


def console_errors(driver) -> list[str]:
    """The browser console's SEVERE entries since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def link_problems(link: str, base: str, book: Path, ids: dict[str, set[str]]) -> str | None:
    """Why a link into the site is broken (None if it is fine, or leads outside the site): the file is not in
    the build, or the #anchor is not an id of the page it names (`ids`: page -> its ids, pages opened)."""
    if not link.startswith(base):
        return None
    parts = urlsplit(link)
    page = unquote(parts.path[len(urlsplit(base).path) :]) or "index.html"
    if page.endswith("/"):
        page += "index.html"
    if not (book / page).is_file():
        return f"{page}: no such file in the build"
    if parts.fragment and page.endswith(".html"):
        known = ids.get(page)
        if known is not None and unquote(parts.fragment) not in known:
            return f"{page}#{parts.fragment}: no such anchor"
    return None


def check_site(driver, base: str, book: Path, out: Path) -> list[str]:
    """Opens every page and returns the problems found (empty: all good); saves the screenshots."""
    problems, states = [], {}
    console_errors(driver)  # clear the log
    for page in site_pages(book):
        query = f"?q={SEARCH_QUERY}" if page == "search.html" else ""
        state = open_page(driver, base + page + query)
        if page == "search.html":
            test_lab.wait_for(driver, "document.querySelectorAll('#search-results li').length", 30, "search results")
            state = open_page(driver, driver.current_url)
            driver.save_screenshot(str(out / "search.png"))
        states[page] = state
        problems += [f"{page}: console error: {message}" for message in console_errors(driver)]
        problems += [f"{page}: image does not load: {src}" for src in state.broken_images]
        if state.untypeset:
            problems.append(f"{page}: {state.untypeset} formula(s) not typeset by MathJax")
        if state.text < MIN_TEXT:
            problems.append(f"{page}: empty page ({state.text} characters of main text)")
        if page == "index.html":
            driver.save_screenshot(str(out / "index.png"))
        if page == SCREENSHOT_PAGE:
            driver.execute_script("document.querySelector('article img')?.scrollIntoView({block: 'center'})")
            driver.save_screenshot(str(out / "notebook.png"))
    ids = {page: state.ids for page, state in states.items()}
    for page, state in states.items():
        for link in sorted(set(state.links)):
            problem = link_problems(link, base, book, ids)
            if problem:
                problems.append(f"{page}: broken link {problem}")
    print(f"{len(states)} pages opened, {sum(len(set(s.links)) for s in states.values())} links checked")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--book", type=Path, default=ROOT / "build" / "book", help="the built site (make book)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "test-book", help="screenshots")
    args = parser.parse_args()
    if not (args.book / "index.html").is_file():
        raise SystemExit(f"error: no {args.book / 'index.html'}: run `make book` first")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.png"):
        stale.unlink()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="adlib-test-book-") as scratch, serve(args.book) as base:
        with test_lab.chromium(Path(scratch), console_log=True) as driver:
            try:
                problems = check_site(driver, base, args.book.resolve(), args.out)
            except test_lab.LabTestError as error:
                driver.save_screenshot(str(args.out / "failure.png"))
                raise SystemExit(f"error: {error}") from None
    if problems:
        raise SystemExit("error: the course site has problems:\n  " + "\n  ".join(problems))
    print(f"no problems ({time.monotonic() - start:.0f} s); screenshots in {args.out}")


if __name__ == "__main__":
    main()
