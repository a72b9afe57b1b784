"""The register of the papers' claims: one row per claim the companion judges (or should), in the paper's own
words, with the comparator the paper names and the paper's own number; the companion's own hypotheses and
controls sit beside them, marked as such, never attributed to a paper.

Notebooks build their claims from here (`claim`, `timing_claim`) instead of writing the paper's sentence
again: what is tested is then what the paper says, and a caption can cite the row (`Entry.citation`).

The data: `adlib/evidence/paper_data/claims.csv` (package data, read with `importlib.resources`, beside
the papers' numbers of `adlib.evidence.paper`), one row per claim, columns:

- id: stable and readable, e.g. `pc-t1-coreset1-matches-25-image`; rows of kind `companion` start with `companion-`.
- paper (PC, KC, SP); where ("Table 1", "Fig. 5; §4.4.2", "Table S5").
- quote: the sentence or table cell in the paper's language (Chinese for KC and SP), as in the paper's text
  with its line breaks removed; " … " marks an omission between two verbatim fragments. english: a faithful
  English rendering. statement: a short label for captions and figures.
- metric (`METRICS`), comparison (`COMPARISONS`), a and b (the methods as the companion names them by
  default; b is the comparator the paper names, empty for a one-method trend), delta (`within`, `as_fast`,
  `slower`), direction and sweep (`trend`), setting (the paper's setting in words).
- paper_metric, cell_a, cell_b: where the paper's number comes from in adlib's paper_data, each cell as
  `table|method|setting` (mean over categories); paper_metric defaults to metric. paper_value: the paper's
  own a - b (for `faster` / `as_fast` / `slower`: the ratio a / b; without cell_b: cell_a's value, e.g. a
  noise gap), as a fraction; empty where the paper prints no number (a figure, words only).
- kind (`KINDS`); notebook: the notebooks that judge it, `;`-separated; judged: `yes` where today's notebook
  weighs the claim as stated here, `no` where it does not yet (a claim found missing, or weighed in a
  misstated form); note: what a reader must know (a like-for-like caveat, a text/table mismatch).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.resources
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adlib.evidence.claims import CLAIM_METRICS, Claim, reported_value
from adlib.evidence.paper import PAPERS, REGISTER_FILE
from adlib.evidence.timing import TimingClaim
from adlib.evidence.verdicts import Verdict, method_intervals

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "id", "paper", "where", "quote", "english", "statement", "metric", "comparison", "a", "b", "delta",
    "direction", "sweep", "setting", "paper_metric", "cell_a", "cell_b", "paper_value", "kind", "notebook",
    "judged", "note",
)  # fmt: skip
METRICS = {
    "image_auroc": "image AUROC",
    "pixel_auroc": "pixel AUROC over every test image",
    "pro": "PRO (area under the per-region overlap curve up to FPR 0.3)",
    "anomaly_pixel_auroc": "KC's pixel AUROC over defective test images only",
    "au_spro": "MVTec LOCO AD's AU-sPRO (saturated per-region overlap, area up to FPR 0.05, normalised)",
    "inference_time": "seconds per test image",
    "train_time": "seconds to fit one category",
    "max_distance": "2-D toy: distance from the worst-covered point to the subsample",
    "mean_distance": "2-D toy: mean distance from a point to the subsample",
    "clusters_missed": "2-D toy: mixture components with no subsample point",
    "outliers_kept": "2-D toy: outlying points the subsample keeps",
    "bank_usage": "share of bank entries that are some test patch's nearest neighbour",
    "patch_auroc": "AUROC of a patch-level score, defect against normal test patches",
    "defect_share": "share of a memory bank's entries that come from defect regions",
    "normal_coverage_distance": "mean distance from the normal training patches to their nearest bank entry",
    "grey_value_w1": "Wasserstein-1 distance between grey-value distributions",
    "grey_value_ratio": "between-image grey-value W1 over the within-image spread",
    "held_out_log_likelihood": "log-likelihood of held-out grey values under a fitted density",
    "f1_errors": "misclassified test images at the F1-optimal threshold",
    "full_recall_errors": "misclassified test images at the threshold that finds every defect",
}
COMPARISONS = {
    "above": "a - b > 0",
    "below": "a - b < 0 (a quantity where less is better, or the paper says 'fewer')",
    "within": "|a - b| <= delta",
    "trend": "a (or a - b) rises or falls with `sweep`",
    "faster": "time(a) / time(b) < 1",
    "as_fast": "time(a) / time(b) <= 1 + delta (no extra cost)",
    "slower": "time(a) / time(b) > 1 + delta",
}
DIRECTIONS = ("increasing", "decreasing")
KINDS = {
    "paper": "a claim a paper makes, in its words",
    "companion": "the companion's own hypothesis, diagnostic or control: never a paper's claim",
}
OMISSION = " … "
RATIOS = frozenset({"faster", "as_fast", "slower"})
_ID = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
_NOTEBOOK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_CELL = re.compile(r"[^|]+\|[^|]+\|[^|]*")


class RegisterError(ValueError):
    """A claims register that does not follow the schema; the message names the row and the fix."""


@dataclass(frozen=True)
class Entry:
    """One row of the register (see the module docstring for the columns)."""

    id: str
    paper: str
    where: str
    quote: str
    english: str
    statement: str
    metric: str
    comparison: str
    a: str
    b: str | None
    delta: float | None
    direction: str | None
    sweep: str | None
    setting: str
    paper_metric: str
    cell_a: str | None
    cell_b: str | None
    paper_value: float | None
    kind: str
    notebooks: tuple[str, ...]
    judged: bool
    note: str

    @property
    def citation(self) -> str:
        """Where the claim comes from, for a caption: 'PC Table 1 [pc-t1-...]', or a companion marker."""
        if self.kind == "companion":
            return f"companion hypothesis, not a paper's claim ({self.paper} {self.where}) [{self.id}]"
        return f"{self.paper} {self.where} [{self.id}]"


@dataclass(frozen=True)
class RegisteredClaim(Claim):
    """A `Claim` built from a register row, carrying the row's id so that a caption can cite it."""

    register_id: str = ""


