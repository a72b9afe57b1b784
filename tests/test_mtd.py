"""The Magnetic Tile Defects layout (adlib.data.mtd) on a tiny folder: detection, the fixed split, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlib.data.datasets import DataError, Preprocessing, list_categories, load_category, read_mask


def write(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 40), value, dtype=np.uint8)).save(path)


@pytest.fixture
def mtd(tmp_path: Path) -> Path:
    """root/mtd: 11 defect-free images, 2 cracks and 1 blowhole, masks beside them, as the repository ships it."""
    folder = tmp_path / "root" / "mtd"
    for i in range(11):
        write(folder / "MT_Free" / "Imgs" / f"exp1_num_{i:03d}.jpg", 100)
        write(folder / "MT_Free" / "Imgs" / f"exp1_num_{i:03d}.png")
    for kind, n in (("MT_Crack", 2), ("MT_Blowhole", 1)):
        for i in range(n):
            write(folder / kind / "Imgs" / f"exp2_num_{i}.jpg", 100)
            write(folder / kind / "Imgs" / f"exp2_num_{i}.png", 255)
    return folder


def test_mtd_is_found_and_split_one_in_five(mtd):
    assert list_categories(mtd.parent) == ["mtd"]
    category = load_category(mtd.parent, "mtd")
    assert category.layout == "mtd"
    free = sorted(p.name for p in (mtd / "MT_Free" / "Imgs").glob("*.jpg"))
    tested = [free[i] for i in range(len(free)) if i % 5 == 0]  # the 1st, 6th, 11th: 3 of 11
    assert [s.image.name for s in category.test if not s.label] == tested
    assert sorted(s.image.name for s in category.train) == sorted(set(free) - set(tested))
    assert all(s.label == 0 and not s.masks for s in category.train)
    bad = [s for s in category.test if s.label]
    assert [(s.defect, s.image.name) for s in bad] == [
        ("Blowhole", "exp2_num_0.jpg"),
        ("Crack", "exp2_num_0.jpg"),
        ("Crack", "exp2_num_1.jpg"),
    ]
    assert all(s.masks == (s.image.with_suffix(".png"),) for s in bad)
    assert read_mask(bad[0], Preprocessing(resize=32, crop=32)).sum() > 0  # the mask beside it is read


def test_a_missing_mask_or_no_defects_is_named(mtd):
    (mtd / "MT_Crack" / "Imgs" / "exp2_num_1.png").unlink()
    with pytest.raises(FileNotFoundError, match="exp2_num_1.png beside it"):
        load_category(mtd.parent, "mtd")
    for kind in ("MT_Crack", "MT_Blowhole"):
        for path in (mtd / kind / "Imgs").iterdir():
            path.unlink()
    with pytest.raises(DataError, match="no defective images"):
        load_category(mtd.parent, "mtd")
