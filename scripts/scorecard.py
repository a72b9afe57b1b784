"""The reproduction scorecard: every claim the captions judge, as one point, and the counts per paper.

    python scripts/scorecard.py [--figures figures]

Reads the verdicts the notebooks published beside their captions (`figures/<name>.verdicts.csv`, written
by `adlib.companion.report.publish` with the caption: the same numbers, nothing re-computed) and writes
`figures/scorecard.png` (+ .pdf), `figures/scorecard.csv` (one row per claim) and `figures/scorecard.md`
(the caption, with the table of counts). Each panel is one paper: the paper's own difference on the x axis,
ours with its 95 % interval on the y axis, coloured by verdict, for the claims on image AUROC, pixel
AUROC and PRO that the paper gives a number for; the table counts every claim, those without a number and
the companion's own hypotheses (never a paper's) included. `make reproduce` runs it after the notebooks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from adlib.companion.report import VERDICTS_SUFFIX as SUFFIX

ROOT = Path(__file__).resolve().parent.parent
PAPERS = {"PC": "PatchCore", "KC": "improved PatchCore (K-means + cosine)", "SP": "SoftPatch"}
STATUSES = ("holds", "does not hold", "inconclusive")
COLOURS = {"holds": "#1b7837", "does not hold": "#b2182b", "inconclusive": "#8c8c8c"}
DIFFERENCES = ("image_auroc", "pixel_auroc", "pro")


def claims(figures: Path) -> pd.DataFrame:
    """Every verdict of every caption, once: a claim two figures share (same id, statement and numbers)
    counts once."""
    files = sorted(path for path in figures.glob(f"*{SUFFIX}"))
    if not files:
        raise SystemExit(f"no {SUFFIX} files in {figures}: run make reproduce first")
    table = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    return table.drop_duplicates(["id", "statement", "estimate", "low", "high"], ignore_index=True)


def counts(table: pd.DataFrame) -> pd.DataFrame:
    """Holds / does not hold / inconclusive per paper (the papers' claims), then the companion's own, then all."""
    group = table.paper.where(table.kind == "paper", "companion")
    result = pd.crosstab(group, table.status).reindex(columns=list(STATUSES), fill_value=0)
    result = result.reindex([*(p for p in PAPERS if p in result.index), "companion"]).dropna().astype(int)
    result.index = [PAPERS.get(name, "the companion's own hypotheses") for name in result.index]
    result.loc["all"] = result.sum()
    result["total"] = result.sum(axis=1)
    result["inconclusive share"] = (result["inconclusive"] / result["total"]).map("{:.0%}".format)
    return result


def draw(table: pd.DataFrame):
    """One panel per paper: the paper's difference (x) against ours with its interval (y), by verdict."""
    from adlib.style import pyplot

    plt = pyplot()
    shown = table[(table.kind == "paper") & table.metric.isin(DIFFERENCES) & table.paper_value.notna()]
    fig, axes = plt.subplots(1, len(PAPERS), figsize=(15, 5.2), sharey=True)
    for ax, (paper, title) in zip(axes, PAPERS.items()):
        part = shown[shown.paper == paper]
        for status in STATUSES:
            rows = part[part.status == status]
            ax.errorbar(
                rows.paper_value,
                rows.estimate,
                yerr=[rows.estimate - rows.low, rows.high - rows.estimate],
                fmt="o",
                ms=4,
                lw=0.8,
                color=COLOURS[status],
                label=f"{status} ({len(rows)})",
            )
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.axline((0, 0), slope=1, color="#4575b4", lw=0.8, ls="--", label="ours = paper's")
        total = int(((table.paper == paper) & (table.kind == "paper")).sum())
        ax.set_title(f"{title}: {len(part)} of its {total} claims drawn", fontsize=10)
        ax.set_xlabel("the paper's difference (AUROC / PRO)")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    axes[0].set_ylabel("ours, with its 95 % interval")
    fig.tight_layout()
    return fig


def caption(table: pd.DataFrame, tally: pd.DataFrame) -> str:
    """The caption file: what a point is, and the counts."""
    shown = table[(table.kind == "paper") & table.metric.isin(DIFFERENCES) & table.paper_value.notna()]
    return (
        f"**Verdict.** {int(tally.loc['all', 'holds'])} of {int(tally.loc['all', 'total'])} claims hold here, "
        f"{int(tally.loc['all', 'does not hold'])} do not and {int(tally.loc['all', 'inconclusive'])} are "
        "inconclusive at this sample.\n\n"
        f"Every claim the captions judge ({len(table)}, each once). The points are the {len(shown)} papers' "
        "claims on image AUROC, pixel AUROC or PRO that the paper gives a number for: the paper's difference "
        "against ours with its 95 % interval, coloured by the verdict in the caption; on the dashed line ours "
        "equals the paper's. Timing ratios, trends, toy distances and claims made in words only are counted "
        "below but not drawn. The numbers are the captions' own (`<figure>.verdicts.csv`), not re-computed.\n\n"
        + tally.to_markdown()
        + "\n"
    )


def write_scorecard(figures: Path) -> list[Path]:
    """figures/scorecard.{png,pdf,csv,md} from the captions' verdicts."""
    from adlib.files import atomic_write_bytes
    from adlib.style import save_figures

    table = claims(figures)
    tally = counts(table)
    paths = save_figures(draw(table), [figures / "scorecard.png", figures / "scorecard.pdf"])
    atomic_write_bytes(figures / "scorecard.csv", table.to_csv(index=False).encode())
    atomic_write_bytes(figures / "scorecard.md", caption(table, tally).encode())
    return [*paths, figures / "scorecard.csv", figures / "scorecard.md"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", type=Path, default=ROOT / "figures")
    for path in write_scorecard(parser.parse_args().figures):
        print(path)


if __name__ == "__main__":
    main()
