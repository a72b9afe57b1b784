"""Timing claims weighed over repeats: is method A faster than method B in every (category, seed) run?

A timing claim ("PatchCore-1 % is faster than PatchCore-100 %") is not a bootstrap over test images:
its noise is the machine's. Each (category, seed) evaluation is one repeat, timed on its own, so the
claim is judged by the ratio time(A) / time(B) per repeat: it **holds** when A is faster in every
repeat (largest ratio < 1), **does not hold** when A is slower in every repeat (smallest ratio > 1),
and is **inconclusive** otherwise. The median ratio and its range over the repeats are what a caption
quotes. Times are per test image: `predict_seconds_per_image` of `adlib.evaluation.experiment.run`, plus a
per-method constant such as a separately timed backbone pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

UNIT = ("category", "seed")


@dataclass(frozen=True)
class TimingClaim:
    """ "`faster` takes less time per image than `slower`", with the paper's ratio of their times."""

    statement: str
    faster: str
    slower: str
    paper: float | None = None


def seconds_per_image(results: pd.DataFrame, extra: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per (category, seed) unit and method: `predict_seconds_per_image` plus `extra[method]` (default 0),
    as a table with one row per unit and one column per method."""
    times = results[results["metric"] == "predict_seconds_per_image"]
    if times.empty:
        raise ValueError(
            "results hold no 'predict_seconds_per_image' rows: pass adlib.evaluation.experiment.run's table"
        )
    wide = times.pivot_table(index=list(UNIT), columns="method", values="value", aggfunc="mean")
    for method, seconds in (extra or {}).items():
        if method not in wide.columns:
            raise ValueError(f"extra seconds for {method!r}, which is not among the methods {list(wide.columns)}")
        wide[method] = wide[method] + seconds
    return wide


def ratio_table(seconds: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each repeat's time relative to `reference`'s in the same repeat, long: columns method, repeat, ratio
    (methods in the column order of `seconds`, e.g. `seconds_per_image`'s table), for `plotting.ratio_dots`."""
    if reference not in seconds.columns:
        raise ValueError(f"reference {reference!r} is not among the methods {list(seconds.columns)}")
    ratios = seconds.div(seconds[reference], axis=0).reset_index(drop=True)
    return pd.DataFrame(
        [
            {"method": method, "repeat": repeat, "ratio": float(ratios.at[repeat, method])}
            for method in seconds.columns
            for repeat in ratios.index
        ]
    )


def status(ratios: pd.Series) -> str:
    """ "holds" if every ratio < 1, "does not hold" if every ratio > 1, else "inconclusive"."""
    if (ratios < 1).all():
        return "holds"
    if (ratios > 1).all():
        return "does not hold"
    return "inconclusive"


def timing_verdicts(seconds: pd.DataFrame, claims: Sequence[TimingClaim]) -> pd.DataFrame:
    """One row per claim: status, median ratio time(faster) / time(slower) over the repeats, its range
    (low = smallest, high = largest), the number of repeats and the paper's ratio."""
    rows = []
    for claim in claims:
        for method in (claim.faster, claim.slower):
            if method not in seconds.columns:
                raise ValueError(f"{claim.statement}: no times for {method!r}; methods: {list(seconds.columns)}")
        ratios = (seconds[claim.faster] / seconds[claim.slower]).dropna()
        if ratios.empty:
            raise ValueError(f"{claim.statement}: no (category, seed) unit has times for both methods")
        rows.append(
            {
                "claim": claim.statement,
                "status": status(ratios),
                "median": float(ratios.median()),
                "low": float(ratios.min()),
                "high": float(ratios.max()),
                "repeats": len(ratios),
                "paper": claim.paper,
            }
        )
    return pd.DataFrame(rows)


def caption_line(row: Mapping[str, object]) -> str:
    """The bold line of one timing verdict, e.g. '**holds** (9 repeats): PatchCore-1% faster than
    PatchCore-100%: 0.04x its time per image (median; 0.03x-0.05x over the repeats); paper 0.28x'."""
    paper = "" if row["paper"] is None or pd.isna(row["paper"]) else f"; paper {row['paper']:.2f}x"
    repeats = f"{row['repeats']} repeat{'s' if row['repeats'] != 1 else ''}"
    return (
        f"**{row['status']}** ({repeats}): {row['claim']}: {row['median']:.2f}x its time per "
        f"image (median; {row['low']:.2f}x-{row['high']:.2f}x over the repeats){paper}"
    )
