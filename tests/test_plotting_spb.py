"""The figure helpers of the SoftPatch sweep and bank notebooks (adlib.plotting, section spb)."""

import numpy as np

from adlib.plotting import bank_map_panels


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
