"""Prepares every notebook for nbval in `quick` mode: papermill injects the parameters without running.

    python scripts/prepare_notebooks.py --data data/synthetic --out build/nbval [--profile paper]

nbval then executes the prepared copies (`make test`); their figures go to `<out>/figures`, so tests
never overwrite the committed figures. `--profile paper` with an MVTec AD root checks the paper
profile's code paths in quick mode (`make test PROFILE=paper DATA=/path/to/mvtec_anomaly_detection`).

A notebook on another data set (a `btad_root` parameter: `sp_table3_btad`) gets `<out>/btad-fixture`, a
tiny folder in BTAD's layout made of a few images of the first category under `--data` (`write_layout_fixture`):
it exercises the notebook's code path, it is not BTAD, and its `LAYOUT_FIXTURE.txt` says so, which the
notebook prints and puts in its caption. A notebook on MVTec LOCO AD's layout (a `loco_root` parameter:
`kc_table2_logical`) gets `--loco-data` (make test: the quick copy of the LOCO-style scenes, data/synthetic-loco-quick).
A notebook with an `mtd_root` parameter (`pc_table6_mtd`) gets `<out>/mtd-fixture`, a tiny folder in the layout of
Magnetic Tile Defects (`write_mtd_fixture`).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
from pathlib import Path

import papermill

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def write_layout_fixture(source: Path, out: Path, train: int = 10, good: int = 4, defective: int = 6) -> Path:
    """Writes `out/01` in BTAD's layout (train/ok, test/ok, test/ko, ground_truth/ko/<stem>.png) from the first
    `train` training, `good` good and `defective` defective test images (in path order, with their masks) of the
    first category under `source`, renamed 000.png, 001.png, ...; replaces an earlier `out`. Returns `out`."""
    from adlib.companion.notebook import LAYOUT_FIXTURE
    from adlib.data.datasets import load_category, require_categories

    name = require_categories(source)[0]
    category = load_category(source, name)
    normal = [s for s in category.test if not s.label][:good]
    bad = [s for s in category.test if s.label][:defective]
    if len(category.train) < train or len(normal) < good or len(bad) < defective:
        raise ValueError(
            f"{source / name}: a layout fixture needs {train} training, {good} good and {defective} defective "
            f"test images; it has {len(category.train)}, {len(normal)} and {len(bad)}. Point --data at the "
            "embedded benchmark (make data-quick)"
        )
    if out.exists():
        shutil.rmtree(out)
    groups = (("train/ok", category.train[:train]), ("test/ok", normal), ("test/ko", bad))
    for folder, samples in groups:
        (out / "01" / folder).mkdir(parents=True)
        for i, sample in enumerate(samples):
            shutil.copyfile(sample.image, out / "01" / folder / f"{i:03d}{sample.image.suffix}")
    (out / "01" / "ground_truth" / "ko").mkdir(parents=True)
    for i, sample in enumerate(bad):
        if len(sample.masks) != 1:
            raise ValueError(f"{sample.image}: a layout fixture takes images with one mask; it has {len(sample.masks)}")
        shutil.copyfile(sample.masks[0], out / "01" / "ground_truth" / "ko" / f"{i:03d}{sample.masks[0].suffix}")
    note = (
        f"a layout fixture, not BTAD: {train + good + defective} images of {name} from {source.name} in BTAD's "
        "folder layout, written by scripts/prepare_notebooks.py to test the notebook's code path\n"
    )
    (out / LAYOUT_FIXTURE).write_text(note, encoding="utf-8")
    return out


def write_mtd_fixture(source: Path, out: Path, free: int = 20, defective: int = 6) -> Path:
    """Writes `out/mtd` in MTD's layout (MT_Free/Imgs/<stem>.jpg; MT_<Defect>/Imgs/<stem>.jpg with its mask
    <stem>.png beside it) from the first `free` good images (training, then good test images) and `defective`
    defective test images (one of each defect type in turn, in path order) of the first category under
    `source`, converted to grey JPEG as MTD's; replaces an earlier `out`. Returns `out`."""
    from PIL import Image

    from adlib.companion.notebook import LAYOUT_FIXTURE
    from adlib.data.datasets import load_category, require_categories

    name = require_categories(source)[0]
    category = load_category(source, name)
    good = [*category.train, *(s for s in category.test if not s.label)][:free]
    kinds: dict[str, list] = {}
    for sample in (s for s in category.test if s.label):
        kinds.setdefault(sample.defect, []).append(sample)
    bad = [s for turn in itertools.zip_longest(*kinds.values()) for s in turn if s is not None][:defective]
    if len(good) < free or len(bad) < defective:
        raise ValueError(
            f"{source / name}: an MTD fixture needs {free} good and {defective} defective images; it has {len(good)} "
            f"and {len(bad)}. Point --data at the embedded benchmark (make data-quick)"
        )
    if out.exists():
        shutil.rmtree(out)
    groups = {"MT_Free": good}
    for sample in bad:
        groups.setdefault(f"MT_{sample.defect.capitalize()}", []).append(sample)
    for folder, samples in groups.items():
        (out / "mtd" / folder / "Imgs").mkdir(parents=True, exist_ok=True)
        for i, sample in enumerate(samples):
            stem = out / "mtd" / folder / "Imgs" / f"exp_{i:03d}"
            Image.open(sample.image).convert("L").save(stem.with_suffix(".jpg"), quality=95)
            if sample.label:
                Image.open(sample.masks[0]).convert("L").save(stem.with_suffix(".png"))
    note = (
        f"a layout fixture, not MTD: {free + defective} images of {name} from {source.name} in the folder layout of "
        "Magnetic Tile Defects, written by scripts/prepare_notebooks.py to test the notebook's code path\n"
    )
    (out / LAYOUT_FIXTURE).write_text(note, encoding="utf-8")
    return out


