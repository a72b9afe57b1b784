"""The interactive explorer behind `notebooks/01_explore.ipynb`: control values in, metrics and heatmaps out.

`Explorer.update(Choice(...))` fits one detector on one category (optionally with SoftPatch's noisy
training set) and scores its test images; it keeps the loaded categories and backbones between calls, so
that with cached features an update costs a fit and a prediction, not a backbone load. For the PatchCore
family's coreset and random banks it also keeps outlier scores, pick orders and the test search over every
prefix bank it has searched (`adlib.companion.explore_cache`): a smaller coreset share, or a tau seen
before, costs no search; a larger share searches only the rows it adds. A method off that path (K-means,
PaDiM, SPADE, ...) is fitted afresh, and its last few results are kept for a choice seen again.
`adlib.companion.explore_panel.ExplorerPanel` wires ipywidgets controls to it.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adlib.companion.explore_cache import ExploreCache, PrefixPatchCore, RememberingExtractor, takes_prefix_path
from adlib.companion.plotting import display_image
from adlib.data.datasets import Category, Sample, load_category
from adlib.data.protocol import NoiseRecord, add_training_noise, low_shot
from adlib.detectors import registry
from adlib.evaluation.evaluate import CategoryResult, evaluate, ground_truth, score_metrics
from adlib.features.extractor import FeatureSettings
from adlib.style import STYLE, draw_mask_outline

#: How the explorer names the registry's methods (`adlib.detectors.registry.METHODS`, by their command-line
#: names, which `Choice.method` takes). It offers every registry method; one missing here shows its CLI name.
DISPLAY_NAMES = {
    "patchcore": "PatchCore",
    "patchcore-random": "PatchCore-random",
    "improved-patchcore": "improved PatchCore",
    "softpatch": "SoftPatch LOF",
    "softpatch-nearest": "SoftPatch nearest",
    "softpatch-gaussian": "SoftPatch gaussian",
    "image-denoised-patchcore": "PaDiM filter + PatchCore",
    "padim": "PaDiM",
    "spade": "SPADE",
}
#: The method controls: a `Choice` field -> the command-line option it sets, and a value other than the
#: option's default that tells whether it acts on a method (`acting_controls`).
CONTROLS = {"coreset_ratio": ("--coreset", 0.5), "tau": ("--tau", 0.3), "lof_k": ("--lof-k", 3)}
#: The coreset shares the slider offers (1 % steps): the cached test search keeps its nearest rows at each.
CORESET_SHARES = tuple(step / 100 for step in range(1, 101))


@dataclass(frozen=True)
class Choice:
    """What the explorer's controls say. `method` is a registry method by its CLI name; `shown`: test images for
    the heatmap grid, as `Explorer.image_names` names them; `coreset_ratio`, `tau` and `lof_k` (`CONTROLS`)
    are used only by the methods they act on."""

    category: str
    method: str = "patchcore"
    coreset_ratio: float = 0.1
    tau: float = 0.15
    lof_k: int = 6
    noise_ratio: float = 0.0
    noise_overlap: bool = False
    seed: int = 0
    shown: tuple[str, ...] = ()


def display_name(method: str) -> str:
    """The explorer's name of a registry method (`DISPLAY_NAMES`, else its CLI name)."""
    return DISPLAY_NAMES.get(method, method)


def acting_controls(method: str, features: FeatureSettings) -> tuple[str, ...]:
    """The `CONTROLS` that change `method`'s settings: the method reads their option, and its settings take
    another value of it (PatchCore's settings refuse one that would do nothing, e.g. tau without denoising)."""
    acting = []
    for name, (flag, other) in CONTROLS.items():
        try:
            registry.method_settings(method, features, {flag: other})
        except ValueError:
            continue
        acting.append(name)
    return tuple(acting)


def method_settings(
    method: str, features: FeatureSettings, coreset_ratio: float = 0.1, tau: float = 0.15, lof_k: int = 6, seed: int = 0
):
    """The settings of registry method `method` on `features`, with the controls that act on it (the others
    are left out) and `seed`."""
    values = {"coreset_ratio": coreset_ratio, "tau": tau, "lof_k": lof_k}
    options = {CONTROLS[name][0]: values[name] for name in acting_controls(method, features)}
    return dataclasses.replace(registry.method_settings(method, features, options), seed=seed)


def image_name(sample: Sample) -> str:
    """How the explorer names a test image: its defect type and file stem, e.g. 'crack/003'."""
    return f"{sample.defect}/{sample.image.stem}"


