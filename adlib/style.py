"""One plot style for the project: the rcParams, the mask colours and reproducible, atomic figure files.

Every figure adlib draws uses these, so that they all look alike. It sits at the bottom of the package
(beside `adlib.files`) so that the benchmark generator's contact sheet and the companion's plots share it.
matplotlib is imported inside the functions (Agg backend), so importing adlib stays cheap and headless.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
            fig.savefig(
                buffer,
                format=out.suffix.lstrip(".").lower(),
                dpi=dpi,
                bbox_inches="tight",
                pad_inches=0.05,
                metadata=_no_metadata(out.suffix),
            )
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
