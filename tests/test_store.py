"""The result store: content-addressed keys over every input, checked entries, the scoring-code digest."""

import dataclasses
import hashlib
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from adlib.data.datasets import load_category
from adlib.data.protocol import Protocol, low_shot
from adlib.detectors.patchcore import PatchCoreSettings
from adlib.evaluation.jobs import Job, Runtime, execute
from adlib.evaluation.keys import evaluation_request
from adlib.evaluation.sibling import sibling
from adlib.evaluation.store import (
    FORMAT,
    SCORING_FOLDERS,
    ResultStore,
    StoredResult,
    data_fingerprint,
    default_store_root,
    scoring_digest,
    scoring_files,
)

ADLIB = Path(__file__).resolve().parent.parent / "adlib"


def a_result(n: int = 4, maps: bool = False) -> StoredResult:
    rng = np.random.default_rng(0)
    return StoredResult(
        metrics={"image_auroc": 0.75, "pixel_auroc": 1 / 3, "pro": float("nan"), "fit_seconds": 1.25},
        images=tuple(f"pill/test/crack/{i:03d}.png" for i in range(n)),
        labels=np.array([0, 1] * (n // 2), dtype=np.int64),
        defects=tuple("good" if i % 2 == 0 else "crack" for i in range(n)),
        scores=rng.random(n, dtype=np.float32),
        maps=rng.random((n, 8, 8)).astype(np.float16) if maps else None,
    )


def assert_same(a: StoredResult, b: StoredResult) -> None:
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        assert a.metrics[name] == b.metrics[name] or (np.isnan(a.metrics[name]) and np.isnan(b.metrics[name]))
    assert a.images == b.images and a.defects == b.defects
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.scores.dtype == b.scores.dtype
    np.testing.assert_array_equal(a.scores, b.scores)
    if a.maps is None:
        assert b.maps is None
    else:
        np.testing.assert_array_equal(a.maps, b.maps)


def test_put_then_get_round_trips_and_a_missing_key_is_a_miss(tmp_path):
    store = ResultStore(tmp_path, scoring_version="v")
    key = store.key({"anything": 1})
    assert store.get(key) is None
    result = a_result()
    store.put(key, {"anything": 1}, result)
    assert_same(store.get(key), result)
    assert store.path(key).is_file() and store.path(key).parent.name == key[:2]
    assert store.get(store.key({"anything": 2})) is None


def test_pixel_stats_round_trip_compactly(tmp_path):
    """An entry keeps the evaluation's PixelStats: the same histograms back, metrics of resamples equal."""
    from adlib.evaluation.pixel_stats import PixelStats

    rng = np.random.default_rng(3)
    result = a_result(n=6)
    masks = np.zeros((6, 16, 16), dtype=bool)
    masks[1::2, 3:9, 4:7] = True
    masks[5, 12:, 12:] = True  # a second region
    stats = PixelStats.from_maps(masks, masks + rng.normal(size=masks.shape), images=result.images, bins=200)
    store = ResultStore(tmp_path, scoring_version="v")
    key = store.key({"x": 1})
    store.put(key, {"x": 1}, dataclasses.replace(result, pixel_stats=stats))
    back = store.get(key).pixel_stats
    for name in ("edges", "normal", "regions", "region_image"):
        np.testing.assert_array_equal(getattr(back, name), getattr(stats, name))
    assert back.images == result.images
    weights = rng.integers(1, 3, size=(4, 6))
    np.testing.assert_array_equal(back.pro(weights), stats.pro(weights))
    with pytest.raises(ValueError, match="must name its images"):
        dataclasses.replace(result, pixel_stats=PixelStats.from_maps(masks, masks * 1.0))


def test_maps_are_kept_only_when_asked(tmp_path):
    plain, mapped = (
        ResultStore(tmp_path, scoring_version="v"),
        ResultStore(tmp_path, keep_maps=True, scoring_version="v"),
    )
    key = plain.key({"x": 1})
    plain.put(key, {"x": 1}, a_result(maps=True))
    assert plain.get(key).maps is None  # a store without maps writes none
    assert mapped.get(key) is None  # ... so a store that keeps maps misses and recomputes
    mapped.put(key, {"x": 1}, a_result(maps=True))
    assert_same(mapped.get(key), a_result(maps=True))
    assert mapped.get(key).maps.dtype == np.float16
    assert plain.get(key).maps is not None  # an entry with maps serves a store without them too


def test_the_key_is_the_sha256_of_a_canonical_json_and_ignores_dict_order(tmp_path):
    store = ResultStore(tmp_path, scoring_version="v1")
    a = store.key({"seed": 0, "settings": {"b": 1, "a": [1, 2]}})
    assert a == store.key({"settings": {"a": [1, 2], "b": 1}, "seed": 0})
    text = f'{{"format":{FORMAT},"request":{{"seed":0,"settings":{{"a":[1,2],"b":1}}}},"scoring":"v1"}}'
    assert a == hashlib.sha256(text.encode()).hexdigest()
    assert a != ResultStore(tmp_path, scoring_version="v2").key({"seed": 0, "settings": {"b": 1, "a": [1, 2]}})


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "other_key"])
def test_a_corrupt_or_partial_entry_is_reported_deleted_and_missed(tmp_path, damage):
    store = ResultStore(tmp_path, scoring_version="v")
    key, other = store.key({"x": 1}), store.key({"x": 2})
    store.put(key, {"x": 1}, a_result())
    store.put(other, {"x": 2}, a_result())
    path = store.path(key)
    data = path.read_bytes()
    if damage == "flip":
        data = data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = b""
    else:
        data = store.path(other).read_bytes()  # a whole, valid entry, but of another key
    path.write_bytes(data)
    with pytest.warns(UserWarning, match="broken"):
        assert store.get(key) is None
    assert not path.exists()
    assert store.get(other) is not None


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ADLIB_STORE_DIR", raising=False)
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    assert default_store_root() == tmp_path / "cache" / "results"
    assert default_store_root(tmp_path / "mine") == tmp_path / "mine" / "results"
    monkeypatch.delenv("ADLIB_CACHE_DIR")
    assert default_store_root() == Path.home() / ".cache" / "adlib" / "results"
    monkeypatch.setenv("ADLIB_STORE_DIR", str(tmp_path / "store"))
    assert default_store_root(tmp_path / "mine") == tmp_path / "store"
    assert ResultStore().root == tmp_path / "store"


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_scoring_digest_changes_with_scoring_code_only(tmp_path):
    package = tmp_path / "adlib"
    shutil.copytree(ADLIB, package, ignore=shutil.ignore_patterns("__pycache__", "paper_data"))
    before = scoring_digest(package)
    assert before == scoring_digest(ADLIB)  # a digest of the files, wherever they are
    for edited in [
        "companion/plotting.py",
        "companion/plots_patchcore.py",
        "companion/plots_softpatch.py",
        "evidence/verdicts.py",
        "evidence/paper.py",
        "evaluation/store.py",
        "evaluation/executors.py",
        "synth/writer.py",
        "style.py",
        "__main__.py",
    ]:
        _append(package / edited, "\n# a change that decides no score\n")
        assert scoring_digest(package) == before, edited
    changed = before
    for edited in [
        "bank/scoring.py",
        "data/protocol.py",
        "features/patches.py",
        "detectors/patchcore.py",
        "evaluation/metrics.py",
        "evaluation/experiment.py",
    ]:
        _append(package / edited, "\n# a scoring change\n")
        assert scoring_digest(package) != changed, edited
        changed = scoring_digest(package)
    (package / "bank" / "new_scorer.py").write_text("SCORE = 1\n")  # a module that did not exist is in by default
    assert scoring_digest(package) != changed