def _number(text: str, column: str, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RegisterError(f"{where}: {column} must be a number or empty; got {text!r}") from None
    if not math.isfinite(value):
        raise RegisterError(f"{where}: {column} must be finite; got {text!r}")
    return value


Need = Callable[[bool, str], None]


def _check_labels(row: dict[str, str], need: Need) -> None:
    """The row's names: id, paper, kind, metric, comparison, and the words a paper row must quote."""
    need(
        bool(_ID.fullmatch(row["id"])),
        f"id must be lower-case words joined by '-', e.g. 'pc-t1-...'; got {row['id']!r}",
    )
    need(row["paper"] in PAPERS, f"paper must be one of {sorted(PAPERS)}; got {row['paper']!r}")
    need(row["kind"] in KINDS, f"kind must be one of {sorted(KINDS)}; got {row['kind']!r}")
    need(
        row["metric"] in METRICS,
        f"metric must be one of {sorted(METRICS)} (or add it to METRICS); got {row['metric']!r}",
    )
    need(
        row["comparison"] in COMPARISONS, f"comparison must be one of {sorted(COMPARISONS)}; got {row['comparison']!r}"
    )
    for column in ("where", "english", "statement", "a"):
        need(bool(row[column]), f"{column} is empty")
    if row["kind"] == "paper":
        need(bool(row["quote"]), "a 'paper' row needs the quote, the paper's own words (or the table cell)")
    else:
        need(row["id"].startswith("companion-"), "a 'companion' row's id starts with 'companion-'")
        need(not row["quote"] and not row["paper_value"], "a 'companion' row quotes no paper and has no paper_value")


def _check_comparison(row: dict[str, str], delta: float | None, need: Need) -> None:
    """What the comparison needs: b for two-method claims, a margin, a trend's direction and sweep."""
    comparison = row["comparison"]
    need(comparison == "trend" or bool(row["b"]), f"a {comparison!r} claim compares two methods: name b")
    need(row["b"] != row["a"], f"a and b are both {row['a']!r}")
    if comparison in ("within", "as_fast", "slower"):
        need(delta is not None and delta > 0, f"a {comparison!r} claim needs a margin delta > 0 (e.g. 0.02)")
    else:
        need(delta is None, "delta only applies to within / as_fast / slower claims; clear it or change the comparison")
    if comparison == "trend":
        need(row["direction"] in DIRECTIONS, f"a trend needs direction in {list(DIRECTIONS)}; got {row['direction']!r}")
        need(bool(row["sweep"]), "a trend needs sweep: the swept column, e.g. 'noise_ratio'")
    else:
        need(not row["direction"] and not row["sweep"], "direction and sweep only apply to trend claims")


def _check_sources(row: dict[str, str], paper_value: float | None, notebooks: tuple[str, ...], need: Need) -> None:
    """The paper's cells and value go together; the notebooks are named; judged is yes or no."""
    for column in ("cell_a", "cell_b"):
        if row[column]:
            need(bool(_CELL.fullmatch(row[column])), f"{column} must be 'table|method|setting'; got {row[column]!r}")
    need(bool(row["cell_a"]) or not row["cell_b"], "cell_b without cell_a: name a's cell first")
    need(
        (paper_value is None) == (not row["cell_a"]),
        "paper_value and cell_a go together: the value is computed from the cells (a number in words goes in the note)",
    )
    need(
        bool(notebooks) and all(_NOTEBOOK.fullmatch(name) for name in notebooks),
        f"notebook must name notebooks (file stems, ';'-separated); got {row['notebook']!r}",
    )
    need(row["judged"] in ("yes", "no"), f"judged must be 'yes' or 'no'; got {row['judged']!r}")


def _entry(cells: dict[str, str], where: str) -> Entry:
    """One validated row; every error names the row and says what to write instead."""

    def need(condition: bool, message: str) -> None:
        if not condition:
            raise RegisterError(f"{where}: {message}")

    row = {column: value.strip() for column, value in cells.items()}
    delta = _number(row["delta"], "delta", where)
    paper_value = _number(row["paper_value"], "paper_value", where)
    notebooks = tuple(name.strip() for name in row["notebook"].split(";") if name.strip())
    _check_labels(row, need)
    _check_comparison(row, delta, need)
    _check_sources(row, paper_value, notebooks, need)
    values = {
        **{column: row[column] or None for column in ("b", "direction", "sweep", "cell_a", "cell_b")},
        "delta": delta,
        "paper_value": paper_value,
        "paper_metric": row["paper_metric"] or row["metric"],
        "notebooks": notebooks,
        "judged": row["judged"] == "yes",
    }
    return Entry(**{field.name: values.get(field.name, row.get(field.name)) for field in dataclasses.fields(Entry)})


def parse_register(text: str, name: str = REGISTER_FILE) -> tuple[Entry, ...]:
    """The validated rows of a register CSV; an error names the file, the row (its id and line) and the fix."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise RegisterError(f"{name}: the header must be exactly {','.join(COLUMNS)!r}; got {header!r}")
    entries: list[Entry] = []
    lines: dict[str, int] = {}
    for cells in reader:
        where = f"{name}, line {reader.line_num}"
        if len(cells) != len(COLUMNS):
            raise RegisterError(
                f"{where}: expected {len(COLUMNS)} cells, got {len(cells)} (a comma in an unquoted cell?)"
            )
        where = f"{where}, row {cells[0]!r}"
        entry = _entry(dict(zip(COLUMNS, cells, strict=True)), where)
        if entry.id in lines:
            raise RegisterError(f"{where}: duplicate id, also on line {lines[entry.id]}; ids must be unique")
        lines[entry.id] = reader.line_num
        entries.append(entry)
    return tuple(entries)


@functools.cache
def load_register() -> tuple[Entry, ...]:
    """Every row of the packaged register, validated (read once)."""
    text = (importlib.resources.files("adlib.evidence") / "paper_data" / REGISTER_FILE).read_text(encoding="utf-8")
    return parse_register(text)


def entries(paper: str | None = None, notebook: str | None = None, kind: str | None = None) -> tuple[Entry, ...]:
    """The rows of one paper, notebook and / or kind, in register order."""
    return tuple(
        e
        for e in load_register()
        if (paper is None or e.paper == paper)
        and (notebook is None or notebook in e.notebooks)
        and (kind is None or e.kind == kind)
    )


def entry(id: str) -> Entry:
    """The row with this id; an unknown id raises, naming the ids that start alike."""
    for row in load_register():
        if row.id == id:
            return row
    stem = id.rsplit("-", 1)[0]
    alike = [row.id for row in load_register() if row.id.startswith(stem)][:8]
    raise KeyError(f"no register row {id!r}" + (f"; ids alike: {alike}" if alike else ""))


def claim(
    id: str,
    a: str | None = None,
    b: str | None = None,
    *,
    statement: str | None = None,
    sweep: str | None = None,
    statistic: str = "last_minus_first",
) -> RegisteredClaim:
    """The `Claim` of one row for `adlib.evidence.verdicts.assess`, carrying the row's id.

    `a`, `b` and `sweep` rename the methods / swept column to the notebook's table (the row's defaults
    otherwise); `statement` replaces the caption label. The comparison, metric, margin, direction and the
    paper's value always come from the row. Rows whose comparison or metric `Claim` cannot weigh raise:
    timing rows go to `timing_claim` or `adlib.evidence.intervals.interval_verdict`, the others to
    `interval_verdict` over replicates.
    """
    row = entry(id)
    if row.metric not in CLAIM_METRICS or row.comparison not in ("above", "within", "trend"):
        hint = (
            "use timing_claim(id)"
            if row.comparison == "faster"
            else "judge the time ratio with adlib.evidence.intervals.interval_verdict against 1 + delta"
            if row.comparison in RATIOS
            else "judge it with adlib.evidence.intervals.interval_verdict over replicates"
        )
        raise RegisterError(
            f"{id}: a {row.comparison!r} claim on {row.metric!r} is not a Claim (Claim weighs above / within / "
            f"trend on {list(CLAIM_METRICS)}); {hint}"
        )
    a, b = a or row.a, b or row.b
    if row.comparison == "trend" and row.b is None and b is not None:
        raise RegisterError(f"{id}: a one-method trend has no comparator; drop b={b!r}")
    return RegisteredClaim(
        statement or row.statement,
        row.metric,
        row.comparison,
        a,
        b,
        delta=row.delta,
        sweep=(sweep or row.sweep) if row.comparison == "trend" else None,
        direction=row.direction,
        statistic=statistic if row.comparison == "trend" else None,
        paper=row.paper_value,
        register_id=row.id,
    )


def steps(id: str, names: Sequence[str]) -> list[RegisteredClaim]:
    """A trend row weighed step by step: one 'above' claim per neighbouring pair of `names` (the method
    names at successive sweep values, in sweep order), each later one above the earlier for an increasing
    trend (below it for a decreasing one). A curve that rises and then falls fails a step, where last - first
    would hide the fall."""
    row = entry(id)
    if row.comparison != "trend" or row.b is not None or row.metric not in CLAIM_METRICS:
        raise RegisterError(
            f"{id}: steps() takes a one-method trend on {list(CLAIM_METRICS)}; this row is a {row.comparison!r}"
        )
    if len(names) < 2:
        raise ValueError(f"{id}: steps need at least two sweep values; got {list(names)}")
    rising = row.direction == "increasing"
    return [
        RegisteredClaim(
            f"{row.statement}: {later} vs {earlier}",
            row.metric,
            "above",
            later if rising else earlier,
            earlier if rising else later,
            register_id=row.id,
        )
        for earlier, later in zip(names, names[1:])
    ]


def cite(verdict: Verdict, id: str) -> Verdict:
    """`verdict`, citing register row `id` in its caption: for a verdict not built from `claim` or
    `timing_claim` (a separation, a ratio against a threshold); an unknown id raises."""
    return dataclasses.replace(verdict, source=entry(id).id)


def timing_claim(id: str, faster: str | None = None, slower: str | None = None) -> TimingClaim:
    """The `TimingClaim` of a `faster` row ('a takes less time than b'), with the paper's ratio a / b;
    `faster` and `slower` rename the two methods to the notebook's."""
    row = entry(id)
    if row.comparison != "faster":
        raise RegisterError(f"{id}: timing_claim takes a 'faster' row; this one is {row.comparison!r}")
    return TimingClaim(row.statement, faster or row.a, slower or row.b or "", row.paper_value, register_id=row.id)


