import pandas as pd
import pytest

from adlib.evidence.timing import TimingClaim, caption_line, seconds_per_image, timing_verdicts


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
    verdict = timing_verdicts(seconds, [TimingClaim("fast beats slow", "fast", "slow", paper=0.5)]).iloc[0]
    ratios = sorted([(1 + 1) / 4, (2 + 1) / 4, (3 + 1) / 4])  # computed by hand: (fast + 1) / slow
    assert verdict["status"] == "inconclusive"  # 4 / 4 = 1 is not faster
    assert verdict["median"] == pytest.approx(ratios[1])
    assert (verdict["low"], verdict["high"]) == pytest.approx((ratios[0], ratios[-1]))
    assert verdict["repeats"] == 3
    assert caption_line(verdict).startswith("**inconclusive** (3 repeats): fast beats slow: 0.75x")


def test_status_holds_and_does_not_hold():
    seconds = seconds_per_image(results(TIMES))
    table = timing_verdicts(seconds, [TimingClaim("fast", "fast", "slow"), TimingClaim("slow", "slow", "fast")])
    assert list(table["status"]) == ["holds", "does not hold"]
    assert "paper" not in caption_line(table.iloc[0])


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        timing_verdicts(seconds_per_image(results(TIMES)), [TimingClaim("x", "nope", "slow")])
    with pytest.raises(ValueError, match="'nope'"):
        seconds_per_image(results(TIMES), extra={"nope": 1.0})
