"""What the companion notebooks share, so that their cells read like the method, not like set-up.

Every notebook starts from the same parameters (`profile`, `data_root`, `backbone`, `categories`, `seeds`,
`scale`, `quick`). `setup` turns them into the feature settings, the categories and the seeds (and
applies the plot style); `record` is the settings dict a figure's CSV and caption carry
(`adlib.companion.report.publish`); `judge` weighs the notebook's claims (`adlib.evidence.verdicts`) and `verdict_table`
lays the verdicts out for a CSV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from adlib.data.datasets import list_categories
from adlib.features.extractor import FeatureSettings, profile_settings

if TYPE_CHECKING:
    from adlib.evidence.claims import Claim
    from adlib.evidence.verdicts import Verdict


SCALES = ("default", "full")
FULL_SEEDS = (0, 1, 2, 3, 4)


class Setup(NamedTuple):
    """What a notebook runs on: the feature settings, the categories and the seeds."""

    features: FeatureSettings
    categories: list[str]
    seeds: list[int]


def setup(
    profile: str,
    data_root: Path | str,
    backbone: str | None = None,
    categories: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    scale: str = "default",
    quick: bool = False,
    default_categories: Sequence[str] | None = None,
    default_seeds: Sequence[int] = (0,),
) -> Setup:
    """The profile's feature settings (with `backbone` if given), the categories and the seeds to run.

    Categories: `categories` if given; else every category under `data_root` with the paper profile or
    `scale="full"`; else `default_categories` (None: every category). Seeds: `seeds` if given; else
    `FULL_SEEDS` with `scale="full"`; else `default_seeds`. `quick` keeps the first category and the first
    seed (tests, a first look). Applies adlib's plot style to matplotlib.
    """
    from adlib.style import STYLE, pyplot

    if scale not in SCALES:
        raise ValueError(
            f"scale={scale!r}: choose 'default' (the notebook's own sample, within the make "
            f"reproduce budget) or 'full' (every category, seeds {list(FULL_SEEDS)})"
        )
    pyplot().rcParams.update(STYLE)
    features = profile_settings(profile)
    if backbone is not None:
        features = dataclasses.replace(features, backbone=backbone)
    if categories is None:
        every = profile == "paper" or scale == "full" or default_categories is None
        categories = list_categories(data_root) if every else default_categories
    if not categories:
        raise ValueError(
            f"no categories to run under {data_root}: pass categories=[...] or point data_root at a "
            "folder with MVTec-layout categories (python -m adlib fetch mvtec_ad, or make data)"
        )
    if seeds is None:
        seeds = FULL_SEEDS if scale == "full" else default_seeds
    categories, seeds = list(categories), [int(seed) for seed in seeds]
    if quick:
        categories, seeds = categories[:1], seeds[:1]
    return Setup(features, categories, seeds)


def record(
    profile: str,
    data_root: Path | str,
    features: FeatureSettings,
    categories: Sequence[str],
    seeds: Sequence[int],
    quick: bool,
    **settings: object,
) -> dict[str, object]:
    """What a figure records of its run: profile, data set (folder name), backbone, categories, seeds and
    `quick`, then the notebook's own `settings` (a name given twice, e.g. `backbone`, takes the later value)."""
    common = {
        "profile": profile,
        "data_root": Path(data_root).name,
        "backbone": features.backbone,
        "categories": list(categories),
        "seeds": list(seeds),
        "quick": quick,
    }
    return {**common, **settings}


def judge(
    claims: Sequence[Claim],
    images: pd.DataFrame,
    n_resamples: int = 2000,
    seed: int = 0,
    pixel_stats: Mapping[str, object] | None = None,
) -> list[Verdict]:
    """`adlib.evidence.verdicts.assess` of every claim on the per-image table (`run_grid(...).images`), in order.

    Pixel AUROC and PRO claims read `pixel_stats` (`run_grid(...).pixel_stats`); image AUROC claims the
    table's scores. Equal inputs and `seed` give equal verdicts.
    """
    from adlib.evidence.verdicts import assess

    if not claims:
        raise ValueError(
            "judge needs at least one claim: a figure without a comparison passes a plain-string verdict "
            "to adlib.companion.report.publish instead"
        )
    pixel_claims = [claim.statement for claim in claims if claim.metric != "image_auroc"]
    if pixel_claims and pixel_stats is None:
        raise ValueError(
            f"claims {pixel_claims} are on pixel maps: pass pixel_stats=grid.pixel_stats "
            "(grid = adlib.evaluation.experiment.run_grid(...))"
        )
    return [assess(claim, images, n_resamples=n_resamples, seed=seed, pixel_stats=pixel_stats) for claim in claims]


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per verdict: the claim, its metric (empty where the verdict has none, e.g. a timing), status,
    estimate, interval, the paper's value and n."""
    return pd.DataFrame(
        [
            {
                "claim": v.statement,
                "metric": v.metric,
                "status": v.status,
                "estimate": v.estimate,
                "low": v.low,
                "high": v.high,
                "paper": v.paper,
                "n": v.sample(),
            }
            for v in verdicts
        ]
    )


