"""One plot style for the project.

Every figure adlib draws goes through this module so that they all look alike: the same fonts,
sizes, colours and save settings (`STYLE`, `save_figure`). Core modules never import it; matplotlib
is imported inside the functions (Agg backend), so importing adlib stays cheap and headless.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adlib.files import atomic_write_bytes

#: matplotlib rcParams shared by every adlib figure.
STYLE: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.interpolation": "nearest",
}

#: Colour of ground-truth outlines (and anything marking "this is the defect"): cyan, drawn over a
#: dark halo, stands out on red brick, grey textures, white objects and heat maps alike.
MASK_COLOR = "#00e5ff"
MASK_HALO = "#101010"

def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path, dpi: int = 110) -> Path:
    """Save `fig` to `out` atomically (`adlib.files.atomic_write_bytes`), close it, and return the path.
    The format follows the suffix of `out`."""
    return save_figures(fig, [out], dpi)[0]


def save_figures(fig, outs: Sequence[Path], dpi: int = 110) -> list[Path]:
    """Save `fig` once per path in `outs` (e.g. a PNG for the screen and a PDF for print), then close it."""
    outs = [Path(out) for out in outs]
    try:
        for out in outs:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=out.suffix.lstrip(".").lower(), dpi=dpi, bbox_inches="tight",
                        pad_inches=0.05, metadata=_no_metadata(out.suffix))
            atomic_write_bytes(out, buffer.getvalue())
    finally:
        pyplot().close(fig)
    return outs


def _no_metadata(suffix: str) -> dict[str, None] | None:
    """Metadata that keeps saved files reproducible (no software/date stamps where supported)."""
    if suffix.lower() == ".png":
        return {"Software": None}
    if suffix.lower() == ".pdf":
        return {"Creator": None, "Producer": None, "CreationDate": None}
    return None


def draw_mask_outline(ax, mask: np.ndarray, margin: int = 3) -> None:
    """Outline a binary ground-truth mask on `ax` in the project's mask colour, over a dark halo.

    The outline runs `margin` pixels outside the mask so that it surrounds thin defects (scratches,
    cracks) instead of hiding them."""
    if margin > 0:
        from scipy import ndimage

        mask = ndimage.binary_dilation(mask, iterations=margin)
    ax.contour(mask, levels=[0.5], colors=MASK_HALO, linewidths=2.0, alpha=0.8)
    ax.contour(mask, levels=[0.5], colors=MASK_COLOR, linewidths=1.0)


def _pick_panels(category, per_category: int, n_good: int) -> list:
    """Samples: `n_good` good test images, then defective ones cycling over the defect types."""
    good = [s for s in category.test if s.label == 0] or list(category.train)
    panels = good[:n_good]
    listed: dict[str, list] = {}
    for sample in category.test:
        if sample.label == 1:
            listed.setdefault(sample.defect, []).append(sample)
    defects = sorted(listed)
    rank = 0
    while len(panels) < per_category and any(len(v) > rank for v in listed.values()):
        for d in defects:
            if len(panels) < per_category and len(listed[d]) > rank:
                # Spread picks over each type's images instead of always its first.
                files = listed[d]
                panels.append(files[(rank * 7 + 3) % len(files)] if rank else files[len(files) // 2])
        rank += 1
    return panels


def benchmark_overview(
    root: Path, out: Path, per_category: int = 7, categories: Sequence[str] | None = None, n_good: int = 2
) -> Path:
    """Contact sheet of a data set in the MVTec AD layout: one row per category with `n_good` good test
    images and defective ones (cycling over the defect types) with their ground-truth outlines.

    Reads any folder `adlib.data` reads (MVTec AD, LOCO, BTAD layouts); writes a PNG atomically and
    returns `out`.
    """
    from adlib.data import list_categories, load_category

    if per_category < 1 or n_good < 0:
        raise ValueError(f"per_category must be >= 1 and n_good >= 0, got {per_category}, {n_good}")
    names = list(categories) if categories is not None else list_categories(root)
    plt = pyplot()
    rows = [(name, _pick_panels(load_category(root, name), per_category, n_good)) for name in names]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(rows), per_category, figsize=(1.75 * per_category, 1.9 * len(rows)), squeeze=False
        )
        for r, (category, panels) in enumerate(rows):
            for c in range(per_category):
                ax = axes[r][c]
                ax.set_axis_off()
                if c >= len(panels):
                    continue
                sample = panels[c]
                image = Image.open(sample.image)
                gray = image.mode in ("L", "I;16", "I")
                ax.imshow(np.asarray(image.convert("L" if gray else "RGB")), cmap="gray" if gray else None,
                          vmin=0, vmax=255, interpolation="antialiased")
                masks = [np.asarray(Image.open(path).convert("L")) > 0 for path in sample.masks]
                if masks and np.logical_or.reduce(masks).any():
                    draw_mask_outline(ax, np.logical_or.reduce(masks))
                title = f"{category}: {sample.defect}" if c == 0 else sample.defect
                ax.set_title(title, fontsize=8, color="black" if sample.label == 0 else "#b00000", pad=2)
        fig.subplots_adjust(wspace=0.04, hspace=0.16)
        return save_figure(fig, out, dpi=110)


def display_image(path: Path, prep) -> np.ndarray:
    """The image as the model saw it (resized and cropped), in [0, 1] for display."""
    from adlib.data import read_image

    image = read_image(path, prep).numpy().transpose(1, 2, 0)
    return np.clip(image * np.array(prep.std) + np.array(prep.mean), 0, 1)


def _spread(indices: Sequence[int], count: int) -> list[int]:
    """`count` indices spread evenly over `indices`."""
    if count >= len(indices):
        return list(indices)
    return [indices[round(i * (len(indices) - 1) / max(count - 1, 1))] for i in range(count)]


def heatmap_overlays(result, prep, out: Path, count: int = 8) -> Path:
    """Test images (top) and their anomaly maps over them (bottom), ground truth outlined.

    `result` is an `adlib.experiment.CategoryResult`, `prep` the preprocessing the model used. Picks
    about three quarters defective and one quarter good images; all maps share one colour scale, so a
    brighter map means a higher anomaly score.
    """
    plt = pyplot()
    test = result.category.test
    anomalous = [i for i, sample in enumerate(test) if sample.label == 1]
    good = [i for i, sample in enumerate(test) if sample.label == 0]
    n_bad = min(len(anomalous), max(count - max(count // 4, 1), count - len(good)))
    chosen = _spread(anomalous, n_bad) + _spread(good, count - n_bad)
    maps = result.scores.maps.numpy()
    vmin, vmax = float(maps.min()), float(np.quantile(maps, 0.999))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, len(chosen), figsize=(1.9 * len(chosen), 4.1), squeeze=False)
        for column, index in enumerate(chosen):
            sample, mask = test[index], result.masks[index].numpy()
            image = display_image(sample.image, prep)
            top, bottom = axes[0, column], axes[1, column]
            top.imshow(image)
            bottom.imshow(image)
            heat = bottom.imshow(maps[index], cmap="inferno", vmin=vmin, vmax=vmax, alpha=0.55)
            for ax in (top, bottom):
                if mask.any():
                    draw_mask_outline(ax, mask)
                ax.set_xticks([])
                ax.set_yticks([])
            top.set_title(sample.defect, color="#b00020" if sample.label else "black")
            bottom.set_title(f"score {float(result.scores.image[index]):.3g}")
        fig.colorbar(heat, ax=axes[1, :].tolist(), shrink=0.8, label="anomaly score")
        fig.suptitle(f"{result.category.name}: test images and anomaly maps", y=1.0)
        return save_figure(fig, out)


# --------------------------------------------------------------------------- intervals and verdicts

#: Colours of the three verdicts, and of our numbers vs the paper's.
STATUS_COLORS = {"holds": "#1b7837", "does not hold": "#b2182b", "inconclusive": "#7f7f7f"}
OURS_COLOR, PAPER_COLOR = "#1f4e9a", "#8c8c8c"


def _series_colors(names: Sequence[object]) -> dict[object, str]:
    """A fixed colour per series name, in order (matplotlib's tab10)."""
    cycle = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
             "#bcbd22", "#17becf"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def interval_dots(ax, intervals, label: str = "method", paper=None, xlabel: str = "image AUROC",
                  hue: str | None = None) -> None:
    """Our estimates as dots with their interval as a line, one row per `label` value (table order, top
    down), and the paper's value as a grey tick beside each: a dot plot, so a narrow range needs no
    truncated bar axis.

    `intervals`: a DataFrame with `label`, estimate, low, high (`adlib.evidence.method_intervals`), one
    row per label, or per (label, hue) with `hue` (dodged within the row, one colour per hue value).
    `paper`: {label: value}, or {(label, hue): value} with `hue`; labels it lacks get no tick.
    """
    keys = [label] if hue is None else [label, hue]
    if intervals.duplicated(keys).any():
        raise ValueError(f"intervals has several rows per {keys}: pass `hue` for a second grouping column, or filter")
    labels = list(dict.fromkeys(intervals[label]))
    hues = [None] if hue is None else list(dict.fromkeys(intervals[hue]))
    colors = {None: OURS_COLOR} if hue is None else _series_colors(hues)
    rows = {name: len(labels) - 1 - i for i, name in enumerate(labels)}
    step = 0.7 / max(len(hues), 1)
    paper_shown = False
    for j, hue_value in enumerate(hues):
        part = intervals if hue is None else intervals[intervals[hue] == hue_value]
        y = np.array([rows[name] for name in part[label]], dtype=float) + (j - (len(hues) - 1) / 2) * step
        estimate, low, high = (part[c].to_numpy(dtype=float) for c in ("estimate", "low", "high"))
        ax.errorbar(estimate, y, xerr=[estimate - low, high - estimate], fmt="o", ms=4, lw=1.4, capsize=2,
                    color=colors[hue_value], label="ours, 95 % CI" if hue is None else str(hue_value))
        if paper:
            for name, y_row in zip(part[label], y):
                value = paper.get(name if hue is None else (name, hue_value))
                if value is not None and np.isfinite(value):
                    ax.plot([value], [y_row], marker="|", ms=11, mew=2, color=PAPER_COLOR, ls="none",
                            label=None if paper_shown else "paper")
                    paper_shown = True
    ax.set_yticks(range(len(labels)), labels[::-1])
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="best")


