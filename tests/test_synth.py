"""Tests of the embedded benchmark generator (adlib.synth) and its contact sheet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from adlib import synth
from adlib.synth.categories import spec_of
from adlib.synth.samples import image_rng, split_folder

# Small runs: a few images per folder, small images.
SMALL = dict(n_train=2, n_test_good=2, n_test_defect=5, size=96, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _images(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(root).items() if k.endswith(".png")}


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _scene(name: str, kind: str, index: int, seed: int, size: int):
    """The noise-free scene `make_sample` starts from (it draws the scene first from the image's rng)."""
    return spec_of(name).render(image_rng(seed, name, split_folder(kind), index), size)


# Surface defects paint inside the scene's support; these redraw the object (the mask is what changed)
# and may reach past its outline, by at most (pixels at size 128): a chip or a reprint its 1-pixel
# anti-aliased edge; worn threads their changed shading and drop shadow (4 % of the side); a bent tip
# its sideways swing (0.32 half-sides long x sin 20 degrees ~ 7 px; 8 % of the side).
GEOMETRIC = {"chip": 1.5, "faulty_imprint": 1.5, "thread_damage": 0.04 * 128, "tip": 0.08 * 128}


# ---- the category listing ----------------------------------------------------------------------


def test_categories_cover_textures_and_objects():
    kinds = [info.kind for info in synth.CATEGORIES.values()]
    assert len(synth.CATEGORIES) >= 8
    assert kinds.count("texture") >= 4 and kinds.count("object") >= 3
    assert set(kinds) == {"texture", "object"}
    for name, info in synth.CATEGORIES.items():
        assert info.mode in ("L", "RGB")
        assert info.description and info.sources
        assert synth.defect_types(name) == info.defect_types
        assert len(info.defect_types) >= 3, name
        assert len(set(info.defect_types)) == len(info.defect_types)
        assert "good" not in info.defect_types


@pytest.mark.parametrize("name", list(synth.CATEGORIES))
def test_default_counts_share_defects_over_all_types(name):
    counts = synth.defect_counts(name)  # the default configuration: 160 defective test images
    assert sum(counts.values()) == 160
    assert list(counts) == list(synth.defect_types(name))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert min(counts.values()) >= 160 // len(counts)


# ---- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path):
    a = synth.generate(tmp_path / "a", ["pill", "brick"], seed=3, **SMALL)
    b = synth.generate(tmp_path / "b", ["pill", "brick"], seed=3, **SMALL)
    files_a, files_b = _files(a), _files(b)
    assert len(files_a) > 20
    assert files_a == files_b


def test_other_seed_other_bytes(tmp_path):
    a = _images(synth.generate(tmp_path / "a", ["screw"], seed=0, **SMALL))
    b = _images(synth.generate(tmp_path / "b", ["screw"], seed=1, **SMALL))
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    # Not a few flipped pixels: other seeds give other crops, poses and defects.
    for seed_1 in (1, 2):
        for kind in ("train", "good", "tip"):
            diff = _mean_abs_diff(
                synth.make_sample("screw", kind, 0, seed=0, size=96).image,
                synth.make_sample("screw", kind, 0, seed=seed_1, size=96).image,
            )
            assert diff > 5, (seed_1, kind, diff)


@pytest.mark.parametrize("name", ["pill", "screw"])
def test_make_sample_is_a_pure_function(name):
    """The same arguments give identical arrays, called twice or after other samples were made."""
    kind = synth.defect_types(name)[0]
    first = synth.make_sample(name, kind, 3, seed=7, size=96)
    synth.make_sample(name, kind, 4, seed=7, size=96)  # other samples in between change nothing
    second = synth.make_sample(name, kind, 3, seed=7, size=96)
    for field in ("image", "mask", "clean"):
        assert np.array_equal(getattr(first, field), getattr(second, field)), field


def test_subset_and_order_do_not_change_a_category(tmp_path):
    alone = synth.generate(tmp_path / "alone", ["nut"], **SMALL)
    mixed = synth.generate(tmp_path / "mixed", ["wall", "nut", "grass"], **SMALL)
    reordered = synth.generate(tmp_path / "reordered", ["grass", "wall"], **SMALL)
    assert _images(alone / "nut") == _images(mixed / "nut")
    assert _images(mixed / "grass") == _images(reordered / "grass")
    assert _images(mixed / "wall") == _images(reordered / "wall")


def test_counts_do_not_change_existing_images(tmp_path):
    """Image i depends on (seed, category, split, i) only, not on how many images are asked for."""
    few = synth.generate(tmp_path / "few", ["roof"], **SMALL)
    more = synth.generate(tmp_path / "more", ["roof"], **{**SMALL, "n_train": 4})
    few_files, more_files = _images(few / "roof"), _images(more / "roof")
    assert few_files.items() <= more_files.items()
    assert len(more_files) == len(few_files) + 2


def test_good_samples_vary():
    a = synth.make_sample("pill", "train", 0, size=96).image
    b = synth.make_sample("pill", "train", 1, size=96).image
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize("name", list(synth.CATEGORIES))
def test_good_samples_vary_by_more_than_noise(name):
    """Two good images (other index, other split) differ by more than sensor noise (about 2-3 grey
    levels): another crop, pose, lighting and background; objects stay aligned (same place, same
    size up to a small jitter)."""
    train_0, train_1, good_0 = (
        synth.make_sample(name, kind, i, size=96).image for kind, i in (("train", 0), ("train", 1), ("good", 0))
    )
    assert _mean_abs_diff(train_0, train_1) > 5
    assert _mean_abs_diff(train_0, good_0) > 5
    if synth.CATEGORIES[name].kind == "object":
        supports = [_scene(name, "train", i, 0, 96).support for i in range(3)]
        for other in supports[1:]:
            iou = (supports[0] & other).sum() / (supports[0] | other).sum()
            assert iou > 0.5, (name, iou)
        assert all(0.05 < s.mean() < 0.5 for s in supports)


# ---- layout ------------------------------------------------------------------------------------


def test_layout_of_every_category(tmp_path):
    n_defect = max(len(info.defect_types) for info in synth.CATEGORIES.values())
    root = synth.generate(
        tmp_path / "all", None, n_train=2, n_test_good=1, n_test_defect=n_defect, size=96, progress=False
    )
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(synth.CATEGORIES)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folders left
    readme = (root / "README.md").read_text()
    assert "seed 0" in readme and synth.GENERATOR_VERSION in readme
    for name, info in synth.CATEGORIES.items():
        cat = root / name
        assert sorted(p.name for p in (cat / "train" / "good").iterdir()) == ["000.png", "001.png"]
        assert sorted(p.name for p in (cat / "test" / "good").iterdir()) == ["000.png"]
        assert sorted(p.name for p in (cat / "test").iterdir()) == sorted(("good",) + info.defect_types)
        assert sorted(p.name for p in (cat / "ground_truth").iterdir()) == sorted(info.defect_types)
        for image_path in (cat / "train" / "good").iterdir():
            image = Image.open(image_path)
            assert image.mode == info.mode and image.size == (96, 96)
        counts = synth.defect_counts(name, n_defect)
        for defect in info.defect_types:
            images = sorted((cat / "test" / defect).iterdir())
            masks = sorted((cat / "ground_truth" / defect).iterdir())
            assert len(images) == counts[defect] >= 1
            assert [m.name for m in masks] == [f"{p.stem}_mask.png" for p in images]
            for image_path, mask_path in zip(images, masks):
                image, mask = Image.open(image_path), Image.open(mask_path)
                assert image.mode == info.mode and mask.mode == "L"
                assert mask.size == image.size == (96, 96)
                values = np.unique(np.asarray(mask))
                assert set(values.tolist()) == {0, 255}, (name, defect, values)


@pytest.mark.parametrize("name", list(synth.CATEGORIES))
def test_masks_cover_exactly_the_altered_pixels(name):
    """Outside the mask a defective image equals the defect-free image it was made from; inside, the
    defect changed (most of) the pixels."""
    for defect in synth.defect_types(name):
        for index in range(2):
            sample = synth.make_sample(name, defect, index, seed=5, size=128)
            changed = sample.image != sample.clean
            if changed.ndim == 3:
                changed = changed.any(axis=2)
            inside = sample.mask > 0
            assert inside.any(), (name, defect, index)
            assert not changed[~inside].any(), (name, defect, index)
            assert changed[inside].mean() > 0.5, (name, defect, index, changed[inside].mean())
            # Small, local and visible: under 10 % of the image, a change of several grey levels.
            assert inside.mean() < 0.1, (name, defect, index, inside.mean())
            diff = np.abs(sample.image.astype(np.int16) - sample.clean.astype(np.int16))
            strength = (diff.max(axis=2) if diff.ndim == 3 else diff)[inside].mean()
            assert strength > 4, (name, defect, index, strength)
            # Where the defect was drawn: surface defects inside the scene's support (the texture, the
            # object's face); geometric ones at most their reach (pixels) outside the object.
            support = _scene(name, defect, index, 5, 128).support
            reach = GEOMETRIC.get(defect, 0.0)
            outside = ndimage.distance_transform_edt(~support)[inside].max()
            assert outside <= reach, (name, defect, index, outside, reach)


def test_good_samples_have_no_mask():
    sample = synth.make_sample("nut", "good", 0, size=96)
    assert sample.mask is None and sample.image is sample.clean


# ---- atomic writes -----------------------------------------------------------------------------


def test_interrupted_run_leaves_no_half_category(tmp_path, monkeypatch):
    root = synth.generate(tmp_path / "out", ["brick"], **SMALL)
    before = _files(root / "brick")
    real = synth.make_sample
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth.writer, "make_sample", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(root, ["gravel", "brick"], seed=9, **SMALL)
    assert not (root / "gravel").exists()  # never half-written
    assert _files(root / "brick") == before  # the complete old category is kept
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "brick"]  # no temporary folders


