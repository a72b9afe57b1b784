"""The browser-free parts of scripts/test_book.py (make test-book): which pages it opens, which links it flags."""

from __future__ import annotations

import importlib.util
import sys
import urllib.request
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test_book.py"
spec = importlib.util.spec_from_file_location("book_check", SCRIPT)
check = importlib.util.module_from_spec(spec)
sys.modules["book_check"] = check  # dataclasses look their module up there
spec.loader.exec_module(check)

BASE = "http://127.0.0.1:8000/"


def site(tmp_path: Path) -> Path:
    for page in ("index.html", "search.html", "notebooks/a b.html", "_static/x.html", "figures/a.png"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("<p id='top'>hello</p>")
    return tmp_path


def test_site_pages_lists_the_html_pages_landing_page_first(tmp_path: Path) -> None:
    assert check.site_pages(site(tmp_path)) == ["index.html", "notebooks/a b.html", "search.html"]


def test_link_problems(tmp_path: Path) -> None:
    book = site(tmp_path)
    ids = {"index.html": {"top"}, "notebooks/a b.html": {"top", "fit-and-score"}}

    def problem(link: str) -> str | None:
        return check.link_problems(link, BASE, book, ids)

    assert problem(BASE) is None and problem(BASE + "index.html#top") is None
    assert problem(BASE + "notebooks/a%20b.html#fit-and-score") is None
    assert problem(BASE + "figures/a.png") is None
    assert problem("https://example.org/missing.html") is None  # outside the site: not checked
    assert problem(BASE + "notebooks/missing.html") == "notebooks/missing.html: no such file in the build"
    assert problem(BASE + "index.html#nowhere") == "index.html#nowhere: no such anchor"
    assert problem(BASE + "figures/a.png#x") is None  # an anchor into a non-HTML file is not checked
    assert problem(BASE + "notebooks/") == "notebooks/index.html: no such file in the build"


def test_serve_serves_the_folder_and_stops(tmp_path: Path) -> None:
    book = site(tmp_path)
    with check.serve(book) as base:
        with urllib.request.urlopen(base + "notebooks/a%20b.html", timeout=5) as answer:
            assert answer.read() == b"<p id='top'>hello</p>"
