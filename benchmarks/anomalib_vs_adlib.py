"""`make bench`: adlib's PatchCore side by side with anomalib's, plus reference loops, in one run.

For each embedded-benchmark category, each library fits and predicts in its own process (so each
peak memory is its own), with the same backbone architecture and the same weights, the same image
tensors, coreset share, Eq. 7 neighbours and thread count:

- adlib: `benchmarks/adlib_worker.py` in this virtualenv;
- anomalib: `benchmarks/anomalib_worker.py` in the separate virtualenv `build/anomalib-venv`
  (`benchmarks/anomalib-requirements.txt`), driving its `PatchcoreModel` directly.

Both sides' maps are then scored by both libraries' metric code (`adlib.metrics`; anomalib's AUROC
and AUPRO). The reference loops of `reference_loops.py` run in the same process at the end.
Writes `--out` (Markdown) and the tidy CSV beside it (benchmark, side, quantity, value, unit, repeats).

    python benchmarks/anomalib_vs_adlib.py --data data/synthetic --out figures/bench.md
    python benchmarks/anomalib_vs_adlib.py --categories pill --skip-reference --out /tmp/pair.md  # one pair
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adlib.data import load_category, read_mask
from adlib.features import FeatureExtractor, FeatureSettings
from adlib.files import atomic_write_bytes
from adlib.metrics import image_auroc, pixel_auroc, pro
from capped import MEMORY_CAP, OK, TIME_CAP, Outcome, run_capped
from common import machine
from scaling import loglog_slope, memory_verdict, not_run, plot, point, ratio_by_size, slopes
from worker_common import PREPROCESSING, set_threads

HERE = Path(__file__).resolve().parent
FPR_LIMIT = 0.3
AUROC_TOLERANCE = 0.01  # "equal AUROC": within this of anomalib's (one image pair of 800 is 0.00125)
TRIMMED = "anomalib, MALLOC_TRIM_THRESHOLD_=0"
SIDES = ("adlib", "anomalib", TRIMMED)  # anomalib as its users get it (glibc's defaults), and trimmed
ANOMALIB = SIDES[1:]
FILES = {"adlib": "adlib", "anomalib": "anomalib", TRIMMED: "anomalib-trim"}  # output file stems
ENVIRONMENT = {"adlib": {}, "anomalib": {}, TRIMMED: {"MALLOC_TRIM_THRESHOLD_": "0"}}
FIT_TARGET, PREDICT_TARGET, CORESET_FLOOR_TARGET = 3.0, 1.5, 1.3
BUSY_PER_CORE = 0.5  # a load average above this per core flags the run as not idle


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_weights(backbone: str, seed: int, path: Path) -> Path:
    """A torchvision `backbone` randomly initialised after `torch.manual_seed(seed)`, saved as a state
    dict (no weights can be downloaded here). Kept between runs: the same seed gives the same file."""
    if path.is_file():
        return path
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = getattr(torchvision.models, backbone)(weights=None)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def run_worker(command: list[str]) -> float:
    """Runs one worker process to the end (its output goes to this console); returns its wall seconds."""
    log("$ " + shlex.join(command))
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def check_extractors(args: argparse.Namespace, weights: Path) -> dict[str, object]:
    """Both extractors' layer maps of the first test image: the largest difference per layer."""
    out = args.work / "extractor-check.npz"
    run_worker([str(args.anomalib_python), str(HERE / "anomalib_worker.py"), "check", "--data", str(args.data),
                "--category", args.categories[0], "--backbone", args.backbone, "--weights", str(weights),
                "--threads", str(args.threads), "--out", str(out)])
    theirs = np.load(out)
    sample = next(iter(load_category(args.data, args.categories[0]).test))
    if str(sample.image) != str(theirs["image"]):
        raise RuntimeError(f"the extractor check compared different images: {sample.image} vs {theirs['image']}")
    settings = FeatureSettings(backbone=args.backbone, layers=("layer2", "layer3"), weights=str(weights),
                               preprocessing=PREPROCESSING)
    ours = FeatureExtractor(settings, device="cpu", use_cache=False).layer_maps([sample], progress=False)
    result: dict[str, object] = {"image": sample.image.name, "unused keys": ", ".join(theirs["unused"].tolist())}
    for layer, value in ours.items():
        other = torch.from_numpy(theirs[layer])
        if other.shape != value.shape:
            raise RuntimeError(f"{layer}: anomalib's map is {tuple(other.shape)}, adlib's {tuple(value.shape)}")
        result[layer] = {"shape": list(value.shape), "max abs difference": float((other - value).abs().max()),
                         "max abs value": float(value.abs().max())}
    return result


def shown(path: Path | str) -> str:
    """`path` relative to the working directory where it lies below it (for commands a person copies)."""
    path = Path(path)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


@dataclass(frozen=True)
class Job:
    """What one worker run fits and predicts: which data and category, how many training images, how
    often to time each step, and the stem of its output files (`{stem}-{side file}.npz` / `.json`)."""

    data: Path
    category: str
    shots: int
    fit_repeats: int
    predict_repeats: int
    stem: Path


