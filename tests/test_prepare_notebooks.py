"""scripts/prepare_notebooks.py's layout fixture: a tiny BTAD-layout folder that the loader reads back as BTAD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlib.companion.notebook import fixture_note
from adlib.data.datasets import load_category

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def prepare(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import prepare_notebooks

    return prepare_notebooks


def test_the_fixture_is_read_as_btad_with_the_source_images_and_masks(prepare, tiny_benchmark, tmp_path):
    out = prepare.write_layout_fixture(tiny_benchmark, tmp_path / "fixture", train=4, good=2, defective=3)
    category = load_category(out, "01")
    assert category.layout == "btad"
    good, bad = sum(not s.label for s in category.test), sum(s.label for s in category.test)
    assert (len(category.train), good, bad) == (4, 2, 3)
    source = load_category(tiny_benchmark, "brick")  # the first category, in path order
    bad = [s for s in source.test if s.label][:3]
    for copy, original in zip([s for s in category.test if s.label], bad, strict=True):
        assert copy.image.read_bytes() == original.image.read_bytes()
        assert np.array_equal(np.asarray(Image.open(copy.masks[0])), np.asarray(Image.open(original.masks[0])))
    assert category.train[0].image.read_bytes() == source.train[0].image.read_bytes()
    assert "not BTAD" in fixture_note(out)
    again = prepare.write_layout_fixture(tiny_benchmark, tmp_path / "fixture", train=2, good=1, defective=1)
    assert len(load_category(again, "01").train) == 2  # an earlier fixture is replaced, not added to


def test_too_small_a_source_is_refused_with_the_counts(prepare, tiny_benchmark, tmp_path):
    with pytest.raises(ValueError, match="needs 50 training.*it has 6"):
        prepare.write_layout_fixture(tiny_benchmark, tmp_path / "fixture", train=50)


def test_the_mtd_fixture_is_read_as_mtd_split_one_in_five_with_its_masks(prepare, tiny_benchmark, tmp_path):
    out = prepare.write_mtd_fixture(tiny_benchmark, tmp_path / "mtd-fixture", free=9, defective=6)
    category = load_category(out, "mtd")
    assert category.layout == "mtd" and "not MTD" in fixture_note(out)
    assert (len(category.train), sum(not s.label for s in category.test)) == (7, 2)  # 9 free: the 1st and 6th tested
    source = load_category(tiny_benchmark, "brick")
    kinds = sorted({s.defect for s in source.test if s.label})
    count = {kind: sum(s.defect == kind for s in source.test) for kind in kinds}
    turns = [kind.capitalize() for i in range(max(count.values())) for kind in kinds if count[kind] > i][:6]
    bad = [s for s in category.test if s.label]
    assert sorted(s.defect for s in bad) == sorted(turns)  # one of each defect type in turn
    first = next(s for s in source.test if s.label and s.defect == kinds[0])
    copy = next(s for s in bad if s.defect == kinds[0].capitalize() and s.image.name == "exp_000.jpg")
    assert Image.open(copy.image).mode == "L" and copy.image.suffix == ".jpg"
    original = np.asarray(Image.open(first.masks[0]).convert("L"))
    assert np.array_equal(np.asarray(Image.open(copy.masks[0])), original)  # the mask beside it, lossless
    with pytest.raises(ValueError, match="needs 50 good and 6 defective"):
        prepare.write_mtd_fixture(tiny_benchmark, tmp_path / "mtd-fixture", free=50, defective=6)