def _wrap(text: str, width: int = 44) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def verdict_dots(ax, verdicts) -> None:
    """Each claim's difference (or trend statistic) with its interval, coloured by its verdict, a zero
    line, a 'within delta' claim's band, and the paper's value of the same quantity as a grey tick."""
    n = len(verdicts)
    if not n:
        raise ValueError("verdict_dots needs at least one verdict")
    paper_shown = False
    for i, verdict in enumerate(verdicts):
        y = n - 1 - i
        color = STATUS_COLORS[verdict.status]
        ax.errorbar([verdict.estimate], [y], xerr=[[verdict.estimate - verdict.low], [verdict.high - verdict.estimate]],
                    fmt="o", ms=5, lw=1.6, capsize=3, color=color)
        ax.annotate(verdict.status, (verdict.high, y), xytext=(6, 0), textcoords="offset points", va="center",
                    color=color, fontsize=8)
        if verdict.claim.comparison == "within":
            ax.fill_betweenx([y - 0.35, y + 0.35], -verdict.claim.delta, verdict.claim.delta, color=color, alpha=0.12,
                             lw=0)
        if verdict.paper is not None:
            ax.plot([verdict.paper], [y], marker="|", ms=12, mew=2, color=PAPER_COLOR, ls="none",
                    label=None if paper_shown else "paper")
            paper_shown = True
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(n), [_wrap(v.claim.statement) for v in verdicts][::-1])
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("difference / trend, with 95 % CI")
    ax.grid(axis="x", alpha=0.3)
    if paper_shown:
        ax.legend(frameon=False, fontsize=8, loc="best")


