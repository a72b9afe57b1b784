"""Figures of the PatchCore and improved-PatchCore notebooks: toy coverage, curves and error galleries,
the quickstart's threshold titles, the maps kept for a figure, grey-value histograms.

Figure-specific helpers apart from `adlib.companion.plotting` (the project's style and its shared plots), so that a
notebook cell reads like the method. matplotlib is imported inside the functions, as in `adlib.companion.plotting`.
"""

from __future__ import annotations

import numpy as np

from adlib.companion.plotting import STATUS_COLORS, display_image, evenly_spaced
from adlib.style import draw_mask_outline, pyplot


def seed_verdict_dots(ax, verdicts) -> None:
    """One row per `adlib.evidence.verdicts.Verdict` of `adlib.evidence.intervals.interval_verdict` (first on top):
    the mean per-seed difference a - b as a dot with its t interval, a zero line, coloured by status; the row
    label is the verdict's statement."""
    rows = list(verdicts)
    for y, verdict in enumerate(reversed(rows)):
        colour = STATUS_COLORS[verdict.status]
        if np.isfinite(verdict.low) and np.isfinite(verdict.high):
            ax.plot([verdict.low, verdict.high], [y, y], color=colour, linewidth=2)
        ax.plot(verdict.estimate, y, "o", color=colour, markersize=6)
        ax.annotate(
            verdict.status,
            (verdict.estimate, y),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color=colour,
        )
    ax.axvline(0.0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(rows)), [verdict.statement for verdict in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    n = rows[0].sample() if rows else "no verdicts"
    ax.set_xlabel(f"mean per-seed difference a - b, 95 % t interval over seeds (n = {n})")


def coverage_figure(shown, verdicts, names, n_selected: int):
    """PC Fig. 3 / KC Fig. 4: one row of scatter panels per toy data set (all points, the kept ones in red,
    that run's coverage in the title), then `seed_verdict_dots` of the verdicts on distances (their
    `quantity` ends with "distance") and, below, of those on counts (clusters missed, outliers kept), so
    that each axis has one unit.

    `shown` maps (data set, sampler) -> (points [N, 2], kept [n, 2], coverage dict), in row / column order;
    `names` maps a sampler to its display name.
    """
    plt = pyplot()
    datasets = list(dict.fromkeys(dataset for dataset, _ in shown))
    samplers = list(dict.fromkeys(sampler for _, sampler in shown))
    groups = [
        group
        for group in (
            [v for v in verdicts if v.quantity.endswith("distance")],
            [v for v in verdicts if not v.quantity.endswith("distance")],
        )
        if group
    ]
    fig = plt.figure(figsize=(max(2.6 * len(samplers), 9.0), 2.9 * len(datasets) + 0.5 * len(verdicts) + 1.6))
    grid = fig.add_gridspec(
        len(datasets) + len(groups),
        len(samplers),
        hspace=0.6,
        height_ratios=[1.0] * len(datasets) + [0.17 * len(group) + 0.3 for group in groups],
    )
    for row, dataset in enumerate(datasets):
        for column, sampler in enumerate(samplers):
            points, kept, measured = shown[dataset, sampler]
            ax = fig.add_subplot(grid[row, column])
            ax.scatter(points[:, 0], points[:, 1], s=3, color="#6b9bd1", alpha=0.45, linewidths=0)
            ax.scatter(kept[:, 0], kept[:, 1], s=16, color="#d62728", edgecolors="white", linewidths=0.4)
            title = f"{names[sampler]}\nmax {measured['max_distance']:.3f}, mean {measured['mean_distance']:.3f}"
            if "clusters_missed" in measured:
                title += f"\nclusters missed {measured['clusters_missed']:.0f}, outliers kept {measured['outliers_kept']:.0f}"
            ax.set_title(title, fontsize=8)
            ax.set(xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[], aspect="equal")
            if column == 0:
                ax.set_ylabel(f"{dataset}\n({len(points)} points, {n_selected} kept)")
    for row, group in enumerate(groups, start=len(datasets)):
        ax = fig.add_subplot(grid[row, 1:])
        seed_verdict_dots(ax, group)
        unit = "distance (unit square)" if group[0].quantity.endswith("distance") else "count (clusters, kept points)"
        ax.set_xlabel(f"{unit}: mean per-seed difference a - b, 95 % t interval (n = {group[0].sample()})")
    return fig


def pr_roc_figure(images, points):
    """PC Fig. S3: precision-recall (left) and ROC curves (right) of the image scores, one line per category.

    `images`: a per-image table of one method and one seed (category, label, score); `points`: its
    `adlib.evidence.thresholds.working_points`, one row per category, whose F1-optimal working point is drawn as a dot
    on each curve. Dotted: chance (ROC) and the share of defective images (PR: flagging everything).
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    from adlib.evaluation.metrics import image_auroc

    if points["category"].duplicated().any():
        raise ValueError(
            "points hold several rows per category: pass one method and one seed (e.g. points[points.seed == 0])"
        )
    plt = pyplot()
    fig, (pr_ax, roc_ax) = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"wspace": 0.25})
    colours = plt.get_cmap("tab10" if images["category"].nunique() <= 10 else "tab20")
    by_category = points.set_index("category")
    for k, (category, unit) in enumerate(images.groupby("category", sort=False)):
        labels, scores = unit["label"].to_numpy(), unit["score"].to_numpy()
        point, colour = by_category.loc[category], colours(k % colours.N)
        precision, recall, _ = precision_recall_curve(labels, scores)
        fpr, tpr, _ = roc_curve(labels, scores)
        pr_ax.plot(recall, precision, color=colour, drawstyle="steps-post", label=category)
        roc_ax.plot(fpr, tpr, color=colour, label=f"{category} (AUROC {image_auroc(labels, scores):.3f})")
        pr_ax.plot(point.recall, point.precision, "o", color=colour, markersize=5)
        roc_ax.plot(
            point.false_positives / (point.test_images - point.defective), point.recall, "o", color=colour, markersize=5
        )
    pr_ax.axhline(images["label"].mean(), color="#999999", linestyle=":", linewidth=1)
    roc_ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
    pr_ax.set(
        xlabel="recall (share of defective images flagged)",
        ylabel="precision (share of flags that are defects)",
        title="precision-recall",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    roc_ax.set(
        xlabel="false-positive rate (share of good images flagged)",
        ylabel="true-positive rate (recall)",
        title="ROC",
        xlim=(-0.02, 1),
        ylim=(0, 1.02),
    )
    roc_ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def error_gallery(errors, kept, prep, method: str, columns: int = 8):
    """Figs. S1/S2: each misclassified test image (top) above its anomaly map (bottom), ground truth outlined;
    each category gets its own pairs of rows (`columns` errors per pair) with that category's colour scale
    (its test maps' minimum to their 99.9th percentile) and colour bar.

    `errors`: rows with category, index (position in the test set), outcome ('FP' / 'FN'), defect, score,
    threshold; `kept`: category -> (test samples, maps [N, H, W], masks [N, H, W]); `prep`: the preprocessing.
    """
    plt = pyplot()
    chunks = [
        (category, rows.iloc[start : start + columns])
        for category, rows in errors.groupby("category", sort=False)
        for start in range(0, len(rows), columns)
    ]
    width = max([len(rows) for _, rows in chunks] + [1])
    fig, axes = plt.subplots(
        2 * max(len(chunks), 1), width, figsize=(1.9 * width + 1.0, 4.2 * max(len(chunks), 1)), squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()
    if not chunks:
        axes[0, 0].text(0.0, 0.5, "no misclassified test images\nat the F1-optimal threshold", fontsize=11)
    for row, (category, rows) in enumerate(chunks):
        test, maps, masks = kept[category]
        vmin, vmax = float(maps.min()), float(np.quantile(maps, 0.999))
        for column, error in enumerate(rows.itertuples()):
            top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
            image = display_image(test[error.index].image, prep)
            top.imshow(image)
            bottom.imshow(image)
            heat = bottom.imshow(maps[error.index], cmap="inferno", alpha=0.55, vmin=vmin, vmax=vmax)
            for ax in (top, bottom):
                if masks[error.index].any():
                    draw_mask_outline(ax, masks[error.index])
            top.set_title(
                f"{error.outcome} · {category}\n{error.defect}", color="#b00020" if error.outcome == "FN" else "#1f4e79"
            )
            bottom.set_title(f"score {error.score:.3g}\nt* {error.threshold:.3g}")
        fig.colorbar(
            heat,
            ax=axes[2 * row : 2 * row + 2, :].ravel().tolist(),
            shrink=0.6,  # both rows: aligned
            label=f"{method} score ({category})",
        )
    return fig


def threshold_titles(scores, labels, threshold: float) -> list[str]:
    """One title per image for maps at an image-score threshold (e.g. the F1-optimal t*): the score against
    t*, the predicted label, and whether it is right, e.g. 'score 2.31 >= t* 2.10\\ndefective (right)'."""
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels).ravel()
    if scores.size != labels.size:
        raise ValueError(f"{scores.size} scores and {labels.size} labels: give one label per score")
    titles = []
    for score, label in zip(scores, labels):
        flagged = bool(score >= threshold)
        right = flagged == bool(label)
        titles.append(
            f"s = {score:.3g} {'>=' if flagged else '<'} t* {threshold:.3g}\n"
            f"{'defective' if flagged else 'good'} ({'right' if right else 'WRONG'})"
        )
    return titles


class MapKeeper:
    """An `on_result` callback for `adlib.evaluation.experiment.run_grid` that keeps the anomaly maps of the same few
    test images from every evaluation, for `heatmap_panels`: the first `defective` defective and the first
    `good` good images of the first result's test set (in test order), under the row name
    `label(settings)`. Every evaluation must score the same test images (one category and seed)."""

    def __init__(self, label, defective: int = 3, good: int = 1):
        self.label, self.defective, self.good = label, defective, good
        self.samples: list = []
        self.masks: list[np.ndarray] = []
        self.rows: dict[str, list[np.ndarray]] = {}

    def __call__(self, result, settings) -> None:
        test = list(result.category.test)
        if not self.samples:
            bad = [i for i, sample in enumerate(test) if sample.label == 1][: self.defective]
            good = [i for i, sample in enumerate(test) if sample.label == 0][: self.good]
            self.samples = [test[i] for i in bad + good]
            self.masks = [result.masks[i].numpy() for i in bad + good]
        where = {sample.image: i for i, sample in enumerate(test)}
        missing = [str(sample.image) for sample in self.samples if sample.image not in where]
        if missing:
            raise ValueError(
                f"MapKeeper: this evaluation did not score {missing[:2]}: keep maps of one category "
                "and seed (the same test images) per MapKeeper"
            )
        maps = result.scores.maps.numpy()
        self.rows[self.label(settings)] = [maps[where[sample.image]] for sample in self.samples]

    def images(self, prep) -> list[np.ndarray]:
        """The kept test images as the model saw them, in [0, 1] (`display_image`)."""
        return [display_image(sample.image, prep) for sample in self.samples]

    def titles(self) -> list[str]:
        return [sample.defect for sample in self.samples]


def image_histograms(ax, greys: np.ndarray, bins: int = 64, shown: int = 12) -> None:
    """Grey-value density of each image in `greys` ([n, H, W], 0-1 scale), one thin line per image (at most
    `shown`, evenly spread over the n) and the pooled density of all n as a thick black line, so that a
    reader sees at once whether the images share one distribution."""
    plt = pyplot()
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    picked = evenly_spaced(list(range(len(greys))), shown)
    for index, colour in zip(picked, plt.cm.viridis(np.linspace(0, 0.9, len(picked)))):
        density, _ = np.histogram(greys[index], bins=edges, density=True)
        ax.plot(centres, density, color=colour, lw=0.9, alpha=0.8)
    pooled, _ = np.histogram(np.asarray(greys).ravel(), bins=edges, density=True)
    ax.plot(centres, pooled, color="black", lw=1.8, label=f"all {len(greys)} images pooled")
    ax.set(xlim=(0, 1), xlabel="grey value (0 = black, 1 = white)", ylabel="density")
