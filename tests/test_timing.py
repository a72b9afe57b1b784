import pandas as pd
import pytest

from adlib.evidence.timing import TimingClaim, seconds_per_image, timing_verdicts


def results(times: dict[tuple[str, int, str], float]) -> pd.DataFrame:
    rows = [
        {"category": c, "seed": s, "method": m, "metric": "predict_seconds_per_image", "value": v}
        for (c, s, m), v in times.items()
    ]
    rows.append({"category": "a", "seed": 0, "method": "fast", "metric": "image_auroc", "value": 0.9})
    return pd.DataFrame(rows)


TIMES = {
    ("a", 0, "fast"): 1.0,
    ("a", 0, "slow"): 4.0,
    ("a", 1, "fast"): 2.0,
    ("a", 1, "slow"): 4.0,
    ("b", 0, "fast"): 3.0,
    ("b", 0, "slow"): 4.0,
}


def test_ratios_per_unit_with_extra_seconds():
    seconds = seconds_per_image(results(TIMES), extra={"fast": 1.0})
    (verdict,) = timing_verdicts(seconds, [TimingClaim("fast beats slow", "fast", "slow", paper=0.5)])
    ratios = sorted([(1 + 1) / 4, (2 + 1) / 4, (3 + 1) / 4])  # computed by hand: (fast + 1) / slow
    assert verdict.status == "inconclusive"  # 4 / 4 = 1 is not faster
    assert verdict.estimate == pytest.approx(ratios[1])
    assert (verdict.low, verdict.high) == pytest.approx((ratios[0], ratios[-1]))
    assert sorted(verdict.values) == pytest.approx(ratios) and verdict.sample() == "3 repeats"
    assert verdict.caption() == (
        "**inconclusive** (n = 3 repeats): fast beats slow: time per image fast / slow (median ratio) +0.750 "
        "(claimed below 1), range [+0.500, +1.000] (over the repeats); paper: +0.500"
    )


def test_status_holds_and_does_not_hold():
    seconds = seconds_per_image(results(TIMES))
    verdicts = timing_verdicts(seconds, [TimingClaim("fast", "fast", "slow"), TimingClaim("slow", "slow", "fast")])
    assert [verdict.status for verdict in verdicts] == ["holds", "does not hold"]
    assert "paper" not in verdicts[0].caption()
    (one,) = timing_verdicts(seconds.iloc[:1], [TimingClaim("fast", "fast", "slow")])
    assert one.sample() == "1 repeat" and one.low == one.high == 0.25


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        timing_verdicts(seconds_per_image(results(TIMES)), [TimingClaim("x", "nope", "slow")])
    with pytest.raises(ValueError, match="'nope'"):
        seconds_per_image(results(TIMES), extra={"nope": 1.0})
