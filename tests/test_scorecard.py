"""scripts/scorecard.py: the captions' verdicts as one point per claim, and the counts per paper."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from adlib.companion.report import publish
from adlib.evidence.register import cite, entry
from adlib.evidence.verdicts import Verdict
from adlib.style import pyplot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scorecard(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import scorecard

    return scorecard


def verdict(id: str, low: float, high: float) -> Verdict:
    plain = Verdict("s", "q", f"claim {id}", "above", 0.0, (low + high) / 2, low, high, 0.95, "3 categories")
    return cite(Verdict(**{**plain.__dict__, "paper": entry(id).paper_value, "metric": "image_auroc"}), id)


def test_the_scorecard_shows_each_claim_of_the_captions_once(tmp_path, scorecard):
    fig, _ = pyplot().subplots()
    table = pd.DataFrame({"value": [1]})
    shared = verdict("kc-t4-both-above-patchcore-image", -0.05, 0.04)  # inconclusive, in two figures
    first = [verdict("pc-t1-coreset25-above-padim-image", 0.02, 0.08), shared]
    second = [shared, verdict("sp-t1-lof-above-patchcore-nooverlap-image", -0.09, -0.03)]
    publish(tmp_path, "one", fig, table, "c", first, {})
    publish(tmp_path, "two", fig, table, "c", second, {})
    publish(tmp_path, "illustration", fig, table, "c", "Shows X.", {})
    written = scorecard.write_scorecard(tmp_path)
    assert {path.name for path in written} == {"scorecard.png", "scorecard.pdf", "scorecard.csv", "scorecard.md"}
    points = pd.read_csv(tmp_path / "scorecard.csv")
    assert list(points.id) == [
        "pc-t1-coreset25-above-padim-image",
        "kc-t4-both-above-patchcore-image",
        "sp-t1-lof-above-patchcore-nooverlap-image",
    ]  # the shared claim once
    assert list(points.status) == ["holds", "inconclusive", "does not hold"]
    assert points.low.tolist() == [0.02, -0.05, -0.09] and points.paper_value.notna().all()
    tally = scorecard.counts(points)
    assert tally.loc["all", "total"] == 3 and tally.loc["PatchCore", "holds"] == 1
    assert tally.loc["SoftPatch", "does not hold"] == 1 and tally.loc["all", "inconclusive share"] == "33%"
    text = (tmp_path / "scorecard.md").read_text()
    assert text.startswith("**Verdict.** 1 of 3 claims hold here, 1 do not and 1 are inconclusive")


def test_no_verdicts_no_scorecard(tmp_path, scorecard):
    with pytest.raises(SystemExit, match="make reproduce"):
        scorecard.write_scorecard(tmp_path)
