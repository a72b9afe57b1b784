"""Exact search on real patch features: faiss's float32 `IndexFlatL2` against adlib's bfloat16 screen with float32
rescoring (`adlib.bank.search.ScreenedExact`), as ratios measured in one run.

PatchCore's greedy coreset of one category of the embedded benchmark at 1 %, 10 % and 25 % (the notebooks' bank
sizes), searched by the patches of `--test-images` test images; the two engines timed in alternating rounds
(median), their nearest neighbours compared, and the screen's rescored rows per query counted. The screen pays
where the CPU multiplies bfloat16 in AMX tiles (`bfloat16_products_are_fast`); elsewhere `NearestNeighbours`
keeps faiss, and this report says so. One thread, as each notebook kernel of `make reproduce` runs.

    python benchmarks/screened_search.py --data data/synthetic --out figures/bench_search.md
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from common import machine

from adlib.bank.search import FaissExact, ScreenedExact, bfloat16_products_are_fast
from adlib.data.datasets import load_category
from adlib.detectors.patchcore import PatchCore, patchcore_settings
from adlib.features.extractor import FeatureSettings
from adlib.files import atomic_write_bytes


def alternating_medians(runs: dict[str, object], rounds: int) -> dict[str, float]:
    """Median seconds of each callable, timed in `rounds` rounds that run every callable once, in turn."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():
        run()  # warm-up
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bank_rows(data_root: Path, category: str, ratio: float, queries: torch.Tensor, rounds: int) -> dict[str, object]:
    model = PatchCore(patchcore_settings(FeatureSettings(), coreset_ratio=ratio))
    model.fit(load_category(data_root, category).train, progress=False)
    faiss, screened = FaissExact(model.bank), ScreenedExact(model.bank)
    seconds = alternating_medians(
        {"faiss": lambda: faiss.search(queries, 1), "screen": lambda: screened.search(queries, 1)}, rounds
    )
    _, expected = faiss.search(queries, 1)
    _, found = screened.search(queries, 1)
    candidates, _ = screened._candidates(*screened._screened(queries[:4096]), 1)
    return {
        "coreset": f"{ratio:.0%}",
        "bank rows": len(model.bank),
        "faiss s": seconds["faiss"],
        "screen s": seconds["screen"],
        "faiss / screen": seconds["faiss"] / seconds["screen"],
        "same neighbour (%)": 100 * float((found == expected).float().mean()),
        "rows rescored per query": len(candidates) / min(4096, len(queries)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="embedded benchmark root")
    parser.add_argument("--category", default="pill")
    parser.add_argument("--test-images", type=int, default=30, help="test images whose patches are the queries")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (median)")
    parser.add_argument("--out", type=Path, default=Path("figures/bench_search.md"), help="Markdown report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    model = PatchCore(patchcore_settings(FeatureSettings(), coreset_ratio=0.01))
    test = load_category(args.data, args.category).test[: args.test_images]
    embedding = model.extractor.embed(test, progress=False)
    queries = embedding.features.reshape(-1, embedding.features.shape[-1]).float().contiguous()
    table = pd.DataFrame([bank_rows(args.data, args.category, r, queries, args.rounds) for r in (0.01, 0.1, 0.25)])
    atomic_write_bytes(args.out.with_suffix(".csv"), table.to_csv(index=False).encode())

    report = io.StringIO()
    report.write("# Exact search: faiss float32 against the bfloat16 screen\n\n")
    report.write("Made by `make bench` (`python benchmarks/screened_search.py`).\n\n")
    facts = machine() | {
        "AMX (bfloat16 products fast)": str(bfloat16_products_are_fast()),
        "load average before / after": f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
        "queries": f"{len(queries)} ({args.test_images} test images of {args.category})",
    }
    report.write(pd.Series(facts).to_frame("machine").to_markdown() + "\n\n")
    report.write(table.to_markdown(index=False, floatfmt=".3g") + "\n")
    atomic_write_bytes(args.out, report.getvalue().encode())
    print(report.getvalue())


if __name__ == "__main__":
    main()
