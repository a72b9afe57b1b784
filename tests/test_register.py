"""The claims register: it loads and validates, its paper values are the papers' own numbers (recomputed here
from paper_data, independently of the register's code), its notebooks exist, every row that `Claim` can weigh
becomes a `Claim`, and bad rows give errors that name the row and the fix.

(That each quote occurs in its paper is checked against the paper texts, which are not in the repository.)
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import io
import re
from pathlib import Path

import pytest

from adlib.evidence import register
from adlib.evidence.claims import CLAIM_METRICS, Claim, reported_value
from adlib.evidence.register import COLUMNS, RegisterError, claim, entry, load_register, parse_register, steps
from adlib.evidence.timing import TimingClaim

ROOT = Path(__file__).resolve().parents[1]
ROWS = load_register()
IDS = [row.id for row in ROWS]
WEIGHABLE = [row.id for row in ROWS if row.metric in CLAIM_METRICS and row.comparison in ("above", "within", "trend")]
VALUED = [row.id for row in ROWS if row.paper_value is not None]

# Paper rows whose paper's own table goes against the paper's words (each note says so).
TABLE_AGAINST_TEXT = {
    "sp-t4-softweight-lifts-lof-overlap-image",  # "the soft weight improves further": 0.982 with, 0.984 without
    "sp-t5-k6-above-k3-overlap-image",  # "better for k > 5": the image column is flat
    "sp-t5-k6-above-k3-nooverlap-image",
}


# --------------------------------------------------------------------------- the packaged register


def test_register_loads_with_rows_for_every_paper_and_both_kinds():
    assert len(IDS) == len(set(IDS)) > 100
    assert {row.paper for row in ROWS} == {"PC", "KC", "SP"}
    assert {row.kind for row in ROWS} == {"paper", "companion"}
    for row in ROWS:
        assert (row.kind == "companion") == row.id.startswith("companion-"), row.id
        assert bool(row.quote) == (row.kind == "paper"), row.id


def test_header_is_the_schema():
    text = (ROOT / "adlib" / "evidence" / "paper_data" / "claims.csv").read_text(encoding="utf-8")
    assert tuple(text.splitlines()[0].split(",")) == COLUMNS


@pytest.mark.parametrize("id", VALUED)
def test_paper_value_is_the_papers_own_number(id):
    """a - b (a / b for time ratios; a alone without cell_b) recomputed through `reported_value`."""
    row = entry(id)

    def value(spec: str) -> float:
        table, method, setting = spec.split("|")
        return reported_value(row.paper, table, method, row.paper_metric, setting)

    a = value(row.cell_a)
    if row.cell_b is None:
        expected = a
    elif row.comparison in ("faster", "as_fast", "slower"):
        expected = a / value(row.cell_b)
    else:
        expected = a - value(row.cell_b)
    assert row.paper_value == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("id", [i for i in VALUED if entry(i).kind == "paper"])
def test_the_papers_number_agrees_with_the_claim_unless_noted(id):
    """A claim stated as the paper makes it: its own number points the same way, or the row says it does not."""
    row = entry(id)
    v, delta = row.paper_value, row.delta
    agrees = {
        "above": lambda: v > 0,
        "below": lambda: v < 0,
        "within": lambda: abs(v) <= delta,
        "trend": lambda: v > 0 if row.direction == "increasing" else v < 0,
        "faster": lambda: v < 1,
        "as_fast": lambda: v <= 1 + delta,
        "slower": lambda: v > 1 + delta,
    }[row.comparison]()
    assert agrees != (id in TABLE_AGAINST_TEXT), f"{id}: paper value {v} vs {row.comparison}"
    if id in TABLE_AGAINST_TEXT:
        assert row.note and not row.judged


def test_review_corrections_stay_corrected():
    """Misreadings the notebook review found, pinned so they do not come back."""
    kc_fig4 = [row for row in ROWS if row.paper == "KC" and "Fig. 4" in row.where]
    assert kc_fig4 and all(row.b == "greedy coreset" for row in kc_fig4)  # KC's comparator is minimax, not random
    greedy_outliers = entry("kc-intro-greedy-ignores-outliers")  # KC: greedy tends to *ignore* outliers
    assert (greedy_outliers.a, greedy_outliers.comparison, greedy_outliers.b) == ("greedy coreset", "below", "K-means")
    assert all(row.kind == "companion" for row in ROWS if row.metric == "grey_value_ratio")  # no ratio >= 1 in KC
    k3 = [row for row in ROWS if row.paper == "SP" and "k=3" in f"{row.a} {row.b}"]
    assert k3 and all(row.comparison == "above" and row.a.startswith("k=6") for row in k3)  # too small a k hurts
    spade_pro = [entry(f"pc-s5-{k}shot-spade-above-coreset10-pro") for k in (1, 2)]  # SPADE ahead in Table S5
    assert [row.paper_value for row in spade_pro] == pytest.approx([0.011, 0.007])
    assert entry("pc-s5-2shot-coreset10-matches-spade-pixel").comparison == "within"  # a tie, not a lead
    assert entry("kc-t4-both-above-kmeans-image").paper_value == pytest.approx(0.008)
    assert entry("kc-t4-both-above-kmeans-pixel").paper_value == pytest.approx(0.020)
    assert entry("kc-t4-cosine-alone-costs-little-image").comparison == "within"  # judged by size, not sign
    assert entry("sp-t1-lof-above-gaussian-nooverlap-image").paper_value == pytest.approx(0.059)  # Table 1
    assert entry("sp-t4-lof-above-gaussian-nooverlap-image").paper_value == pytest.approx(0.064)  # Table 4


def test_every_named_notebook_exists():
    named = {name for row in ROWS for name in row.notebooks}
    missing = sorted(name for name in named if not (ROOT / "notebooks" / f"{name}.ipynb").is_file())
    assert not missing, missing


def test_quotes_are_well_formed():
    for row in ROWS:
        if row.quote:
            parts = row.quote.split(register.OMISSION)
            assert all(part.strip() == part and part for part in parts), row.id


def test_package_data_ships_the_register():
    """pyproject's package data for adlib.evidence covers the register (read with a regex: no tomllib on 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    data = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    line = re.search(r'^"adlib\.evidence"\s*=\s*\[(.*)\]', data, re.MULTILINE)
    assert line and any(fnmatch.fnmatch("paper_data/claims.csv", p) for p in re.findall(r'"([^"]+)"', line.group(1)))


