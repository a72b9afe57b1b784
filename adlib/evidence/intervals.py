"""Verdicts from independent replicates (one estimate per seed, say) and their Student t interval: for
claims with no test images to resample, such as a toy whose every seed draws new data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- replicate-level verdicts

SIDES = ("above", "below")


@dataclass(frozen=True)
class IntervalVerdict:
    """A three-valued verdict from independent replicate estimates (one per seed, say) and their t interval.

    For claims with no test images to resample (a toy whose every seed draws new data): `estimate` is
    the mean of the n replicate values, [low, high] its `level` Student t interval
    (mean +- t_{n-1} * sd / sqrt(n); infinite with one replicate), and the claim is that the mean lies
    `side` ("above" / "below") `threshold`. `sample()` and `caption()` read like `Verdict`'s.
    """

    statement: str
    quantity: str
    side: str
    threshold: float
    status: str
    estimate: float
    low: float
    high: float
    level: float
    n: int
    replicates: str
    detail: str | None = None
    paper: float | None = None

    def sample(self) -> str:
        """n in words, e.g. '5 seeds x 2000 points' (replicates, then the detail if any)."""
        word = self.replicates if self.n != 1 else _singular(self.replicates)
        return f"{self.n} {word}" if self.detail is None else f"{self.n} {word} x {self.detail}"

    def caption(self) -> str:
        """The bold verdict line, e.g. '**holds** (n = 5 seeds x 2000 points): greedy nearer: greedy - random
        max distance -0.366 (claimed below 0), 95 % CI [-0.506, -0.226] (t over seeds)'."""
        line = (
            f"**{self.status}** (n = {self.sample()}): {self.statement}: {self.quantity} {self.estimate:+.3f} "
            f"(claimed {self.side} {self.threshold:g}), {self.level * 100:g} % CI [{self.low:+.3f}, "
            f"{self.high:+.3f}] (t over {self.replicates})"
        )
        return line if self.paper is None else f"{line}; paper: {self.paper:+.3f}"


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
) -> IntervalVerdict:
    """The verdict on "the mean of `estimates` (one per independent replicate) lies `side` `threshold`".

    holds when the whole t interval lies on the claimed side of `threshold`, does not hold when it lies
    entirely on the other side, else inconclusive: an interval that touches the threshold, every
    replicate exactly at it, or a single replicate (no interval). `quantity` names what each estimate
    is (e.g. 'greedy coreset - random max distance', a paired per-seed difference); `detail` is the size
    of each replicate for the caption (e.g. '2000 points').
    """
    from scipy import stats

    if side not in SIDES:
        raise ValueError(f"side={side!r}: choose one of {list(SIDES)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is the interval's coverage in (0, 1), e.g. 0.95; got {level}")
    values = np.asarray(estimates, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"estimates: give one finite number per replicate; got {list(np.ravel(values))[:5]}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite; got {threshold}")
    n, estimate = values.size, float(values.mean())
    if n < 2:
        low, high = -math.inf, math.inf
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
        low, high = estimate - half, estimate + half
    sign = 1.0 if side == "above" else -1.0
    lower, upper = sorted((sign * (low - threshold), sign * (high - threshold)))
    verdict = "holds" if lower > 0 else "does not hold" if upper < 0 else "inconclusive"
    return IntervalVerdict(
        statement, quantity, side, float(threshold), verdict, estimate, low, high, level, n, replicates, detail, paper
    )


def _singular(replicates: str) -> str:
    """'categories' -> 'category', 'units (3 categories x 3 seeds)' -> 'unit (3 categories x 3 seeds)'."""
    head, space, rest = replicates.partition(" ")
    head = head[:-3] + "y" if head.endswith("ies") else head.removesuffix("s")
    return head + space + rest
