"""The explorer behind notebooks/01_explore.ipynb: settings per method, updates, figure, widget panel."""

import dataclasses

import pytest

from adlib.companion.explore import (
    Choice,
    Explorer,
    acting_controls,
    display_name,
    heatmap_grid,
    image_name,
    method_settings,
)
from adlib.companion.explore_panel import SLOW_METHODS, ExplorerPanel, fitting_message
from adlib.data.datasets import load_category
from adlib.data.protocol import add_training_noise
from adlib.detectors.padim import PaDiMSettings
from adlib.detectors.patchcore import PatchCoreSettings
from adlib.detectors.registry import METHODS
from adlib.evaluation.evaluate import evaluate
from adlib.features.extractor import FeatureSettings


@pytest.fixture
def features(small_features) -> FeatureSettings:
    """The small ResNet-18 with PatchCore's default aggregation, which PaDiM (raw layer maps) insists on."""
    return dataclasses.replace(
        small_features, pre_dim=FeatureSettings().pre_dim, target_dim=FeatureSettings().target_dim
    )


def test_method_settings_follow_the_papers_presets(features):
    made = {
        method: method_settings(method, features, coreset_ratio=0.2, tau=0.3, lof_k=9, seed=4) for method in METHODS
    }
    assert made["patchcore"] == PatchCoreSettings(features=features, coreset_ratio=0.2, seed=4)
    assert made["patchcore-random"].sampler == "random"
    improved = made["improved-patchcore"]
    assert (improved.sampler, improved.distance, improved.coreset_ratio, improved.seed) == ("kmeans", "cosine", 0.2, 4)
    for method, denoise in (("softpatch-nearest", "nearest"), ("softpatch-gaussian", "gaussian"), ("softpatch", "lof")):
        soft = made[method]
        assert (soft.denoise, soft.tau, soft.coreset_ratio, soft.soft_weight) == (denoise, 0.3, 0.2, True)
        assert soft.lof_k == (9 if denoise == "lof" else PatchCoreSettings().lof_k)  # k acts on LOF only
    assert isinstance(made["padim"], PaDiMSettings) and made["padim"].seed == 4
    assert made["image-denoised-patchcore"].detector.coreset_ratio == 0.2 and made["spade"].seed == 4
    with pytest.raises(ValueError, match="choose one of"):
        method_settings("PatchCore-42", features)


def test_the_methods_are_the_registrys_with_the_controls_that_act_on_each(features):
    assert [display_name(method) for method in METHODS][:3] == ["PatchCore", "PatchCore-random", "improved PatchCore"]
    assert acting_controls("patchcore", features) == ("coreset_ratio",)  # tau needs denoising
    assert acting_controls("softpatch", features) == ("coreset_ratio", "tau", "lof_k")
    assert acting_controls("softpatch-gaussian", features) == ("coreset_ratio", "tau")  # k is LOF's
    assert acting_controls("image-denoised-patchcore", features) == ("coreset_ratio",)
    assert acting_controls("padim", features) == acting_controls("spade", features) == ()


@pytest.fixture
def explorer(tiny_benchmark, features, tmp_path):
    return Explorer(tiny_benchmark, features, cache_dir=tmp_path / "cache", device="cpu")


def test_default_shown_cycles_over_defect_types_and_ends_with_a_good_image(explorer):
    test = explorer.category("brick").test
    shown = explorer.default_shown("brick", count=4)
    by_name = {image_name(sample): sample for sample in test}
    assert len(shown) == 4 and set(shown) <= set(by_name)
    defects = [by_name[name].defect for name in shown[:-1]]
    assert len(set(defects)) == min(3, len({s.defect for s in test if s.label}))
    assert by_name[shown[-1]].label == 0


def test_update_gives_what_evaluate_gives_on_the_same_noisy_training_set(explorer, tiny_benchmark, features, tmp_path):
    choice = Choice("brick", method="softpatch", tau=0.1, lof_k=3, noise_ratio=0.34, seed=1)
    first = explorer.update(choice)
    again = explorer.update(choice)  # now from the remembered patch features
    noisy, record = add_training_noise(load_category(tiny_benchmark, "brick"), 0.34, False, 1)
    settings = method_settings("softpatch", features, tau=0.1, lof_k=3, seed=1)
    expected = evaluate(noisy, settings, device="cpu", cache_dir=tmp_path / "cache", progress=False).metrics
    for exploration in (first, again):  # the cached search's distances may differ from one search in the last bits
        assert exploration.metrics == pytest.approx(
            {k: expected[k] for k in ("image_auroc", "pixel_auroc", "pro")}, rel=1e-5
        )
    assert len(record.moved) == 2 and len(first.moved) == 2
    assert {name.split("/")[1] for name in first.moved} == {path.stem for path in record.moved}
    assert f"2 of them defective: {', '.join(first.moved)}" in first.summary()
    scores = dict(zip(map(image_name, noisy.test), first.result.scores.image.tolist()))
    good = [scores[image_name(s)] for s in noisy.test if s.label == 0]
    left = [scores[image_name(s)] for s in noisy.test if s.label == 1]  # without overlap no moved image is tested
    assert first.mean_scores() == pytest.approx(
        {"mean score: good": sum(good) / len(good), "mean score: defective, only in test": sum(left) / len(left)}
    )