@dataclass(frozen=True)
class Exploration:
    """One update: the choice, the settings it made, the fitted result, the noise moved into training (and
    the names of those test images), and the seconds the update took (fit, prediction and metrics; the
    figure is drawn on demand)."""

    choice: Choice
    settings: object
    result: CategoryResult
    noise: NoiseRecord | None
    moved: tuple[str, ...]
    seconds: float

    @property
    def metrics(self) -> dict[str, float]:
        return {name: self.result.metrics[name] for name in ("image_auroc", "pixel_auroc", "pro")}

    def summary(self) -> str:
        """One line: method, category, training set (and the defective images moved into it), the three metrics."""
        m, c = self.metrics, self.result.category
        moved = f" ({len(self.moved)} of them defective: {', '.join(self.moved)})" if self.moved else ""
        return (
            f"{display_name(self.choice.method)} on {c.name}: {len(c.train)} training images{moved}, "
            f"{len(c.test)} test images"
            f" | image AUROC {m['image_auroc']:.3f}, pixel AUROC {m['pixel_auroc']:.3f}, PRO {m['pro']:.3f}"
        )

    def mean_scores(self) -> dict[str, float]:
        """Mean image score of the good test images, the defective ones the noise moved into training (with
        overlap they are in the test set too) and the other defective ones: does a method memorise its noise?"""
        groups = {"good": [], "defective, moved into training": [], "defective, only in test": []}
        for sample, score in zip(self.result.category.test, self.result.scores.image.tolist()):
            group = "good" if sample.label == 0 else "defective, only in test"
            groups["defective, moved into training" if image_name(sample) in self.moved else group].append(score)
        return {f"mean score: {group}": float(np.mean(scores)) for group, scores in groups.items() if scores}

    def figure(self, shown: Sequence[str] | None = None):
        """The heatmap grid of `shown` (default: `choice.shown`), a matplotlib Figure not registered with pyplot."""
        shown = self.choice.shown if shown is None else shown
        return heatmap_grid(self.result, self.settings.features.preprocessing, shown, self.moved)

    def png(self, shown: Sequence[str] | None = None) -> bytes:
        """The heatmap grid as PNG bytes (what the notebook displays)."""
        buffer = io.BytesIO()
        self.figure(shown).savefig(buffer, format="png", dpi=90, bbox_inches="tight", pad_inches=0.05)
        return buffer.getvalue()


