"""The registry's contract: every method of `adlib.detectors.registry.METHODS` fits, predicts, saves and loads,
runs from the CLI, the explorer and the grids (with a result-store key), and README's "add a method" recipe
adds one to all of them with one module and one registry line."""

import dataclasses
import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from adlib.__main__ import build_parser, main, settings_from_args
from adlib.companion.explore import Choice, Explorer, acting_controls, display_name
from adlib.data.datasets import load_category
from adlib.detectors import registry
from adlib.detectors.base import Detector, Settings
from adlib.detectors.options import Option
from adlib.detectors.registry import METHODS, Method, build_detector, command_line_options, method_settings
from adlib.evaluation.experiment import run_grid
from adlib.evaluation.store import ResultStore
from adlib.features.extractor import FeatureSettings

README = Path(__file__).resolve().parent.parent / "README.md"
QUALITY = ("image_auroc", "pixel_auroc", "pro")


@pytest.fixture
def features(small_features) -> FeatureSettings:
    """The small ResNet-18 with PatchCore's default aggregation, which PaDiM and SPADE (raw layer maps) insist on."""
    defaults = FeatureSettings()
    return dataclasses.replace(small_features, pre_dim=defaults.pre_dim, target_dim=defaults.target_dim)


def tiny_options(name: str, features: FeatureSettings) -> dict[str, object]:
    """The options a method needs on the tiny benchmark: LOF's k, where it acts, below the 6 training images."""
    try:
        method_settings(name, features, {"--lof-k": 3})
    except ValueError:
        return {}
    return {"--lof-k": 3}


def field_at(settings, path: str) -> object:
    for name in path.split("."):
        settings = getattr(settings, name)
    return settings


def check_fit_predict_save_load(name: str, features: FeatureSettings, category, tmp_path: Path) -> None:
    """Fit and predict through `build_detector`, then a model file that loads to the same scores and refuses
    another registry method's settings."""
    method, cache = METHODS[name], tmp_path / "cache"
    settings = method_settings(name, features, tiny_options(name, features))
    model = build_detector(settings, device="cpu", cache_dir=cache)
    assert type(model) is method.detector
    scores = model.fit(category.train, progress=False).predict(category.test, progress=False)
    crop = features.preprocessing.crop
    assert scores.image.shape == (len(category.test),) and scores.maps.shape == (len(category.test), crop, crop)
    assert torch.isfinite(scores.image).all() and torch.isfinite(scores.maps).all()

    path = tmp_path / f"{name}.pt"
    model.save(path)
    loaded = method.detector.load(path, settings, device="cpu", cache_dir=cache)
    again = loaded.predict(category.test, progress=False)
    assert torch.equal(again.image, scores.image) and torch.equal(again.maps, scores.maps)
    assert method.detector.load(path, device="cpu", cache_dir=cache).settings == settings  # settings from the file
    names = list(METHODS)
    other = names[(names.index(name) + 1) % len(names)]  # the next method (another type or other values)
    with pytest.raises(ValueError, match="other settings"):
        method.detector.load(path, method_settings(other, features, tiny_options(other, features)), device="cpu")


def check_runs_everywhere(name: str, features: FeatureSettings, root: Path, tmp_path: Path, monkeypatch) -> None:
    """A CLI run, an explorer choice, and a grid whose result-store key replays it."""
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ADLIB_STORE_DIR", str(tmp_path / "cli-store"))
    options = tiny_options(name, features)
    typed = [str(part) for flag, value in options.items() for part in (flag, value)]
    out = tmp_path / "out"
    argv = ["--categories", "pill", "--method", name, "--backbone", "resnet18", "--weights", "none", *typed]
    main(["run", "--data", str(root), *argv, "--out", str(out), "--heatmaps", "0", "--no-progress", "--device", "cpu"])
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {name} and set(results["metric"]) >= set(QUALITY)

    explorer = Explorer(root, features, device="cpu", cache_dir=tmp_path / "cache")
    exploration = explorer.update(Choice("pill", method=name, lof_k=3))
    assert exploration.settings == method_settings(name, features, options)
    assert exploration.summary().startswith(f"{display_name(name)} on pill")

    store = ResultStore(tmp_path / "store")
    grid = run_grid(root, ["pill"], {name: exploration.settings}, device="cpu", store=store, progress=False)
    (key,) = set(grid.images["result_key"])
    assert store.get(key) is not None
    replayed = run_grid(root, ["pill"], {name: exploration.settings}, device="cpu", store=store, progress=False)
    pd.testing.assert_frame_equal(replayed.metrics, grid.metrics)  # the timings too: read back by the same key


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_fits_predicts_saves_and_loads(name, features, tiny_benchmark, tmp_path):
    check_fit_predict_save_load(name, features, load_category(tiny_benchmark, "pill"), tmp_path)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_from_the_cli_the_explorer_and_the_grids(
    name, features, tiny_benchmark, tmp_path, monkeypatch
):
    check_runs_everywhere(name, features, tiny_benchmark, tmp_path, monkeypatch)


