"""The scaling sweep of `anomalib_vs_adlib.py` as tables and a figure: fit time, predict time per image
and peak memory of each side against the number of training images, on log-log axes with the
least-squares slope of each side (time ~ N^slope), capped runs shown and never dropped."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

QUANTITIES = {"fit s": "fit time (s)", "predict ms/img": "predict time per image (ms)", "peak MiB": "peak memory (MiB)"}


def loglog_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(sizes) (the exponent b of values ~ a N^b); NaN
    with fewer than two distinct sizes. Non-finite values are left out."""
    x, y = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log(x[keep]), np.log(y[keep])
    if len(np.unique(x)) < 2:
        return float("nan")
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx * dx).sum())


def point(variant: str, n_train: int, status: str, result: dict | None, sampled_peak_mb: float) -> dict:
    """One row of the sweep: the worker's timings where it ran to the end, NaN where it did not; the
    peak memory is the worker's own high-water mark (VmHWM), or the parent's largest sample of a killed run."""
    ran = status == "ok" and result is not None
    return {
        "side": variant,
        "training images": n_train,
        "status": status,
        "fit s": result["fit"]["median_wall"] if ran else float("nan"),
        "coreset s": result["fit_coreset"]["median_wall"] if ran else float("nan"),
        "predict ms/img": result["predict"]["median_wall"] * 1e3 / result["n_test"] if ran else float("nan"),
        "peak MiB": result["peak_rss_mb"] if ran else sampled_peak_mb,
        "bank": "x".join(map(str, result["bank"])) if ran else "",
    }


def not_run(variant: str, n_train: int, capped_at: int) -> dict:
    """The row of a size left out because the side passed a cap at a smaller one."""
    return left_out(variant, n_train, f"capped at {capped_at}")


def left_out(variant: str, n_train: int, why: str) -> dict:
    """The row of a size that was not run, saying why."""
    return {
        "side": variant,
        "training images": n_train,
        "status": f"not run ({why})",
        "fit s": float("nan"),
        "coreset s": float("nan"),
        "predict ms/img": float("nan"),
        "peak MiB": float("nan"),
        "bank": "",
    }


def slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Per side and quantity: the log-log slope over the points that ran, and over which sizes."""
    lines = []
    for side, group in table.groupby("side", sort=False):
        ran = group[group["status"] == "ok"]
        line = {"side": side, "sizes that ran": ", ".join(str(n) for n in ran["training images"]) or "none"}
        for column in QUANTITIES:
            line[f"slope of {column}"] = loglog_slope(ran["training images"], ran[column])
        lines.append(line)
    return pd.DataFrame(lines)


def plot(table: pd.DataFrame, path: Path, memory_cap_mb: float, time_cap_s: float, title: str) -> None:
    """Three log-log panels; a run killed at a cap is drawn as an open marker at the cap it passed (memory
    panel for the memory cap, fit panel for the time cap), labelled, so that no point disappears."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    fitted = slopes(table).set_index("side")
    for index, (side, group) in enumerate(table.groupby("side", sort=False)):
        colour = f"C{index}"
        ran = group[group["status"] == "ok"]
        for axis, column in zip(axes, QUANTITIES):
            slope = fitted.loc[side, f"slope of {column}"]
            label = f"{side} (slope {slope:.2f})" if np.isfinite(slope) else f"{side} (no slope)"
            axis.plot(ran["training images"], ran[column], "o-", color=colour, label=label)
        for _, capped in group[group["status"].str.startswith(("out of memory", "past the time cap"))].iterrows():
            memory = capped["status"].startswith("out of memory")
            axis = axes[2] if memory else axes[0]
            axis.plot(
                capped["training images"],
                memory_cap_mb if memory else time_cap_s,
                "X",
                color=colour,
                markersize=11,
                markerfacecolor="none",
            )
            axis.annotate(
                "memory cap" if memory else "time cap",
                (capped["training images"], memory_cap_mb if memory else time_cap_s),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
                color=colour,
            )
    axes[0].axhline(time_cap_s, color="grey", linestyle=":", linewidth=1)
    axes[2].axhline(memory_cap_mb, color="grey", linestyle=":", linewidth=1)
    for axis, heading in zip(axes, QUANTITIES.values()):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(sorted(table["training images"].unique()))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel("training images")
        axis.set_title(heading)
        axis.legend(fontsize=8)
        axis.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{title}; X: killed at the cap (dotted line)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratio_by_size(table: pd.DataFrame, quantity: str, ours: str, theirs: Sequence[str]) -> pd.Series:
    """theirs / ours per training-set size (> 1: adlib lower), against the lowest of `theirs` variants
    that ran at that size (the strictest comparison); NaN where adlib or no anomalib variant ran."""
    ran = table[table["status"] == "ok"]
    wide = ran.pivot_table(index="training images", columns="side", values=quantity)
    others = [c for c in theirs if c in wide.columns]
    if ours not in wide.columns or not others:
        return pd.Series(dtype=float)
    return (wide[others].min(axis=1) / wide[ours]).dropna()


def memory_verdict(table: pd.DataFrame, ours: str, theirs: Sequence[str]) -> tuple[bool, str]:
    """Whether adlib's peak is at most the lowest anomalib peak at every size where both were measured
    (a size where every anomalib variant passed the memory cap counts as held when adlib ran); and why."""
    held, notes = True, []
    for n, group in table.groupby("training images"):
        sides = group.set_index("side")
        if ours not in sides.index or sides.loc[ours, "status"] != "ok":
            continue
        mine = sides.loc[ours, "peak MiB"]
        others = sides.loc[[s for s in theirs if s in sides.index]]
        measured = others[others["status"] == "ok"]["peak MiB"]
        if len(measured):
            lowest = measured.min()
            held &= bool(mine <= lowest)
            notes.append(f"{n}: {lowest / mine:.2f}")
        elif (others["status"].str.startswith("out of memory")).all() and len(others):
            notes.append(f"{n}: anomalib past the cap")
    return held, "anomalib / adlib peak " + "; ".join(notes)