class Explorer:
    """Fits and scores one choice at a time on `data_root`, keeping categories and backbones loaded.

    `shots`: keep the first `shots` training images of each category (a quick look); the noise of a
    choice is added to that training set.
    """

    def __init__(
        self,
        data_root: Path | str,
        features: FeatureSettings,
        shots: int | None = None,
        device: torch.device | str | None = None,
        cache_dir: Path | None = None,
    ):
        self.data_root, self.features, self.shots = Path(data_root), features, shots
        self.device, self.cache_dir = device, cache_dir
        self._categories: dict[str, Category] = {}
        self._extractors: dict[FeatureSettings, RememberingExtractor] = {}
        self._remembered: str | None = None  # the category whose patch features the extractors hold
        self._cache = ExploreCache()  # outlier scores, pick orders and prefix searches of that category
        self._masks: dict[tuple[str, object], torch.Tensor] = {}
        self._fitted: dict[tuple, CategoryResult] = {}  # the last `RECENT_FITS` results fitted afresh, oldest first

    RECENT_FITS = 4  # results of methods off the cached path (K-means, PaDiM, SPADE, ...) kept for a choice seen again

    def category(self, name: str) -> Category:
        """The clean category (first `shots` training images), loaded once."""
        if name not in self._categories:
            category = load_category(self.data_root, name)
            self._categories[name] = category if self.shots is None else low_shot(category, self.shots)
        return self._categories[name]

    def image_names(self, category: str) -> list[str]:
        """The names of the category's test images, in test-set order."""
        return [image_name(sample) for sample in self.category(category).test]

    def default_shown(self, category: str, count: int = 6) -> tuple[str, ...]:
        """`count` test images for a first look: defective ones cycling over the defect types, one good one."""
        test = self.category(category).test
        by_defect: dict[str, list[Sample]] = {}
        for sample in test:
            if sample.label == 1:
                by_defect.setdefault(sample.defect, []).append(sample)
        picked: list[Sample] = []
        rank = 0
        while len(picked) < count - 1 and any(len(group) > rank for group in by_defect.values()):
            picked += [group[rank] for _, group in sorted(by_defect.items()) if len(group) > rank]
            rank += 1
        good = [sample for sample in test if sample.label == 0][:1]
        return tuple(image_name(sample) for sample in picked[: count - len(good)] + good)

    def _extractor(self, features: FeatureSettings, category: str) -> RememberingExtractor:
        """The loaded backbone for `features`, holding the patch features of one category at a time."""
        if category != self._remembered:
            for extractor in self._extractors.values():
                extractor.forget()
            self._cache.clear()
            self._masks.clear()
            self._fitted.clear()
            self._remembered = category
        if features not in self._extractors:
            self._extractors[features] = RememberingExtractor(features, device=self.device, cache_dir=self.cache_dir)
        return self._extractors[features]

    def update(self, choice: Choice) -> Exploration:
        """Fits the chosen method on the (noisy) training set and scores the test set."""
        start = time.perf_counter()
        settings = method_settings(
            choice.method, self.features, choice.coreset_ratio, choice.tau, choice.lof_k, choice.seed
        )
        clean = self.category(choice.category)
        category, noise, moved = clean, None, ()
        if choice.noise_ratio > 0:
            category, noise = add_training_noise(clean, choice.noise_ratio, choice.noise_overlap, choice.seed)
            moved = tuple(image_name(sample) for sample in clean.test if sample.image in set(noise.moved))
        result = self._evaluate(choice, category, settings)
        return Exploration(choice, settings, result, noise, moved, time.perf_counter() - start)

    def _evaluate(self, choice: Choice, category: Category, settings) -> CategoryResult:
        """`evaluate(category, settings)`, through the explorer's caches for a PatchCore with a prefix bank."""
        extractor = self._extractor(settings.features, choice.category)
        if not takes_prefix_path(settings):
            return self._fitted_afresh(choice, category, settings, extractor)
        key = (choice.category, choice.noise_ratio, choice.noise_overlap, choice.seed, settings.features)
        start = time.perf_counter()
        train, test = extractor.stacked(category.train, False), extractor.stacked(category.test, False)
        model = PrefixPatchCore(settings, device=self.device, cache_dir=self.cache_dir, extractor=extractor)
        model.fit_cached(self._cache, key, train, test, CORESET_SHARES)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.score_embedding(test)
        predict_seconds = time.perf_counter() - start
        mask_key = (key, settings.features.preprocessing)
        if mask_key not in self._masks:
            self._masks[mask_key] = ground_truth(category, settings)
        masks = self._masks[mask_key]
        metrics = {
            **score_metrics(category, scores, masks),
            "fit_seconds": fit_seconds,
            "predict_seconds_per_image": predict_seconds / len(category.test),
        }
        return CategoryResult(category, model, scores, masks, metrics)

    def _fitted_afresh(
        self, choice: Choice, category: Category, settings, extractor: RememberingExtractor
    ) -> CategoryResult:
        """`evaluate(category, settings)` for a method off the cached path, or its result for the same choice among
        the last `RECENT_FITS` (the same settings, training set and test set give the same scores)."""
        key = (choice.category, choice.noise_ratio, choice.noise_overlap, choice.seed, settings)
        if key not in self._fitted:
            result = evaluate(
                category, settings, device=self.device, cache_dir=self.cache_dir, progress=False, extractor=extractor
            )
            while len(self._fitted) >= self.RECENT_FITS:
                self._fitted.pop(next(iter(self._fitted)))
            self._fitted[key] = result
        return self._fitted[key]


def heatmap_grid(result: CategoryResult, prep, shown: Sequence[str], moved: Sequence[str] = ()):
    """Top row: the `shown` test images with their ground truth outlined; bottom row: the anomaly map over
    each, on one colour scale for the whole test set (brighter = more anomalous): from the median pixel
    score, so that the typical background is dark, to the 99.9th percentile. An image that the noise
    moved into the training set (and out of the test set) gets an empty panel that says so."""
    from matplotlib.figure import Figure

    test = {image_name(sample): index for index, sample in enumerate(result.category.test)}
    maps = result.scores.maps.numpy()
    vmin, vmax = (float(value) for value in np.quantile(maps, [0.5, 0.999]))
    columns = max(len(shown), 1)
    with _style():
        fig = Figure(figsize=(1.9 * columns + 0.8, 4.1))
        axes = fig.subplots(2, columns, squeeze=False)
        heat = None
        for column, name in enumerate(shown):
            top, bottom = axes[0, column], axes[1, column]
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            if name not in test:
                top.set_axis_off()
                bottom.set_axis_off()
                top.set_title(name, color="#b00020")
                bottom.set_title("moved into training" if name in moved else "not in the test set")
                continue
            index = test[name]
            sample, mask = result.category.test[index], result.masks[index].numpy()
            image = display_image(sample.image, prep)
            top.imshow(image)
            bottom.imshow(image)
            heat = bottom.imshow(maps[index], cmap="inferno", vmin=vmin, vmax=vmax, alpha=0.6)
            if mask.any():
                draw_mask_outline(top, mask)
                draw_mask_outline(bottom, mask)
            top.set_title(name, color="#b00020" if sample.label else "black")
            bottom.set_title(f"score {float(result.scores.image[index]):.3g}")
        if heat is not None:
            fig.colorbar(heat, ax=axes[1, :].tolist(), shrink=0.8, label="anomaly score")
        return fig


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)