def curves_with_intervals(ax, intervals, x: str, hue: str = "method", paper=None, ylabel: str = "image AUROC") -> None:
    """One line per `hue` value over `x` with its interval as a shaded band; the paper's curve of the same
    hue dashed with crosses (`paper`: a DataFrame with columns x, hue and value)."""
    hues = list(dict.fromkeys(intervals[hue]))
    colors = _series_colors(hues)
    for name in hues:
        part = intervals[intervals[hue] == name].sort_values(x)
        xs = part[x].to_numpy(dtype=float)
        ax.plot(xs, part["estimate"], marker="o", ms=4, lw=1.6, color=colors[name], label=str(name))
        ax.fill_between(xs, part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float), color=colors[name],
                        alpha=0.18, lw=0)
        if paper is not None:
            theirs = paper[paper[hue] == name].sort_values(x)
            if len(theirs):
                ax.plot(theirs[x].to_numpy(dtype=float), theirs["value"], ls="--", marker="x", ms=4, lw=1.0,
                        color=colors[name], alpha=0.8, label=f"{name} (paper)")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="best")


# --------------------------------------------------------------------------- heatmaps side by side


def heatmap_panels(images, rows, masks=None, titles=None, map_titles=None, row_shared_scale: bool = True):
    """A figure: the test images (ground truth outlined) on top, then one row per method with its anomaly
    maps over the same images and a colour bar per row.

    `images`: HxWx3 arrays in [0, 1] (`display_image`); `rows`: {row label: [HxW map per image]} in
    order; `masks`: [HxW bool] or None; `titles`: one per image (top row); `map_titles`: {row label:
    [text per image]} under the maps (e.g. the score and the predicted label). A row's maps share one
    colour scale (its minimum to its 99.9th percentile) so that brighter means more anomalous within a
    method; `row_shared_scale=False` puts every row on one scale (only for maps in the same units).
    """
    plt = pyplot()
    n = len(images)
    if not n or not rows:
        raise ValueError("heatmap_panels needs at least one image and one row of maps")
    for name, maps in rows.items():
        if len(maps) != n:
            raise ValueError(f"row {name!r} has {len(maps)} maps for {n} images: give one map per image")
    stacked = {name: np.stack([np.asarray(m, dtype=np.float32) for m in maps]) for name, maps in rows.items()}
    every = np.concatenate([m.ravel() for m in stacked.values()])
    scales = {name: ((float(m.min()), float(np.quantile(m, 0.999))) if row_shared_scale
                     else (float(every.min()), float(np.quantile(every, 0.999)))) for name, m in stacked.items()}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.8 * n + 0.8, 1.9 * (1 + len(rows))), squeeze=False)
        for column in range(n):
            axes[0, column].imshow(images[column])
            if titles is not None:
                axes[0, column].set_title(titles[column], fontsize=8)
        for r, (name, maps) in enumerate(stacked.items(), start=1):
            vmin, vmax = scales[name]
            for column in range(n):
                axes[r, column].imshow(images[column])
                heat = axes[r, column].imshow(maps[column], cmap="inferno", vmin=vmin, vmax=vmax, alpha=0.55)
                if map_titles is not None and name in map_titles:
                    axes[r, column].set_title(map_titles[name][column], fontsize=7)
            axes[r, 0].set_ylabel(name)
            fig.colorbar(heat, ax=axes[r, :].tolist(), shrink=0.85, pad=0.01, label="score")
        for r in range(1 + len(rows)):
            for column in range(n):
                ax = axes[r, column]
                if masks is not None and np.asarray(masks[column]).any():
                    draw_mask_outline(ax, np.asarray(masks[column]))
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("test image")
# --- spb


