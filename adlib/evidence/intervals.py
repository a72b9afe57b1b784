"""Verdicts from independent replicates (one estimate per seed, say) and their Student t interval: for
claims with no test images to resample, such as a toy whose every seed draws new data."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from adlib.evidence.verdicts import Verdict, check_level, threshold_finding

# --------------------------------------------------------------------------- replicate-level verdicts


def interval_verdict(
    statement: str,
    quantity: str,
    estimates: Sequence[float],
    side: str,
    threshold: float = 0.0,
    replicates: str = "seeds",
    detail: str | None = None,
    level: float = 0.95,
    paper: float | None = None,
    source: str | None = None,
) -> Verdict:
    """The verdict on "the mean of `estimates` (one per independent replicate) lies `side` `threshold`".

    The estimate is the mean of the n replicate values, [low, high] its `level` Student t interval
    (mean +- t_{n-1} * sd / sqrt(n); infinite with one replicate), judged by the one rule of
    `adlib.evidence.verdicts.interval_status`: holds when the whole interval lies on the claimed side of
    `threshold`, does not hold when it lies entirely on the other side, else inconclusive (an interval
    that touches the threshold, every replicate exactly at it, or a single replicate). `quantity` names
    what each estimate is (e.g. 'greedy coreset - random max distance', a paired per-seed difference);
    `replicates` what they are (the caption says 't over seeds'); `detail` the size of each replicate
    for n (e.g. '2000 points'); `source` the claims-register id the caption cites
    (`adlib.evidence.register.entry(id)` gives its statement and the paper's value).
    """
    from scipy import stats

    check_level(level)
    values = np.asarray(estimates, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"estimates: give one finite number per replicate; got {list(np.ravel(values))[:5]}")
    n, estimate = values.size, float(values.mean())
    if n < 2:
        low, high = -math.inf, math.inf
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
        low, high = estimate - half, estimate + half
    word = replicates if n != 1 else _singular(replicates)
    return Verdict(
        statement,
        quantity,
        threshold_finding(statement, quantity, estimate, side, float(threshold)),
        side,
        float(threshold),
        estimate,
        low,
        high,
        level,
        f"{n} {word}" if detail is None else f"{n} {word} x {detail}",
        basis=f"t over {replicates}",
        paper=paper,
        values=values,
        source=source,
    )


def _singular(replicates: str) -> str:
    """'categories' -> 'category', 'units (3 categories x 3 seeds)' -> 'unit (3 categories x 3 seeds)'."""
    head, space, rest = replicates.partition(" ")
    head = head[:-3] + "y" if head.endswith("ies") else head.removesuffix("s")
    return head + space + rest
