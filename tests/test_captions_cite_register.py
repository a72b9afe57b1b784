"""Every committed caption states only claims the register holds: each bold verdict line of figures/*.md
ends with the id of a register row, the papers' claims come first, and the companion's own hypotheses
only under their own heading, never mixed with the papers'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adlib.companion.report import COMPANION_HEADING
from adlib.evidence.register import entry, load_register

FIGURES = Path(__file__).resolve().parent.parent / "figures"
VERDICT = re.compile(r"^\*\*(holds|does not hold|inconclusive)\*\* \(n = ")
CITED = re.compile(r" \[([a-z0-9]+(?:[-.][a-z0-9]+)*)\]$")
CAPTIONS = sorted(path for path in FIGURES.glob("*.md") if path.stem not in ("index", "reproduction", "README"))
CAPTIONS = [path for path in CAPTIONS if not path.stem.startswith("bench")]


def verdict_lines(text: str) -> list[tuple[bool, str]]:
    """(under the companion heading?, line) for every bold verdict line of a caption."""
    lines, companion = [], False
    for paragraph in text.split("\n\n"):
        rows = [row.strip() for row in paragraph.strip().split("\n") if row.strip()]
        companion = bool(rows) and rows[0] == COMPANION_HEADING
        lines += [(companion, row) for row in rows if VERDICT.match(row)]
    return lines


@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda path: path.stem)
def test_every_verdict_line_cites_a_register_row_of_its_kind(caption):
    ids = {row.id for row in load_register()}
    for companion, line in verdict_lines(caption.read_text()):
        cited = CITED.search(line)
        assert cited, f"{caption.name}: a verdict that cites no register row: {line[:120]}"
        assert cited.group(1) in ids, f"{caption.name}: cites {cited.group(1)!r}, which the register lacks"
        kind = entry(cited.group(1)).kind
        assert (kind == "companion") == companion, f"{caption.name}: a {kind} claim in the wrong section: {line[:100]}"


def test_a_caption_with_an_unregistered_claim_fails(tmp_path):
    """The check itself: a line that cites nothing, or a companion row among the papers', is caught."""
    uncited = "**holds** (n = 1 seed): A above B by +0.1, 95 % CI [+0.05, +0.15]"
    assert not CITED.search(verdict_lines(uncited)[0][1])
    companion_row = next(row.id for row in load_register() if row.kind == "companion")
    mixed = f"{uncited} [{companion_row}]"
    assert verdict_lines(mixed) == [(False, mixed)]  # not under the heading: the test above fails on it
    assert verdict_lines(f"{COMPANION_HEADING}  \n{mixed}") == [(True, mixed)]


@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda path: path.stem)
def test_the_verdicts_data_says_what_the_caption_says(caption):
    """`<figure>.verdicts.csv` (what the scorecard draws) holds the caption's lines, number for number."""
    import pandas as pd

    lines = [line for _, line in verdict_lines(caption.read_text())]
    records = caption.with_name(f"{caption.stem}.verdicts.csv")
    if not lines:
        assert not records.exists(), f"{records.name}: verdicts of a caption that states none"
        return
    table = pd.read_csv(records)
    assert len(table) == len(lines), f"{records.name}: {len(table)} rows for {len(lines)} verdict lines"
    paper_lines = [line for companion, line in verdict_lines(caption.read_text()) if not companion]
    own_lines = [line for companion, line in verdict_lines(caption.read_text()) if companion]
    ordered = table[table.kind == "paper"].to_dict("records") + table[table.kind == "companion"].to_dict("records")
    for record, line in zip(ordered, paper_lines + own_lines):
        assert line.startswith(f"**{record['status']}** (n = {record['n']})"), line[:100]
        assert line.endswith(f"[{record['id']}]") and f"{record['estimate']:+.3f}" in line
        assert f"[{record['low']:+.3f}, {record['high']:+.3f}]" in line