def sweep_panels(panels, verdicts=None, title: str = "", ylabel: str = "image AUROC"):
    """A row of sweep panels (`curves_with_intervals`, one per entry) and, if `verdicts` are given, their
    `verdict_dots` as a last panel. `panels` maps a panel title to (intervals, x, paper, xlabel):
    `evidence.method_intervals` rows with a `method` and an `x` column, the paper's points (columns x,
    method, value; or None) and the x-axis label. Returns the figure."""
    plt = pyplot()
    extra = 1 if verdicts else 0
    fig, axes = plt.subplots(1, len(panels) + extra, figsize=(4.6 * len(panels) + 5.5 * extra, 3.9), squeeze=False)
    legend: dict[str, object] = {}
    for ax, (name, (intervals, x, paper, xlabel)) in zip(axes[0], panels.items()):
        curves_with_intervals(ax, intervals, x, hue="method", paper=paper)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        ax.get_legend().remove()  # one legend for all panels, below them
    if extra:
        verdict_dots(axes[0, -1], verdicts)
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    fig.legend(list(legend.values()), list(legend), loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
               ncol=min(len(legend), 4), fontsize=8)
    return fig


def bank_map_panels(coords: np.ndarray, owners: np.ndarray, kinds: np.ndarray, titles, origins, title: str = ""):
    """SP Fig. 5's map: one panel per bank (`titles` maps the bank name in `owners` to its panel title), all
    in the same 2-D coordinates; the bank's rows coloured by origin code (`kinds`, names `origins`), the
    other banks' rows in grey. Returns the figure."""
    plt = pyplot()
    colours, sizes = ["#6a3d9a", "#ff9f1c", "#d62728"], [7, 14, 36]
    fig, axes = plt.subplots(1, len(titles), figsize=(4.7 * len(titles), 4.6), sharex=True, sharey=True, squeeze=False)
    for ax, (name, panel_title) in zip(axes[0], titles.items()):
        mine = owners == name
        ax.scatter(coords[~mine, 0], coords[~mine, 1], s=3, color="#dddddd", label="other banks")
        for kind, label in enumerate(origins):
            shown = mine & (kinds == kind)
            ax.scatter(coords[shown, 0], coords[shown, 1], s=sizes[kind], color=colours[kind], label=label,
                       zorder=2 + kind, edgecolor="black" if kind == 2 else "none", linewidth=0.5)
        ax.set(title=panel_title, xticks=[], yticks=[], xlabel="t-SNE 1")
    axes[0, 0].set_ylabel("t-SNE 2")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(origins) + 1, frameon=False,
               bbox_to_anchor=(0.5, -0.08), markerscale=2)
    fig.suptitle(title, y=1.04)
    fig.tight_layout()
    return fig


