"""adlib.companion.report.publish: every file a notebook promises, the settings in the CSV and the caption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adlib.companion.report import COMPANION_HEADING, publish
from adlib.evidence.claims import Claim
from adlib.evidence.per_image import image_rows
from adlib.evidence.register import cite, claim
from adlib.evidence.verdicts import assess
from adlib.style import pyplot


def _figure():
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    return fig


def test_publish_writes_figure_csv_and_caption(tmp_path):
    table = pd.DataFrame({"category": ["pill"], "value": [0.9]})
    paths = publish(
        tmp_path, "demo", _figure(), table, "A caption.", "Holds by +0.1.", {"profile": "synthetic", "seeds": [0, 1]}
    )
    assert sorted(p.name for p in paths) == ["demo.csv", "demo.md", "demo.pdf", "demo.png"]
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo.pdf").read_bytes()[:4] == b"%PDF"
    csv = pd.read_csv(tmp_path / "demo.csv")
    assert list(csv.columns) == ["profile", "seeds", "category", "value"]
    assert csv.loc[0, "seeds"] == "0, 1"
    caption = (tmp_path / "demo.md").read_text()
    assert "A caption." in caption and "profile = synthetic, seeds = 0, 1" in caption and "Holds by +0.1." in caption


def _table():
    labels = np.array([0] * 5 + [1] * 8)
    rng = np.random.default_rng(1)
    images = [f"i{k}" for k in range(labels.size)]
    return pd.concat(
        [
            image_rows("pill", 0, "A", images, labels, labels * 4 + rng.normal(size=13)),
            image_rows("pill", 0, "B", images, labels, rng.normal(size=13)),
        ]
    )


PAPER_ROW = "pc-t1-coreset1-matches-25-image"
COMPANION_ROW = "companion-s6-imagenet-above-random-init-image"


def test_publish_opens_the_caption_with_the_bold_verdict_lines(tmp_path):
    table = _table()
    paper = [assess(claim(PAPER_ROW, "A", "B"), table, n_resamples=100)]
    own = [cite(assess(Claim.above("control", "image_auroc", "A", "B"), table, n_resamples=100), COMPANION_ROW)]
    publish(tmp_path, "demo", _figure(), pd.DataFrame({"value": [1]}), "The caption.", own + paper, {"seeds": [0]})
    text = (tmp_path / "demo.md").read_text()
    papers, companion, *_ = text.split("\n\n")
    assert papers == paper[0].caption() and papers.endswith(f"[{PAPER_ROW}]")  # the papers' claims first
    assert companion.split("  \n") == [COMPANION_HEADING, own[0].caption()]  # then the companion's, apart
    assert own[0].caption().startswith("**holds** (n = ") and own[0].caption().endswith(f"[{COMPANION_ROW}]")
    assert text.index("The caption.") > text.index(companion) and text.rstrip().endswith("*Settings:* seeds = 0.")
    records = pd.read_csv(tmp_path / "demo.verdicts.csv")  # the caption's lines as data, in its order
    assert list(records.id) == [COMPANION_ROW, PAPER_ROW] and list(records.kind) == ["companion", "paper"]
    for record, verdict in zip(records.itertuples(), own + paper):
        line = verdict.caption()
        assert f"**{record.status}**" in line and f"[{record.low:+.3f}, {record.high:+.3f}]" in line
        assert f"{record.estimate:+.3f}" in line and record.n in line
    publish(tmp_path, "plain", _figure(), pd.DataFrame({"value": [1]}), "An illustration.", "Shows X.", {})
    assert (tmp_path / "plain.md").read_text().startswith("**Verdict.** Shows X.\n\nAn illustration.")


def test_publish_refuses_a_claim_the_register_does_not_hold(tmp_path):
    verdict = assess(Claim.above("A beats B, says nobody", "image_auroc", "A", "B"), _table(), n_resamples=100)
    with pytest.raises(ValueError, match=r"A beats B, says nobody.*cite no row of the claims register"):
        publish(tmp_path, "demo", _figure(), pd.DataFrame({"value": [1]}), "c", [verdict], {})
    assert not (tmp_path / "demo.md").exists()
    with pytest.raises(KeyError, match="no register row"):
        cite(verdict, "pc-t1-no-such-claim")


@pytest.mark.parametrize(
    ("name", "verdict", "settings", "match"),
    [
        ("a/b", "ok", {}, "plain file stem"),
        ("demo", " ", {}, "verdict is empty"),
        ("demo", [], {}, "no verdicts"),
        ("demo", "ok", {"value": 1}, "also a column"),
    ],
)
def test_publish_rejects_bad_input(tmp_path, name, verdict, settings, match):
    with pytest.raises(ValueError, match=match):
        publish(tmp_path, name, _figure(), pd.DataFrame({"value": [1]}), "c", verdict, settings)
