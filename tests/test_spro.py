"""sPRO / AU-sPRO against a slow, obvious computation (loop over thresholds, per region), and the LOCO
ground-truth reading it needs (defects_config.json, one region per mask file)."""

import json

import numpy as np
import pytest
from PIL import Image

from adlib.data.datasets import DataError, Preprocessing, load_category
from adlib.data.loco import DefectSpec, Region, category_regions, read_defects_config, saturation_area
from adlib.evaluation.spro import au_spro, spro_counts, spro_curve


def slow_au_spro(maps, regions, max_fpr):
    """Every distinct score as a threshold (positive: score >= t), per-region loop, then the area of the
    piecewise-linear curve segment by segment up to max_fpr."""
    thresholds = [np.inf] + sorted({float(v) for m in maps for v in np.ravel(m)}, reverse=True)
    points = []
    for t in thresholds:
        fp = neg = 0
        spros = []
        for m, image_regions in zip(maps, regions):
            positive = m >= t
            union = np.zeros(m.shape, bool)
            for r in image_regions:
                union |= r.mask
                spros.append(min(np.sum(positive & r.mask) / r.saturation, 1.0))
            fp += np.sum(positive & ~union)
            neg += np.sum(~union)
        points.append((fp / neg, float(np.mean(spros))))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= max_fpr:
            break
        if x1 <= max_fpr:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_cut = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            area += (max_fpr - x0) * (y0 + y_cut) / 2
    return area / max_fpr


def _region(mask, saturation=None):
    mask = np.asarray(mask, bool)
    return Region(mask=mask, saturation=int(mask.sum()) if saturation is None else saturation)


def _random_set(rng, n_images=4, side=7, levels=None):
    maps, regions = [], []
    for i in range(n_images):
        score = rng.random((side, side)) if levels is None else rng.integers(0, levels, (side, side)).astype(float)
        image_regions = []
        for _ in range(i % 3):  # image 0 good, others with 1 or 2 regions
            mask = np.zeros((side, side), bool)
            y, x = rng.integers(0, side - 2, 2)
            mask[y : y + rng.integers(1, 3), x : x + rng.integers(1, 4)] = True
            score = score + 0.6 * mask
            image_regions.append(_region(mask, int(rng.integers(1, mask.sum() + 1))))
        maps.append(score)
        regions.append(tuple(image_regions))
    return maps, regions


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_fpr", [0.05, 0.3, 1.0])
def test_au_spro_matches_slow_loop(seed, max_fpr):
    rng = np.random.default_rng(seed)
    maps, regions = _random_set(rng, levels=None if seed % 2 else 6)  # odd seeds: ties between scores
    assert au_spro(maps, regions, max_fpr) == pytest.approx(slow_au_spro(maps, regions, max_fpr), abs=1e-12)


def test_several_regions_in_one_image_count_separately():
    score = np.zeros((4, 6))
    score[0, 0:2] = 5.0  # region a fully above every other pixel
    a = np.zeros((4, 6), bool)
    a[0, 0:2] = True
    b = np.zeros((4, 6), bool)
    b[3, 4:6] = True  # region b scores 0, like the negatives
    curve = spro_curve([score], [(_region(a), _region(b))])
    assert curve.fpr[1] == 0.0 and curve.spro[1] == pytest.approx(0.5)  # a found, b not: mean over regions
    assert au_spro([score], [(_region(a), _region(b))], 1.0) == pytest.approx(
        slow_au_spro([score], [(_region(a), _region(b))], 1.0)
    )