# --------------------------------------------------------------------------- claims from rows


@pytest.mark.parametrize("id", WEIGHABLE)
def test_claim_from_every_row_claim_can_weigh(id):
    row, built = entry(id), claim(id)
    assert isinstance(built, Claim) and built.register_id == id
    assert (built.metric, built.comparison, built.a, built.b) == (row.metric, row.comparison, row.a, row.b)
    assert (built.delta, built.direction, built.sweep, built.paper) == (
        row.delta,
        row.direction,
        row.sweep,
        row.paper_value,
    )
    assert dataclasses.replace(built, metric="image_auroc").register_id == id


@pytest.mark.parametrize("id", sorted(set(IDS) - set(WEIGHABLE)))
def test_rows_claim_cannot_weigh_say_what_to_use(id):
    with pytest.raises(RegisterError, match=f"{id}: .* is not a Claim"):
        claim(id)


def test_claim_takes_the_notebooks_names():
    built = claim("sp-fig3-patchcore-falls-overlap-image", a="PatchCore, overlap (ours)", sweep="noise")
    assert (built.a, built.b, built.sweep, built.statistic) == (
        "PatchCore, overlap (ours)",
        None,
        "noise",
        "last_minus_first",
    )
    with pytest.raises(RegisterError, match="one-method trend has no comparator"):
        claim("sp-fig3-patchcore-falls-overlap-image", b="PatchCore")


def test_timing_claims_from_faster_rows():
    timing = register.timing_claim("pc-t5-coreset1-faster-than-full")
    assert timing == TimingClaim(
        "PatchCore-1% faster than PatchCore-100%",
        "PatchCore-1%",
        "PatchCore-100%",
        0.2833,
        register_id="pc-t5-coreset1-faster-than-full",
    )
    with pytest.raises(RegisterError, match="takes a 'faster' row"):
        register.timing_claim("sp-t9-softpatch-trains-as-fast")


