"""The figure helpers of the SoftPatch sweep and bank notebooks (adlib.companion.plots_softpatch)."""

import numpy as np

from adlib.companion.plots_softpatch import bank_map_panels


def test_bank_map_panels_draw_one_panel_per_bank_with_every_row():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(30, 2))
    owners = np.array(["A"] * 20 + ["B"] * 10)
    kinds = np.array([0, 1, 2] * 10)
    fig = bank_map_panels(coords, owners, kinds, {"A": "bank A", "B": "bank B"}, ["n", "nn", "d"], title="t")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["bank A", "bank B"]
    drawn = [sum(len(c.get_offsets()) for c in ax.collections) for ax in axes]
    assert drawn == [30, 30]  # every point: the bank's by origin, the others in grey
    red = [c for c in axes[1].collections if c.get_label() == "d"][0]
    assert len(red.get_offsets()) == ((owners == "B") & (kinds == 2)).sum()


def test_sweep_panels_draw_a_curve_panel_per_entry_and_the_verdicts_last():
    import pandas as pd

    from adlib.companion.plots_softpatch import sweep_panels
    from adlib.evidence.claims import Claim
    from adlib.evidence.verdicts import assess

    rng = np.random.default_rng(1)
    rows = [
        {
            "category": "c",
            "seed": s,
            "method": m,
            "noise_ratio": r,
            "image": i,
            "label": i % 2,
            "score": rng.normal() + (i % 2) * (2.0 - 10 * r if m == "A" else 2.0),
        }
        for s in (0, 1)
        for m in ("A", "B")
        for r in (0.0, 0.1)
        for i in range(12)
    ]
    images = pd.DataFrame(rows)
    from adlib.evidence.verdicts import method_intervals

    curve = method_intervals(images, by=("method", "noise_ratio"), n_resamples=50)
    paper = pd.DataFrame({"noise_ratio": [0.0, 0.1], "method": ["A", "A"], "value": [0.99, 0.7]})
    verdict = assess(
        Claim.trend("A falls", "image_auroc", "A", "noise_ratio", "decreasing", statistic="last_minus_first"),
        images,
        n_resamples=50,
    )
    fig = sweep_panels(
        {"left": (curve, "noise_ratio", paper, "noise"), "right": (curve, "noise_ratio", None, "noise")},
        [verdict],
        title="t",
    )
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:2]] == ["left", "right"] and len(axes) == 3
    assert {line.get_label() for line in axes[0].lines} >= {"A", "B", "A (paper)"}
    assert "A (paper)" not in {line.get_label() for line in axes[1].lines}
    assert axes[2].get_yticklabels()[0].get_text() == "A falls"


def test_sweep_panels_grow_with_the_verdicts_and_keep_the_paper_marker_out_of_the_claims_panel():
    import pandas as pd

    from adlib.companion.plots_softpatch import sweep_panels
    from adlib.evidence.claims import Claim
    from adlib.evidence.verdicts import assess, method_intervals

    rng = np.random.default_rng(2)
    images = pd.DataFrame(
        [
            {"category": "c", "seed": 0, "method": m, "noise_ratio": r, "image": i, "label": i % 2,
             "score": rng.normal() + (i % 2) * 2.0}
            for m in ("A", "B")
            for r in (0.0, 0.1)
            for i in range(12)
        ]
    )  # fmt: skip
    curve = method_intervals(images, by=("method", "noise_ratio"), n_resamples=20)
    claim = Claim.above("A above B", "image_auroc", "A", "B", paper=0.01)
    verdicts = [assess(claim, images[images.noise_ratio == 0], n_resamples=20)] * 16
    fig = sweep_panels({"p": (curve, "noise_ratio", None, "noise")}, verdicts)
    assert fig.get_size_inches()[1] > 3.9
    assert fig.axes[-1].get_legend() is None
    assert any("paper" in text.get_text() for text in fig.legends[0].get_texts())
