"""adlib.report.publish: every file a notebook promises, the settings in the CSV and the caption."""

from __future__ import annotations

import pandas as pd
import pytest

from adlib.plotting import pyplot
from adlib.report import publish


def _figure():
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    return fig


def test_publish_writes_figure_csv_and_caption(tmp_path):
    table = pd.DataFrame({"category": ["pill"], "value": [0.9]})
    paths = publish(tmp_path, "demo", _figure(), table, "A caption.", "Holds by +0.1.",
                    {"profile": "synthetic", "seeds": [0, 1]})
    assert sorted(p.name for p in paths) == ["demo.csv", "demo.md", "demo.pdf", "demo.png"]
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo.pdf").read_bytes()[:4] == b"%PDF"
    csv = pd.read_csv(tmp_path / "demo.csv")
    assert list(csv.columns) == ["profile", "seeds", "category", "value"]
    assert csv.loc[0, "seeds"] == "0, 1"
    caption = (tmp_path / "demo.md").read_text()
    assert "A caption." in caption and "profile = synthetic, seeds = 0, 1" in caption and "Holds by +0.1." in caption


@pytest.mark.parametrize(
    ("name", "verdict", "settings", "match"),
    [
        ("a/b", "ok", {}, "plain file stem"),
        ("demo", " ", {}, "verdict is empty"),
        ("demo", "ok", {"value": 1}, "also a column"),
    ],
)
def test_publish_rejects_bad_input(tmp_path, name, verdict, settings, match):
    with pytest.raises(ValueError, match=match):
        publish(tmp_path, name, _figure(), pd.DataFrame({"value": [1]}), "c", verdict, settings)