def test_steps_weigh_a_trend_pair_by_pair():
    names = ["tau=0", "tau=0.15", "tau=0.3"]
    rising = steps("sp-fig4-tau-rises-overlap-image", names)
    assert [(c.a, c.b, c.comparison) for c in rising] == [
        ("tau=0.15", "tau=0", "above"),
        ("tau=0.3", "tau=0.15", "above"),
    ]
    assert {c.register_id for c in rising} == {"sp-fig4-tau-rises-overlap-image"}
    falling = steps("sp-fig3-patchcore-falls-overlap-image", ["0", "0.1"])
    assert [(c.a, c.b) for c in falling] == [("0", "0.1")]
    with pytest.raises(RegisterError, match="one-method trend"):
        steps("sp-fig3-lof-gains-on-patchcore-overlap-image", names)


def test_unknown_id_names_ids_alike():
    with pytest.raises(KeyError, match="pc-t1-coreset1-matches-25-image"):
        entry("pc-t1-coreset1-matches-25-imag")


def test_citation_marks_companion_rows():
    assert entry("kc-t4-both-above-kmeans-image").citation == "KC Table 4; §2.5 [kc-t4-both-above-kmeans-image]"
    assert entry("companion-kc-fig2-ratio-above-1").citation.startswith("companion hypothesis, not a paper's claim")


# --------------------------------------------------------------------------- bad rows


GOOD = dict(
    id="pc-t1-coreset1-matches-25-image", paper="PC", where="Table 1", quote="while retaining performance",
    english="while retaining performance", statement="PatchCore-1% matches PatchCore-25%", metric="image_auroc",
    comparison="within", a="PatchCore-1%", b="PatchCore-25%", delta="0.01", direction="", sweep="", setting="",
    paper_metric="", cell_a="1|PatchCore-1%|", cell_b="1|PatchCore-25%|", paper_value="-0.001", kind="paper",
    notebook="pc_table1_detection", judged="yes", note="",
)  # fmt: skip


def csv_text(*rows: dict[str, str], header: tuple[str, ...] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_a_good_row_parses():
    (row,) = parse_register(csv_text(GOOD))
    assert (row.delta, row.paper_value, row.notebooks, row.judged, row.paper_metric) == (
        0.01,
        -0.001,
        ("pc_table1_detection",),
        True,
        "image_auroc",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"paper": "PCX"}, "paper must be one of"),
        ({"metric": "image_aurc"}, "metric must be one of"),
        ({"comparison": "better"}, "comparison must be one of"),
        ({"kind": "hypothesis"}, "kind must be one of"),
        ({"quote": ""}, "a 'paper' row needs the quote"),
        ({"delta": ""}, "a 'within' claim needs a margin delta > 0"),
        ({"delta": "0"}, "a 'within' claim needs a margin delta > 0"),
        ({"comparison": "above"}, "delta only applies to within"),
        ({"b": ""}, "compares two methods: name b"),
        ({"comparison": "trend", "delta": "", "b": "", "sweep": "shots"}, "a trend needs direction"),
        ({"paper_value": ""}, "paper_value and cell_a go together"),
        ({"cell_a": "1/PatchCore-1%"}, "cell_a must be 'table|method|setting'"),
        ({"kind": "companion"}, "a 'companion' row's id starts with 'companion-'"),
        ({"id": "companion-x", "kind": "companion"}, "quotes no paper"),
        ({"notebook": ""}, "notebook must name notebooks"),
        ({"judged": "maybe"}, "judged must be 'yes' or 'no'"),
        ({"id": "PC T1"}, "id must be lower-case words"),
    ],
)
def test_a_bad_row_names_itself_and_the_fix(change, message):
    bad = {**GOOD, "id": "pc-bad-row", **change}
    with pytest.raises(RegisterError) as error:
        parse_register(csv_text(GOOD, bad))
    text = str(error.value)
    assert "claims.csv, line 3" in text and bad["id"] in text and message in text, text


def test_a_duplicate_id_names_both_lines():
    with pytest.raises(
        RegisterError, match=r"line 3, row 'pc-t1-coreset1-matches-25-image': duplicate id, also on line 2"
    ):
        parse_register(csv_text(GOOD, GOOD))


def test_a_wrong_header_or_cell_count_is_named():
    with pytest.raises(RegisterError, match="the header must be exactly"):
        parse_register(csv_text(GOOD, header=COLUMNS[:-1]))
    with pytest.raises(RegisterError, match="line 2: expected 22 cells, got 21"):
        parse_register(",".join(COLUMNS) + "\n" + ",".join(["x"] * 21) + "\n")
