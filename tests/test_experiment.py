"""experiment.run over several methods, seeds and training-set sizes: one tidy table, shared draws."""

import dataclasses

import pandas as pd
import pytest

from adlib.data import load_category, low_shot
from adlib.experiment import evaluate, run, summary
from adlib.features import FeatureExtractor
from adlib.methods import PatchCoreSettings


@pytest.fixture
def settings(small_features):
    return PatchCoreSettings(features=small_features, coreset_ratio=0.25, reweight_neighbours=1)


def test_run_is_tidy_over_methods_seeds_and_sizes(tiny_benchmark, settings, tmp_path):
    methods = {"patchcore": settings, "patchcore-random": dataclasses.replace(settings, sampler="random")}
    table = run(tiny_benchmark, ["pill"], methods, seeds=[0, 1], shots=[3, 6], cache_dir=tmp_path, progress=False)
    keys = ["category", "method", "seed", "shots", "metric"]
    assert not table.duplicated(keys).any()
    assert len(table) == 1 * 2 * 2 * 2 * 5  # categories x methods x seeds x sizes x metrics
    assert set(table["shots"]) == {3, 6} and set(table["seed"]) == {0, 1}
    assert set(table["sampler"]) == {"approximate_greedy", "random"}
    # every row equals a separate evaluation on the same seeded draw: the methods saw the same images
    row = table.query("method == 'patchcore-random' and seed == 1 and shots == 3 and metric == 'image_auroc'")
    category = low_shot(load_category(tiny_benchmark, "pill"), 3, 1)
    alone = evaluate(category, dataclasses.replace(methods["patchcore-random"], seed=1), cache_dir=tmp_path,
                     progress=False)
    assert row["value"].item() == pytest.approx(alone.metrics["image_auroc"])
    assert set(summary(table).index) == {"pill", "mean"}


def test_run_names_a_lone_settings_and_rejects_nothing_to_run(tiny_benchmark, settings, tmp_path):
    table = run(tiny_benchmark, ["brick"], settings, cache_dir=tmp_path, progress=False)
    assert set(table["method"]) == {"patchcore"}
    with pytest.raises(ValueError, match="methods is empty"):
        run(tiny_benchmark, ["brick"], {}, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="noise_overlap=True only acts"):
        run(tiny_benchmark, ["brick"], settings, noise_overlap=True, cache_dir=tmp_path, progress=False)


def test_shared_extractor_must_match(tiny_benchmark, settings, small_features, tmp_path):
    category = load_category(tiny_benchmark, "pill")
    other = FeatureExtractor(dataclasses.replace(small_features, patch_size=1), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="shared feature extractor"):
        evaluate(category, settings, extractor=other, progress=False)
    shared = FeatureExtractor(small_features, cache_dir=tmp_path)
    result = evaluate(category, settings, extractor=shared, progress=False)
    assert result.model.extractor is shared
    assert isinstance(pd.Series(result.metrics)["image_auroc"], float)


def test_run_cache_dir_reaches_every_extractor(tiny_benchmark, settings, small_features, tmp_path, monkeypatch):
    """The image-denoising filter builds its own extractor: it must use the run's cache too."""
    from adlib.image_denoise import ImageDenoisedSettings
    from adlib.padim import PADIM_LAYERS, PaDiMSettings

    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "default"))
    padim = PaDiMSettings(features=dataclasses.replace(small_features, layers=PADIM_LAYERS, pre_dim=1024,
                                                       target_dim=1024), channels=16)
    denoised = ImageDenoisedSettings(filter=padim, detector=settings, drop=0.34)
    run(tiny_benchmark, ["pill"], denoised, cache_dir=tmp_path / "mine", progress=False)
    assert not (tmp_path / "default").exists()
    assert list((tmp_path / "mine").rglob("*.layer1.pt"))  # the filter's layer1 maps went to the run's cache
