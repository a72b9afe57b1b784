"""The contact sheet of a data set in the MVTec AD layout (`figures/benchmark_overview.png`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adlib.data.datasets import list_categories, load_category
from adlib.style import STYLE, draw_mask_outline, pyplot, save_figure


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

    Reads any folder `adlib.data.datasets` reads (MVTec AD, LOCO, BTAD layouts); writes a PNG atomically and
    returns `out`.
    """
    if per_category < 1 or n_good < 0:
        raise ValueError(f"per_category must be >= 1 and n_good >= 0, got {per_category}, {n_good}")
    names = list(categories) if categories is not None else list_categories(root)
    plt = pyplot()
    rows = [(name, _pick_panels(load_category(root, name), per_category, n_good)) for name in names]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(rows), per_category, figsize=(1.75 * per_category, 1.9 * len(rows)), squeeze=False)
        for r, (category, panels) in enumerate(rows):
            for c in range(per_category):
                ax = axes[r][c]
                ax.set_axis_off()
                if c >= len(panels):
                    continue
                sample = panels[c]
                image = Image.open(sample.image)
                gray = image.mode in ("L", "I;16", "I")
                ax.imshow(
                    np.asarray(image.convert("L" if gray else "RGB")),
                    cmap="gray" if gray else None,
                    vmin=0,
                    vmax=255,
                    interpolation="antialiased",
                )
                masks = [np.asarray(Image.open(path).convert("L")) > 0 for path in sample.masks]
                if masks and np.logical_or.reduce(masks).any():
                    draw_mask_outline(ax, np.logical_or.reduce(masks))
                title = f"{category}: {sample.defect}" if c == 0 else sample.defect
                ax.set_title(title, fontsize=8, color="black" if sample.label == 0 else "#b00000", pad=2)
        fig.subplots_adjust(wspace=0.04, hspace=0.16)
        return save_figure(fig, out, dpi=110)