def test_saturation_counts_a_region_as_found_early():
    # A 4-pixel region whose two best pixels beat every negative, the other two lose to all of them.
    score = np.array([[9.0, 8.0, 0.0, 0.0], [3.0, 2.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    mask = np.zeros(score.shape, bool)
    mask[0, :] = True
    saturated = au_spro([score], [(_region(mask, 2),)], 0.5)
    assert saturated == pytest.approx(1.0)  # 2 of 4 pixels = saturation area: sPRO is 1 at FPR 0
    plain = au_spro([score], [(_region(mask),)], 0.5)
    assert plain == pytest.approx(slow_au_spro([score], [(_region(mask),)], 0.5))
    assert plain < saturated
    # Without saturation the region sits at sPRO 1/2 over the whole FPR range below 1: area exactly 1/2.
    assert plain == pytest.approx(0.5)


def test_good_images_only_add_negatives():
    rng = np.random.default_rng(3)
    maps, regions = _random_set(rng)
    more = [*maps, rng.random((7, 7)) * 2]  # a good image: its pixels join the negatives, nothing else
    assert au_spro(more, [*regions, ()], 0.3) != au_spro(maps, regions, 0.3)
    assert au_spro(more, [*regions, ()], 0.3) == pytest.approx(slow_au_spro(more, [*regions, ()], 0.3))


def test_all_good_images_are_refused():
    with pytest.raises(ValueError, match="no defect region"):
        au_spro([np.zeros((3, 3)), np.ones((3, 3))], [(), ()])


def test_bad_inputs_have_clear_errors():
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    region = _region(mask)
    with pytest.raises(ValueError, match="2 anomaly maps but 1 region"):
        au_spro([np.zeros((3, 3))] * 2, [(region,)])
    with pytest.raises(ValueError, match="shape"):
        au_spro([np.zeros((4, 3))], [(region,)])
    with pytest.raises(ValueError, match="NaN"):
        au_spro([np.full((3, 3), np.nan)], [(region,)])
    with pytest.raises(ValueError, match="max_fpr"):
        au_spro([np.zeros((3, 3))], [(region,)], max_fpr=0)
    with pytest.raises(ValueError, match="every pixel"):
        au_spro([np.zeros((1, 1))], [(_region([[True]]),)])
    with pytest.raises(ValueError, match="saturation"):
        Region(mask=mask, saturation=2)  # larger than the 1-pixel area
    with pytest.raises(ValueError, match="saturation"):
        Region(mask=np.zeros((3, 3), bool), saturation=1)  # empty region


def test_saturation_area_relative_and_absolute():
    assert saturation_area(101, DefectSpec("x", 1, 0.5, True)) == 50  # floor
    assert saturation_area(101, DefectSpec("x", 1, 40, False)) == 40
    assert saturation_area(30, DefectSpec("x", 1, 40, False)) == 30  # capped at the area
    assert saturation_area(1000, DefectSpec("x", 1, 40, False), scale=0.5) == 10  # pixels scale with the area


def _write_loco(root, config, masks):
    """A tiny LOCO-layout category 'c': 2 train, 1 good test, one logical image with the given masks."""
    cat = root / "c"
    for sub in ("train/good", "test/good", "test/logical_anomalies", "ground_truth/logical_anomalies/000"):
        (cat / sub).mkdir(parents=True)
    blank = Image.fromarray(np.zeros((16, 16, 3), np.uint8))
    for path in ("train/good/000.png", "train/good/001.png", "test/good/000.png", "test/logical_anomalies/000.png"):
        blank.save(cat / path)
    for i, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8)).save(cat / f"ground_truth/logical_anomalies/000/{i:03d}.png")
    (cat / "defects_config.json").write_text(json.dumps(config))
    return cat


CONFIG = [
    {"defect_name": "missing", "pixel_value": 255, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "extra", "pixel_value": 254, "saturation_threshold": 3, "relative_saturation": False},
]


def test_loco_regions_one_per_mask_file_with_their_saturation(tmp_path):
    first, second = np.zeros((16, 16), int), np.zeros((16, 16), int)
    first[2:6, 2:6] = 255  # 16 pixels, relative 0.5 -> 8
    second[10:12, 10:15] = 254  # 10 pixels, absolute 3
    _write_loco(tmp_path, CONFIG, [first, second])
    category = load_category(tmp_path, "c")
    assert category.layout == "loco" and len(category.train) == 2 and len(category.test) == 2
    prep = Preprocessing(resize=16, crop=16)
    regions = category_regions(category, prep)
    good, anomalous = (regions[i] for i in sorted(range(2), key=lambda i: category.test[i].label))
    assert good == ()
    assert [(r.defect, int(r.mask.sum()), r.saturation) for r in anomalous] == [("missing", 16, 8), ("extra", 10, 3)]
    assert set(read_defects_config(category.root)) == {255, 254}


def test_loco_reading_refuses_bad_ground_truth(tmp_path):
    wrong = np.zeros((16, 16), int)
    wrong[2:4, 2:4] = 7  # a value not in the config
    category = load_category(_write_loco(tmp_path, CONFIG, [wrong]).parent, "c")
    with pytest.raises(DataError, match="000.png holds the non-zero values \\[7\\]"):
        category_regions(category, Preprocessing(resize=16, crop=16))
    (category.root / "defects_config.json").write_text(json.dumps([{**CONFIG[0], "saturation_threshold": 2.0}]))
    with pytest.raises(DataError, match="saturation_threshold must be a fraction"):
        read_defects_config(category.root)
    (category.root / "defects_config.json").write_text(json.dumps([{**CONFIG[1], "saturation_threshold": 3.5}]))
    with pytest.raises(DataError, match="positive integer number of pixels"):
        read_defects_config(category.root)
    (category.root / "defects_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="defects_config.json"):
        read_defects_config(category.root)


@pytest.mark.parametrize("seed", range(4))
def test_counts_of_any_multiset_match_the_slow_loop(seed):
    """SproCounts.au_spro with draw counts = the slow loop on the list of drawn images (repeats included)."""
    rng = np.random.default_rng(seed)
    maps, regions = _random_set(rng, n_images=5, levels=None if seed % 2 else 6)
    counts = spro_counts(maps, regions, max_fpr=0.3)  # few distinct scores: every one a threshold, exact
    assert counts.au_spro(np.ones(5), 0.3)[0] == pytest.approx(au_spro(maps, regions, 0.3), abs=1e-12)
    draws = [[1, 1, 2, 4, 4], [0, 1, 3, 3, 3], [2, 2, 2, 1, 0]]
    weights = np.stack([np.bincount(d, minlength=5) for d in draws])
    expected = [slow_au_spro([maps[i] for i in d], [regions[i] for i in d], 0.3) for d in draws]
    assert counts.au_spro(weights, 0.3) == pytest.approx(expected, abs=1e-12)


def test_binned_counts_come_close_to_the_exact_area():
    """With fewer thresholds than distinct scores the curve is sampled at quantiles of the defect-free scores."""
    rng = np.random.default_rng(7)
    maps, regions = _random_set(rng, n_images=6, side=40)
    exact = au_spro(maps, regions, 0.05)
    binned = spro_counts(maps, regions, max_fpr=0.05, n_thresholds=400)
    assert binned.thresholds.size <= 401
    assert binned.au_spro(np.ones(6), 0.05)[0] == pytest.approx(exact, abs=0.01)


def test_counts_refuse_bad_settings():
    maps, regions = _random_set(np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_thresholds"):
        spro_counts(maps, regions, n_thresholds=2)
    counts = spro_counts(maps, regions)
    with pytest.raises(ValueError, match="weights give 3 images"):
        counts.au_spro(np.ones(3))
    with pytest.raises(ValueError, match="without defect regions"):
        counts.au_spro(np.array([1.0, 0, 0, 0]))
