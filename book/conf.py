"""Sphinx configuration of the course site: `make book` (scripts/book.py) copies it into the staged source.

Why Sphinx + myst-nb + sphinx-book-theme: all three are pure Python wheels, so the site builds offline in the
project virtualenv; myst-nb renders a notebook's stored outputs without running it (nb_execution_mode "off");
Sphinx brings its own client-side search and flags missing images and broken references as warnings, which
`sphinx-build -W` turns into errors. (Jupyter Book 2 / mystmd needs Node.js, Quarto a separate binary.)
MathJax is served from the build (the django-static-mathjax wheel: MathJax 3.2.2 files, no Django needed),
so the pages render their formulas offline too.
"""

project = "adlib"
author = "the adlib authors"
html_title = "adlib: a course on PatchCore, improved PatchCore and SoftPatch"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "_notebooks", "**.ipynb_checkpoints"]

# The notebooks as they are: stored outputs where `make reproduce` left them, never executed here.
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget manager from a CDN: widgets need a kernel (`make lab`), not a static page

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4  # GitHub-style anchors: figures/index.md and the notebooks link to `#<figure name>`

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,  # each notebook page links its own .ipynb (the committed one)
}
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-mml-chtml.js"  # under _static, staged by scripts/book.py
html_copy_source = False
html_show_sourcelink = False
html_use_index = False  # no API index: it would be an empty page
html_last_updated_fmt = None

# Warnings are errors (sphinx-build -W); only these are let through, each for a reason:
suppress_warnings = [
    "myst.header",  # figures/index.md jumps from "##" to "####" headings (written for GitHub, readable as is)
]
html_favicon = "favicon.svg"  # else the browser asks for /favicon.ico, a 404 in the console
html_context = {"default_mode": "light"}  # an unset mode is a console error of pydata-sphinx-theme's script


def setup(app) -> None:
    """MathJax on every page: the sidebar lists notebook titles with formulas ($k$, $\\tau$) on pages with none."""
    app.set_html_assets_policy("always")
