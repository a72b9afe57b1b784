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


# --- spb


def sweep_panels(panels, verdicts=None, title: str = "", ylabel: str = "image AUROC"):
    """A row of sweep panels (`curves_with_intervals`, one per entry) and, if `verdicts` are given, their
    `verdict_dots` as a last panel. `panels` maps a panel title to (intervals, x, paper, xlabel):
    `evidence.method_intervals` rows with a `method` and an `x` column, the paper's points (columns x,
    method, value; or None) and the x-axis label. Returns the figure."""
    plt = pyplot()
    extra = 1 if verdicts else 0
    fig, axes = plt.subplots(1, len(panels) + extra, figsize=(4.6 * len(panels) + 5.5 * extra, 3.9), squeeze=False)
    for ax, (name, (intervals, x, paper, xlabel)) in zip(axes[0], panels.items()):
        curves_with_intervals(ax, intervals, x, hue="method", paper=paper)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
    if extra:
        verdict_dots(axes[0, -1], verdicts)
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
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