FIXTURES = {"btad": write_layout_fixture, "mtd": write_mtd_fixture}  # data sets a notebook reads beside DATA


def other_data_parameters(
    notebook: Path, data: Path, loco_data: Path | None, out: Path, written: dict[str, Path]
) -> dict[str, str]:
    """The notebook's roots of other data sets in quick mode: `<out>/<name>-fixture` (written once, kept in
    `written`) for a `btad_root` or `mtd_root` parameter, `loco_data` for a `loco_root` one (when given)."""
    from reproduce import declared  # scripts/ is on sys.path when this file runs as a script

    roots = {}
    for name, write in FIXTURES.items():
        if declared(notebook, {f"{name}_root": None}):
            written[name] = written.get(name) or write(data, (out / f"{name}-fixture").resolve())
            roots[f"{name}_root"] = str(written[name])
    if loco_data is not None and declared(notebook, {"loco_root": None}):
        roots["loco_root"] = str(loco_data.resolve())
    return roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="data root: the embedded benchmark, or MVTec AD")
    parser.add_argument(
        "--loco-data",
        type=Path,
        default=None,
        help="root in MVTec LOCO AD's layout for the notebooks with a `loco_root` parameter (make data-quick's "
        "data/synthetic-loco-quick); without it they keep their own default",
    )
    parser.add_argument("--profile", default="synthetic", choices=["synthetic", "paper"])
    parser.add_argument("--out", type=Path, required=True, help="folder for the prepared notebooks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.ipynb"):
        stale.unlink()
    parameters = {
        "profile": args.profile,
        "data_root": str(args.data.resolve()),
        "figures_dir": str((args.out / "figures").resolve()),
        "quick": True,
    }
    written: dict[str, Path] = {}
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        own = parameters | other_data_parameters(notebook, args.data, args.loco_data, args.out, written)
        papermill.execute_notebook(
            str(notebook), str(args.out / notebook.name), parameters=own, prepare_only=True, kernel_name="adlib"
        )


if __name__ == "__main__":
    main()
