"""What the two PatchCore workers of `anomalib_vs_adlib.py` share: the command line of one run, the
data, the timing loop, the memory readings and the output files.

It imports only the standard library, numpy, torch and `adlib.data.datasets` / `adlib.files` (which need
nothing more), so it runs both in the project virtualenv (`adlib_worker.py`) and in the separate
anomalib one (`anomalib_worker.py`, which has no adlib installed and finds it on sys.path).
Each worker runs in its own process, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adlib.data.datasets import Preprocessing, Sample, load_category
from adlib.data.protocol import low_shot
from adlib.files import atomic_write_bytes

# Both sides get the same tensors: PatchCore's geometry (shorter side 256, centre crop 224) and ImageNet
# normalisation, read by adlib.data.datasets.read_batch. anomalib's own pre-processor for PatchCore is
# Resize(256) + CenterCrop(224) + the same normalisation.
PREPROCESSING = Preprocessing()


@dataclass(frozen=True)
class RunSettings:
    """One side's run: which data, which model settings, how often to time what, where to write."""

    data: Path
    category: str
    shots: int  # training images (a seeded subset), to keep the anomalib coreset affordable
    seed: int  # seeds the training subset and every random step of the coreset
    backbone: str
    weights: Path  # a torchvision state-dict file, loaded by both sides
    layers: tuple[str, ...]
    ratio: float  # coreset share
    neighbours: int  # b of Eq. 7
    batch: int  # images per backbone forward
    threads: int
    fit_repeats: int
    predict_repeats: int
    maps: Path  # .npz with the image scores and anomaly maps of the last predict
    result: Path  # .json with the timings and memory readings

    def __post_init__(self) -> None:
        for name in ("shots", "batch", "threads", "fit_repeats", "predict_repeats", "neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be at least 1")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"--ratio={self.ratio}: the coreset share must be in (0, 1]")
        if not self.weights.is_file():
            raise FileNotFoundError(f"--weights {self.weights} does not exist: run benchmarks/anomalib_vs_adlib.py")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of one side's run (both workers take the same ones)."""
    parser.add_argument("--data", type=Path, required=True, help="benchmark root (MVTec AD layout)")
    parser.add_argument("--category", required=True)
    parser.add_argument("--shots", type=int, required=True, help="training images (seeded subset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", required=True, help="torchvision / timm name, e.g. wide_resnet50_2")
    parser.add_argument("--weights", type=Path, required=True, help="state-dict file of the backbone")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3"])
    parser.add_argument("--ratio", type=float, default=0.1, help="coreset share")
    parser.add_argument("--neighbours", type=int, default=9, help="b of Eq. 7")
    parser.add_argument("--batch", type=int, default=8, help="images per backbone forward")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--fit-repeats", type=int, default=1)
    parser.add_argument("--predict-repeats", type=int, default=1)
    parser.add_argument("--maps", type=Path, required=True, help="output .npz (scores and maps)")
    parser.add_argument("--result", type=Path, required=True, help="output .json (timings, memory)")


def settings_from(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        data=args.data,
        category=args.category,
        shots=args.shots,
        seed=args.seed,
        backbone=args.backbone,
        weights=args.weights,
        layers=tuple(args.layers),
        ratio=args.ratio,
        neighbours=args.neighbours,
        batch=args.batch,
        threads=args.threads,
        fit_repeats=args.fit_repeats,
        predict_repeats=args.predict_repeats,
        maps=args.maps,
        result=args.result,
    )


def load_data(settings: RunSettings) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """(training subset, all test images) of the category; the same lists on both sides."""
    category = low_shot(load_category(settings.data, settings.category), settings.shots, seed=settings.seed)
    return category.train, category.test


def batches(samples: Sequence[Sample], size: int) -> list[Sequence[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def set_threads(threads: int) -> None:
    """The same thread count for torch's intra-op pool and, where faiss is present, its OpenMP pool."""
    torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(threads)


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process CPU seconds (all threads) of each repeat."""

    wall: list[float]
    cpu: list[float]

    def to_dict(self) -> dict[str, object]:
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "median_wall": statistics.median(self.wall),
            "median_cpu": statistics.median(self.cpu),
        }


def timed(step: Callable[[], object], repeats: int) -> Timing:
    """Runs `step` `repeats` times (no extra warm-up run: a fit can take minutes; warm the backbone first)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return Timing(wall, cpu)


def write_outputs(settings: RunSettings, image_scores: np.ndarray, maps: np.ndarray, result: dict[str, object]) -> None:
    """The scores and maps (.npz, float32) and the result record (.json), each written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.asarray(image_scores, dtype=np.float32), maps=np.asarray(maps, dtype=np.float32))
    atomic_write_bytes(settings.maps, buffer.getvalue())
    record = dict(
        result,
        python=platform.python_version(),
        torch=torch.__version__,
        pid=os.getpid(),
        threads=torch.get_num_threads(),
    )
    atomic_write_bytes(settings.result, json.dumps(record, indent=1).encode())
