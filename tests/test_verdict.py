"""adlib.evidence.verdicts.Verdict: the one status rule for every comparison, and the one caption shape that every
kind of verdict (bootstrap, t interval, timing, the companion's separation diagnostic) produces."""

import re

import numpy as np
import pandas as pd
import pytest

from adlib.companion.feature_geometry import separation, separation_verdict
from adlib.evidence.claims import Claim
from adlib.evidence.intervals import interval_verdict
from adlib.evidence.per_image import image_rows
from adlib.evidence.timing import TimingClaim, timing_verdicts
from adlib.evidence.verdicts import Verdict, assess, interval_status


def verdict(low: float, high: float, side: str, bound: float) -> Verdict:
    return Verdict("s", "q", "f", side, bound, (low + high) / 2, low, high, 0.95, "1 seed")


@pytest.mark.parametrize(
    ("side", "bound", "cases"),
    [
        # (low, high) -> status; the bound 0.2 is touched from either side
        ("above", 0.2, {(0.3, 0.5): "holds", (-0.1, 0.1): "does not hold", (0.1, 0.3): "inconclusive",
                        (0.2, 0.5): "inconclusive", (-0.1, 0.2): "inconclusive", (0.2, 0.2): "inconclusive"}),
        ("below", 0.2, {(-0.1, 0.1): "holds", (0.3, 0.5): "does not hold", (0.1, 0.3): "inconclusive",
                        (-0.1, 0.2): "inconclusive", (0.2, 0.5): "inconclusive", (0.2, 0.2): "inconclusive"}),
        ("within", 0.2, {(-0.1, 0.1): "holds", (-0.2, 0.2): "holds", (0.3, 0.5): "does not hold",
                         (-0.5, -0.3): "does not hold", (0.1, 0.3): "inconclusive", (0.2, 0.5): "inconclusive",
                         (-0.5, -0.2): "inconclusive", (-0.3, 0.3): "inconclusive"}),
        ("above", 0.0, {(-np.inf, np.inf): "inconclusive", (0.0, 0.0): "inconclusive", (1e-9, 1.0): "holds"}),
    ],
)  # fmt: skip
def test_one_status_rule_for_every_comparison(side, bound, cases):
    """Holds inside the claimed side, does not hold entirely on the other, inconclusive otherwise: an interval
    touching an above / below bound is inconclusive, one touching a within margin is inside it (|d| <= delta)."""
    for (low, high), expected in cases.items():
        assert interval_status(low, high, side, bound) == expected, (low, high)
        assert verdict(low, high, side, bound).status == expected


def test_the_rule_reads_every_claim_by_its_side_and_bound():
    assert (Claim.above("", "pro", "A", "B").side, Claim.above("", "pro", "A", "B").bound) == ("above", 0.0)
    assert (Claim.within("", "pro", "A", "B", 0.01).side, Claim.within("", "pro", "A", "B", 0.01).bound) == (
        "within",
        0.01,
    )
    assert Claim.trend("", "pro", "A", "x", "increasing").side == "above"
    assert Claim.trend("", "pro", "A", "x", "decreasing").side == "below"


def test_a_verdict_refuses_what_the_rule_cannot_read():
    with pytest.raises(ValueError, match="side"):
        verdict(0.0, 1.0, "beyond", 0.0)
    with pytest.raises(ValueError, match="margin delta > 0"):
        verdict(0.0, 1.0, "within", 0.0)
    with pytest.raises(ValueError, match="empty"):
        verdict(1.0, 0.0, "above", 0.0)
    with pytest.raises(ValueError, match="level"):
        Verdict("s", "q", "f", "above", 0.0, 0.5, 0.0, 1.0, 95, "1 seed")
    with pytest.raises(ValueError, match="interval_status|side"):
        interval_status(0.0, 1.0, "beyond", 0.0)


CAPTION = re.compile(
    r"^\*\*(holds|does not hold|inconclusive)\*\* \(n = (?P<n>.+?)\): (?P<finding>.+), "
    r"(?P<interval>(\d+ % CI|range) \[[+-](\d+\.\d{3}|inf), [+-](\d+\.\d{3}|inf)\])( \((?P<basis>[^)]+)\))?"
    r"(; paper: [+-]\d+\.\d{3})?(; (?P<note>.+))?$"
)


def every_kind_of_verdict() -> list[Verdict]:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 5 + [1] * 7)
    images = [f"i{k}" for k in range(labels.size)]
    table = pd.concat(
        [
            image_rows("pill", 0, "A", images, labels, labels * 2 + rng.normal(size=12)),
            image_rows("pill", 0, "B", images, labels, rng.normal(size=12)),
        ]
    )
    bootstrap = assess(Claim.above("A beats B", "image_auroc", "A", "B", paper=0.1), table, n_resamples=100)
    t_interval = interval_verdict("A nearer", "A - B distance", [-0.3, -0.2, -0.25], "below", detail="9 points")
    seconds = pd.DataFrame({"fast": [1.0, 2.0], "slow": [4.0, 4.0]})
    (timing,) = timing_verdicts(seconds, [TimingClaim("fast beats slow", "fast", "slow", paper=0.5)])
    defect, normal = np.zeros(40, bool), np.zeros(40, bool)
    defect[20:24], normal[:20] = True, True
    parts = {
        name: rng.normal(size=40) + 5 * defect * (name == "norm_part")
        for name in ("euclidean", "norm_part", "direction_part", "cross_part", "cosine_nn", "norm")
    }
    diagnostic = separation_verdict(separation({"c": parts}, {"c": (defect, normal)}, {"c": 4}, n_resamples=50))
    return [bootstrap, t_interval, timing, diagnostic]


def test_every_kind_of_verdict_has_the_same_caption_shape():
    kinds = every_kind_of_verdict()
    for verdict in kinds:
        match = CAPTION.match(verdict.caption())
        assert match, verdict.caption()
        assert match["n"] == verdict.sample() and match["interval"] in verdict.interval()
        assert verdict.caption().startswith(f"**{verdict.status}** (n = {verdict.sample()}): {verdict.finding}, ")
    bootstrap, t_interval, timing, diagnostic = kinds
    assert CAPTION.match(bootstrap.caption())["basis"] is None and bootstrap.metric == "image_auroc"
    assert CAPTION.match(t_interval.caption())["basis"] == "t over seeds"
    assert CAPTION.match(timing.caption())["interval"].startswith("range [+0.250, +0.500]")
    assert CAPTION.match(diagnostic.caption())["note"].startswith("patch AUROC of the Euclidean NN distance")


@pytest.mark.parametrize(
    ("low", "high", "said"),
    [(-0.018, -0.007, "the whole interval below 0"), (0.003, 0.03, "the whole interval above 0"), (-0.01, 0.02, None)],
)
def test_a_within_claim_says_on_which_side_of_zero_its_interval_lies(low, high, said):
    """'within 0.01' can be inconclusive (or hold) while the interval is clearly one-sided; the caption says so."""
    within = verdict(low, high, "within", 0.01)
    assert within.side_of_zero() == said
    assert (f"({said})" in within.caption()) == (said is not None)
    assert verdict(low, high, "above", 0.0).side_of_zero() is None  # the status of above / below says it already


def test_the_caption_cites_its_register_row_last():
    cited = Verdict("s", "q", "f", "above", 0.0, 0.2, 0.1, 0.3, 0.95, "1 seed", paper=0.05, source="pc-t1-x")
    assert cited.caption() == "**holds** (n = 1 seed): f, 95 % CI [+0.100, +0.300]; paper: +0.050 [pc-t1-x]"
    assert cited.half_width() == pytest.approx(0.1)