def worker_command(side: str, args: argparse.Namespace, job: Job, weights: Path) -> list[str]:
    """The command line of one side's run; it writes `{job.stem}-{FILES[side]}.npz` and `.json`."""
    python, script = (
        (sys.executable, HERE / "adlib_worker.py") if side == "adlib"
        else (str(args.anomalib_python), HERE / "anomalib_worker.py")
    )
    return [python, shown(script)] + (["run"] if side != "adlib" else []) + [
        "--data", str(job.data), "--category", job.category, "--shots", str(job.shots), "--seed", str(args.seed),
        "--backbone", args.backbone, "--weights", str(weights), "--ratio", str(args.ratio),
        "--neighbours", str(args.neighbours), "--batch", "8", "--threads", str(args.threads),
        "--fit-repeats", str(job.fit_repeats), "--predict-repeats", str(job.predict_repeats),
        "--maps", f"{job.stem}-{FILES[side]}.npz", "--result", f"{job.stem}-{FILES[side]}.json",
    ]


def run_side(args: argparse.Namespace, side: str, job: Job, weights: Path) -> tuple[Outcome, dict | None]:
    """One side's worker under the memory and time caps; its result record where it ran to the end."""
    command = worker_command(side, args, job, weights)
    log(f"{side}: {job.category}, {job.shots} training images: $ " + " ".join(f"{k}={v}" for k, v in ENVIRONMENT[side].items())
        + (" " if ENVIRONMENT[side] else "") + shlex.join(command))
    result_file = Path(f"{job.stem}-{FILES[side]}.json")
    result_file.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    outcome = run_capped(command, args.memory_cap_gib * 1024, args.time_cap, env=os.environ | ENVIRONMENT[side])
    log(f"{side}: {outcome.label(args.memory_cap_gib * 1024, args.time_cap)} after {outcome.seconds:.0f} s, "
        f"largest sampled memory {outcome.peak_mb:.0f} MiB")
    if outcome.status != OK:
        return outcome, None
    record = json.loads(result_file.read_text())
    record.update(process_seconds=outcome.seconds, load_before=load_before, load_after=os.getloadavg()[0])
    return outcome, record


def run_category(args: argparse.Namespace, category: str, weights: Path, index: int) -> dict[str, dict]:
    """Every side on one category's full training set; the order rotates over categories against
    drifting load. A side stopped at a cap gets a record with its status and no numbers."""
    results = {}
    order = SIDES[index % len(SIDES):] + SIDES[: index % len(SIDES)]
    job = Job(args.data, category, args.shots, args.fit_repeats, args.predict_repeats, args.work / category)
    for side in order:
        outcome, record = run_side(args, side, job, weights)
        status = outcome.label(args.memory_cap_gib * 1024, args.time_cap)
        results[side] = (record or {}) | {"status": status, "sampled_peak_mb": outcome.peak_mb}
    return {side: results[side] for side in SIDES}


def run_sweep(args: argparse.Namespace, weights: Path) -> pd.DataFrame:
    """Every side at every training-set size of the bench-only category, smallest first; once a side
    passes a cap, its larger sizes are not run (and reported so)."""
    points, capped_at = [], {}
    for n in args.sizes:
        for side in SIDES:
            if side in capped_at:
                points.append(not_run(side, n, capped_at[side]))
                continue
            job = Job(args.sweep_data, args.sweep_category, n, 1, args.predict_repeats,
                      args.work / f"sweep-{args.sweep_category}-{n}")
            outcome, record = run_side(args, side, job, weights)
            if outcome.status in (MEMORY_CAP, TIME_CAP):
                capped_at[side] = n
            points.append(point(side, n, outcome.label(args.memory_cap_gib * 1024, args.time_cap), record,
                                outcome.peak_mb))
    return pd.DataFrame(points)