# --- pca

def seed_verdict_dots(ax, verdicts) -> None:
    """One row per `adlib.toy.SeedVerdict` (first on top): the mean per-seed difference a - b as a dot with its
    t interval, a zero line, coloured by status; the row label is the verdict's statement."""
    rows = list(verdicts)
    for y, verdict in enumerate(reversed(rows)):
        colour = STATUS_COLORS[verdict.status]
        if np.isfinite(verdict.low) and np.isfinite(verdict.high):
            ax.plot([verdict.low, verdict.high], [y, y], color=colour, linewidth=2)
        ax.plot(verdict.estimate, y, "o", color=colour, markersize=6)
        ax.annotate(verdict.status, (verdict.estimate, y), xytext=(0, 6), textcoords="offset points", ha="center",
                    fontsize=7, color=colour)
    ax.axvline(0.0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(rows)), [verdict.statement for verdict in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    n = rows[0].sample() if rows else "no verdicts"
    ax.set_xlabel(f"mean per-seed difference a - b, 95 % t interval over seeds (n = {n})")


def coverage_figure(shown, verdicts, names, n_selected: int):
    """PC Fig. 3 / KC Fig. 4: one row of scatter panels per toy data set (all points, the kept ones in red,
    that run's coverage in the title), then `seed_verdict_dots` of the verdicts on distances and, below,
    of those on counts (clusters missed, outliers kept), so that each axis has one unit.

    `shown` maps (data set, sampler) -> (points [N, 2], kept [n, 2], coverage dict), in row / column order;
    `names` maps a sampler to its display name.
    """
    plt = pyplot()
    datasets = list(dict.fromkeys(dataset for dataset, _ in shown))
    samplers = list(dict.fromkeys(sampler for _, sampler in shown))
    groups = [group for group in ([v for v in verdicts if v.metric.endswith("_distance")],
                                  [v for v in verdicts if not v.metric.endswith("_distance")]) if group]
    fig = plt.figure(figsize=(max(2.6 * len(samplers), 9.0), 2.9 * len(datasets) + 0.5 * len(verdicts) + 1.6))
    grid = fig.add_gridspec(len(datasets) + len(groups), len(samplers), hspace=0.6,
                            height_ratios=[1.0] * len(datasets) + [0.17 * len(group) + 0.3 for group in groups])
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
        unit = "distance (unit square)" if group[0].metric.endswith("_distance") else "count (clusters, kept points)"
        ax.set_xlabel(f"{unit}: mean per-seed difference a - b, 95 % t interval (n = {group[0].sample()})")
    return fig


def pr_roc_figure(images, points):
    """PC Fig. S3: precision-recall (left) and ROC curves (right) of the image scores, one line per category.

    `images`: a per-image table of one method and one seed (category, label, score); `points`: its
    `adlib.thresholds.working_points`, one row per category, whose F1-optimal working point is drawn as a dot
    on each curve. Dotted: chance (ROC) and the share of defective images (PR: flagging everything).
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    from adlib.metrics import image_auroc

    if points["category"].duplicated().any():
        raise ValueError("points hold several rows per category: pass one method and one seed "
                         "(e.g. points[points.seed == 0])")
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
        roc_ax.plot(point.false_positives / (point.test_images - point.defective), point.recall, "o", color=colour,
                    markersize=5)
    pr_ax.axhline(images["label"].mean(), color="#999999", linestyle=":", linewidth=1)
    roc_ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
    pr_ax.set(xlabel="recall (share of defective images flagged)", ylabel="precision (share of flags that are defects)",
              title="precision-recall", xlim=(0, 1.02), ylim=(0, 1.02))
    roc_ax.set(xlabel="false-positive rate (share of good images flagged)", ylabel="true-positive rate (recall)",
               title="ROC", xlim=(-0.02, 1), ylim=(0, 1.02))
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
    chunks = [(category, rows.iloc[start:start + columns]) for category, rows in errors.groupby("category", sort=False)
              for start in range(0, len(rows), columns)]
    width = max([len(rows) for _, rows in chunks] + [1])
    fig, axes = plt.subplots(2 * max(len(chunks), 1), width, figsize=(1.9 * width + 1.0, 4.2 * max(len(chunks), 1)),
                             squeeze=False)
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
            top.set_title(f"{error.outcome} · {category}\n{error.defect}",
                          color="#b00020" if error.outcome == "FN" else "#1f4e79")
            bottom.set_title(f"score {error.score:.3g}\nt* {error.threshold:.3g}")
        fig.colorbar(heat, ax=axes[2 * row:2 * row + 2, :].ravel().tolist(), shrink=0.6,  # both rows: aligned
                     label=f"{method} score ({category})")
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
        titles.append(f"s = {score:.3g} {'>=' if flagged else '<'} t* {threshold:.3g}\n"
                      f"{'defective' if flagged else 'good'} ({'right' if right else 'WRONG'})")
    return titles

# --- pcb


def ratio_dots(ax, seconds, reference: str, paper=None, xlabel: str | None = None) -> None:
    """Timing repeats as dots: one row per method (the columns of `seconds`, one row per repeat, e.g.
    `adlib.timing.seconds_per_image`), each repeat's time relative to `reference`'s in the same repeat
    as a small dot, their median as a large one; `paper` {method: ratio} as grey ticks beside ours.
    A log x axis, so that 0.1x and 10x sit equally far from 1."""
    methods = list(seconds.columns)
    ratios = seconds.div(seconds[reference], axis=0)
    for row, method in enumerate(methods):
        values = ratios[method].dropna().to_numpy()
        ax.scatter(values, np.full(values.size, row), s=12, color="#1f4e79", alpha=0.45, linewidths=0,
                   label="ours: one repeat" if row == 0 else None)
        ax.scatter([np.median(values)], [row], s=45, color="#1f4e79", zorder=3,
                   label="ours: median" if row == 0 else None)
        if paper is not None and method in paper and paper[method] is not None:
            ax.scatter([paper[method]], [row - 0.3], marker="|", s=150, color="#7f7f7f", zorder=3,
                       label="paper" if row == 0 else None)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.axvline(1.0, color="black", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(methods)), methods)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel or f"time per image relative to {reference} (log scale)")
    ax.legend(fontsize=7, frameon=False, loc="best")


class MapKeeper:
    """An `on_result` callback for `adlib.experiment.run_grid` that keeps the anomaly maps of the same few
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
            raise ValueError(f"MapKeeper: this evaluation did not score {missing[:2]}: keep maps of one category "
                             "and seed (the same test images) per MapKeeper")
        maps = result.scores.maps.numpy()
        self.rows[self.label(settings)] = [maps[where[sample.image]] for sample in self.samples]

    def images(self, prep) -> list[np.ndarray]:
        """The kept test images as the model saw them, in [0, 1] (`display_image`)."""
        return [display_image(sample.image, prep) for sample in self.samples]

    def titles(self) -> list[str]:
        return [sample.defect for sample in self.samples]

# --- kc
def image_histograms(ax, greys: np.ndarray, bins: int = 64, shown: int = 12) -> None:
    """Grey-value density of each image in `greys` ([n, H, W], 0-1 scale), one thin line per image (at most
    `shown`, evenly spread over the n) and the pooled density of all n as a thick black line, so that a
    reader sees at once whether the images share one distribution."""
    plt = pyplot()
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    picked = _spread(list(range(len(greys))), shown)
    for index, colour in zip(picked, plt.cm.viridis(np.linspace(0, 0.9, len(picked)))):
        density, _ = np.histogram(greys[index], bins=edges, density=True)
        ax.plot(centres, density, color=colour, lw=0.9, alpha=0.8)
    pooled, _ = np.histogram(np.asarray(greys).ravel(), bins=edges, density=True)
    ax.plot(centres, pooled, color="black", lw=1.8, label=f"all {len(greys)} images pooled")
    ax.set(xlim=(0, 1), xlabel="grey value (0 = black, 1 = white)", ylabel="density")

# --- spa: figure helpers of the SoftPatch notebooks (sp_table1, sp_table7, sp_table9)


def injected_training_panels(train: Sequence, prep, count: int = 8, n_good: int = 2):
    """The noisy training set at a glance: up to `count - n_good` injected (label 1) training images with
    their ground truth outlined, then `n_good` good training images for contrast. Returns the figure.

    `train` is a noisy category's training samples (`adlib.data.add_training_noise`), `prep` the
    preprocessing the models see (the panels show the image as they do)."""
    injected = [sample for sample in train if sample.label == 1]
    good = [sample for sample in train if sample.label == 0]
    if not injected:
        raise ValueError("no injected (label 1) image in this training set: pass a noisy category's train "
                         "(adlib.data.add_training_noise with ratio > 0)")
    panels = injected[: max(count - n_good, 1)] + good[:n_good]
    plt = pyplot()
    from adlib.data import read_mask

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(1.8 * len(panels), 2.2), squeeze=False)
        for ax, sample in zip(axes[0], panels):
            ax.imshow(display_image(sample.image, prep))
            if sample.label == 1:
                draw_mask_outline(ax, read_mask(sample, prep).numpy() > 0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"injected: {sample.defect}" if sample.label else "good",
                         color="#b00020" if sample.label else "black")
        fig.suptitle(f"{len(injected)} of {len(train)} training images are defective (outlined: the defect; "
                     f"{len(panels) - len(good[:n_good])} shown)", y=1.02)
    return fig