# ---- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"categories": ["brick", "carpet"]}, ValueError, ["carpet", "brick", "pill"]),
        ({"categories": "brick"}, TypeError, ["sequence"]),
        ({"categories": []}, ValueError, ["empty"]),
        ({"n_train": 0}, ValueError, ["n_train", "positive"]),
        ({"n_test_good": -1}, ValueError, ["n_test_good"]),
        ({"n_test_defect": 2}, ValueError, ["n_test_defect", "defect types"]),
        ({"n_train": 2.5}, ValueError, ["n_train"]),
        ({"size": 16}, ValueError, ["size"]),
        ({"seed": -1}, ValueError, ["seed"]),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, error, words):
    args = {**SMALL, "categories": ["brick"], **kwargs}
    with pytest.raises(error) as info:
        synth.generate(tmp_path / "out", **args)
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written before the arguments were checked


def test_unknown_kind_and_category():
    with pytest.raises(ValueError, match="crack"):
        synth.make_sample("pill", "dent", 0)
    with pytest.raises(ValueError, match="valid categories"):
        synth.defect_types("carpet")


# ---- command line and contact sheet ------------------------------------------------------------


def test_cli_help_lists_categories(capsys):
    with pytest.raises(SystemExit) as info:
        synth.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in synth.CATEGORIES:
        assert name in text
    for option in ("--out", "--seed", "--categories", "--overview"):
        assert option in text


def test_python_m_runs_the_command_line():
    """`python -m adlib.synth` (the package's __main__) is the command line."""
    result = subprocess.run(
        [sys.executable, "-m", "adlib.synth", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(synth.__file__).parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert "python -m adlib.synth" in result.stdout and "screw" in result.stdout


def test_cli_generates_and_draws_overview(tmp_path, capsys):
    out, sheet = tmp_path / "data", tmp_path / "fig" / "overview.png"
    code = synth.main(
        [
            "--out",
            str(out),
            "--categories",
            "pill",
            "grass",
            "--n-train",
            "1",
            "--n-test-good",
            "2",
            "--n-test-defect",
            "5",
            "--size",
            "96",
            "--no-progress",
            "--overview",
            str(sheet),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "grass", "pill"]
    image = Image.open(sheet)
    assert image.format == "PNG" and image.width > 400 and image.height > 200
    assert [p.name for p in sheet.parent.iterdir()] == ["overview.png"]  # no temporary file left


def test_cli_reports_bad_counts(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path), "--n-train", "0", "--no-progress"]) == 2
    assert "n_train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path), "--categories", "carpet"])
