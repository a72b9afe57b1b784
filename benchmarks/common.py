"""Timing helpers and the machine description shared by the benchmark scripts."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocator, thread pool, lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    try:
        import faiss

        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = "not installed"
    return {
        "cpu": cpu,
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "faiss": faiss_version,
        "python": platform.python_version(),
    }
