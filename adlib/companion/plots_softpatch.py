"""Figures of the SoftPatch notebooks: sweep panels, the t-SNE map of bank origins, the noisy training
set at a glance (one category, or every category as SP Fig. 8) and the image-level filter's ranking.

Figure-specific helpers apart from `adlib.companion.plotting` (the project's style and its shared plots), so that a
notebook cell reads like the method. matplotlib is imported inside the functions, as in `adlib.companion.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adlib.companion.plotting import curves_with_intervals, display_image, verdict_dots
from adlib.style import STYLE, draw_mask_outline, pyplot


def sweep_panels(panels, verdicts=None, title: str = "", ylabel: str = "image AUROC"):
    """A row of sweep panels (`curves_with_intervals`, one per entry) and, if `verdicts` are given, their
    `verdict_dots` as a last panel. `panels` maps a panel title to (intervals, x, paper, xlabel):
    `evidence.method_intervals` rows with a `method` and an `x` column, the paper's points (columns x,
    method, value; or None) and the x-axis label. The figure grows in height with the number of verdicts
    (a little under half an inch each: room for a two-line label), and the verdict panel's 'paper' marker
    joins the shared legend below the panels instead of sitting among the intervals. Returns the figure."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    extra = 1 if verdicts else 0
    height = max(3.9, 0.45 * len(verdicts or ()) + 1.2)
    fig, axes = plt.subplots(
        1, len(panels) + extra, figsize=(4.6 * len(panels) + 5.5 * extra, height), squeeze=False, layout="constrained"
    )  # constrained: the claims' long labels widen their own panel's margin only
    legend: dict[str, object] = {}
    for ax, (name, (intervals, x, paper, xlabel)) in zip(axes[0], panels.items()):
        curves_with_intervals(ax, intervals, x, hue="method", paper=paper)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        ax.get_legend().remove()  # one legend for all panels, below them
    if extra:
        verdict_dots(axes[0, -1], verdicts)
        if axes[0, -1].get_legend() is not None:  # the paper's tick: explained in the shared legend
            handles, labels = axes[0, -1].get_legend_handles_labels()
            legend.update({f"{label}: its difference (claims panel)": h for h, label in zip(handles, labels)})
            axes[0, -1].get_legend().remove()
        axes[0, -1].xaxis.set_major_locator(MaxNLocator(5))  # ticks that do not run into each other
    fig.suptitle(title)
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="outside lower center",
        frameon=False,
        ncol=min(len(legend), 4),
        fontsize=8,
    )
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
            ax.scatter(
                coords[shown, 0],
                coords[shown, 1],
                s=sizes[kind],
                color=colours[kind],
                label=label,
                zorder=2 + kind,
                edgecolor="black" if kind == 2 else "none",
                linewidth=0.5,
            )
        ax.set(title=panel_title, xticks=[], yticks=[], xlabel="t-SNE 1")
    axes[0, 0].set_ylabel("t-SNE 2")
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="lower center",
        ncol=len(origins) + 1,
        frameon=False,
        bbox_to_anchor=(0.5, -0.08),
        markerscale=2,
    )
    fig.suptitle(title, y=1.04)
    fig.tight_layout()
    return fig


def injected_training_panels(train: Sequence, prep, count: int = 8, n_good: int = 2):
    """The noisy training set at a glance: up to `count - n_good` injected (label 1) training images with
    their ground truth outlined, then `n_good` good training images for contrast. Returns the figure.

    `train` is a noisy category's training samples (`adlib.data.protocol.add_training_noise`), `prep` the
    preprocessing the models see (the panels show the image as they do)."""
    injected = [sample for sample in train if sample.label == 1]
    good = [sample for sample in train if sample.label == 0]
    if not injected:
        raise ValueError(
            "no injected (label 1) image in this training set: pass a noisy category's train "
            "(adlib.data.protocol.add_training_noise with ratio > 0)"
        )
    panels = injected[: max(count - n_good, 1)] + good[:n_good]
    plt = pyplot()
    from adlib.data.datasets import read_mask

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(1.8 * len(panels), 2.2), squeeze=False)
        for ax, sample in zip(axes[0], panels):
            ax.imshow(display_image(sample.image, prep))
            if sample.label == 1:
                draw_mask_outline(ax, read_mask(sample, prep).numpy() > 0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"injected: {sample.defect}" if sample.label else "good", color="#b00020" if sample.label else "black"
            )
        fig.suptitle(
            f"{len(injected)} of {len(train)} training images are defective (outlined: the defect; "
            f"{len(panels) - len(good[:n_good])} shown)",
            y=1.02,
        )
    return fig


def _one_per_defect_first(samples: Sequence) -> list:
    """The samples reordered round-robin over their defect types (each type in its given order), so that the
    first few shown cover as many types as there are."""
    groups: dict[str, list] = {}
    for sample in samples:
        groups.setdefault(sample.defect, []).append(sample)
    rounds = max((len(group) for group in groups.values()), default=0)
    return [group[i] for i in range(rounds) for group in groups.values() if i < len(group)]


def injected_noise_grid(trains: Mapping[str, Sequence], prep, per_category: int = 4, title: str = ""):
    """SoftPatch Fig. 8's kind of picture for a noisy benchmark: one row per category (`trains` maps a
    category name to its noisy training samples, `adlib.data.protocol.add_training_noise`), up to
    `per_category` of its injected (label 1) training images, one per defect type before a second of any,
    each with its ground truth outlined and its defect type as title; the row's label says how many of the
    training images are injected. Returns the figure; a category without an injected image is an error
    naming it."""
    from adlib.data.datasets import read_mask

    injected = {name: _one_per_defect_first([s for s in train if s.label == 1]) for name, train in trains.items()}
    if not injected or (clean := [name for name, shown in injected.items() if not shown]):
        raise ValueError(
            f"no injected (label 1) training image in {clean if injected else 'an empty mapping'}: pass noisy "
            "training sets (adlib.data.protocol.add_training_noise with ratio > 0)"
        )
    columns = max(1, min(per_category, max(len(shown) for shown in injected.values())))
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(injected), columns, figsize=(1.9 * columns + 0.6, 2.0 * len(injected) + 0.4), squeeze=False
        )
        for row, (name, shown) in zip(axes, injected.items()):
            for column, ax in enumerate(row):
                ax.set_xticks([])
                ax.set_yticks([])
                if column >= len(shown):
                    ax.axis("off")
                    continue
                sample = shown[column]
                ax.imshow(display_image(sample.image, prep, sample.transform))
                draw_mask_outline(ax, read_mask(sample, prep).numpy() > 0)
                ax.set_title(sample.defect, fontsize=8, color="#b00020")
            row[0].set_ylabel(f"{name}\n{len(shown)} of {len(trains[name])} injected", fontsize=8)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight() if title else 1))  # room for the title
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
    ax.scatter(
        positions[injected[rank]],
        scores[rank][injected[rank]],
        s=24,
        color="#d62728",
        label=f"injected defective image ({int(injected.sum())})",
    )
    for drop, style in zip(sorted(drops), ("-", "--", ":")):
        ax.axvline(
            int(drop * len(rank)) + 0.5,
            color="black",
            linestyle=style,
            linewidth=1,
            label=f"cut: drop {drop:.0%} ({int(drop * len(rank))} images)",
        )
    ax.set_xlabel("training image, ranked by the filter's score (highest first)")
    ax.set_ylabel("filter score (max Mahalanobis distance)")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, framealpha=0.9)
