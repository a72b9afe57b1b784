"""Timing claims weighed over repeats: is method A faster than method B in every (category, seed) run?

A timing claim ("PatchCore-1 % is faster than PatchCore-100 %") is not a bootstrap over test images:
its noise is the machine's. Each (category, seed) evaluation is one repeat, timed on its own, so the
claim is judged by the ratio time(A) / time(B) per repeat, as a `adlib.evidence.verdicts.Verdict` whose
estimate is the median ratio and whose interval is the range of the ratios (smallest to largest) against
the threshold 1: it **holds** when A is faster in every repeat (largest ratio < 1), **does not hold**
when A is slower in every repeat (smallest ratio > 1), and is **inconclusive** otherwise. Times are per
test image: `predict_seconds_per_image` of `adlib.evaluation.experiment.run`, plus a per-method constant
such as a separately timed backbone pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from adlib.evidence.verdicts import Verdict, threshold_finding

UNIT = ("category", "seed")


@dataclass(frozen=True)
class TimingClaim:
    """ "`faster` takes less time per image than `slower`", with the paper's ratio of their times and the
    claims-register id it was built from (`adlib.evidence.register.timing_claim`), if any."""

    statement: str
    faster: str
    slower: str
    paper: float | None = None
    register_id: str | None = None


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


def timing_verdicts(seconds: pd.DataFrame, claims: Sequence[TimingClaim]) -> list[Verdict]:
    """One verdict per claim on the ratios time(faster) / time(slower) of the repeats (rows of `seconds`,
    e.g. `seconds_per_image`'s table, that time both methods): estimate the median ratio, interval the
    range of the ratios, claimed below 1, n the number of repeats, and the paper's ratio."""
    return [_timing_verdict(seconds, claim) for claim in claims]


def _timing_verdict(seconds: pd.DataFrame, claim: TimingClaim) -> Verdict:
    """`timing_verdicts` for one claim."""
    for method in (claim.faster, claim.slower):
        if method not in seconds.columns:
            raise ValueError(f"{claim.statement}: no times for {method!r}; methods: {list(seconds.columns)}")
    ratios = (seconds[claim.faster] / seconds[claim.slower]).dropna()
    if ratios.empty:
        raise ValueError(f"{claim.statement}: no (category, seed) unit has times for both methods")
    quantity = f"time per image {claim.faster} / {claim.slower} (median ratio)"
    median, repeats = float(ratios.median()), len(ratios)
    return Verdict(
        claim.statement,
        quantity,
        threshold_finding(claim.statement, quantity, median, "below", 1.0),
        "below",
        1.0,
        median,
        float(ratios.min()),
        float(ratios.max()),
        None,
        f"{repeats} repeat{'s' if repeats != 1 else ''}",
        basis="over the repeats",
        paper=claim.paper,
        values=ratios.to_numpy(dtype=float),
        source=claim.register_id,
    )