def filter_ranking(ax, train_scores: np.ndarray, is_injected: np.ndarray, drops: Sequence[float]) -> None:
    """An image-level filter's view of a training set: every training image's score, highest first,
    injected images in red, and one vertical cut per `drop` (the int(drop * N) highest leave)."""
    scores, injected = np.asarray(train_scores, dtype=float), np.asarray(is_injected, dtype=bool)
    if scores.shape != injected.shape:
        raise ValueError(f"{scores.shape[0]} scores but {injected.shape[0]} injected flags: one per training image")
    rank = np.argsort(-scores, kind="stable")
    positions = np.arange(1, len(rank) + 1)
    ax.scatter(positions[~injected[rank]], scores[rank][~injected[rank]], s=14, color="#9e9e9e", label="good image")
    ax.scatter(positions[injected[rank]], scores[rank][injected[rank]], s=24, color="#d62728",
               label=f"injected defective image ({int(injected.sum())})")
    for drop, style in zip(sorted(drops), ("-", "--", ":")):
        ax.axvline(int(drop * len(rank)) + 0.5, color="black", linestyle=style, linewidth=1,
                   label=f"cut: drop {drop:.0%} ({int(drop * len(rank))} images)")
    ax.set_xlabel("training image, ranked by the filter's score (highest first)")
    ax.set_ylabel("filter score (max Mahalanobis distance)")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, framealpha=0.9)