def against_reported(
    id: str, images: pd.DataFrame, a: str | None = None, n_resamples: int = 2000, seed: int = 0
) -> Verdict:
    """The verdict on an `above` or `within` row whose comparator b is a method adlib does not run (e.g.
    DifferNet): our a's image AUROC, with its stratified bootstrap interval over the test images
    (`adlib.evidence.verdicts.method_intervals` of `images`, a `run_grid(...).images` table), minus b's
    number as the paper prints it (cell_b), a constant without an interval. `a` renames the row's a."""
    row = entry(id)
    if row.comparison not in ("above", "within") or row.metric != "image_auroc" or row.cell_b is None:
        raise RegisterError(f"{id}: against_reported takes an image AUROC 'above' / 'within' row with cell_b")
    a = a or row.a
    mine = images[images["method"] == a]
    if mine.empty:
        raise ValueError(f"{id}: no rows of method {a!r} in the per-image table; it has {sorted(set(images.method))}")
    table, method, setting = row.cell_b.split("|")
    constant = reported_value(row.paper, table, method, row.paper_metric, setting)
    ours = method_intervals(mine, by=("method",), n_resamples=n_resamples, seed=seed).iloc[0]
    estimate, low, high = (float(ours[c]) - constant for c in ("estimate", "low", "high"))
    bound = row.delta if row.comparison == "within" else 0.0
    side = "within" if row.comparison == "within" else "above"
    finding = (
        f"{a} within {bound:g} of {row.b}'s published {constant:.3f}: difference {estimate:+.3f} image AUROC"
        if side == "within"
        else f"{a} above {row.b}'s published {constant:.3f} by {estimate:+.3f} image AUROC"
    )
    return Verdict(
        row.statement, f"{a} - {row.b} (published)", finding, side, bound, estimate, low, high, 0.95, ours["n"],
        paper=row.paper_value, metric=row.metric, note=f"{row.b} not run: its published value", source=row.id,
    )  # fmt: skip
