import numpy as np
import pytest

from adlib.companion.bank_analysis import bank_profile, ring


def test_ring_of_a_3x4_grid():
    expected = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=bool).ravel()
    assert np.array_equal(ring((3, 4)), expected)


def test_profile_against_a_hand_count():
    grid = (3, 3)  # 9 positions, the centre (4) is the only interior one
    distances = np.array(
        [
            [1.0] * 4 + [9.0] + [1.0] * 4,  # good, peak in the centre
            [5.0] + [1.0] * 8,  # good, peak on the ring (position 0)
            [7.0] * 9,
        ]
    )  # defective: ignored by the good-image numbers
    nearest = np.array([[0] * 9, [1] * 9, [2] * 8 + [0]])
    source = np.array([4, 9 + 4, 0, 18 + 8])  # positions 4, 4, 0, 8: two of four on the ring
    profile = bank_profile(distances, nearest, [0, 0, 1], grid, bank_size=4, bank_source=source)
    assert profile["bank_usage"] == 3 / 4  # bank rows 0, 1, 2 are someone's nearest
    assert profile["bank_on_ring"] == 2 / 4
    assert profile["ring_positions"] == 8 / 9
    assert profile["good_patch_distance"] == pytest.approx((8 + 9 + 5 + 8) / 18)
    assert profile["good_peak_on_ring"] == 1 / 2


def test_built_points_have_no_ring_share_and_shapes_are_checked():
    profile = bank_profile(np.ones((2, 4)), np.zeros((2, 4), dtype=int), [0, 1], (2, 2), 1, None)
    assert np.isnan(profile["bank_on_ring"])
    with pytest.raises(ValueError, match=r"\[N, P\]"):
        bank_profile(np.ones((2, 5)), np.zeros((2, 5), dtype=int), [0, 1], (2, 2), 1, None)


def test_spread_is_mean_and_range_per_group():
    import pandas as pd

    from adlib.companion.bank_analysis import spread

    profiles = pd.DataFrame({"sampler": ["a", "a", "a", "b"], "ratio": [0.1] * 4, "usage": [0.2, 0.4, 0.9, 0.5]})
    table = spread(profiles, "usage").set_index("sampler")
    assert table.loc["a", "estimate"] == pytest.approx(0.5)
    assert (table.loc["a", "low"], table.loc["a", "high"]) == (0.2, 0.9)
    assert table.loc["b", ["estimate", "low", "high"]].tolist() == [0.5, 0.5, 0.5]
