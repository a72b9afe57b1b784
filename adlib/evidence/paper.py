"""The numbers the three papers report, as one tidy table, to put beside adlib's own results.

What is in the data
-------------------
`adlib/evidence/paper_data/*.csv` (package data, read with `importlib.resources`), one file per paper:

- `pc.csv`: PatchCore, "Towards Total Recall in Industrial Anomaly Detection" (Roth et al.),
  transcribed from the paper's English text (every table checked cell by cell against its Chinese
  copy). Tables 1-5 and supplementary Tables S1-S6, every numeric method result on MVTec AD, and
  Table 6 (mSTC pixel AUROC, MTD image AUROC: `dataset=mstc` / `dataset=mtd`; PatchCore's mSTC run
  uses layers 3 and 4, so its row also carries `layers=3+4`).
- `kc.csv` (improved PatchCore, K-means + cosine) and `sp.csv` (SoftPatch): written separately in the
  same schema; their notes (sources, cells left out, the SP Table 1 bottle cells that the extracted
  text swaps) are in `adlib/evidence/paper_data/NOTES.md`, checked by `tests/test_paper_data_kc_sp.py`.
- `claims.csv` is not a table of numbers: it is the register of the papers' claims, with its own schema,
  read by `adlib.evidence.register`; `read_paper_folder` leaves it out.

Schema (header exactly `paper,table,method,setting,category,metric,value,unit`)
-------------------------------------------------------------------------------
- paper: `PC`, `KC` or `SP`.    table: as the paper names it (`1`, `S4`, `Fig5`), no "Table" prefix.
- method: the column/row header of the paper. PC spellings: `PatchCore-25%`, `PatchCore-10%`,
  `PatchCore-1%`, `PatchCore-100%`, `PatchCore-100%+IVFPQ` (the supplement's "PatchCore-25" etc. get
  the `%` too), `SPADE`, `PaDiM`, `PaDiM*`, `PatchSVDD`, `DifferNet`, `Mah.AD` (S1's
  "MahalanobisAD" too), `CAVGA-Rw`, `AE-SSIM`, `gamma-VAE+grad` ("γ-VAE + grad."), `vis.expl.VAE`,
  `Student`, `GeoTrans`, `GANomaly`, `DSEBM`, `OCSVM`, `ITAE`, and Table 6's `CAVGA-Ru`, `1-NN`.
- setting: empty for the paper's default (PC: WideResNet-50, layers 2+3, 224 px, p=3), else
  `key=value;key=value`. PC uses `backbone=` (`WRN-50`, `WRN-101`, `ResNet-50`, `ResNet-101`,
  `ResNeXt-101`, and the Table 4 ensemble `DenseNet-201&ResNeXt-101&WRN-101`, which the paper
  abbreviates "DenseN-201 & RNext-101 & WRN-101"), `layers=2+3`, `image_size=280`, `shots=5`, and
  `dataset=mstc` / `dataset=mtd` (Table 6; no `dataset=` means MVTec AD).
- category: a data set folder name in lower-case snake case (MVTec AD's `metal_nut`; KC and SP also
  name MVTec LOCO and BTAD categories), `mean` for the paper's average row/column, or `total` for a
  sum over the categories (PC Table 1's misclassification counts).
  Beware: the synthetic benchmark's `pill` and `screw` share names with MVTec AD categories; on the
  synthetic profile join on `mean` only (`beside` would otherwise pair them).
- metric: `image_auroc`, `pixel_auroc`, `pro` (adlib's names); PC also has
  `image_auroc_error`/`pixel_auroc_error`/`pro_error` (the "Error" rows, 100 - score as printed),
  `misclassifications` (count, Table 1), `inference_seconds` (Table 5), and
  `image_auroc_spread`/`pixel_auroc_spread`/`pro_spread`: the number printed after "±" in Table S5
  (the paper does not say whether it is a standard deviation or over how many runs).
- value: the number exactly as printed (99.1 for 99.1 %); unit: `%`, `s`, `ms`, `count`, or empty
  (e.g. where a paper prints AUROC as a fraction, 0.994).

`reported()` adds `fraction` (value / 100 for `%`, value otherwise: it compares with adlib's metrics
in [0, 1]) and `decimals` (how many decimals the paper printed, to judge a difference against the
rounding).

Known gaps in pc.csv
--------------------
- Table S2, PaDiM, transistor: left out. The English copy prints 98.5, the Chinese copy 94.9, and
  neither fits the printed mean 97.5 (the 15 categories would average 97.57 or 97.33).
- Cells printed as "-" are absent (SPADE, PaDiM, PaDiM* per category in S1; CAVGA-Rw per category
  in S2; DifferNet in S5 except 16 shots; misclassifications of all but PatchCore in Table 1).
- Table S5's "Retained %" row (share of the training data that 1..50 shots are) is a property of
  the setting, not a result, and is not transcribed.
- Figures 4-6 and S4-S6 are plots without printed numbers in the text. Table 6's "CAVGA-R_u" is
  spelled `CAVGA-Ru`; the English copy's "GAnomaly" is `GANomaly`, as the Chinese copy and Table S1
  spell it.
- The paper is inconsistent in two places (kept as printed, flagged in tests/test_paper.py):
  Table S1 DifferNet prints mean 94.9 while its 15 categories average 94.69; Table 4's first block
  prints PRO 94.9 with error 5.6 (100 - 94.9 = 5.1).
- Table 5's SPADE and PaDiM are the authors' WideResNet-50 reimplementations (85.3/96.6/91.5 and
  95.4/97.3/91.8), not the numbers of Tables 1-3, which come from the original papers.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

COLUMNS = ("paper", "table", "method", "setting", "category", "metric", "value", "unit")
PAPERS = frozenset({"PC", "KC", "SP"})
UNITS = frozenset({"%", "s", "ms", "count", ""})
KEY = ("paper", "table", "method", "setting", "category", "metric")
REGISTER_FILE = "claims.csv"  # the claims register (adlib.evidence.register) lives beside the numbers
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^;=]+(;[A-Za-z_][A-Za-z0-9_]*=[^;=]+)*")


class PaperDataError(ValueError):
    """A reported-numbers CSV that does not follow the schema; the message names the file and row."""


def _parse_file(name: str, text: str) -> list[dict[str, object]]:
    """The rows of one CSV, validated; errors name the file, the data row and its line number."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise PaperDataError(f"{name}: the header must be exactly {','.join(COLUMNS)!r}; got {header!r}")
    rows = []
    for number, cells in enumerate(reader, start=1):
        where = f"{name}, row {number} (line {reader.line_num})"
        if len(cells) != len(COLUMNS):
            raise PaperDataError(f"{where}: expected {len(COLUMNS)} cells, got {len(cells)}: {cells!r}")
        row = dict(zip(COLUMNS, (cell.strip() for cell in cells), strict=True))
        if row["paper"] not in PAPERS:
            raise PaperDataError(f"{where}: paper must be one of {sorted(PAPERS)}; got {row['paper']!r}")
        for column in ("table", "method"):
            if not row[column]:
                raise PaperDataError(f"{where}: {column} is empty")
        if row["setting"] and not _SETTING.fullmatch(row["setting"]):
            raise PaperDataError(f"{where}: setting must be empty or 'key=value;key=value'; got {row['setting']!r}")
        for column in ("category", "metric"):
            if not _NAME.fullmatch(row[column]):
                raise PaperDataError(f"{where}: {column} must be lower-case snake case; got {row[column]!r}")
        if row["unit"] not in UNITS:
            raise PaperDataError(f"{where}: unit must be one of {sorted(UNITS)}; got {row['unit']!r}")
        printed = row["value"]
        if not _NUMBER.fullmatch(printed):
            raise PaperDataError(f"{where}: value must be a plain decimal number as printed; got {printed!r}")
        value = float(printed)
        if row["unit"] == "%" and not 0.0 <= value <= 100.0:
            raise PaperDataError(f"{where}: a percentage must lie in [0, 100]; got {printed}")
        row["value"] = value
        row["decimals"] = len(printed.partition(".")[2])
        row["fraction"] = value / 100.0 if row["unit"] == "%" else value
        row["_where"] = where
        rows.append(row)
    return rows


