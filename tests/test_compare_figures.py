"""scripts/compare_figures.py: identical, within tolerance, moved (with the verdicts that changed), timings by ratio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_figures.py"
spec = importlib.util.spec_from_file_location("compare_figures", SCRIPT)
compare_figures = importlib.util.module_from_spec(spec)
sys.modules["compare_figures"] = compare_figures
spec.loader.exec_module(compare_figures)

OLD = (
    "claim,metric,status,estimate,low,high,n\nA above B,image_auroc,holds,0.1,0.05,0.15,9 x 60\n"
    "C above D,pro,inconclusive,0.0,-0.02,0.02,9 x 60\n"
)


def test_the_same_bytes_are_identical():
    assert compare_figures.compare_tables("x.csv", OLD, OLD, timing=False).result == "identical"


def test_float_rounding_is_within_tolerance_and_anything_more_moved():
    rounded = OLD.replace("0.1,0.05", "0.10000001,0.05")  # 1e-7 relative
    assert compare_figures.compare_tables("x.csv", rounded, OLD, timing=False).result == "within tolerance"
    moved = OLD.replace("0.1,0.05", "0.1001,0.05")
    result = compare_figures.compare_tables("x.csv", moved, OLD, timing=False)
    assert result.result == "moved" and result.moved == 1 and abs(result.largest - 1e-4) < 1e-12


def test_a_changed_status_is_named():
    flipped = OLD.replace("C above D,pro,inconclusive", "C above D,pro,holds")
    result = compare_figures.compare_tables("x.csv", flipped, OLD, timing=False)
    assert result.result == "moved" and result.status_changes == ["C above D / pro: inconclusive -> holds"]


def test_rows_without_a_verdict_are_not_a_status_change():
    old = OLD + "detail row,,,0.5,,,\n"
    result = compare_figures.compare_tables("x.csv", old.replace("0.5", "0.6"), old, timing=False)
    assert result.result == "moved" and result.status_changes == [] and result.moved == 1


def test_timings_compare_by_ratio_and_do_not_count_as_moves():
    old = "method,fit_seconds,image_auroc\nA,2.0,0.9\nB,4.0,0.8\n"
    new = "method,fit_seconds,image_auroc\nA,3.0,0.9\nB,6.0,0.8\n"
    result = compare_figures.compare_tables("t.csv", new, old, timing=True)
    assert result.result == "within tolerance" and result.timing_ratio == 1.5
    assert compare_figures.compare_tables("t.csv", new, old, timing=False).result == "moved"


def test_caption_verdicts_are_keyed_by_their_claim_with_numbers_blanked():
    caption = "**holds** (n = 9 x 60): A above B by +0.100, 95 % CI [+0.050, +0.150]  \n\nThe caption.\n"
    assert compare_figures.caption_statuses(caption) == {"(n = # x #): A above B by #, # % CI [#, #]": "holds"}
    moved = caption.replace("+0.100", "+0.090").replace("**holds**", "**inconclusive**")
    assert compare_figures.caption_statuses(moved) == {"(n = # x #): A above B by #, # % CI [#, #]": "inconclusive"}
