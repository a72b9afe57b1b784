"""adlib.evidence.register.against_reported: a claim against a number another paper publishes (PC Table 6's
DifferNet on MTD), judged on our method's bootstrap interval minus that constant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adlib.evidence.register import RegisterError, against_reported
from adlib.evidence.verdicts import method_intervals

DIFFERNET = 0.977  # PC Table 6, MTD, as transcribed in paper_data/pc.csv


def table(good: list[float], bad: list[float], method: str = "PatchCore-10%") -> pd.DataFrame:
    scores = good + bad
    return pd.DataFrame(
        {
            "category": "mtd",
            "seed": 0,
            "method": method,
            "image": [f"{i:03d}.jpg" for i in range(len(scores))],
            "label": [0] * len(good) + [1] * len(bad),
            "score": scores,
        }
    )


def slow_auroc(good: list[float], bad: list[float]) -> float:
    """Every (defective, good) pair: 1 when the defective image scores higher, 1/2 on a tie."""
    return float(np.mean([1.0 if b > g else 0.5 if b == g else 0.0 for b in bad for g in good]))


def test_the_estimate_is_our_auroc_minus_the_published_number_and_the_interval_ours_shifted():
    rng = np.random.default_rng(0)
    good, bad = list(rng.normal(0, 1, 30)), list(rng.normal(2.5, 1, 40))
    images = table(good, bad)
    verdict = against_reported("pc-t6-patchcore-matches-differnet-mtd-image", images, n_resamples=500)
    assert verdict.estimate == pytest.approx(slow_auroc(good, bad) - DIFFERNET)
    ours = method_intervals(images, n_resamples=500).iloc[0]
    assert (verdict.low, verdict.high) == pytest.approx((ours.low - DIFFERNET, ours.high - DIFFERNET))
    assert (verdict.side, verdict.bound, verdict.paper) == ("within", 0.01, pytest.approx(0.002))
    assert verdict.caption().endswith("[pc-t6-patchcore-matches-differnet-mtd-image]")
    assert "DifferNet's published 0.977" in verdict.caption()


def test_the_status_follows_where_the_shifted_interval_lies():
    perfect = table([0.0] * 20, [1.0] * 20)  # AUROC 1 on every resample: 0.023 above DifferNet
    above = against_reported("pc-t6-patchcore-above-differnet-mtd-image", perfect, n_resamples=200)
    assert (above.estimate, above.low, above.high) == pytest.approx((0.023, 0.023, 0.023))
    assert above.status == "holds"
    match = against_reported("pc-t6-patchcore-matches-differnet-mtd-image", perfect, n_resamples=200)
    assert match.status == "does not hold"  # 0.023 is outside +-0.01
    chance = table([0.0, 1.0] * 10, [0.0, 1.0] * 10)  # AUROC 0.5
    assert against_reported("pc-t6-patchcore-above-differnet-mtd-image", chance, n_resamples=200).status == (
        "does not hold"
    )


def test_a_row_it_cannot_weigh_or_a_missing_method_is_named():
    images = table([0.0] * 5, [1.0] * 5)
    with pytest.raises(RegisterError, match="against_reported takes"):
        against_reported("pc-t2-coreset1-matches-25-pixel", images)  # a pixel claim needs the maps
    with pytest.raises(ValueError, match="no rows of method 'PatchCore'"):
        against_reported("pc-t6-patchcore-above-differnet-mtd-image", images, a="PatchCore")