def ratio_dots(ax, ratios, paper: dict[str, float] | None = None, xlabel: str = "time relative to PatchCore") -> None:
    """Per-category ratios (e.g. a method's time over PatchCore's) as dots, one row per method, their
    mean as a black bar, the paper's ratio as a grey tick and 1 as a dashed line (no interval: a few
    categories' spread, not a confidence interval).

    `ratios`: a DataFrame with columns method, category, ratio; rows appear in the order of first
    appearance of each method."""
    methods = list(dict.fromkeys(ratios["method"]))
    for row, method in enumerate(methods):
        values = ratios.loc[ratios["method"] == method, "ratio"].to_numpy(dtype=float)
        ax.scatter(values, np.full(len(values), row), s=22, color="#1f77b4", alpha=0.8,
                   label="ours, one category" if row == 0 else None, zorder=3)
        ax.plot([values.mean()] * 2, [row - 0.25, row + 0.25], color="black", linewidth=2,
                label="ours, mean" if row == 0 else None)
        if paper and method in paper:
            ax.plot([paper[method]] * 2, [row - 0.3, row + 0.3], color="#9e9e9e", linewidth=4, alpha=0.8,
                    label="paper" if row == 0 else None)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(methods)), methods)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def show(fig, dpi: int = 110) -> None:
    """Shows `fig` in a notebook as a PNG, whatever matplotlib's backend (adlib draws on Agg, which shows
    nothing by itself), and closes it: for a figure that is not published."""
    from IPython.display import Image as NotebookImage, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    pyplot().close(fig)
    display(NotebookImage(data=buffer.getvalue()))
