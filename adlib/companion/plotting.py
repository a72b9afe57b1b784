"""The companion's plots: images as the model saw them, heat maps, intervals, verdicts and time ratios.

They draw in the project's one style (`adlib.style`); matplotlib is imported inside the functions (Agg
backend), so importing adlib stays cheap and headless.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adlib.style import STYLE, draw_mask_outline, pyplot, save_figure


def display_image(path: Path, prep, transform=None) -> np.ndarray:
    """The image as the model saw it (resized and cropped), in [0, 1] for display; `transform`: a training
    copy's `adlib.data.transforms.NoiseTransform` (the copy as the model saw it)."""
    from adlib.data.datasets import read_image

    image = read_image(path, prep, transform).numpy().transpose(1, 2, 0)
    return np.clip(image * np.array(prep.std) + np.array(prep.mean), 0, 1)


def evenly_spaced(indices: Sequence[int], count: int) -> list[int]:
    """`count` indices spread evenly over `indices`."""
    if count >= len(indices):
        return list(indices)
    return [indices[round(i * (len(indices) - 1) / max(count - 1, 1))] for i in range(count)]


def heatmap_overlays(result, prep, out: Path, count: int = 8) -> Path:
    """Test images (top) and their anomaly maps over them (bottom), ground truth outlined.

    `result` is an `adlib.evaluation.evaluate.CategoryResult`, `prep` the preprocessing the model used. Picks
    about three quarters defective and one quarter good images; all maps share one colour scale, so a
    brighter map means a higher anomaly score.
    """
    plt = pyplot()
    test = result.category.test
    anomalous = [i for i, sample in enumerate(test) if sample.label == 1]
    good = [i for i, sample in enumerate(test) if sample.label == 0]
    n_bad = min(len(anomalous), max(count - max(count // 4, 1), count - len(good)))
    chosen = evenly_spaced(anomalous, n_bad) + evenly_spaced(good, count - n_bad)
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


def series_colors(names: Sequence[object]) -> dict[object, str]:
    """A fixed colour per series name, in order (matplotlib's tab10)."""
    cycle = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def interval_dots(
    ax, intervals, label: str = "method", paper=None, xlabel: str = "image AUROC", hue: str | None = None
) -> None:
    """Our estimates as dots with their interval as a line, one row per `label` value (table order, top
    down), and the paper's value as a grey tick beside each: a dot plot, so a narrow range needs no
    truncated bar axis.

    `intervals`: a DataFrame with `label`, estimate, low, high (`adlib.evidence.verdicts.method_intervals`), one
    row per label, or per (label, hue) with `hue` (dodged within the row, one colour per hue value).
    `paper`: {label: value}, or {(label, hue): value} with `hue`; labels it lacks get no tick.
    """
    keys = [label] if hue is None else [label, hue]
    if intervals.duplicated(keys).any():
        raise ValueError(f"intervals has several rows per {keys}: pass `hue` for a second grouping column, or filter")
    labels = list(dict.fromkeys(intervals[label]))
    hues = [None] if hue is None else list(dict.fromkeys(intervals[hue]))
    colors = {None: OURS_COLOR} if hue is None else series_colors(hues)
    rows = {name: len(labels) - 1 - i for i, name in enumerate(labels)}
    step = 0.7 / max(len(hues), 1)
    paper_shown = False
    for j, hue_value in enumerate(hues):
        part = intervals if hue is None else intervals[intervals[hue] == hue_value]
        y = np.array([rows[name] for name in part[label]], dtype=float) + (j - (len(hues) - 1) / 2) * step
        estimate, low, high = (part[c].to_numpy(dtype=float) for c in ("estimate", "low", "high"))
        ax.errorbar(
            estimate,
            y,
            xerr=[estimate - low, high - estimate],
            fmt="o",
            ms=4,
            lw=1.4,
            capsize=2,
            color=colors[hue_value],
            label="ours, 95 % CI" if hue is None else str(hue_value),
        )
        if paper:
            for name, y_row in zip(part[label], y):
                value = paper.get(name if hue is None else (name, hue_value))
                if value is not None and np.isfinite(value):
                    ax.plot(
                        [value],
                        [y_row],
                        marker="|",
                        ms=11,
                        mew=2,
                        color=PAPER_COLOR,
                        ls="none",
                        label=None if paper_shown else "paper",
                    )
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
    """Each verdict's estimate (a difference, a trend statistic) with its interval, coloured by its status, a
    zero line, a 'within delta' verdict's band, and the paper's value of the same quantity as a grey tick."""
    n = len(verdicts)
    if not n:
        raise ValueError("verdict_dots needs at least one verdict")
    paper_shown = False
    for i, verdict in enumerate(verdicts):
        y = n - 1 - i
        color = STATUS_COLORS[verdict.status]
        ax.errorbar(
            [verdict.estimate],
            [y],
            xerr=[[verdict.estimate - verdict.low], [verdict.high - verdict.estimate]],
            fmt="o",
            ms=5,
            lw=1.6,
            capsize=3,
            color=color,
        )
        ax.annotate(  # right of the interval, and of a 'within' band, so that the word covers neither
            verdict.status,
            (max(verdict.high, verdict.bound) if verdict.side == "within" else verdict.high, y),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            color=color,
            fontsize=8,
        )
        if verdict.side == "within":
            ax.fill_betweenx([y - 0.35, y + 0.35], -verdict.bound, verdict.bound, color=color, alpha=0.12, lw=0)
        if verdict.paper is not None:
            ax.plot(
                [verdict.paper],
                [y],
                marker="|",
                ms=12,
                mew=2,
                color=PAPER_COLOR,
                ls="none",
                label=None if paper_shown else "paper",
            )
            paper_shown = True
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(n), [_wrap(v.statement) for v in verdicts][::-1])
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("difference / trend, with 95 % CI")
    ax.grid(axis="x", alpha=0.3)
    if paper_shown:
        ax.legend(frameon=False, fontsize=8, loc="best")


def curves_with_intervals(ax, intervals, x: str, hue: str = "method", paper=None, ylabel: str = "image AUROC") -> None:
    """One line per `hue` value over `x` with its interval as a shaded band; the paper's curve of the same
    hue dashed with crosses (`paper`: a DataFrame with columns x, hue and value)."""
    hues = list(dict.fromkeys(intervals[hue]))
    colors = series_colors(hues)
    for name in hues:
        part = intervals[intervals[hue] == name].sort_values(x)
        xs = part[x].to_numpy(dtype=float)
        ax.plot(xs, part["estimate"], marker="o", ms=4, lw=1.6, color=colors[name], label=str(name))
        ax.fill_between(
            xs,
            part["low"].to_numpy(dtype=float),
            part["high"].to_numpy(dtype=float),
            color=colors[name],
            alpha=0.18,
            lw=0,
        )
        if paper is not None:
            theirs = paper[paper[hue] == name].sort_values(x)
            if len(theirs):
                ax.plot(
                    theirs[x].to_numpy(dtype=float),
                    theirs["value"],
                    ls="--",
                    marker="x",
                    ms=4,
                    lw=1.0,
                    color=colors[name],
                    alpha=0.8,
                    label=f"{name} (paper)",
                )
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
    scales = {
        name: (
            (float(m.min()), float(np.quantile(m, 0.999)))
            if row_shared_scale
            else (float(every.min()), float(np.quantile(every, 0.999)))
        )
        for name, m in stacked.items()
    }
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
    return fig


# --------------------------------------------------------------------------- time ratios


RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100)
"""Candidate tick positions of a log ratio axis (`ratio_ticks`)."""


def ratio_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Labelled positions for a log ratio axis from `low` to `high`: the `RATIO_TICKS` inside it (1 always
    among them when inside), thinned evenly to at most `most`, so a narrow range still reads (0.8x, 0.9x, 1x)."""
    inside = [tick for tick in RATIO_TICKS if low <= tick <= high]
    if len(inside) <= most:
        return inside
    step = -(-len(inside) // most)
    kept = inside[::step]
    return sorted(set(kept) | ({1} if 1 in inside else set()))


def ratio_dots(
    ax,
    ratios,
    paper=None,
    xlabel: str = "time relative to the reference (log scale)",
    unit: str = "repeat",
    center: str = "median",
) -> None:
    """Time ratios as dots: one row per method (order of first appearance), a small dot per `unit` (a
    timed repeat, or a category), a large one at their `center` ("median" or "mean", the statistic the
    verdicts use), the paper's ratio as a grey tick and a dotted line at 1; a log x axis with labelled ticks
    (`ratio_ticks`), so that 0.1x and 10x sit equally far from 1. No interval: a few units' spread, not a
    confidence interval.

    `ratios`: a DataFrame with columns method and ratio, one row per (method, unit), e.g.
    `adlib.evidence.timing.ratio_table(seconds, reference)`; `paper`: {method: ratio}.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if center not in ("median", "mean"):
        raise ValueError(f"center={center!r}: choose 'median' or 'mean'")
    middle = np.median if center == "median" else np.mean
    methods = list(dict.fromkeys(ratios["method"]))
    for row, method in enumerate(methods):
        values = ratios.loc[ratios["method"] == method, "ratio"].dropna().to_numpy(dtype=float)
        ax.scatter(
            values,
            np.full(values.size, row),
            s=14,
            color=OURS_COLOR,
            alpha=0.45,
            linewidths=0,
            label=f"ours: one {unit}" if row == 0 else None,
        )
        ax.scatter(
            [middle(values)], [row], s=45, color=OURS_COLOR, zorder=3, label=f"ours: {center}" if row == 0 else None
        )
        if paper is not None and paper.get(method) is not None:
            ax.scatter(
                [paper[method]],
                [row - 0.3],
                marker="|",
                s=150,
                color=PAPER_COLOR,
                zorder=3,
                label="paper" if row == 0 else None,
            )
    ax.axvline(1.0, color="black", lw=0.8, ls=":")
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ax.xaxis.set_major_locator(FixedLocator(ratio_ticks(low, high)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low, high)
    ax.set_yticks(range(len(methods)), methods)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="best")


def show(fig, dpi: int = 110) -> None:
    """Shows `fig` in a notebook as a PNG, whatever matplotlib's backend (adlib draws on Agg, which shows
    nothing by itself), and closes it: for a figure that is not published."""
    from IPython.display import Image as NotebookImage
    from IPython.display import display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    pyplot().close(fig)
    display(NotebookImage(data=buffer.getvalue()))