def test_every_scoring_folder_exists_and_is_digested():
    files = {path.relative_to(ADLIB).as_posix() for path in scoring_files(ADLIB)}
    for folder in SCORING_FOLDERS:
        assert any(name.startswith(folder + "/") for name in files), folder
    assert "bank/scoring.py" in files and "detectors/patchcore.py" in files
    assert "evaluation/store.py" not in files and not any(name.startswith("companion/") for name in files)


def test_the_store_pickles_without_this_process_digest(tmp_path):
    store = ResultStore(tmp_path)
    assert store.scoring_version == scoring_digest()
    copy = pickle.loads(pickle.dumps(store))
    assert copy._computed_version is None and copy.root == store.root  # the worker computes its own
    assert copy.scoring_version == store.scoring_version
    assert pickle.loads(pickle.dumps(ResultStore(tmp_path, scoring_version="v"))).scoring_version == "v"


# -- keys of real evaluations: every input changes the key -------------------------------------------


@pytest.fixture
def settings(small_features):
    return PatchCoreSettings(features=small_features, coreset_ratio=0.25, reweight_neighbours=1)


def make_job(root, base, base_store, **changes) -> Job:
    """A job on the tiny benchmark's pill; `changes` replace any field of the job, its protocol or its runtime
    (the seed reseeds the settings, where a job keeps it)."""
    protocol = {
        name: changes.pop(name) for name in ("noise_ratio", "noise_overlap", "shots", "test_images") if name in changes
    }
    runtime = {name: changes.pop(name) for name in ("device", "cache_dir", "backend", "store") if name in changes}
    settings = dataclasses.replace(changes.pop("settings", base), seed=changes.pop("seed", 0))
    values = dict(
        data_root=Path(root),
        category="pill",
        method="patchcore",
        settings=settings,
        protocol=Protocol(**protocol),
        runtime=Runtime(**{"device": "cpu", "store": base_store, "progress": False, **runtime}),
    )
    values.update(changes)
    return Job(**values)


def key_of(job: Job) -> str:
    category, _ = job.prepare()
    return job.runtime.store.key(evaluation_request(job, category))


