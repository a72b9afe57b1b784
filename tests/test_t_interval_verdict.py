"""adlib.evidence.intervals.interval_verdict against a hand-computed t interval (printed t quantiles, plain loops)."""

import math

import numpy as np
import pytest

from adlib.evidence.intervals import interval_verdict

T_975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262}  # Student's t quantiles (0.975) from a printed table


def hand_interval(values):
    """mean +- t * sd / sqrt(n) with the mean and the sample sd by plain loops."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half, sd


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_interval_is_the_t_interval_of_the_estimates(n):
    values = list(np.random.default_rng(n).normal(loc=-1.0, size=n))
    mean, low, high, sd = hand_interval(values)
    verdict = interval_verdict("a below b", "A - B max distance", values, "below", detail="100 points")
    assert verdict.estimate == pytest.approx(mean)
    assert verdict.low == pytest.approx(low, abs=2e-3 * sd) and verdict.high == pytest.approx(high, abs=2e-3 * sd)
    np.testing.assert_array_equal(verdict.values, values)
    assert f"(n = {n} seeds x 100 points)" in verdict.caption()


def test_status_follows_the_side_of_the_threshold():
    values = [0.4, 0.41, 0.37, 0.41, 0.37]  # mean 0.392, interval about [0.367, 0.417]
    assert interval_verdict("s", "q", values, "above").status == "holds"
    assert interval_verdict("s", "q", values, "below").status == "does not hold"
    assert interval_verdict("s", "q", values, "above", threshold=0.35).status == "holds"
    assert interval_verdict("s", "q", values, "above", threshold=0.45).status == "does not hold"
    assert interval_verdict("s", "q", values, "below", threshold=0.45).status == "holds"
    assert interval_verdict("s", "q", values, "above", threshold=0.39).status == "inconclusive"  # inside
    assert interval_verdict("s", "q", [0.5, -0.4, 0.9, -0.2, 0.1], "above").status == "inconclusive"


def test_ties_and_one_replicate_are_inconclusive():
    tie = interval_verdict("s", "q", [0.0, 0.0, 0.0], "below")
    assert tie.status == "inconclusive" and tie.low == tie.high == 0.0  # every seed at the threshold: no side
    constant = interval_verdict("s", "q", [3.0, 3.0, 3.0], "above")
    assert constant.status == "holds"  # no spread, and every seed on the claimed side
    one = interval_verdict("s", "q", [0.1], "above", detail="10 points")
    assert one.status == "inconclusive" and math.isinf(one.low) and math.isinf(one.high)
    assert one.caption().startswith("**inconclusive** (n = 1 seed x 10 points): s: q +0.100")


def test_caption_reads_like_a_verdict():
    verdict = interval_verdict(
        "greedy nearer", "greedy - random max distance", [-0.3, -0.4, -0.35], "below", paper=-0.2
    )
    mean, low, high, _ = hand_interval([-0.3, -0.4, -0.35])
    assert verdict.caption() == (
        f"**holds** (n = 3 seeds): greedy nearer: greedy - random max distance {mean:+.3f} "
        f"(claimed below 0), 95 % CI [{verdict.low:+.3f}, {verdict.high:+.3f}] (t over seeds); "
        "paper: -0.200"
    )
    assert f"{verdict.low:+.3f}" == f"{low:+.3f}" and f"{verdict.high:+.3f}" == f"{high:+.3f}"


def test_bad_inputs_name_the_setting():
    with pytest.raises(ValueError, match="side"):
        interval_verdict("s", "q", [0.1, 0.2], "lower")
    with pytest.raises(ValueError, match="one finite number per replicate"):
        interval_verdict("s", "q", [], "above")
    with pytest.raises(ValueError, match="one finite number per replicate"):
        interval_verdict("s", "q", [0.1, float("nan")], "above")
    with pytest.raises(ValueError, match="level"):
        interval_verdict("s", "q", [0.1, 0.2], "above", level=95)


def test_one_replicate_is_named_in_the_singular():
    for replicates, expected in (
        ("categories", "1 category"),
        ("units (3 categories x 3 seeds)", "1 unit (3 categories x 3 seeds)"),
    ):
        verdict = interval_verdict("s", "q", [0.1], side="above", replicates=replicates)
        assert verdict.sample() == expected
