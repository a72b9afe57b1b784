"""Shared fixtures: a tiny embedded benchmark, made once per test session."""

from pathlib import Path

import pytest

from adlib.data.datasets import Preprocessing
from adlib.features.extractor import FeatureSettings

TINY_CATEGORIES = ("brick", "pill")


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    """Two categories of the embedded benchmark at 64 px with a few images each (a few seconds)."""
    from adlib.synth import generate

    root = tmp_path_factory.mktemp("synthetic")
    return generate(root, TINY_CATEGORIES, seed=0, n_train=6, n_test_good=3, n_test_defect=6, size=64, progress=False)


@pytest.fixture
def small_features() -> FeatureSettings:
    """A fast, random-init ResNet-18 at 64 px: for tests of the plumbing, not of accuracy."""
    return FeatureSettings(
        backbone="resnet18", weights=None, preprocessing=Preprocessing(resize=64, crop=64), pre_dim=64, target_dim=64
    )