def test_updates_that_move_the_share_and_tau_give_what_evaluate_gives(explorer, tiny_benchmark, features, tmp_path):
    clean = load_category(tiny_benchmark, "pill")
    for method, share, tau in (("patchcore", 0.2, 0.15), ("patchcore", 0.05, 0.15), ("softpatch", 0.3, 0.1)):
        for _ in range(2):  # the second time from the caches
            got = explorer.update(Choice("pill", method=method, coreset_ratio=share, tau=tau, lof_k=3)).metrics
            settings = method_settings(method, features, coreset_ratio=share, tau=tau, lof_k=3)
            expected = evaluate(clean, settings, device="cpu", cache_dir=tmp_path / "cache", progress=False).metrics
            assert got == pytest.approx({k: expected[k] for k in got}, rel=1e-5), (method, share, tau)


def test_mean_scores_put_the_moved_images_in_their_own_group_with_overlap(explorer):
    exploration = explorer.update(Choice("brick", method="patchcore-random", noise_ratio=0.34, noise_overlap=True))
    scores = dict(zip(map(image_name, exploration.result.category.test), exploration.result.scores.image.tolist()))
    moved = [scores[name] for name in exploration.moved]
    assert len(moved) == 2
    assert exploration.mean_scores()["mean score: defective, moved into training"] == pytest.approx(sum(moved) / 2)


def test_heatmap_grid_has_two_panels_per_image_and_marks_moved_ones(explorer):
    exploration = explorer.update(Choice("pill", method="patchcore-random", noise_ratio=0.34, seed=2))
    shown = (exploration.moved[0],) + explorer.default_shown("pill", count=3)
    figure = heatmap_grid(exploration.result, exploration.settings.features.preprocessing, shown, exploration.moved)
    axes = figure.axes[:-1]  # the last one is the colour bar
    assert len(axes) == 2 * len(shown)
    assert axes[len(shown)].get_title() == "moved into training"
    assert axes[len(shown) + 1].get_title().startswith("score ")
    assert len(axes[len(shown) + 1].images) == 2  # the image and its anomaly map over it


def _png_output(panel):
    images = [out["data"]["image/png"] for out in panel.output.outputs if out["output_type"] == "display_data"]
    assert len(images) == 1
    return images[0]


def test_panel_refits_on_a_control_change_and_only_redraws_for_other_images(explorer, tiny_benchmark):
    panel = ExplorerPanel(explorer, Choice("brick", lof_k=3), categories=["brick", "pill"])  # LOF needs k < 6 images
    assert panel.controls["tau"].disabled and not panel.controls["coreset_ratio"].disabled
    panel.refresh()
    first_png, first = _png_output(panel), panel.last
    assert first.choice.method == "patchcore"

    panel.controls["method"].value = "softpatch"  # an observer refits
    assert panel.last.choice.method == "softpatch" and panel.last.result is not first.result
    assert not panel.controls["tau"].disabled and not panel.controls["lof_k"].disabled
    assert _png_output(panel) != first_png

    fitted = panel.last.result
    panel.controls["shown"].value = panel.controls["shown"].options[:2]
    assert panel.last.result is fitted and panel.last.choice.shown == panel.controls["shown"].options[:2]

    panel.controls["category"].value = "pill"
    assert panel.last.result.category.name == "pill"
    assert panel.controls["shown"].value == explorer.default_shown("pill")


def test_panel_prints_an_impossible_choice_instead_of_raising(features, tmp_path):
    from adlib.synth import generate

    root = generate(
        tmp_path / "few", ("brick",), seed=0, n_train=20, n_test_good=1, n_test_defect=4, size=64, progress=False
    )
    panel = ExplorerPanel(
        Explorer(root, features, cache_dir=tmp_path / "cache", device="cpu"), Choice("brick"), categories=["brick"]
    )
    panel.controls["noise_ratio"].value = 0.15  # int(0.15 * 20) = 3 images of the 4 defective ones: fine
    assert panel.last is not None and len(panel.last.moved) == 3
    panel.controls["noise_ratio"].value = 0.2  # 4 images, but one must stay in the test set
    (message,) = panel.output.outputs
    assert message["name"] == "stdout" and message["text"].startswith("error: ratio=0.2 ")
    panel.controls["noise_overlap"].value = True  # with overlap all 4 may move: a valid choice again
    assert len(panel.last.moved) == 4 and len(_png_output(panel)) > 0


def test_the_panel_warns_while_it_fits_a_slow_method():
    assert fitting_message("patchcore") == "fitting and scoring …"
    assert "minutes" in fitting_message("spade") and "K-means" in fitting_message("improved-patchcore")
    assert set(SLOW_METHODS) <= set(METHODS)  # no warning for a method the explorer does not offer


def test_a_method_fitted_afresh_answers_a_choice_seen_again_from_its_kept_result(explorer, monkeypatch):
    import adlib.companion.explore as explore

    fitted = []
    real = explore.evaluate

    def counting(category, settings, **options):
        fitted.append(type(settings).__name__)
        return real(category, settings, **options)

    monkeypatch.setattr(explore, "evaluate", counting)
    padim = Choice("brick", method="padim")
    first = explorer.update(padim)
    assert explorer.update(dataclasses.replace(padim, shown=("x",))).result is first.result  # no refit
    noisy = explorer.update(dataclasses.replace(padim, noise_ratio=0.34, seed=1))  # another training set: refit
    assert noisy.result is not first.result and len(fitted) == 2
    explorer.update(Choice("brick", method="patchcore"))  # the cached path: never through evaluate
    assert len(fitted) == 2
    for seed in range(2, 2 + explorer.RECENT_FITS):  # the oldest results are forgotten
        explorer.update(dataclasses.replace(padim, seed=seed))
    assert explorer.update(padim).result is not first.result
    assert explorer.update(Choice("pill", method="padim")).result.category.name == "pill"
    assert len(explorer._fitted) == 1  # a new category forgets the old one's results
