"""The one verdict type, and the paired bootstrap over test images that most verdicts come from.

A `Verdict` is a claim weighed on an interval [low, high] of one estimate: it **holds** when the interval
lies entirely on the claimed side of a bound (above or below a threshold, or within +-delta), **does not
hold** when it lies entirely on the other side, and is **inconclusive** otherwise (`interval_status`, the
one rule). Every kind of evidence gives one: `assess` (below), `adlib.evidence.intervals.interval_verdict`
(a Student t interval over replicates), `adlib.evidence.timing.timing_verdicts` (the range of per-repeat
time ratios) and the companion's diagnostics. `Verdict.caption()` is the bold line a notebook's caption
starts with, one shape for all of them.

A `Claim` is what a paper states (one metric; "A above B", "A within delta of B", or a trend over a
sweep) with the paper's own number for display. `assess(claim, table)` weighs it against our per-image
results by a paired bootstrap over the test images.

The per-image table (the input)
-------------------------------
A pandas DataFrame with one row per (category, seed, method, test image), columns:

- `category` (str), `seed` (int): one evaluation unit (a trained model per method and its test set);
- `method` (str): the name the claim uses (`Claim.a`, `Claim.b`);
- `image`: the test image's identity (an index or a path; the same value for the same image across
  methods, since the comparison is paired image by image);
- `label`: 0 = good, 1 = defective;
- `score`: the image score (higher = more anomalous); needed for image AUROC only;
- `result_key`: the evaluation the row's score came from (as `run_grid` writes it); needed for pixel
  AUROC and PRO through `pixel_stats` only;
- for a trend, the swept value in a column the claim names (`Claim.sweep`, e.g. `noise_ratio`).

Other columns (settings, paths) are allowed and ignored; `run_grid(...).images` is such a table, and
`adlib.evidence.per_image.image_rows` builds one from scores. Row order does not matter: each unit's images are
put in sorted `image` order.

The bootstrap (what exactly is computed)
----------------------------------------
- Units: the (category, seed) pairs (with the sweep value too for a trend). The metric is computed per
  unit and per method; categories and seeds are fixed, not resampled, so the interval measures the
  uncertainty from the finite test sets given these trained models, not seed-to-seed retraining
  variation (which only enters through the average over seeds).
- Resamples: for each unit, `n_resamples` draws of its test images with replacement, stratified: the
  good images are drawn from the good ones and the defective from the defective ones, so every
  resample keeps the unit's good / defective counts. Both methods (and, in a trend, every sweep value,
  and every seed, whose unit has exactly the same images) are scored on the same draws: the comparison
  is paired, and seeds that score one test set count as one test set, not as several independent ones.
- Draw order (so that results are reproducible and a test can redraw them): one
  `numpy.random.default_rng(seed)`; units in sorted (category, seed[, sweep value]) order; for each
  unit whose (category, images) did not occur before, `rng.integers(0, n_good, (R, n_good))`
  then `rng.integers(0, n_defective, (R, n_defective))`, positions into the unit's good and defective
  images (each in sorted `image` order), good columns first.
- Statistic: for "above" / "within", the mean over units of metric(A) - metric(B) (every unit weighs
  the same). For a trend, first the curve c(x) = mean over the units at sweep value x of metric(A)
  (or of metric(A) - metric(B) when the trend is of a difference), then its least-squares slope
  against x (`statistic="slope"`) or c(last x) - c(first x) (`"last_minus_first"`).
- Point estimate: the statistic on the test sets as they are (no resampling). Interval: the
  2.5th and 97.5th percentiles (numpy's linear interpolation) of the statistic over the resamples
  (a percentile interval; `level` sets another coverage).

Verdicts, with [low, high] the interval (`interval_status` with the claim's `side` and `bound`): "above"
holds when low > 0 and does not hold when high < 0; "within delta" holds when [low, high] lies inside
[-delta, delta] and does not hold when it lies entirely outside (low > delta or high < -delta); a trend
holds when its interval lies entirely on the claimed side of 0 and does not hold when it lies entirely
on the other side. Everything else is "inconclusive", including an interval that touches 0: two methods
that both score 1.0 on every resample (a ceiling tie) give [0, 0], which cannot tell whether A is above B.

How each metric of every resample is computed (`adlib.evidence.bootstrap`): a resample is turned into draw
counts per image. Image AUROC follows from the counts for all resamples at once, exactly (ties count
one half, as `adlib.evaluation.metrics.image_auroc`). Pixel AUROC (all pixels of all images) and PRO (FPR 0.3,
`anomalous_only=True`, as `adlib.evaluation.evaluate.evaluate`) come, with `pixel_stats=run_grid(...).pixel_stats`,
from each evaluation's `adlib.evaluation.pixel_stats.PixelStats` (histograms of its map scores over fixed
thresholds) for all resamples at once, within the binning error that module states (exact when the
maps hold at most 2000 distinct scores, else bounded per resample by `PixelStats.binning_error`); the point
estimate is then the binned metric too. The slow, exact reference route is `subset_metrics`:
`subset_metric` callables, one full metric evaluation per resample, which need the maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adlib.evaluation.pixel_stats import PixelStats
from adlib.evidence.bootstrap import Resampler
from adlib.evidence.claims import METRICS, Claim
from adlib.evidence.per_image import SubsetMetric, Unit, units_of

# --------------------------------------------------------------------------- the verdict

SIDES = ("above", "below", "within")


def check_level(level: float) -> None:
    """Raises unless `level`, an interval's coverage, lies in (0, 1): the one check of every interval and verdict."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is the interval's coverage in (0, 1), e.g. 0.95; got {level}")


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The `level` percentile interval of `values` (numpy's linear interpolation): for 0.95 the 2.5th and
    97.5th percentiles."""
    check_level(level)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def interval_status(low: float, high: float, side: str, bound: float) -> str:
    """ "holds", "does not hold" or "inconclusive": where the interval [low, high] lies against the claim.

    side "above": holds when low > bound, does not hold when high < bound; "below": holds when high < bound,
    does not hold when low > bound; "within" (bound = delta > 0): holds when [low, high] lies inside
    [-delta, delta], does not hold when it lies entirely outside (low > delta or high < -delta). Anything
    else is inconclusive, so an interval that touches the bound of "above" / "below" is (a ceiling tie
    [0, 0] cannot say that A is above B), while "within" includes its ends, as |difference| <= delta does.
    """
    if side == "above":
        claimed, other = low > bound, high < bound
    elif side == "below":
        claimed, other = high < bound, low > bound
    elif side == "within":
        claimed, other = -bound <= low and high <= bound, low > bound or high < -bound
    else:
        raise ValueError(f"side={side!r}: choose one of {list(SIDES)}")
    return "holds" if claimed else "does not hold" if other else "inconclusive"


def threshold_finding(statement: str, quantity: str, estimate: float, side: str, bound: float) -> str:
    """The finding of a claim on a named quantity, e.g. 'greedy nearer: greedy - random max distance -0.366
    (claimed below 0)'."""
    return f"{statement}: {quantity} {estimate:+.3f} (claimed {side} {bound:g})"


@dataclass(frozen=True, eq=False)
class Verdict:
    """A claim weighed on an interval of one estimate, whatever made the interval: the three-valued status,
    the estimate, [low, high], n in words and the paper's value.

    `status` follows from [low, high], `side` and `bound` by `interval_status`. `statement` is the claim
    (a table row or plot label), `quantity` what the estimate measures, `finding` the claim with the
    estimate in words (the caption's middle). `level` is the interval's coverage, None for the plain range
    of the values (timed repeats); `basis` says how the interval was made, after it in the caption (e.g.
    't over seeds'; None for a percentile bootstrap). `values` are the numbers the interval was read from,
    where there are any: the statistic of every bootstrap resample, each replicate's estimate, each
    repeat's ratio. `metric` is the paper metric of a bootstrap claim (None otherwise); `note` what a
    caption adds after the numbers. `source` is the id of the claims-register row the claim was built
    from (`adlib.evidence.register`), which the caption cites; None for a claim of no register.
    """

    statement: str
    quantity: str
    finding: str
    side: str
    bound: float
    estimate: float
    low: float
    high: float
    level: float | None
    n: str
    basis: str | None = None
    paper: float | None = None
    metric: str | None = None
    note: str | None = None
    values: np.ndarray | None = field(default=None, repr=False)
    source: str | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side={self.side!r}: choose one of {list(SIDES)}")
        if not math.isfinite(self.bound) or (self.side == "within" and not self.bound > 0):
            raise ValueError(f"bound={self.bound}: a finite threshold, or for 'within' a margin delta > 0")
        if self.level is not None:
            check_level(self.level)
        if not self.low <= self.high:
            raise ValueError(f"the interval [{self.low}, {self.high}] is empty or not a number")
        if self.paper is not None and not math.isfinite(self.paper):
            raise ValueError(f"paper must be a finite number or None; got {self.paper}")

    @property
    def status(self) -> str:
        """ "holds", "does not hold" or "inconclusive" (`interval_status`)."""
        return interval_status(self.low, self.high, self.side, self.bound)

    def sample(self) -> str:
        """n in words, e.g. '9 categories x 1 seed x 60 test images (20 good / 40 defective)' or '5 seeds x
        2000 points'."""
        return self.n

    def interval(self) -> str:
        """The interval in words: '95 % CI [-0.506, -0.226]', with its basis if any ('... (t over seeds)'),
        or 'range [+0.210, +0.260] (over the repeats)' without a level."""
        name = "range" if self.level is None else f"{self.level * 100:g} % CI"
        text = f"{name} [{self.low:+.3f}, {self.high:+.3f}]"
        return text if self.basis is None else f"{text} ({self.basis})"

    def caption(self) -> str:
        """The bold verdict line a caption starts with: status, n, finding, interval, the paper's value and
        the note, e.g. '**holds** (n = ...): A above B by +0.076 image AUROC, 95 % CI [+0.041, +0.112];
        paper: +0.299'."""
        line = f"**{self.status}** (n = {self.sample()}): {self.finding}, {self.interval()}"
        side = self.side_of_zero()
        if side is not None:
            line += f" ({side})"
        if self.paper is not None:
            line += f"; paper: {self.paper:+.3f}"
        line = line if self.note is None else f"{line}; {self.note}"
        return line if self.source is None else f"{line} [{self.source}]"

    def side_of_zero(self) -> str | None:
        """For a 'within delta' claim, where the interval lies against 0, which the status alone hides: a
        difference can be inside the margin and still clearly one-sided ('interval below 0'), or outside it
        and clearly so; None for other claims and for an interval that contains 0."""
        if self.side != "within" or self.low <= 0.0 <= self.high:
            return None
        return "the whole interval below 0" if self.high < 0 else "the whole interval above 0"

    def half_width(self) -> float:
        """Half the interval's width: the smallest difference this sample can tell from zero (about)."""
        return (self.high - self.low) / 2


# --------------------------------------------------------------------------- n in words


@dataclass(frozen=True)
class UnitCount:
    """The size of one unit: category, seed, sweep value (None without a sweep), good / defective images."""

    category: str
    seed: int
    sweep: object
    good: int
    defective: int

    @classmethod
    def of(cls, unit: Unit, sweep: str | None = None) -> UnitCount:
        """The size of a bootstrap unit (its key: category, seed[, sweep value])."""
        labels = unit.labels
        category, seed = unit.key[:2]
        return cls(str(category), int(seed), unit.key[2] if sweep else None, int((~labels).sum()), int(labels.sum()))


def sample_text(units: Sequence[UnitCount], sweep: str | None = None) -> str:
    """n in words for these units: categories x seeds [x sweep values] x test images (good / defective)."""

    def count(values: list[int]) -> str:
        return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"

    def plural(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {'categories' if word == 'category' else word + 's'}"

    n_categories, n_seeds = len({u.category for u in units}), len({u.seed for u in units})
    n_sweep = len({u.sweep for u in units})
    parts = [plural(n_categories, "category"), plural(n_seeds, "seed")]
    if sweep is not None:
        parts.append(f"{n_sweep} {sweep} values")
    cells = n_categories * n_seeds * n_sweep
    shape = " x ".join(parts) if cells == len(units) else f"{len(units)} units ({', '.join(parts)})"
    good = [u.good for u in units]
    defective = [u.defective for u in units]
    images = [g + d for g, d in zip(good, defective)]
    return f"{shape} x {count(images)} test images ({count(good)} good / {count(defective)} defective)"


# --------------------------------------------------------------------------- the paired bootstrap


def assess(
    claim: Claim,
    table: pd.DataFrame,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    subset_metrics: Mapping[tuple, SubsetMetric] | None = None,
    pixel_stats: Mapping[str, PixelStats] | None = None,
) -> Verdict:
    """The verdict on `claim` from the per-image `table` (shape and method in the module docstring).

    Image AUROC comes from the table's `score` column unless `subset_metrics` is given; pixel AUROC and
    PRO need `pixel_stats` (below) or, the slow exact reference, `subset_metrics`: a callable per
    (category, seed, method) — per (category, seed, method, sweep value) for a trend — e.g.
    `subset_metric("pro", masks, maps)`, taking indices into that method's rows of the unit in table order.
    `seed` seeds the resampling: equal inputs and seed give equal verdicts.

    `pixel_stats` (`run_grid(...).pixel_stats`, by result_key) is the fast route for pixel AUROC and PRO:
    each method's rows of a unit name their evaluation in the table's `result_key` column, and every
    resample's metric comes from that evaluation's `PixelStats` (within its binning error, see
    `adlib.evaluation.pixel_stats`; the point estimate too). It is ignored for image AUROC claims.
    """
    check_level(level)
    fast_pixels = _fast_pixel_route(claim, subset_metrics, pixel_stats)
    resampler = Resampler(claim.metric, n_resamples, seed, pixel_stats if fast_pixels else None, subset_metrics)
    pixel = claim.metric != "image_auroc"
    units = units_of(claim, table, need_scores=subset_metrics is None and not pixel, need_keys=fast_pixels)
    values = resampler.metrics(units, claim.methods)  # per method [units, 1 + R]
    a, b = values[claim.a], None if claim.b is None else values[claim.b]
    if claim.comparison == "trend":
        statistic = _trend_statistic(claim, units, a if b is None else a - b)
    else:
        statistic = (a - b).mean(axis=0)
    estimate, resampled = float(statistic[0]), statistic[1:]
    low, high = percentile_interval(resampled, level)
    return Verdict(
        claim.statement,
        claim.quantity,
        claim.describe(estimate),
        claim.side,
        claim.bound,
        estimate,
        low,
        high,
        level,
        sample_text([UnitCount.of(unit, claim.sweep) for unit in units], claim.sweep),
        paper=claim.paper,
        metric=claim.metric,
        values=resampled,
        source=getattr(claim, "register_id", None) or None,
    )


def _fast_pixel_route(
    claim: Claim, subset_metrics: Mapping[tuple, SubsetMetric] | None, pixel_stats: Mapping[str, PixelStats] | None
) -> bool:
    """Whether a pixel claim reads `pixel_stats` (True) or `subset_metrics`; raises unless exactly one is given."""
    if claim.metric == "image_auroc":
        return False
    if subset_metrics is not None and pixel_stats is not None:
        raise ValueError("pass either pixel_stats (fast, binned) or subset_metrics (slow, exact), not both")
    if subset_metrics is None and pixel_stats is None:
        raise ValueError(
            f"metric {claim.metric!r} needs the pixel statistics: pass pixel_stats=grid.pixel_stats (from run_grid), "
            f"or subset_metrics={{(category, seed, method): subset_metric({claim.metric!r}, masks, maps), ...}}; "
            "only image_auroc is computed from the score column"
        )
    return pixel_stats is not None


def _trend_statistic(claim: Claim, units: Sequence[Unit], measured: np.ndarray) -> np.ndarray:
    """The trend statistic [1 + R] of a trend claim: the curve over the sweep values (the mean of `measured`
    [units, 1 + R] over the units at each value), then its slope or last - first."""
    x_values = sorted({unit.key[2] for unit in units})
    if len(x_values) < 2:
        raise ValueError(f"a trend needs at least two values of {claim.sweep!r}; the table has {x_values}")
    per_x = {x: {unit.key[:2] for unit in units if unit.key[2] == x} for x in x_values}
    if any(cells != per_x[x_values[0]] for cells in per_x.values()):
        raise ValueError(
            f"every value of {claim.sweep!r} must cover the same (category, seed) units; "
            f"got {[len(cells) for cells in per_x.values()]} units per value: complete the sweep"
        )
    sweep_of = np.array([x_values.index(unit.key[2]) for unit in units])
    curves = np.stack([measured[sweep_of == i].mean(axis=0) for i in range(len(x_values))])
    if claim.statistic == "last_minus_first":
        return curves[-1] - curves[0]
    try:
        x = np.asarray(x_values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"a slope needs numeric {claim.sweep!r} values; got {x_values}: use statistic='last_minus_first'"
        ) from None
    centred = x - x.mean()
    return (centred[:, None] * (curves - curves.mean(axis=0))).sum(axis=0) / (centred**2).sum()


# --------------------------------------------------------------------------- one method's metric


def method_intervals(
    images: pd.DataFrame,
    metric: str = "image_auroc",
    by: Sequence[str] = ("method",),
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    pixel_stats: Mapping[str, PixelStats] | None = None,
) -> pd.DataFrame:
    """Each group's metric (groups: the `by` columns, which include `method`) with a bootstrap interval.

    Within a group the units are its (category, seed) pairs; the estimate is the mean over units of the
    metric, the interval the `level` percentile interval of that mean over stratified resamples of each
    unit's test images (as `assess` draws them; the same draws for every group that has the same unit
    and images, so methods are resampled alike). Columns: the `by` columns, estimate, low, high, units
    (how many (category, seed) pairs) and n (`sample_text`). Pixel AUROC and PRO need `pixel_stats`
    (`run_grid(...).pixel_stats`; each unit's rows name their evaluation in `result_key`), as in `assess`.
    """
    by = list(by)
    _check_interval_table(images, metric, by, pixel_stats)
    check_level(level)
    resampler = Resampler(metric, n_resamples, seed, pixel_stats=pixel_stats)
    rows = []
    for key, group in images.groupby(by, sort=True):
        where = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        units = _group_units(group, where, metric, pixel_stats)
        mean = resampler.metrics(units, [where["method"]])[where["method"]].mean(axis=0)
        low, high = percentile_interval(mean[1:], level)
        n = sample_text([UnitCount.of(unit) for unit in units])
        rows.append({**where, "estimate": float(mean[0]), "low": low, "high": high, "units": len(units), "n": n})
    return pd.DataFrame(rows)


def _check_interval_table(
    images: pd.DataFrame, metric: str, by: list[str], pixel_stats: Mapping[str, PixelStats] | None
) -> None:
    """Raises unless `method_intervals` can group `images` by `by` and compute `metric` from it."""
    if "method" not in by:
        raise ValueError(f"by={by}: include 'method' (an interval is of one method's metric)")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {list(METRICS)}")
    pixel = metric != "image_auroc"
    if pixel and pixel_stats is None:
        raise ValueError(f"metric {metric!r} needs the pixel statistics: pass pixel_stats=grid.pixel_stats (run_grid)")
    needed = ["category", "seed", "image", "label", "result_key" if pixel else "score", *by]
    missing = [column for column in dict.fromkeys(needed) if column not in images.columns]
    if missing:
        raise ValueError(f"the per-image table lacks the columns {missing}; it has {list(images.columns)}")


def _group_units(
    group: pd.DataFrame, where: dict, metric: str, pixel_stats: Mapping[str, PixelStats] | None
) -> list[Unit]:
    """One group's (category, seed) units, in sorted order, each with its images in sorted order and the
    group's method's scores (image AUROC) or evaluation (pixel metrics)."""
    method, units = where["method"], []
    for (category, unit_seed), rows in group.groupby(["category", "seed"], sort=True):
        rows = rows.sort_values("image", kind="stable")
        labels = rows["label"].to_numpy().astype(bool)
        if labels.all() or not labels.any():
            raise ValueError(
                f"{where}, category {category!r}, seed {unit_seed}: the test images "
                "need both good and defective ones for an AUROC"
            )
        scores, results = {}, {}
        if metric == "image_auroc":
            scores[method] = rows["score"].to_numpy(dtype=np.float64)
        else:
            keys = rows["result_key"].unique()
            if len(keys) != 1 or keys[0] not in pixel_stats:
                raise ValueError(
                    f"{where}, category {category!r}, seed {unit_seed}: result_key "
                    f"{list(keys)[:2]} is not one evaluation of pixel_stats: pass the run_grid's own"
                )
            results[method] = keys[0]
        units.append(Unit((category, unit_seed), tuple(rows["image"]), labels, scores, {}, results))
    return units