def read_paper_folder(folder: Traversable | Path) -> pd.DataFrame:
    """Every `*.csv` in `folder` but the claims register, validated and concatenated (files in name order,
    rows as in the file)."""
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".csv") and entry.name != REGISTER_FILE),
        key=lambda e: e.name,
    )
    rows: list[dict[str, object]] = []
    for entry in files:
        rows += _parse_file(entry.name, entry.read_text(encoding="utf-8"))
    seen: dict[tuple, str] = {}
    for row in rows:
        key = tuple(row[column] for column in KEY)
        if key in seen:
            raise PaperDataError(f"{row['_where']}: the same cell as {seen[key]} ({dict(zip(KEY, key))})")
        seen[key] = str(row["_where"])
    columns = [*COLUMNS, "fraction", "decimals"]
    frame = pd.DataFrame([{column: row[column] for column in columns} for row in rows], columns=columns)
    return frame.astype({"value": float, "fraction": float, "decimals": int})


@functools.cache
def _package_data() -> pd.DataFrame:
    return read_paper_folder(importlib.resources.files("adlib.evidence") / "paper_data")


def reported(
    paper: str | None = None, table: str | int | None = None, method: str | None = None, metric: str | None = None
) -> pd.DataFrame:
    """The reported numbers (schema columns + `fraction` + `decimals`), filtered by exact match.

    A filter value that matches nothing raises, listing the values there are (a misspelt method
    name should not silently give an empty table).
    """
    if paper is not None and paper not in PAPERS:
        raise ValueError(f"paper must be one of {sorted(PAPERS)}; got {paper!r}")
    frame = _package_data()
    for column, wanted in (("paper", paper), ("table", table), ("method", method), ("metric", metric)):
        if wanted is None:
            continue
        keep = frame[column] == str(wanted)
        if not keep.any():
            raise ValueError(
                f"no reported numbers with {column}={wanted!r} (after the other filters); "
                f"available: {sorted(frame[column].unique())}"
            )
        frame = frame[keep]
    return frame.reset_index(drop=True).copy()


