"""adlib.companion.plotting.verdict_dots: where each verdict's status word is written."""

import dataclasses

from adlib.companion.plotting import verdict_dots
from adlib.evidence.intervals import interval_verdict
from adlib.style import pyplot


def test_status_word_sits_right_of_the_interval_and_of_a_within_band():
    plt = pyplot()
    above = interval_verdict("a above b", "a - b", [0.01, 0.02, 0.03], "above")
    inside = dataclasses.replace(above, statement="a within b", side="within", bound=0.05)
    fig, ax = plt.subplots()
    verdict_dots(ax, [above, inside])
    first, second = (text.xy[0] for text in ax.texts)  # one status word per verdict, in order
    assert first == above.high  # an 'above' verdict: at its interval's upper end
    assert second == inside.bound > inside.high  # a 'within' verdict: past the band, not on it
    plt.close(fig)
