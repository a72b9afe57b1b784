"""What a notebook leaves in `figures/`: the figure (PNG for screens, PDF for print), the CSV behind it,
and a caption file that `make reproduce` puts in `figures/index.md` with the settings and the verdict.

Every figure records how it was made (profile, data set, backbone, seeds, quick or full), as the
caption's settings line and as columns of its CSV, so a number can always be traced to its run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from adlib.files import atomic_write_bytes
from adlib.style import save_figures

if TYPE_CHECKING:
    from adlib.evidence.verdicts import Verdict


def publish(
    figures_dir: Path | str,
    name: str,
    fig,
    table: pd.DataFrame,
    caption: str,
    verdicts: Sequence[Verdict] | str,
    settings: Mapping[str, object],
) -> list[Path]:
    """Writes `<name>.png`, `<name>.pdf`, `<name>.csv` and `<name>.md` into `figures_dir`, atomically.

    `table` is the data the figure shows (tidy is best); `settings` (e.g. profile, data_root, backbone,
    seeds, quick) become its leading columns and the caption's settings line. `verdicts`: the
    `adlib.evidence.verdicts.Verdict`s of a comparative figure, headline claim first: the caption file opens with
    one bold line per verdict (`Verdict.caption()`: status, n, estimate, interval, the paper's
    value); or, for a figure that compares nothing (an illustration), one or two plain sentences, which
    open the caption as `**Verdict.** ...`. The caption text and the settings line follow. Verdicts are also
    written as data, `<name>.verdicts.csv` (`verdict_records`).
    """
    if not name or "/" in name or name != name.strip():
        raise ValueError(f"name={name!r}: use a plain file stem such as 'pc_table1_detection'")
    opening = verdict_lines(name, verdicts)
    folder = Path(figures_dir)
    paths = save_figures(fig, [folder / f"{name}.png", folder / f"{name}.pdf"])
    csv = table.copy()
    for position, (key, value) in enumerate(settings.items()):
        if key in csv.columns:
            raise ValueError(f"{name}: setting {key!r} is also a column of the table; rename one of them")
        csv.insert(position, key, _text(value))
    atomic_write_bytes(folder / f"{name}.csv", csv.to_csv(index=False).encode())
    line = ", ".join(f"{key} = {_text(value)}" for key, value in settings.items())
    text = f"{opening}\n\n{caption.strip()}\n\n*Settings:* {line}.\n"
    atomic_write_bytes(folder / f"{name}.md", text.encode())
    written = [*paths, folder / f"{name}.csv", folder / f"{name}.md"]
    records = folder / f"{name}{VERDICTS_SUFFIX}"
    if isinstance(verdicts, str):
        records.unlink(missing_ok=True)  # an illustration now: no verdicts of an earlier run left behind
    else:
        atomic_write_bytes(records, verdict_records(name, verdicts).to_csv(index=False).encode())
        written.append(records)
    return written


VERDICTS_SUFFIX = ".verdicts.csv"  # beside a caption: its verdict lines as data (the scorecard reads them)


def verdict_records(name: str, verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per verdict line of the caption, with the numbers it prints and the register row it cites:
    the data `scripts/scorecard.py` draws, so that the scorecard shows what the captions say."""
    from adlib.evidence.register import entry

    rows = []
    for verdict in verdicts:
        row = entry(verdict.source)
        rows.append(
            {
                "figure": name,
                "id": row.id,
                "paper": row.paper,
                "kind": row.kind,
                "where": row.where,
                "comparison": row.comparison,
                "statement": verdict.statement,
                "metric": verdict.metric or "",
                "side": verdict.side,
                "bound": verdict.bound,
                "estimate": verdict.estimate,
                "low": verdict.low,
                "high": verdict.high,
                "level": verdict.level,
                "status": verdict.status,
                "paper_value": verdict.paper,
                "n": verdict.sample(),
            }
        )
    return pd.DataFrame(rows)


COMPANION_HEADING = "*The companion's own hypotheses and controls, not the papers' claims:*"


def verdict_lines(name: str, verdicts: Sequence[Verdict] | str) -> str:
    """The caption's opening: one bold verdict line per verdict (a markdown line break between them), or
    `**Verdict.** <text>` for a plain-string verdict.

    Every verdict must come from a row of the claims register (`Verdict.source`, set by the register's
    `claim` / `timing_claim` / `cite`), so that a caption states only what the register holds: the papers'
    claims in the paper's words, and the companion's own hypotheses, which follow in a paragraph of their
    own under `COMPANION_HEADING`, never mixed with the papers'.
    """
    from adlib.evidence.register import entry

    if isinstance(verdicts, str):
        if not verdicts.strip():
            raise ValueError(f"{name}: the verdict is empty; say what the figure shows or pass its Verdicts")
        return f"**Verdict.** {verdicts.strip()}"
    if not verdicts:
        raise ValueError(
            f"{name}: no verdicts; pass adlib.companion.notebook.judge(...)'s list, or a plain string for an "
            "illustration"
        )
    unregistered = [verdict.statement for verdict in verdicts if verdict.source is None]
    if unregistered:
        raise ValueError(
            f"{name}: {unregistered} cite no row of the claims register; build each claim with "
            "adlib.evidence.register.claim(id) (timing_claim(id) for a time ratio), or mark a verdict made "
            "another way with register.cite(verdict, id); add a row for a claim the register lacks"
        )
    companion = {verdict.source for verdict in verdicts if entry(verdict.source).kind == "companion"}
    papers = [verdict.caption() for verdict in verdicts if verdict.source not in companion]
    own = [verdict.caption() for verdict in verdicts if verdict.source in companion]
    parts = ["  \n".join(papers)] if papers else []
    if own:
        parts.append("  \n".join([COMPANION_HEADING, *own]))
    return "\n\n".join(parts)


def _text(value: object) -> object:
    """Lists and tuples as 'a, b, c' so they fit one CSV cell and one caption line."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value
