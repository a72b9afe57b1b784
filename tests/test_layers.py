"""The package layout: every package states its job, imports only layers below it, and stays small."""

import ast
from pathlib import Path

import pytest

ADLIB = Path(__file__).resolve().parent.parent / "adlib"

# Lowest first. A module may import its own package and packages of a lower rank; packages of one rank
# (data and synth's contact sheet aside) do not import each other. "" is the top-level helpers
# (`adlib/__init__.py`, `files.py`, `style.py`); "__main__" is the command line, which may use everything.
RANKS = {
    "": 0,
    "data": 1,
    "synth": 2,
    "features": 2,
    "bank": 2,
    "detectors": 3,
    "evaluation": 4,
    "evidence": 5,
    "companion": 6,
    "__main__": 7,
}
PACKAGES = [name for name in RANKS if name and name != "__main__"]


def package_of(path: Path) -> str:
    parts = path.relative_to(ADLIB).parts
    if len(parts) == 1:
        return "__main__" if parts[0] == "__main__.py" else ""
    return parts[0]


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(package, line) of every adlib import in a module, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = (
                [node.module + "." + alias.name for alias in node.names] if node.module == "adlib" else [node.module]
            )
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "adlib":
                continue
            top = parts[1] if len(parts) > 1 else ""
            found.add((top if top in RANKS else "", node.lineno))
    return found


MODULES = sorted(ADLIB.rglob("*.py"))


def upward_imports(path: Path, own: str) -> list[str]:
    """Each import of `path` (a module of package `own`) that is not of its own package or a lower rank."""
    return [
        f"line {line}: adlib.{package or '<top-level helper>'} (rank {RANKS[package]})"
        for package, line in sorted(imported_packages(path))
        if package != own and RANKS[package] >= RANKS[own]
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ADLIB).as_posix())
def test_a_module_imports_only_lower_layers(path):
    own = package_of(path)
    assert upward_imports(path, own) == [], f"{path.relative_to(ADLIB)} (package {own!r}) imports upward"


def test_the_layer_rule_catches_upward_and_sideways_imports(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        "import torch\nfrom adlib.data.datasets import Sample\n\n\ndef f():\n"
        "    from adlib.companion.plotting import show\n    import adlib.features.patches\n"
    )
    assert upward_imports(module, "bank") == ["line 6: adlib.companion (rank 6)", "line 7: adlib.features (rank 2)"]
    assert upward_imports(module, "companion") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_states_its_job(package):
    init = ADLIB / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 12, f"adlib/{package}/__init__.py needs a docstring saying its job"


def docstring_lines(function: ast.FunctionDef) -> int:
    """How many lines the function's docstring takes (0 without one): prose does not make a function long."""
    first = function.body[0]
    is_doc = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    return first.end_lineno - first.lineno + 1 if is_doc else 0


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ADLIB).as_posix())
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 450, f"{path.relative_to(ADLIB)} has {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1 - docstring_lines(node)
            assert length <= 60, f"{path.relative_to(ADLIB)}:{node.lineno} {node.name} has {length} lines of code"
