"""What a paper claims, as a value a notebook can weigh: one metric, "A above B", "A within delta of B", or a
trend over a sweep, with the paper's own number for display (`reported_value`, `reported_difference`).

`adlib.evidence.verdicts.assess` weighs a `Claim` against per-image results."""

from __future__ import annotations

import math
from dataclasses import dataclass

METRICS = ("image_auroc", "pixel_auroc", "pro")  # what every evaluation reports (adlib.evaluation)
CLAIM_METRICS = (*METRICS, "au_spro")  # what a claim may be on: LOCO's AU-sPRO too (kc_table2_logical)
METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO", "au_spro": "AU-sPRO"}
COMPARISONS = ("above", "within", "trend")
DIRECTIONS = ("increasing", "decreasing")
TREND_STATISTICS = ("slope", "last_minus_first")


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """A paper's statement about one metric, in a form the bootstrap can test.

    comparison "above": metric(a) - metric(b) > 0. "within": |metric(a) - metric(b)| <= delta.
    "trend": metric(a) (or metric(a) - metric(b) when b is given) rises ("increasing") or falls
    ("decreasing") with the table column `sweep`, measured by `statistic`. `paper` is the paper's own
    value of the same quantity (a difference, or the trend statistic) as a fraction, for display (see
    `reported_value` / `reported_difference`). Build claims with `above`, `within` or `trend`.
    """

    statement: str
    metric: str
    comparison: str
    a: str
    b: str | None = None
    delta: float | None = None
    sweep: str | None = None
    direction: str | None = None
    statistic: str | None = None
    paper: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in CLAIM_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}: choose one of {list(CLAIM_METRICS)}")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.comparison!r}: choose one of {list(COMPARISONS)}")
        if self.comparison != "trend" and self.b is None:
            raise ValueError(f"a claim {self.comparison!r} compares two methods: name b (method {self.a!r} vs which?)")
        if self.b is not None and self.b == self.a:
            raise ValueError(f"a and b are both {self.a!r}: a claim compares two different methods")
        if self.comparison == "within":
            if self.delta is None or not self.delta > 0:
                raise ValueError(
                    f"a 'within' claim needs a margin delta > 0 (in metric units, e.g. 0.01); got {self.delta}"
                )
        elif self.delta is not None:
            raise ValueError(f"delta={self.delta} only applies to 'within' claims")
        if self.comparison == "trend":
            if not self.sweep:
                raise ValueError("a trend claim needs sweep: the table column with the swept value, e.g. 'noise_ratio'")
            if self.direction not in DIRECTIONS:
                raise ValueError(f"a trend claim needs direction in {list(DIRECTIONS)}; got {self.direction!r}")
            if self.statistic not in TREND_STATISTICS:
                raise ValueError(f"a trend claim needs statistic in {list(TREND_STATISTICS)}; got {self.statistic!r}")
        elif (self.sweep, self.direction, self.statistic) != (None, None, None):
            raise ValueError("sweep, direction and statistic only apply to trend claims")
        if self.paper is not None and not math.isfinite(self.paper):
            raise ValueError(f"paper must be a finite number or None; got {self.paper}")

    @classmethod
    def above(cls, statement: str, metric: str, a: str, b: str, paper: float | None = None) -> Claim:
        """ "a scores higher than b": the difference metric(a) - metric(b) is > 0."""
        return cls(statement, metric, "above", a, b, paper=paper)

    @classmethod
    def within(cls, statement: str, metric: str, a: str, b: str, delta: float, paper: float | None = None) -> Claim:
        """ "a matches b": |metric(a) - metric(b)| <= delta (delta in metric units, e.g. 0.01 AUROC)."""
        return cls(statement, metric, "within", a, b, delta=delta, paper=paper)

    @classmethod
    def trend(
        cls,
        statement: str,
        metric: str,
        method: str,
        sweep: str,
        direction: str,
        against: str | None = None,
        statistic: str = "slope",
        paper: float | None = None,
    ) -> Claim:
        """ "method's metric rises / falls with sweep" (of the difference to `against`, if given)."""
        return cls(
            statement,
            metric,
            "trend",
            method,
            against,
            sweep=sweep,
            direction=direction,
            statistic=statistic,
            paper=paper,
        )

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods the claim reads from the table."""
        return (self.a,) if self.b is None else (self.a, self.b)

    @property
    def side(self) -> str:
        """Where the claim puts its statistic against `bound`: "above" (a above b, a rising trend), "below"
        (a falling trend) or "within" (|a - b| <= delta)."""
        if self.comparison == "trend":
            return "above" if self.direction == "increasing" else "below"
        return self.comparison

    @property
    def bound(self) -> float:
        """The bound `side` refers to: the margin delta of a "within" claim, else 0."""
        return self.delta if self.comparison == "within" else 0.0

    @property
    def quantity(self) -> str:
        """What the claim's statistic measures, in words, e.g. 'image AUROC of A - B'."""
        name = METRIC_NAMES[self.metric]
        subject = self.a if self.b is None else f"{self.a} - {self.b}"
        if self.comparison != "trend":
            return f"{name} of {subject}"
        if self.statistic == "slope":
            return f"slope of {subject} {name} per unit of {self.sweep}"
        return f"last - first {subject} {name} over {self.sweep}"

    def describe(self, estimate: float) -> str:
        """The claim and our point estimate in words, e.g. 'SoftPatch above PatchCore by +0.076 image AUROC'."""
        name = METRIC_NAMES[self.metric]
        if self.comparison == "above":
            return f"{self.a} above {self.b} by {estimate:+.3f} {name}"
        if self.comparison == "within":
            return f"{self.a} within {self.delta:g} of {self.b}: difference {estimate:+.3f} {name}"
        subject = self.a if self.b is None else f"{self.a} - {self.b}"
        verb = "rises" if self.direction == "increasing" else "falls"
        measure = (
            f"slope {estimate:+.3f} per unit of {self.sweep}"
            if self.statistic == "slope"
            else (f"last - first {estimate:+.3f}")
        )
        return f"{subject} {name} {verb} with {self.sweep}: {measure}"


def reported_value(
    paper: str, table: str | int, method: str, metric: str, setting: str = "", category: str = "mean"
) -> float:
    """One number the paper prints, as a fraction (via `adlib.evidence.paper.reported`); raises unless exactly one matches."""
    from adlib.evidence.paper import reported

    rows = reported(paper=paper, table=table, method=method, metric=metric)
    picked = rows[(rows["setting"] == setting) & (rows["category"] == category)]
    if len(picked) != 1:
        raise ValueError(
            f"{paper} Table {table}, {method}, {metric}: {len(picked)} numbers with setting={setting!r} and "
            f"category={category!r}; settings there: {sorted(rows['setting'].unique())}, categories: "
            f"{sorted(rows['category'].unique())}"
        )
    return float(picked["fraction"].iloc[0])


def reported_difference(
    paper: str,
    table: str | int,
    metric: str,
    a: str,
    b: str,
    setting_a: str = "",
    setting_b: str | None = None,
    category: str = "mean",
) -> float:
    """The paper's a - b (fractions) in one table; `setting_b` defaults to `setting_a`."""
    setting_b = setting_a if setting_b is None else setting_b
    return reported_value(paper, table, a, metric, setting_a, category) - reported_value(
        paper, table, b, metric, setting_b, category
    )