def test_an_option_left_at_its_default_changes_no_method(features):
    """What lets the CLI apply only the options a user changed: each default is what every reading method has."""
    for name, method in METHODS.items():
        preset = method.preset(features)
        for path, option in method.detector.options.items():
            if option.default is not None:
                assert field_at(preset, path) == option.field_value(option.default), (name, option.flag)


def test_a_flag_means_one_thing_to_every_method(monkeypatch):
    assert command_line_options()["--coreset"].default == 0.1

    class Clash(Detector):
        options = {"coreset": Option("--coreset", "another meaning", int, 3)}

    monkeypatch.setitem(METHODS, "clash", Method(lambda features: None, Clash, "a method with a clashing flag"))
    with pytest.raises(ValueError, match="--coreset of method 'clash' differs"):
        command_line_options()


def test_backend_reaches_the_detectors_with_a_memory_bank_search(features):
    patchcore = build_detector(method_settings("patchcore", features), device="cpu", backend="torch")
    assert patchcore.backend == "torch"
    denoised = build_detector(method_settings("image-denoised-patchcore", features), device="cpu", backend="torch")
    assert denoised.detector.backend == "torch" and denoised.filter.backend == "auto"
    with pytest.raises(ValueError, match="PaDiM has no memory-bank search"):
        build_detector(method_settings("padim", features), device="cpu", backend="torch")


def test_method_settings_name_the_flags_to_blame(features):
    with pytest.raises(ValueError, match=r"^--channels do\(es\) nothing with --method patchcore"):
        method_settings("patchcore", features, {"--channels": 5})
    with pytest.raises(ValueError, match="^--lof-k with --method softpatch-gaussian: --lof-k 3 only acts"):
        method_settings("softpatch-gaussian", features, {"--lof-k": 3, "--tau": 0.2})
    denoised = method_settings("image-denoised-patchcore", features, {"--coreset": 0.2, "--channels": 7})
    assert (denoised.detector.coreset_ratio, denoised.filter.channels) == (0.2, 7)
    assert method_settings("softpatch", features, {"--no-soft-weight": True}).soft_weight is False


def readme_recipe() -> tuple[str, str]:
    """The module and the registry line of README's "add a method" recipe (the code block after "A detector is
    a subclass of")."""
    block = re.search(r"A detector is a subclass of.*?```python\n(.*?)```", README.read_text(), flags=re.S).group(1)
    module, line = block.split("# adlib/detectors/registry.py, in METHODS:\n")
    return module, line.strip()


@pytest.fixture
def recipe_method(monkeypatch) -> str:
    """README's method, written as its module and registered by its line (for this test only)."""
    source, line = readme_recipe()
    module = types.ModuleType("mean_patch")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, f"{README} (the add-a-method recipe)", "exec"), module.__dict__)
    (name, method), *more = eval("{" + line + "}", {**vars(registry), **vars(module)}).items()
    assert not more and issubclass(method.detector, Detector) and issubclass(method.detector.settings_type, Settings)
    monkeypatch.setitem(METHODS, name, method)
    return name


def test_the_readme_recipe_adds_a_method_to_everything(
    recipe_method, features, tiny_benchmark, tmp_path, monkeypatch, capsys
):
    name = recipe_method
    check_fit_predict_save_load(name, features, load_category(tiny_benchmark, "pill"), tmp_path / "model")
    check_runs_everywhere(name, features, tiny_benchmark, tmp_path / "everywhere", monkeypatch)
    assert acting_controls(name, features) == () and display_name(name) == name  # no explorer edit needed

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--blur" in capsys.readouterr().out  # with its help text
    args = build_parser().parse_args(["run", "--method", name, "--blur", "2"])
    assert settings_from_args(args).blur_sigma == 2.0  # its own option
    with pytest.raises(ValueError, match=r"^--blur do\(es\) nothing with --method patchcore"):
        settings_from_args(build_parser().parse_args(["run", "--blur", "2"]))
