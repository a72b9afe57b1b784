"""adlib.companion.report.publish: every file a notebook promises, the settings in the CSV and the caption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adlib.companion.report import publish
from adlib.evidence.claims import Claim
from adlib.evidence.per_image import image_rows
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


def test_publish_opens_the_caption_with_the_bold_verdict_lines(tmp_path):
    labels = np.array([0] * 5 + [1] * 8)
    rng = np.random.default_rng(1)
    images = [f"i{k}" for k in range(labels.size)]
    table = pd.concat(
        [
            image_rows("pill", 0, "A", images, labels, labels * 4 + rng.normal(size=13)),
            image_rows("pill", 0, "B", images, labels, rng.normal(size=13)),
        ]
    )
    verdicts = [assess(Claim.above(f"claim {k}", "image_auroc", "A", "B"), table, n_resamples=100) for k in (1, 2)]
    publish(tmp_path, "demo", _figure(), pd.DataFrame({"value": [1]}), "The caption.", verdicts, {"seeds": [0]})
    text = (tmp_path / "demo.md").read_text()
    first, second = text.split("\n\n")[0].split("  \n")
    assert first == verdicts[0].caption() and second == verdicts[1].caption() and first.startswith("**holds** (n = ")
    assert text.index("The caption.") > text.index(second) and text.rstrip().endswith("*Settings:* seeds = 0.")
    publish(tmp_path, "plain", _figure(), pd.DataFrame({"value": [1]}), "An illustration.", "Shows X.", {})
    assert (tmp_path / "plain.md").read_text().startswith("**Verdict.** Shows X.\n\nAn illustration.")


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