def beside(ours: pd.DataFrame, reported: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """Our results next to the paper's: ours' rows with `paper`, `ours` and `difference` columns.

    `ours` is a tidy frame with a `value` column (e.g. from `adlib.evaluation.experiment.run`: metrics in
    [0, 1], times in seconds) and the key columns `on` (e.g. `("category", "metric")`); `reported`
    is a frame from `reported()`, filtered so that `on` picks at most one reported number (else it
    raises and says which columns still vary). `paper` is the reported `fraction`, `ours` our value,
    `difference` = ours - paper. It is a left join: rows of ours without a reported number keep NaN
    in `paper` and `difference`. Where the paper's number is a percentage, ours must lie in [0, 1]
    (a percentage passed by mistake raises instead of giving differences of ~98).
    """
    keys = list(on)
    if not keys:
        raise ValueError("on must name at least one key column, e.g. ('category', 'metric')")
    reserved = {"paper", "ours", "difference", "value", "fraction"}
    if reserved & set(keys):
        raise ValueError(f"on cannot use {sorted(reserved & set(keys))}: they are value columns, not keys")
    for name, frame, needed in (("ours", ours, [*keys, "value"]), ("reported", reported, [*keys, "fraction"])):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks the columns {missing}; it has {list(frame.columns)}")
    clash = [column for column in ("paper", "ours", "difference") if column in ours.columns]
    if clash:
        raise ValueError(f"ours already has the output columns {clash}; rename or drop them first")
    duplicated = reported.duplicated(keys, keep=False)
    if duplicated.any():
        varying = [c for c in reported.columns if c not in keys and reported.loc[duplicated, c].nunique() > 1]
        raise ValueError(
            f"reported has several numbers per {keys}; filter it further or add keys to `on` "
            f"(columns that vary: {varying})"
        )
    table = ours.drop(columns=["value"]).assign(ours=ours["value"].astype(float).to_numpy())
    paper = reported[[*keys, "fraction", "unit"]].rename(columns={"fraction": "paper", "unit": "_unit"})
    joined = table.merge(paper, on=keys, how="left", validate="many_to_one")
    percent = joined["_unit"] == "%"
    outside = percent & ~joined["ours"].between(0.0, 1.0)
    if outside.any():
        raise ValueError(
            f"ours['value'] must be a fraction in [0, 1] where the paper reports a percentage; got "
            f"{joined.loc[outside, 'ours'].tolist()[:5]} (divide percentages by 100)"
        )
    joined["difference"] = joined["ours"] - joined["paper"]
    return joined.drop(columns=["_unit"])