def write_truth(args: argparse.Namespace, category: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """The test masks (adlib.data.read_mask: the same geometry as the images) and labels, for both metric codes."""
    test = load_category(args.data, category).test
    masks = np.stack([read_mask(sample, PREPROCESSING).numpy() for sample in test])
    labels = np.array([sample.label for sample in test], dtype=np.int64)
    path = args.work / f"{category}-truth.npz"
    buffer = io.BytesIO()
    np.savez(buffer, masks=masks, labels=labels)
    atomic_write_bytes(path, buffer.getvalue())
    return masks, labels, path


def adlib_metric_values(masks: np.ndarray, labels: np.ndarray, maps_file: Path) -> dict[str, float]:
    side = np.load(maps_file)
    return {
        "image AUROC": image_auroc(labels, side["scores"]),
        "pixel AUROC": pixel_auroc(masks, side["maps"]),
        "PRO": pro(masks, side["maps"], fpr_limit=FPR_LIMIT),
        "PRO (anomalous images only)": pro(masks, side["maps"], fpr_limit=FPR_LIMIT, anomalous_only=True),
    }


def anomalib_metric_values(args: argparse.Namespace, category: str, truth: Path,
                           sides: list[str]) -> dict[str, dict[str, float]]:
    files = [args.work / f"{category}-{FILES[side]}.npz" for side in sides]
    out = args.work / f"{category}-anomalib-metrics.json"
    run_worker([str(args.anomalib_python), str(HERE / "anomalib_worker.py"), "metrics", "--masks", str(truth),
                "--maps", *map(str, files), "--fpr-limit", str(FPR_LIMIT), "--threads", str(args.threads),
                "--result", str(out)])
    values = json.loads(out.read_text())
    return {variant: {side: values[str(path)][variant] for side, path in zip(sides, files)}
            for variant in ("raw", "min-max")} | {"version": values["anomalib"]}


def row(benchmark: str, side: str, quantity: str, value: object, unit: str, repeats: int) -> dict[str, object]:
    return {"benchmark": benchmark, "side": side, "quantity": quantity, "value": value, "unit": unit,
            "repeats": repeats}


def category_rows(category: str, runs: dict[str, dict], metrics: dict[str, dict[str, dict]]) -> list[dict]:
    rows = []
    name = f"patchcore {category}"
    for side in SIDES:
        r = runs[side]
        rows.append(row(name, side, "status", r["status"], "", 1))
        if r["status"] != OK:
            rows.append(row(name, side, "largest sampled memory (process tree)", r["sampled_peak_mb"], "MiB", 1))
            continue
        fits, predicts = len(r["fit"]["wall"]), len(r["predict"]["wall"])
        per_image = 1e3 / r["n_test"]
        rows += [
            row(name, side, "fit time", r["fit"]["median_wall"], "s", fits),
            row(name, side, "fit CPU time", r["fit"]["median_cpu"], "s", fits),
            row(name, side, "fit: features part", r["fit_features"]["median_wall"], "s", len(r["fit_features"]["wall"])),
            row(name, side, "fit: coreset part", r["fit_coreset"]["median_wall"], "s", len(r["fit_coreset"]["wall"])),
            row(name, side, "predict time per image", r["predict"]["median_wall"] * per_image, "ms", predicts),
            row(name, side, "predict CPU time per image", r["predict"]["median_cpu"] * per_image, "ms", predicts),
            row(name, side, "peak memory (ru_maxrss)", r["peak_rss_mb"], "MiB", 1),
            row(name, side, "memory before fit (VmRSS)", r["rss_start_mb"], "MiB", 1),
            row(name, side, "memory bank", "x".join(map(str, r["bank"])), "rows x dims", 1),
            row(name, side, "training / test images", f"{r['n_train']} / {r['n_test']}", "", 1),
            row(name, side, "load average before / after", f"{r['load_before']:.1f} / {r['load_after']:.1f}", "", 1),
        ]
        for code in metrics:
            for metric, value in metrics[code][side].items():
                rows.append(row(name, side, f"{metric} ({code} metric code)", value, "", 1))
    return rows


def summary(runs: dict[str, dict[str, dict]], metrics: dict[str, dict]) -> pd.DataFrame:
    """One line per category and side: the numbers the targets are read against (NaN for a side that
    passed a cap; its status says which, its peak is the parent's largest sample before the kill)."""
    lines = []
    nan = float("nan")
    for category, by_side in runs.items():
        for side in SIDES:
            r = by_side[side]
            if r["status"] != OK:
                lines.append({"category": category, "side": side, "status": r["status"], "peak MiB": r["sampled_peak_mb"]})
                continue
            ours, theirs = metrics[category]["adlib"][side], metrics[category]["anomalib"][side]
            lines.append({
                "category": category, "side": side, "status": OK,
                "fit s": r["fit"]["median_wall"], "features s": r["fit_features"]["median_wall"],
                "coreset s": r["fit_coreset"]["median_wall"],
                "predict ms/img": r["predict"]["median_wall"] * 1e3 / r["n_test"],
                "fit CPU s": r["fit"]["median_cpu"], "predict CPU ms/img": r["predict"]["median_cpu"] * 1e3 / r["n_test"],
                "peak MiB": r["peak_rss_mb"], "MiB before fit": r["rss_start_mb"],
                "image AUROC": ours["image AUROC"], "pixel AUROC": ours["pixel AUROC"],
                "PRO (adlib code)": ours["PRO"], "PRO (anomalib code)": theirs["PRO"],
                "bank": "x".join(map(str, r["bank"])),
            })
    columns = ["category", "side", "status", "fit s", "features s", "coreset s", "predict ms/img", "fit CPU s",
               "predict CPU ms/img", "peak MiB", "MiB before fit", "image AUROC", "pixel AUROC",
               "PRO (adlib code)", "PRO (anomalib code)", "bank"]
    return pd.DataFrame(lines).reindex(columns=columns).fillna({"bank": ""})


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per category and anomalib variant: anomalib / adlib for times and memory (> 1: adlib is faster /
    smaller); NaN where that variant passed a cap."""
    wide = table.set_index(["category", "side"])
    out = []
    for category in wide.index.get_level_values(0).unique():
        a = wide.loc[(category, "adlib")]
        for side in ANOMALIB:
            b = wide.loc[(category, side)]
            out.append({
                "category": category, "against": side, "status": b["status"],
                "predict speed-up": b["predict ms/img"] / a["predict ms/img"],
                "fit speed-up": b["fit s"] / a["fit s"],
                "predict speed-up, CPU time": b["predict CPU ms/img"] / a["predict CPU ms/img"],
                "fit speed-up, CPU time": b["fit CPU s"] / a["fit CPU s"],
                "coreset speed-up": b["coreset s"] / a["coreset s"],
                "features speed-up": b["features s"] / a["features s"],
                "peak memory anomalib / adlib": b["peak MiB"] / a["peak MiB"],
                "image AUROC adlib - anomalib": a["image AUROC"] - b["image AUROC"],
            })
    return pd.DataFrame(out)


def strictest(per_category: pd.DataFrame, column: str) -> pd.Series:
    """Per category, the lowest ratio over the anomalib variants that ran (the comparison least in adlib's favour)."""
    return per_category.dropna(subset=[column]).groupby("category", sort=False)[column].min()


def verdict(held: bool | None) -> str:
    return "holds" if held else ("cannot tell (no anomalib run to compare)" if held is None else "does NOT hold")


def targets(per_category: pd.DataFrame, sweep: pd.DataFrame | None, coreset_floor: float | None,
            shots: int) -> pd.DataFrame:
    """The issue's targets, each with the measured ratios of this run and a verdict."""
    listed = lambda series, fmt: ", ".join(f"{k} {format(v, fmt)}" for k, v in series.items())  # noqa: E731
    fit, predict = strictest(per_category, "fit speed-up"), strictest(per_category, "predict speed-up")
    auroc = strictest(per_category, "image AUROC adlib - anomalib")
    memory = strictest(per_category, "peak memory anomalib / adlib")
    lines = []
    fit_growth = ""
    growth_held = True
    if sweep is not None:
        by_size = ratio_by_size(sweep, "fit s", "adlib", ANOMALIB)
        growth = loglog_slope(by_size.index, by_size.to_numpy())
        growth_held = bool(len(by_size) >= 2 and growth > 0)
        fit_growth = (f"; sweep ratio by size {listed(by_size, '.2f')} (log-log slope {growth:+.2f}"
                      f"{', growing' if growth_held else ', not growing'})")
    lines.append({"target": f"fit >= {FIT_TARGET:g}x faster than anomalib at {shots} training images, growing "
                            "with N",
                  "measured (strictest anomalib variant that ran)":
                      f"median {fit.median():.2f}x ({listed(fit, '.2f')}){fit_growth}",
                  "verdict": verdict(None if fit.empty else bool(fit.median() >= FIT_TARGET and growth_held))})
    auroc_ok = bool((auroc >= -AUROC_TOLERANCE).all())
    lines.append({"target": f"predict >= {PREDICT_TARGET:g}x faster per image, at equal or better image AUROC "
                            f"(-{AUROC_TOLERANCE})",
                  "measured (strictest anomalib variant that ran)":
                      f"median {predict.median():.2f}x ({listed(predict, '.2f')}); AUROC adlib - anomalib "
                      f"{listed(auroc, '+.3f')}",
                  "verdict": verdict(None if predict.empty else bool(predict.median() >= PREDICT_TARGET and auroc_ok))})
    memory_text = f"full set: {listed(memory, '.2f')}"
    memory_held = bool((memory >= 1).all()) if not memory.empty else None
    if sweep is not None:
        held, text = memory_verdict(sweep, "adlib", ANOMALIB)
        memory_text += f"; sweep: {text}"
        memory_held = held if memory_held is None else memory_held and held
    lines.append({"target": "peak memory <= anomalib's at every size",
                  "measured (strictest anomalib variant that ran)": memory_text, "verdict": verdict(memory_held)})
    if coreset_floor is not None:
        lines.append({"target": f"coreset within {CORESET_FLOOR_TARGET:g}x of the streaming floor",
                      "measured (strictest anomalib variant that ran)": f"{coreset_floor:.2f}x (reference loops)",
                      "verdict": verdict(coreset_floor <= CORESET_FLOOR_TARGET)})
    return pd.DataFrame(lines)


def reading(table: pd.DataFrame) -> str:
    """Where the time goes, computed from the side-by-side table: what bounds the fit speed-up."""
    ran = table[table["status"] == OK]
    ours = ran[ran["side"] == "adlib"].set_index("category")
    theirs = ran[ran["side"].isin(ANOMALIB)].groupby("category")[["fit s", "coreset s"]].min()
    if ours.empty or theirs.empty:
        return "Reading: no anomalib variant ran to the end on the full set, so there is nothing to compare."
    features_share = (ours["features s"] / ours["fit s"]).median()
    bound = (theirs["fit s"] / ours["features s"]).dropna()
    return (
        "Reading: both sides run the same backbone forward. It is "
        + (f"{features_share:.0%} of" if features_share < 0.95 else "nearly all")
        + " adlib's fit time (median; timed apart from the fit, so noisy), "
        "so even a free coreset could make adlib's fit at most "
        f"{', '.join(f'{b:.1f}x' for b in bound)} faster than anomalib's here; anomalib's coreset (median "
        f"{theirs['coreset s'].median():.1f} s) grows as N^2 with the training patches N, adlib's ~N, so the fit "
        "ratio rises with the training set (the sweep below)."
    )


def metric_agreement(metrics: dict[str, dict]) -> pd.DataFrame:
    lines = []
    for category, by_code in metrics.items():
        for side in by_code["adlib"]:
            for metric in ("image AUROC", "pixel AUROC", "PRO"):
                ours, theirs = by_code["adlib"][side][metric], by_code["anomalib"][side][metric]
                scaled = by_code["anomalib, min-max input"][side][metric]
                lines.append({"category": category, "maps of": side, "metric": metric, "adlib code": ours,
                              "anomalib code": theirs, "difference": ours - theirs,
                              "anomalib code, min-max input": scaled, "difference, min-max": ours - scaled})
            lines.append({"category": category, "maps of": side, "metric": "PRO, anomalous images only",
                          "adlib code": by_code["adlib"][side]["PRO (anomalous images only)"]})
    return pd.DataFrame(lines)


def agreement_text(agreement: pd.DataFrame) -> str:
    """What the differences between the two metric codes are, and why."""
    worst = agreement.dropna(subset=["difference"]).groupby("metric")[["difference", "difference, min-max"]].agg(
        lambda d: d.abs().max())
    raw_auroc = worst.loc[["image AUROC", "pixel AUROC"], "difference"].max()
    scaled_auroc = worst.loc[["image AUROC", "pixel AUROC"], "difference, min-max"].max()
    pro_gap = worst.loc["PRO", "difference"]
    only = agreement[agreement["metric"] == "PRO, anomalous images only"]["adlib code"].to_numpy()
    every = agreement[agreement["metric"] == "PRO"]["adlib code"].to_numpy()
    return (
        f"Largest differences on the same maps: AUROC {raw_auroc:.2g} on the raw scores, {scaled_auroc:.2g} on "
        f"min-max-scaled ones; PRO {pro_gap:.2g}.\n\n"
        "- **AUROC.** Both compute the exact area under the ROC with tied scores counted one half. The raw "
        "difference is torchmetrics' input handling, which anomalib's AUROC inherits: values outside [0, 1] "
        "are taken for logits and passed through a float32 sigmoid, which saturates for large raw distances "
        "(sigmoid(10) is within 5e-5 of 1, where float32 steps are 6e-8), so nearby scores become ties and "
        "count one half. anomalib's own pipeline never meets this, because its post-processor scales scores "
        "and maps to [0, 1] before its evaluator. Min-max scaled in float64 (a strictly increasing map, which "
        "leaves the exact AUROC as it is), "
        + ("the two codes agree to rounding.\n" if scaled_auroc <= 1e-4 else
           f"they still differ by up to {scaled_auroc:.2g}: look for ties the scaling created or removed.\n")
        + 
        "- **PRO.** The same definition on both sides: the 8-connected regions of every test mask (OpenCV's "
        "default in anomalib, scipy's 3 x 3 structure in adlib), the normal pixels of all test images, good "
        "images included, for the FPR, tied scores crossing the threshold together, the curve cut by linear "
        "interpolation at FPR = 0.3 and its area divided by 0.3. AUPRO applies no sigmoid; what is left is "
        "rounding (anomalib accumulates the per-pixel steps with float32 cumulative sums over ~3 million pixels, "
        "adlib counts with integers and float64).\n"
        "- **A different convention, not a disagreement:** PatchCore's reported PRO leaves out the good test "
        "images (`adlib.metrics.pro(..., anomalous_only=True)`, the extra rows); here that moves PRO by up to "
        f"{np.abs(only - every).max():.3f}."
    )


def settings_table(args: argparse.Namespace, runs: dict[str, dict[str, dict]]) -> pd.DataFrame:
    first = next(iter(runs.values()))
    a = first["adlib"]
    b = next((first[side] for side in ANOMALIB if first[side]["status"] == OK), {"bank": ["?", "?"]})
    same = lambda value: {"adlib": value, "anomalib": value, "matched": "yes"}  # noqa: E731
    lines = {
        "backbone": same(f"{args.backbone}, layer2 + layer3"),
        "weights": same(f"random init, torch.manual_seed({args.seed}), one torchvision state-dict file loaded "
                        "by both (no pretrained weights can be downloaded here)"),
        "input": same("adlib.data.read_batch: shorter side 256, centre crop 224, ImageNet mean/std, float32"),
        "training images": same(f"{args.shots} per category (seeded subset, seed {args.seed})"),
        "test images": same("all per category"),
        "coreset share": same(f"{args.ratio:g}"),
        "Eq. 7 neighbours b": same(str(args.neighbours)),
        "threads": same(f"{args.threads} (torch and faiss)"),
        "batch": same("8 images per backbone forward and per predict call"),
        "patch feature": {"adlib": "unfold 3 x 3, adaptive average pooling per layer to 1024, layer3 upsampled "
                                   "bilinearly, pooled to 1024 (the official code)",
                          "anomalib": "3 x 3 average pooling per layer, layer3 upsampled bilinearly, channels "
                                      "concatenated", "matched": f"no: {a.get('bank', ['?', '?'])[1]} vs {b['bank'][1]} dims"},
        "coreset": {"adlib": "approximate greedy: dense projection to 128 dims, 10 random start points",
                    "anomalib": "k-center greedy: sparse random projection to the Johnson-Lindenstrauss "
                                "dimension for eps = 0.9, one random start point (in the coreset)",
                    "matched": "no (both greedy k-center on a random projection)"},
        "search": {"adlib": "faiss IndexFlatL2 (exact)", "anomalib": "torch matrix product (exact)",
                   "matched": "no (same result)"},
        "anomaly map": {"adlib": "bilinear upsampling, Gaussian blur sigma 4 (scipy's reflect)",
                        "anomalib": "nearest upsampling, Gaussian blur sigma 4 (its GaussianBlur2d)",
                        "matched": "sigma only"},
        "driver": {"adlib": "PatchCore.fit / .predict (no feature cache)",
                   "anomalib": "PatchcoreModel forward (train mode + subsample_embedding; eval mode), no Engine",
                   "matched": "no (see below)"},
    }
    return pd.DataFrame(lines).T.rename_axis("setting").reset_index()


NOT_MATCHED = """\
- **Engine and data module.** anomalib's `Engine` (a Lightning Trainer), data module, post-processor,
  evaluator and visualiser are bypassed: its `PatchcoreModel` gets the same tensors as adlib, in
  batches of 8, under `torch.no_grad()`. anomalib's own pre-processor (Resize 256 + CenterCrop 224 +
  ImageNet normalisation) gives the same tensors for these 256 x 256 images, so the data is equal;
  the timings leave out Lightning's loop and anomalib's score normalisation, so anomalib's times are a
  lower bound of what its Engine takes (this favours anomalib).
- **Patch features.** Not a setting either library exposes in a shared form: anomalib averages each
  layer over 3 x 3 and concatenates channels (512 + 1024 = 1536 dims for WRN-50, 128 + 256 = 384 for
  ResNet-18); adlib follows the official code (pooled to 1024 dims). The search and the coreset work on
  these vectors, so the dimension is part of each side's cost.
- **Coreset.** Both pick greedily the patch farthest from the coreset on a random projection, but
  anomalib projects with a sparse matrix to the Johnson-Lindenstrauss dimension for eps = 0.9 (about
  220 dims for the 7,840 training patches of 10 images) and starts from one random patch; adlib projects to 128 dims and starts from the mean distance to 10
  random patches, as the official code. The coresets differ, so do the maps.
- **Search and maps.** anomalib searches with a torch matrix product, adlib with faiss (both exact);
  anomalib upsamples the patch scores by nearest neighbour, adlib bilinearly, before the same sigma-4 blur.
- **Training images.** The full set (`--shots`, all 80 by default) of each category, the same on both
  sides; the scaling sweep fits seeded subsets of a bench-only category generated with more training
  images. anomalib's coreset loop costs O(N) per pick and N/10 picks, i.e. O(N^2) time.
- **Memory (not a setting, but read the peak with it).** anomalib runs twice: as its users get it
  (glibc's default allocator settings) and with `MALLOC_TRIM_THRESHOLD_=0` in its environment. Its
  coreset loop allocates a fresh N x k difference array per pick (k the projected dims); under glibc's
  defaults the freed arrays' pages stay in the heap, so the process grows by about one N x k float32
  array per pick (~18 GB at 20 training images of WRN-50 features in a trial run). It is the allocator,
  not anomalib's data: with the trim threshold at 0 the growth disappears. Every worker runs under a
  memory cap and a wall-time cap enforced by this driver (the sum of the worker's and its children's
  resident memory, polled every 0.2 s); a run past a cap is killed and reported as such, never dropped,
  and in the sweep that side's larger sizes are not run. adlib's loop allocates nothing per pick.
"""


def load_note(info: dict[str, str]) -> str:
    """The load averages of the run and whether the machine was idle (<= BUSY_PER_CORE per core) at both ends."""
    cores = int(info["cores"])
    start, end = float(info["load average at start"]), float(info["load average at end"])
    busy = max(start, end) > BUSY_PER_CORE * cores
    flag = (f"**NOT AN IDLE RUN: the 1-minute load average passed {BUSY_PER_CORE} per core** "
            "(other jobs were running; wall times are inflated and noisy, the ratios less so). "
            if busy else "The machine was idle at both ends (1-minute load average at most "
                         f"{BUSY_PER_CORE} per core). ")
    return flag + f"Load average {start:.2f} at the start, {end:.2f} at the end, for {cores} cores."


def report(args: argparse.Namespace, info: dict[str, str], check: dict[str, object], runs: dict,
           metrics: dict, sweep: pd.DataFrame | None, reference: pd.DataFrame | None, elapsed: float) -> str:
    table = summary(runs, metrics)
    per_category = ratios(table)
    agreement = metric_agreement(metrics)
    floor = coreset_floor(reference)
    out = io.StringIO()
    out.write("# adlib vs anomalib: PatchCore on the embedded benchmark, scaling, and reference loops\n\n")
    out.write(f"Made by `make bench` (`python benchmarks/anomalib_vs_adlib.py`) on {info['date']}; this report's "
              f"run took {elapsed / 60:.1f} minutes. Fit: median of {args.fit_repeats} fits; predict: median of "
              f"{args.predict_repeats} passes over the test images; each side in its own process, under a "
              f"{args.memory_cap_gib:g} GiB memory cap and a {args.time_cap:g} s time cap.\n\n")
    out.write(load_note(info) + "\n\n")
    out.write("## Targets\n\n")
    out.write("Ratios are anomalib / adlib (> 1: adlib faster or smaller), each against the anomalib variant "
              "least in adlib's favour among those that ran. \"Equal AUROC\" means within "
              f"{AUROC_TOLERANCE} of anomalib's.\n\n")
    out.write(targets(per_category, sweep, floor, args.shots).to_markdown(index=False) + "\n\n")
    out.write("## Machine\n\n" + pd.Series(info).to_frame("value").to_markdown() + "\n\n")
    out.write("## Settings\n\n" + settings_table(args, runs).to_markdown(index=False) + "\n\n")
    out.write(f"**Why {args.backbone}.** " + (
        "It is the paper's backbone and anomalib's default, so both libraries run as their users would run "
        "them (anomalib's 1536-d patch features against adlib's 1024-d ones). `--backbone resnet18` runs "
        "ResNet-18 instead.\n\n"
        if args.backbone == "wide_resnet50_2" else
        "Chosen with `--backbone`; the default is wide_resnet50_2, the paper's and anomalib's backbone.\n\n"))
    out.write("### What could not be matched\n\n" + NOT_MATCHED + "\n")
    layers = [k for k in check if k.startswith("layer")]
    out.write("### Same weights on both sides\n\n")
    out.write(f"anomalib's timm `{args.backbone}` loaded the torchvision state dict with no key missing (unused: "
              f"{check['unused keys'] or 'none'}). Layer maps of `{check['image']}`: "
              + "; ".join(f"{layer} {check[layer]['shape']}: largest difference {check[layer]['max abs difference']:.2g} "
                          f"(largest value {check[layer]['max abs value']:.3g})" for layer in layers) + ".\n\n")
    out.write(f"## Full training sets ({args.shots} images per category), side by side\n\n")
    out.write(table.to_markdown(index=False, floatfmt=".4g", missingval="") + "\n\n")
    out.write("Metrics from `adlib.metrics` except the `PRO (anomalib code)` column (anomalib's AUPRO, FPR limit "
              "0.3). Memory: `ru_maxrss` of the side's process at its end (for a run killed at a cap: the "
              "largest resident memory the driver sampled); `MiB before fit` is its resident memory after "
              "imports, model and warm-up (anomalib's imports, Lightning included, weigh more).\n\n")
    out.write(per_category.to_markdown(index=False, floatfmt=".3g", missingval="") + "\n\n")
    out.write(reading(table) + "\n\n")
    if sweep is not None:
        out.write(f"## Scaling with the training set ({args.sweep_category} of `{shown(args.sweep_data)}`)\n\n")
        out.write(f"![scaling]({args.plot.name})\n\n")
        out.write("Each side at each size in its own process; fit once, predict "
                  f"{args.predict_repeats} passes over the category's test images (a small fixed set). "
                  "Slopes: least squares of log(value) on log(training images) over the sizes that ran "
                  "(time ~ N^slope).\n\n")
        out.write(slopes(sweep).to_markdown(index=False, floatfmt=".2f") + "\n\n")
        out.write(sweep.to_markdown(index=False, floatfmt=".4g", missingval="") + "\n\n")
    out.write("## Metric code: adlib vs anomalib on the same maps\n\n")
    out.write(agreement.to_markdown(index=False, floatfmt=".6g", missingval="") + "\n\n")
    out.write(agreement_text(agreement) + "\n\n")
    if reference is not None:
        out.write("## Reference loops (same run)\n\n")
        out.write(reference.to_markdown(index=False, floatfmt=".4g") + "\n\n")
        out.write("Ratios > 1: adlib's code is that many times faster than the reference written the usual way. "
                  f"The coreset bank is {args.reference_coreset_images} images x 784 random 1024-d patches, a "
                  "moderate size so that the official-style loop runs in full within the time budget "
                  "(figures/bench_coreset.md extrapolates it on 200 images); the streaming floor is one bare "
                  "matrix-vector pass over the projected bank per pick. K-means: the same PCA-projected "
                  "features, K and Lloyd iterations on every side; the inertia ratio compares the clusterings. "
                  "LOF runs on a 14 x 14 grid of positions because the per-position scikit-learn loop is slow; "
                  "search banks: this benchmark's 10 % bank and the 10 % bank of 200 images.\n\n")
    out.write("## Repeat one run by hand\n\n")
    out.write("One category, every side, the same settings, no sweep and no reference loops:\n\n")
    out.write(f"```\n.venv/bin/python benchmarks/anomalib_vs_adlib.py --data {args.data} --categories "
              f"{args.categories[0]} --shots {args.shots} --backbone {args.backbone} --sizes --skip-reference "
              f"--anomalib-python {shown(args.anomalib_python)} --out /tmp/bench-pair.md\n```\n\n")
    out.write("or each side alone (each writes its timings and memory to the JSON file; the fit and predict "
              "medians are `fit.median_wall` and `predict.median_wall`):\n\n```\n")
    weights = shown(args.work / f"{args.backbone}-seed{args.seed}.pt")
    job = Job(args.data, args.categories[0], args.shots, args.fit_repeats, args.predict_repeats, Path("/tmp/pair"))
    for side in SIDES:
        command = worker_command(side, args, job, Path(weights))
        command[0] = ".venv/bin/python" if side == "adlib" else shown(args.anomalib_python)
        environment = " ".join(f"{k}={v}" for k, v in ENVIRONMENT[side].items())
        out.write((environment + " " if environment else "") + shlex.join(command) + "\n")
    out.write("```\n")
    return out.getvalue()


def coreset_floor(reference: pd.DataFrame | None) -> float | None:
    """adlib's greedy coreset time / the streaming floor's, from the reference rows (None without them)."""
    if reference is None:
        return None
    found = reference[reference["side"] == "adlib / streaming floor"]["value"]
    return float(found.iloc[0]) if len(found) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="embedded benchmark root")
    parser.add_argument("--categories", nargs="+", default=["pill", "brick", "screw"])
    parser.add_argument("--shots", type=int, default=80, help="training images per category (all 80 by default)")
    parser.add_argument("--sweep-data", type=Path, default=Path("build/bench/large"),
                        help="benchmark root of the scaling sweep's bench-only category (make bench generates it)")
    parser.add_argument("--sweep-category", default="pill")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 20, 40, 80, 160, 320],
                        help="training-set sizes of the sweep (none: no sweep)")
    parser.add_argument("--backbone", default="wide_resnet50_2", choices=["wide_resnet50_2", "resnet18", "resnet50"])
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the subset and the coresets")
    parser.add_argument("--ratio", type=float, default=0.1, help="coreset share")
    parser.add_argument("--neighbours", type=int, default=9, help="b of Eq. 7 (anomalib's num_neighbors)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads of both sides")
    parser.add_argument("--fit-repeats", type=int, default=1)
    parser.add_argument("--predict-repeats", type=int, default=2)
    parser.add_argument("--memory-cap-gib", type=float, default=16.0,
                        help="a worker whose process tree passes this resident memory is killed")
    parser.add_argument("--time-cap", type=float, default=240.0, help="a worker running longer (s) is killed")
    parser.add_argument("--reference-repeats", type=int, default=3)
    parser.add_argument("--reference-coreset-images", type=int, default=20,
                        help="bank of the coreset reference loop: images x 784 random 1024-d patches")
    parser.add_argument("--skip-reference", action="store_true", help="no reference loops")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 4 training images, sizes 4 and 8, one category, no reference loops")
    parser.add_argument("--anomalib-python", type=Path, default=Path("build/anomalib-venv/bin/python"))
    parser.add_argument("--work", type=Path, default=Path("build/bench"), help="weights, maps, worker results")
    parser.add_argument("--out", type=Path, default=Path("figures/bench.md"), help="Markdown report (+ .csv)")
    parser.add_argument("--plot", type=Path, default=None, help="scaling PNG (default: beside --out, *_scaling.png)")
    args = parser.parse_args()
    if args.quick:
        args.shots, args.sizes, args.categories, args.skip_reference = 4, [4, 8], args.categories[:1], True
        args.predict_repeats = 1
    args.plot = args.plot or args.out.with_name(args.out.stem + "_scaling.png")
    if not args.anomalib_python.is_file():
        raise SystemExit(f"--anomalib-python {args.anomalib_python} does not exist: run `make bench`, which "
                         "builds the anomalib virtualenv from benchmarks/anomalib-requirements.txt")
    if args.sizes and not (args.sweep_data / args.sweep_category).is_dir():
        raise SystemExit(f"--sweep-data {args.sweep_data} has no {args.sweep_category}/: generate it with `python -m "
                         f"adlib.synth --out {args.sweep_data} --categories {args.sweep_category} --n-train "
                         f"{max(args.sizes)} --n-test-good 4 --n-test-defect 8` (make bench does), or pass --sizes "
                         "with no value for no sweep")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    set_threads(args.threads)
    start = time.perf_counter()
    info = {"date": datetime.date.today().isoformat(), "cores": str(os.cpu_count()),
            "load average at start": f"{os.getloadavg()[0]:.2f}"} | machine()
    log(f"load average {info['load average at start']} for {info['cores']} cores")

    weights = make_weights(args.backbone, args.seed, args.work / f"{args.backbone}-seed{args.seed}.pt")
    log("extractor check")
    check = check_extractors(args, weights)
    runs, metrics, rows = {}, {}, []
    for index, category in enumerate(args.categories):
        log(f"full set {index + 1}/{len(args.categories)}: {category}")
        runs[category] = run_category(args, category, weights, index)
        ran = [side for side in SIDES if runs[category][side]["status"] == OK]
        masks, labels, truth = write_truth(args, category)
        theirs = anomalib_metric_values(args, category, truth, ran) if ran else {"raw": {}, "min-max": {}}
        info["anomalib"] = theirs.pop("version", info.get("anomalib", "?"))
        ours = {side: adlib_metric_values(masks, labels, args.work / f"{category}-{FILES[side]}.npz") for side in ran}
        metrics[category] = {"adlib": ours, "anomalib": theirs["raw"], "anomalib, min-max input": theirs["min-max"]}
        rows += category_rows(category, runs[category], metrics[category])
    versions = [runs[c][s]["versions"] for c in args.categories for s in ANOMALIB if runs[c][s]["status"] == OK]
    info["timm"] = versions[0]["timm"] if versions else "?"
    sweep = None
    if args.sizes:
        log(f"scaling sweep: sizes {args.sizes}")
        sweep = run_sweep(args, weights)
        plot(sweep, args.plot, args.memory_cap_gib * 1024, args.time_cap)
        rows += [row(f"scaling {args.sweep_category} {line['training images']}", line["side"], quantity, line[quantity],
                     unit, 1) for line in sweep.to_dict("records")
                 for quantity, unit in (("status", ""), ("fit s", "s"), ("coreset s", "s"),
                                        ("predict ms/img", "ms"), ("peak MiB", "MiB"))]
    reference = None
    if not args.skip_reference:
        log("reference loops")
        reference = pd.DataFrame(reference_rows(args))
        rows += reference.to_dict("records")
    info["load average at end"] = f"{os.getloadavg()[0]:.2f}"
    elapsed = time.perf_counter() - start
    info["wall time of the run"] = f"{elapsed / 60:.1f} min"

    text = report(args, info, check, runs, metrics, sweep, reference, elapsed)
    per_category = ratios(summary(runs, metrics))
    for _, line in per_category.iterrows():
        for quantity in per_category.columns[3:]:
            rows.append(row(f"patchcore {line['category']}", f"{line['against']} / adlib" if "AUROC" not in quantity
                            else "", quantity, line[quantity], "x" if "AUROC" not in quantity else "", 1))
    rows += [row("machine", "", key, value, "", 1) for key, value in info.items()]
    atomic_write_bytes(args.out.with_suffix(".csv"), pd.DataFrame(rows).to_csv(index=False).encode())
    atomic_write_bytes(args.out, text.encode())
    print(text)
    log(f"done in {elapsed / 60:.1f} min: {args.out}, {args.plot}")


def reference_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    from reference_loops import all_rows

    search_banks = [int(args.shots * 784 * args.ratio), int(200 * 784 * args.ratio)]
    return all_rows(args.backbone, args.reference_coreset_images, search_banks, args.reference_repeats)


if __name__ == "__main__":
    main()