def resolution(verdicts: Sequence[Verdict]) -> str:
    """What this sample can tell apart, for a notebook's "Why this sample" cell: per metric, the median
    half-width of the verdicts' 95 % intervals, i.e. the size of a difference that cannot be told from
    zero with this sample, e.g. 'image AUROC +-0.041 (median of 6 claims), pixel AUROC +-0.012 (of 6)'."""
    import numpy as np

    from adlib.evidence.claims import METRIC_NAMES

    widths: dict[str, list[float]] = {}
    for verdict in verdicts:
        if verdict.level is not None:
            widths.setdefault(verdict.metric or verdict.quantity, []).append(verdict.half_width())
    if not widths:
        return "no interval with a coverage level among these verdicts"
    return ", ".join(
        f"{METRIC_NAMES.get(metric, metric)} ±{float(np.median(values)):.3f} (median of {len(values)})"
        for metric, values in widths.items()
    )


def reproduce_seconds(name: str, times: Path | str = "../figures/reproduce_times.csv") -> str:
    """How long notebook `name` took in the last `make reproduce` (its `figures/reproduce_times.csv`), in
    words, for the "Why this sample" cell, so that the budget a notebook states is measured, not written by hand."""
    path = Path(times)
    if not path.is_file():
        return f"no timing yet ({path} is written by make reproduce)"
    table = pd.read_csv(path)
    rows = table[table.notebook == name]
    if rows.empty:
        return f"no timing yet ({name} is not in {path.name})"
    seconds = float(rows.seconds.iloc[-1])
    return f"{seconds / 60:.1f} min ({seconds:.0f} s) in the last make reproduce, 2-core machine"


LAYOUT_FIXTURE = "LAYOUT_FIXTURE.txt"  # marks a tiny folder a test writes in a data set's layout: not that data set
HOW_TO_GET = {  # how to get a data set `python -m adlib fetch` does not know; {folder}: where it belongs
    "mtd": "git clone https://github.com/abin24/Magnetic-tile-defect-datasets..git {folder}/mtd",
}


def how_to_get(name: str, folder: Path | str) -> str:
    """The command that puts data set `name` into `folder`: `python -m adlib fetch` where it knows the data set,
    else the public source (`HOW_TO_GET`; MTD is a git repository with no release archive to pin)."""
    return HOW_TO_GET.get(name, "python -m adlib fetch {name} --to {folder}").format(name=name, folder=folder)


def other_dataset(name: str, root: Path | str | None, profile: str, data_root: Path | str) -> Path | None:
    """Where a notebook on another data set (`name`, e.g. "btad") finds it, or None after one printed line
    saying what it needs and how to get it (`how_to_get`).

    `root` if given (it must exist); else, on the paper profile only, the folder `name` beside `data_root`
    (data/mvtec_ad -> data/btad, where `python -m adlib fetch btad --to data/btad` puts it). The synthetic
    profile never looks beside its data, so `make reproduce` stays on the embedded benchmark and draws no
    figure of a data set it does not have."""
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{name}_root={str(root)!r} is not a folder: get it ({how_to_get(name, root)}) or pass {name}_root=None"
            )
        return path
    beside = Path(data_root).expanduser().resolve().parent / name
    if profile == "paper" and beside.is_dir():
        return beside
    print(
        f"needs {name.upper()}: {how_to_get(name, beside)}, then make reproduce PROFILE=paper "
        f"(it reads the {name} folder beside DATA; or pass {name}_root=...); nothing is drawn without it"
    )
    return None


class _SkipCell:
    """An IPython input transformer that empties every cell whose source does not contain `marker`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, lines: list[str]) -> list[str]:
        return lines if any(self.marker in line for line in lines) else []


def skip_cells_without(found: Path | None, marker: str) -> bool:
    """Without `found` (None: `other_dataset` printed what is missing), every cell run after this one does
    nothing, except a cell whose source contains `marker` (the parameters and set-up cells, which name
    `<name>_root`), so that re-running them with a data set lifts the skip. The cells below then need no
    `if root is not None:` each. Returns whether the cells below run; outside IPython it changes nothing."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        kept = [t for t in shell.input_transformers_post if not isinstance(t, _SkipCell)]
        shell.input_transformers_post[:] = kept + ([] if found is not None else [_SkipCell(marker)])
    return found is not None


def fixture_note(root: Path | str) -> str | None:
    """The note of a layout fixture (`LAYOUT_FIXTURE` in `root`): its first line, or None for real data."""
    path = Path(root) / LAYOUT_FIXTURE
    if not path.is_file():
        return None
    return (path.read_text(encoding="utf-8").strip().splitlines() or [f"a layout fixture ({path})"])[0]
