"""Coreset and search costs, as ratios measured in one run:

- approximate greedy coreset of a 157k x 1024 bank (200 images x 784 patches) to 10 %: adlib's loop vs
  one bare streaming pass over the projected bank per pick (the memory-bandwidth floor) vs a loop written
  the way the official code is (per pick a fresh [N, 128] difference, a norm, a cat and a min; timed
  for `--reference-picks` picks and extrapolated per pick, since the whole run takes ~20 minutes);
- exact nearest-neighbour search per test image (784 queries x 1024), faiss vs torch, for the bank
  sizes of PatchCore-10 % and -1 % on that bank.

    python benchmarks/coreset_search.py --out figures/bench_coreset.md
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pandas as pd
import torch

from adlib.files import atomic_write_bytes
from adlib.reference import official_greedy_coreset
from adlib.sampling import ApproximateGreedyCoreset, coreset_size
from adlib.search import NearestNeighbours, faiss_available
from common import machine, median_seconds

PATCHES_PER_IMAGE = 784


def coreset_rows(bank: torch.Tensor, ratio: float, reference_picks: int) -> list[dict[str, object]]:
    picks = coreset_size(len(bank), ratio)
    start = time.perf_counter()
    ApproximateGreedyCoreset().select(bank, picks, seed=0)
    adlib_seconds = time.perf_counter() - start

    projected = torch.randn(130, len(bank), generator=torch.Generator().manual_seed(1))  # [k + 2, N] as adlib
    query, out = torch.randn(1, 130), torch.empty(1, len(bank))
    pass_seconds = median_seconds(lambda: [torch.mm(query, projected, out=out) for _ in range(200)], 3) / 200

    start = time.perf_counter()
    official_greedy_coreset(bank, reference_picks, seed=0)
    reference_per_pick = (time.perf_counter() - start) / reference_picks
    gigabytes = 128 * len(bank) * 4 / 1e9
    return [
        {"loop": "adlib (transposed, streamed)", "picks": picks, "seconds": adlib_seconds,
         "ms per pick": adlib_seconds / picks * 1e3, "GB/s": gigabytes * picks / adlib_seconds},
        {"loop": "one bare pass per pick (floor)", "picks": picks, "seconds": pass_seconds * picks,
         "ms per pick": pass_seconds * 1e3, "GB/s": gigabytes / pass_seconds},
        {"loop": f"official-style reference (extrapolated from {reference_picks} picks)", "picks": picks,
         "seconds": reference_per_pick * picks, "ms per pick": reference_per_pick * 1e3,
         "GB/s": gigabytes / reference_per_pick},
    ]


def search_rows(bank: torch.Tensor, ratios: list[float], repeats: int) -> list[dict[str, object]]:
    queries = torch.randn(PATCHES_PER_IMAGE, bank.shape[1], generator=torch.Generator().manual_seed(2))
    backends = ["torch"] + (["faiss"] if faiss_available() else [])
    rows = []
    for ratio in ratios:
        memory = bank[: coreset_size(len(bank), ratio)].contiguous()
        for backend in backends:
            index = NearestNeighbours(memory, backend=backend)
            seconds = median_seconds(lambda: index.search(queries, 1), repeats)
            rows.append({"bank": len(memory), "backend": backend, "ms per image": seconds * 1e3})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures/bench_coreset.md"), help="Markdown report")
    parser.add_argument("--images", type=int, default=200, help="training images in the bank (x 784 patches)")
    parser.add_argument("--reference-picks", type=int, default=300, help="picks timed for the reference loop")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of a search (median)")
    args = parser.parse_args()

    bank = torch.randn(args.images * PATCHES_PER_IMAGE, 1024, generator=torch.Generator().manual_seed(0))
    coreset = pd.DataFrame(coreset_rows(bank, 0.1, args.reference_picks))
    search = pd.DataFrame(search_rows(bank, [0.1, 0.01], args.repeats))
    atomic_write_bytes(args.out.with_suffix(".csv"), pd.concat(
        [coreset.assign(part="coreset"), search.assign(part="search")]).to_csv(index=False).encode())

    seconds = coreset.set_index("loop")["seconds"]
    adlib, floor, reference = seconds.iloc[0], seconds.iloc[1], seconds.iloc[2]
    report = io.StringIO()
    report.write("# Coreset and search costs\n\nMade by `make bench` (`python benchmarks/coreset_search.py`).\n\n")
    report.write(pd.Series(machine()).to_frame("machine").to_markdown() + "\n\n")
    report.write(f"## Approximate greedy coreset, {len(bank)} x 1024 -> 10 %, projected to 128 dims\n\n")
    report.write(coreset.to_markdown(index=False, floatfmt=".3g") + "\n\n")
    report.write(
        f"Targets: at least 8x faster than the official-style loop: {reference / adlib:.1f}x "
        f"({'met' if reference / adlib >= 8 else 'NOT met'}); within 1.3x of one streaming pass per pick: "
        f"{adlib / floor:.2f}x ({'met' if adlib / floor <= 1.3 else 'NOT met'}).\n\n"
    )
    report.write("## Exact nearest-neighbour search, one test image (784 x 1024 queries)\n\n")
    report.write(search.to_markdown(index=False, floatfmt=".3g") + "\n")
    atomic_write_bytes(args.out, report.getvalue().encode())
    print(report.getvalue())


if __name__ == "__main__":
    main()
