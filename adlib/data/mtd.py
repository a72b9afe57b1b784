"""The Magnetic Tile Defects layout (MTD, Huang et al. 2020), read as one category ``mtd``::

    <cat>/MT_Free/Imgs/<stem>.jpg               # defect-free (each with an empty <stem>.png beside it)
    <cat>/MT_<Defect>/Imgs/<stem>.jpg           # Blowhole, Break, Crack, Fray, Uneven
    <cat>/MT_<Defect>/Imgs/<stem>.png           # its mask, beside the image

MTD ships no train/test split. PatchCore (Sec. 4.1, following DifferNet) tests on 20 % of the defect-free
images and trains on the rest; which 20 % it does not say. Here: every fifth defect-free image in name
order (the 1st, 6th, 11th, ...), a fixed rule, so that every run and every machine splits alike. Every
defective image is a test image, its defect type the folder name without ``MT_``.
"""

from __future__ import annotations

from pathlib import Path

from adlib.data.datasets import DataError, Sample

NORMAL = "MT_Free"
TEST_EVERY = 5  # every fifth defect-free image is a test image: 20 %, as PatchCore and DifferNet
IMAGE = ".jpg"  # MTD's images; its .png files are the masks


def _jpgs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob(f"*{IMAGE}") if not p.name.startswith(".")), key=lambda p: p.name)


def _mask(image: Path) -> Path:
    mask = image.with_suffix(".png")
    if not mask.is_file():
        raise FileNotFoundError(f"no mask for the MTD image {image}: expected {mask} beside it")
    return mask


def mtd_samples(folder: Path) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """(train, test) of one MTD folder: 4 in 5 defect-free images train, the rest and every defect test."""
    free = _jpgs(folder / NORMAL / "Imgs")
    if len(free) < TEST_EVERY:
        raise DataError(
            f"{folder / NORMAL / 'Imgs'} holds {len(free)} {IMAGE} images: MTD needs at least {TEST_EVERY} defect-free "
            "images (one in five is tested). Is this the Magnetic-tile-defect-datasets folder?"
        )
    train = tuple(Sample(image=p, masks=(), label=0, defect="good") for i, p in enumerate(free) if i % TEST_EVERY)
    test = [Sample(image=p, masks=(), label=0, defect="good") for i, p in enumerate(free) if not i % TEST_EVERY]
    for kind in sorted(p for p in folder.glob("MT_*") if p.is_dir() and p.name != NORMAL):
        defect = kind.name.removeprefix("MT_")
        test += [Sample(image=p, masks=(_mask(p),), label=1, defect=defect) for p in _jpgs(kind / "Imgs")]
    if not any(sample.label for sample in test):
        raise DataError(f"{folder} has no defective images (MT_<Defect>/Imgs/*{IMAGE}): nothing to detect")
    return train, tuple(test)
