"""adlib.notebook: the set-up the companion notebooks share."""

import dataclasses

import pytest

from adlib.features import profile_settings
from adlib.methods import softpatch_settings
from adlib.notebook import record, setup, softpatch_variants


def test_setup_gives_the_profiles_features_and_default_categories(tmp_path):
    for name in ("screw", "bottle"):
        (tmp_path / name / "train").mkdir(parents=True)
    (tmp_path / "not_a_category").mkdir()
    features, categories = setup("synthetic", tmp_path, synthetic_categories=["nut", "pill"])
    assert features == profile_settings("synthetic") and categories == ["nut", "pill"]
    features, categories = setup("paper", tmp_path)
    assert features == profile_settings("paper") and categories == ["bottle", "screw"]
    features, categories = setup("paper", tmp_path, backbone="resnet18", categories=("screw",))
    assert features == dataclasses.replace(profile_settings("paper"), backbone="resnet18") and categories == ["screw"]


def test_setup_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        setup("mvtec", tmp_path)


def test_record_puts_the_common_settings_first_and_lets_a_notebook_override_them(tmp_path):
    features = profile_settings("synthetic")
    settings = record("synthetic", tmp_path / "synthetic", features, ("pill",), (0, 1), False, tau=0.1)
    assert list(settings.items()) == [("profile", "synthetic"), ("data_root", "synthetic"),
                                      ("backbone", "efficientnet-lite0"), ("categories", ["pill"]),
                                      ("seeds", [0, 1]), ("quick", False), ("tau", 0.1)]
    assert record("synthetic", "x", features, [], [], True, backbone="none (pixels)")["backbone"] == "none (pixels)"


def test_softpatch_variants_share_coreset_and_tau_and_only_lof_takes_k():
    features = profile_settings("synthetic")
    variants = softpatch_variants(features, 0.05, 0.2, 4)
    assert list(variants) == ["SoftPatch-nearest", "SoftPatch-gaussian", "SoftPatch-lof"]
    for denoise in ("nearest", "gaussian"):
        expected = dataclasses.replace(softpatch_settings(features, denoise, 0.05), tau=0.2)
        assert variants[f"SoftPatch-{denoise}"] == expected
    assert variants["SoftPatch-lof"] == dataclasses.replace(softpatch_settings(features, "lof", 0.05), tau=0.2, lof_k=4)