def test_every_input_changes_the_key(tiny_benchmark, settings, tmp_path):
    store = ResultStore(tmp_path, scoring_version="v")
    base = key_of(make_job(tiny_benchmark, settings, store))
    assert base == key_of(make_job(tiny_benchmark, settings, store, method="another name"))  # a name is a label
    variants = {
        "category": dict(category="brick"),
        "setting": dict(settings=dataclasses.replace(settings, coreset_ratio=0.5)),
        "feature setting": dict(
            settings=dataclasses.replace(settings, features=dataclasses.replace(settings.features, patch_size=1))
        ),
        "seed": dict(seed=1),
        "noise ratio": dict(noise_ratio=0.34),
        "overlap": dict(noise_ratio=0.34, noise_overlap=True),
        "shots": dict(shots=6),  # all six training images: the same data, another protocol
        "test images": dict(test_images=5),
        "backend": dict(backend="torch"),
        "device": dict(device="meta"),
        "scoring version": dict(store=ResultStore(tmp_path, scoring_version="w")),
    }
    keys = {name: key_of(make_job(tiny_benchmark, settings, store, **change)) for name, change in variants.items()}
    keys["base"] = base
    assert len(set(keys.values())) == len(keys), keys


def test_the_data_fingerprint_is_the_content_of_the_images_involved(tiny_benchmark, settings, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_benchmark, moved)
    store = ResultStore(tmp_path / "store", scoring_version="v")
    job = make_job(moved, settings, store, shots=3)
    key = key_of(job)
    assert key == key_of(make_job(tiny_benchmark, settings, store, shots=3))  # another root, the same bytes
    drawn = {sample.image for sample in low_shot(load_category(moved, "pill"), 3, 0).train}
    unused = next(s.image for s in load_category(moved, "pill").train if s.image not in drawn)
    unused.write_bytes(unused.read_bytes() + b"\0")
    assert key_of(job) == key  # an image outside the draw does not count
    used = sorted(drawn)[0]
    used.write_bytes(used.read_bytes() + b"\0")
    assert key_of(job) != key
    key = key_of(job)
    mask = next(s.masks[0] for s in load_category(moved, "pill").test if s.label == 1)
    mask.write_bytes(mask.read_bytes() + b"\0")
    assert key_of(job) != key  # the masks decide the pixel metrics


def test_fingerprint_ignores_the_root_but_not_the_split(tiny_benchmark):
    pill = load_category(tiny_benchmark, "pill")
    root = pill.root.parent
    assert data_fingerprint(pill.train, pill.test, root) == data_fingerprint(list(pill.train), list(pill.test), root)
    assert data_fingerprint(pill.train, pill.test, root) != data_fingerprint(pill.train[1:], pill.test, root)
    assert data_fingerprint(pill.train, pill.test, root) != data_fingerprint(pill.test, pill.train, root)


def test_jobs_are_picklable(tiny_benchmark, settings, tmp_path):
    job = make_job(tiny_benchmark, settings, ResultStore(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pickle.loads(pickle.dumps(job)).settings == job.settings


# -- a noisy evaluation also stores its sibling under the other overlap setting ------------------------


@pytest.mark.parametrize("overlap", [False, True])
def test_a_noisy_job_stores_its_other_overlap_setting_as_a_fresh_run_computes_it(
    tiny_benchmark, settings, tmp_path, overlap
):
    store = ResultStore(tmp_path / "store", scoring_version="v")
    job = make_job(tiny_benchmark, settings, store, noise_ratio=0.34, noise_overlap=overlap)
    other = sibling(job)
    assert other is not None and other.protocol.noise_overlap is not overlap
    execute(job)
    derived = store.get(key_of(other))
    assert derived is not None, "the sibling was not stored"
    fresh = execute(
        dataclasses.replace(other, runtime=dataclasses.replace(other.runtime, store=None))
    ).stored  # computed on its own, no store
    assert derived.images == fresh.images and np.array_equal(derived.labels, fresh.labels)
    assert len(derived.images) != len(execute(job).stored.images)  # the moved images are tested under overlap only
    np.testing.assert_allclose(derived.scores, fresh.scores, rtol=1e-5, atol=1e-6)
    for metric in ("image_auroc", "pixel_auroc", "pro"):
        assert derived.metrics[metric] == pytest.approx(fresh.metrics[metric], abs=1e-6), metric
    weights = np.ones((1, len(fresh.images)))
    assert derived.pixel_stats.pixel_auroc(weights) == pytest.approx(fresh.pixel_stats.pixel_auroc(weights), abs=1e-6)


def test_no_sibling_without_noise_a_store_or_with_a_test_subset(tiny_benchmark, settings, tmp_path):
    store = ResultStore(tmp_path, scoring_version="v")
    assert sibling(make_job(tiny_benchmark, settings, store)) is None  # clean training set
    assert sibling(make_job(tiny_benchmark, settings, None, noise_ratio=0.34)) is None  # nothing keeps it
    assert sibling(make_job(tiny_benchmark, settings, store, noise_ratio=0.34, test_images=5)) is None  # own subsets
