"""The LOCO-style benchmark (adlib.synth.loco): determinism, layout, loading with adlib.data, sPRO on it."""

import json

import numpy as np
import pytest
from PIL import Image

from adlib.data.datasets import Preprocessing, load_category, read_mask
from adlib.data.loco import category_regions
from adlib.evaluation.spro import au_spro
from adlib.synth.cli import main
from adlib.synth.loco import LOCO_CATEGORIES, SPLITS, defects_config, generate_loco, make_loco_sample

COUNTS = {
    "train/good": 2,
    "validation/good": 1,
    "test/good": 3,
    "test/logical_anomalies": 4,
    "test/structural_anomalies": 2,
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_loco(tmp_path_factory.mktemp("loco"), counts=COUNTS, progress=False)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_generations_give_identical_bytes(generated, tmp_path):
    again = generate_loco(tmp_path, counts=COUNTS, progress=False)
    assert _files(again) == _files(generated)
    other_seed = generate_loco(tmp_path / "s1", categories=["kit"], seed=1, counts=COUNTS, progress=False)
    assert _files(other_seed)["kit/train/good/000.png"] != _files(generated)["kit/train/good/000.png"]


def test_layout_is_loco(generated):
    files = _files(generated)
    for category in LOCO_CATEGORIES:
        for split in SPLITS:
            assert sum(name.startswith(f"{category}/{split}/") for name in files) == COUNTS[split]
        logical = [n for n in files if n.startswith(f"{category}/ground_truth/logical_anomalies/")]
        assert {n.split("/")[3] for n in logical} == {f"{i:03d}" for i in range(COUNTS["test/logical_anomalies"])}
        assert json.loads(files[f"{category}/defects_config.json"]) == defects_config(category)


def test_each_logical_kind_and_its_regions():
    # kit's logical kinds in order: missing, extra, wrong kind, swapped (two regions).
    kinds = [make_loco_sample("kit", "test/logical_anomalies", i).regions for i in range(4)]
    assert [[name for name, _ in regions] for regions in kinds] == [
        ["missing_part"],
        ["extra_part"],
        ["wrong_kind"],
        ["swapped", "swapped"],
    ]
    good = make_loco_sample("kit", "test/good", 0)
    missing = make_loco_sample("kit", "test/logical_anomalies", 0)
    ((_, hole),) = missing.regions
    # The missing part's region is part-sized (a nut or pill footprint), not a speck.
    assert 600 < hole.sum() < 3000
    assert good.regions == ()


def test_loader_reads_the_generated_category(generated):
    prep = Preprocessing(resize=256, crop=224)
    for name in LOCO_CATEGORIES:
        category = load_category(generated, name)
        assert category.layout == "loco"
        assert len(category.train) == COUNTS["train/good"]
        by_folder = {}
        for sample in category.test:
            by_folder.setdefault(sample.image.parent.name, []).append(sample)
        assert {k: len(v) for k, v in by_folder.items()} == {
            "good": 3,
            "logical_anomalies": 4,
            "structural_anomalies": 2,
        }
        regions = category_regions(category, prep)
        config = {e["defect_name"]: e for e in defects_config(name)}
        for sample, image_regions in zip(category.test, regions):
            assert len(image_regions) == len(sample.masks)
            union = np.zeros((224, 224), bool)
            for region in image_regions:
                entry = config[region.defect]
                area = int(region.mask.sum())
                if entry["relative_saturation"]:
                    assert region.saturation == max(1, int(entry["saturation_threshold"] * area))
                else:
                    assert region.saturation == min(entry["saturation_threshold"], area)
                union |= region.mask
            assert np.array_equal(union, read_mask(sample, prep).numpy())


def test_spro_end_to_end_on_a_generated_category(generated):
    prep = Preprocessing(resize=256, crop=224)
    category = load_category(generated, "kit")
    regions = category_regions(category, prep)
    masks = [read_mask(sample, prep).numpy() for sample in category.test]
    rng = np.random.default_rng(0)
    for folder in ("logical_anomalies", "structural_anomalies"):
        keep = [i for i, s in enumerate(category.test) if s.image.parent.name in ("good", folder)]
        perfect = au_spro([masks[i].astype(float) for i in keep], [regions[i] for i in keep])
        assert perfect == pytest.approx(1.0)
        noise = au_spro([rng.random((224, 224)) for _ in keep], [regions[i] for i in keep])
        assert 0.0 <= noise < 0.2  # random scores: about the FPR, far below 1


def test_cli_refuses_options_of_the_other_layout(tmp_path, capsys):
    assert main(["--layout", "loco", "--out", str(tmp_path), "--n-train", "3", "--no-progress"]) == 2
    assert "--n-train" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--categories", "kit", "--no-progress"]) == 2
    assert "--layout loco" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_quick_copy_is_a_prefix_of_the_default_root(tmp_path, capsys):
    """--quick writes QUICK_COUNTS images per split, each byte for byte the same-named image of a default root."""
    from adlib.synth.loco import QUICK_COUNTS

    assert (
        main(["--layout", "loco", "--out", str(tmp_path / "q"), "--categories", "rack", "--quick", "--no-progress"])
        == 0
    )
    for split, n in QUICK_COUNTS.items():
        files = sorted((tmp_path / "q" / "rack" / split).glob("*.png"))
        assert len(files) == n
    last = QUICK_COUNTS["test/logical_anomalies"] - 1
    image = make_loco_sample("rack", "test/logical_anomalies", last).image
    written = np.asarray(Image.open(tmp_path / "q" / "rack" / "test/logical_anomalies" / f"{last:03d}.png"))
    assert np.array_equal(written, image)
    assert main(["--out", str(tmp_path / "m"), "--quick", "--no-progress"]) == 2
    assert "--quick only acts with --layout loco" in capsys.readouterr().err
