"""adlib.companion.notebook: the set-up the companion notebooks share."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adlib.companion.notebook import judge, record, setup, verdict_table
from adlib.evidence.claims import Claim
from adlib.evidence.per_image import image_rows
from adlib.evidence.verdicts import assess
from adlib.features.extractor import profile_settings


def test_setup_gives_the_profiles_features_categories_and_seeds(tmp_path):
    for name in ("screw", "bottle"):
        (tmp_path / name / "train").mkdir(parents=True)
    (tmp_path / "not_a_category").mkdir()
    got = setup("synthetic", tmp_path, default_categories=["screw"], default_seeds=(0, 1, 2))
    assert got.features == profile_settings("synthetic") and got.categories == ["screw"] and got.seeds == [0, 1, 2]
    assert setup("synthetic", tmp_path).categories == ["bottle", "screw"]  # no default: every category
    assert setup("synthetic", tmp_path, default_categories=["screw"], scale="full").categories == ["bottle", "screw"]
    assert setup("synthetic", tmp_path, scale="full").seeds == [0, 1, 2, 3, 4]
    features, categories, seeds = setup("paper", tmp_path, default_categories=["screw"])
    assert features == profile_settings("paper") and categories == ["bottle", "screw"] and seeds == [0]
    features, categories, seeds = setup("paper", tmp_path, backbone="resnet18", categories=("screw",), seeds=[3, 4])
    assert features == dataclasses.replace(profile_settings("paper"), backbone="resnet18")
    assert (categories, seeds) == (["screw"], [3, 4])
    quick = setup("synthetic", tmp_path, default_seeds=(5, 6), quick=True)
    assert (quick.categories, quick.seeds) == (["bottle"], [5])


def test_setup_rejects_an_unknown_scale_and_an_empty_root(tmp_path):
    with pytest.raises(ValueError, match="scale='huge'"):
        setup("synthetic", tmp_path, scale="huge")
    with pytest.raises(ValueError, match="no categories"):
        setup("synthetic", tmp_path)


def test_judge_assesses_every_claim_in_order_and_tabulates_them():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 6 + [1] * 10)
    images = [f"i{k}" for k in range(labels.size)]
    table = pd.concat(
        [
            image_rows("pill", 0, "A", images, labels, labels * 3 + rng.normal(size=16)),
            image_rows("pill", 0, "B", images, labels, rng.normal(size=16)),
        ]
    )
    claims = [Claim.above("A beats B", "image_auroc", "A", "B"), Claim.above("B beats A", "image_auroc", "B", "A")]
    verdicts = judge(claims, table, n_resamples=300)
    assert [v.statement for v in verdicts] == ["A beats B", "B beats A"]
    assert [v.status for v in verdicts] == ["holds", "does not hold"]
    assert verdicts[0].estimate == assess(claims[0], table, n_resamples=300).estimate
    frame = verdict_table(verdicts)
    assert list(frame.columns) == ["claim", "metric", "status", "estimate", "low", "high", "paper", "n"]
    assert frame["n"].iloc[0] == "1 category x 1 seed x 16 test images (6 good / 10 defective)"
    with pytest.raises(ValueError, match="pixel_stats"):
        judge([Claim.above("maps", "pro", "A", "B")], table)
    with pytest.raises(ValueError, match="at least one claim"):
        judge([], table)


def test_judge_reads_pixel_claims_from_pixel_stats_and_image_claims_from_scores():
    from adlib.evaluation.pixel_stats import PixelStats

    rng = np.random.default_rng(1)
    labels = np.array([0] * 4 + [1] * 6)
    masks = np.zeros((10, 8, 8), dtype=bool)
    masks[4:, 2:5, 3:6] = True
    images = [f"i{k}" for k in range(10)]
    maps = {"A": masks + rng.normal(scale=0.5, size=masks.shape), "B": rng.normal(size=masks.shape)}
    table = pd.concat(
        [image_rows("pill", 0, m, images, labels, rng.normal(size=10)).assign(result_key=m) for m in "AB"]
    )
    stats = {m: PixelStats.from_maps(masks, maps[m], images=images) for m in "AB"}
    claims = [Claim.above("A localises", "pro", "A", "B"), Claim.above("A detects", "image_auroc", "A", "B")]
    pro_verdict, image_verdict = judge(claims, table, n_resamples=200, pixel_stats=stats)
    assert pro_verdict.status == "holds"
    assert pro_verdict.estimate == assess(claims[0], table, n_resamples=200, pixel_stats=stats).estimate
    assert image_verdict.estimate == assess(claims[1], table, n_resamples=200).estimate


def test_setup_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        setup("mvtec", tmp_path)


def test_record_puts_the_common_settings_first_and_lets_a_notebook_override_them(tmp_path):
    features = profile_settings("synthetic")
    settings = record("synthetic", tmp_path / "synthetic", features, ("pill",), (0, 1), False, tau=0.1)
    assert list(settings.items()) == [
        ("profile", "synthetic"),
        ("data_root", "synthetic"),
        ("backbone", "efficientnet-lite0"),
        ("categories", ["pill"]),
        ("seeds", [0, 1]),
        ("quick", False),
        ("tau", 0.1),
    ]
    assert record("synthetic", "x", features, [], [], True, backbone="none (pixels)")["backbone"] == "none (pixels)"


def test_other_dataset_takes_the_given_root_or_the_folder_beside_the_paper_data(tmp_path, capsys):
    from adlib.companion.notebook import other_dataset

    mvtec, btad = tmp_path / "mvtec_ad", tmp_path / "btad"
    mvtec.mkdir()
    assert other_dataset("btad", None, "paper", mvtec) is None  # not fetched yet: one line, no figure
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith("needs BTAD: python -m adlib fetch btad --to ")
    assert str(btad) in line and "make reproduce PROFILE=paper" in line
    btad.mkdir()
    assert other_dataset("btad", None, "paper", mvtec) == btad.resolve()
    assert other_dataset("btad", None, "synthetic", mvtec) is None  # the synthetic profile never looks beside
    assert capsys.readouterr().out.startswith("needs BTAD")
    assert other_dataset("btad", btad, "synthetic", mvtec) == btad  # a root given is used on any profile
    with pytest.raises(FileNotFoundError, match="btad_root=.*python -m adlib fetch btad"):
        other_dataset("btad", tmp_path / "missing", "paper", mvtec)


def test_fixture_note_reads_the_marker_and_is_none_for_real_data(tmp_path):
    from adlib.companion.notebook import LAYOUT_FIXTURE, fixture_note

    assert fixture_note(tmp_path) is None
    (tmp_path / LAYOUT_FIXTURE).write_text("made from grass, not BTAD\nmore\n", encoding="utf-8")
    assert fixture_note(tmp_path) == "made from grass, not BTAD"
    (tmp_path / LAYOUT_FIXTURE).write_text("", encoding="utf-8")
    assert fixture_note(tmp_path).startswith("a layout fixture")


def test_other_dataset_says_how_to_get_mtd_which_fetch_does_not_know(tmp_path, capsys):
    from adlib.companion.notebook import how_to_get, other_dataset
    from adlib.data.fetch import DATASETS

    assert "mtd" not in DATASETS  # no pinned archive: the line names the public repository instead
    assert how_to_get("btad", "data/btad") == "python -m adlib fetch btad --to data/btad"
    mvtec = tmp_path / "mvtec_ad"
    assert other_dataset("mtd", None, "paper", mvtec) is None
    line = capsys.readouterr().out
    expected = (
        f"needs MTD: git clone https://github.com/abin24/Magnetic-tile-defect-datasets..git {tmp_path / 'mtd'}/mtd"
    )
    assert line.count("\n") == 1 and line.startswith(expected)
    with pytest.raises(FileNotFoundError, match="mtd_root=.*git clone"):
        other_dataset("mtd", tmp_path / "missing", "paper", mvtec)


def test_skip_cells_without_empties_the_later_cells_but_those_naming_the_marker():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        run = lambda source: shell.run_cell(source).success  # noqa: E731
        assert run("from adlib.companion.notebook import skip_cells_without\nmtd_root = None")
        assert run("ran = skip_cells_without(None, 'mtd_root')") and shell.user_ns["ran"] is False
        assert run("later = 1 / 0")  # skipped: no error, nothing assigned
        assert "later" not in shell.user_ns
        assert run("mtd_root = '.'\nran = skip_cells_without(mtd_root, 'mtd_root')")  # names the marker: it runs
        assert shell.user_ns["ran"] is True and run("later = 2") and shell.user_ns["later"] == 2
    finally:
        shell.input_transformers_post[:] = [t for t in shell.input_transformers_post if type(t).__name__ != "_SkipCell"]
        InteractiveShell.clear_instance()
    from adlib.companion.notebook import skip_cells_without

    assert skip_cells_without(None, "x") is False and skip_cells_without(Path("."), "x") is True  # no IPython
