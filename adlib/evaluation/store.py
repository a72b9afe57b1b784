"""A store of evaluation results on disk, so that a grid computes each evaluation once.

An evaluation is one detector fitted on one training set and scored on one test set. Its key is the
sha256 of a canonical JSON of everything that decides its numbers: the data (`data_fingerprint`: the
training and test images involved, by path relative to the data root and by content digest, masks
included), the category, the settings (`settings.to_dict()` and their type), the protocol (noise
ratio, overlap, shots, test-image subset), the seed, the search backend and device type, the
contents of any backbone weights file, the torch and numpy versions, and the scoring code
(`scoring_digest`). Notebooks that share runs (the same method under the same protocol) and re-runs
read the stored entry instead of fitting again.

An entry keeps the per-image scores (image score, label, defect type, image path), the metrics
row and the pixel statistics (`adlib.evaluation.pixel_stats.PixelStats`: per-image histograms of the map scores,
about 0.4 MB for 60 images, from which the pixel metrics' bootstrap is computed); anomaly maps only when the store is made with `keep_maps=True` (float16, about half a float32
map's size: lossy, for figures, not for metrics). The timing metrics (`fit_seconds`,
`predict_seconds_per_image`) are those measured when the entry was computed: a stored result replays
its original timings, so whoever times things must run with `store=False`.

Layout: `<root>/<ab>/<key>.result`, one file per entry: a magic line, the sha256 of the payload, and
the payload (a `torch.save` of plain values and tensors). Writes are atomic (temporary file +
`os.replace`), so concurrent workers writing the same key leave one whole entry; an entry that cannot
be read, fails its checksum or holds another key is reported, deleted and recomputed.

Location: `ADLIB_STORE_DIR`, else `<feature cache dir>/results` (the run's `cache_dir`, else
`ADLIB_CACHE_DIR`, else `~/.cache/adlib`), so `make clean` (which removes `cache/`) clears it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adlib.evaluation.pixel_stats import PixelStats
from adlib.files import atomic_write_bytes, content_digest

FORMAT = 2  # 2: entries keep PixelStats; an entry of another format is a miss, recomputed
MAGIC = b"adlib-result\n"

# What decides a score, by folder of the package: the data and its protocols, the features, the memory
# bank, the detectors, and the evaluation code (metrics, pixel statistics, grids) but its two modules that
# only keep and schedule results. Evidence, the companion, the benchmark generator, the command line and
# the top-level helpers never change a number, so editing them keeps every stored result. A new module in
# a scoring folder is in by default: a needless recomputation costs time, a stale result a wrong number.
SCORING_FOLDERS = ("data", "features", "bank", "detectors", "evaluation")
NOT_SCORING_IN_EVALUATION = ("store.py", "executors.py")


def scoring_files(package: Path) -> list[Path]:
    """The `*.py` files of `package` whose code decides a score (`SCORING_FOLDERS`), sorted by path."""
    files = []
    for folder in SCORING_FOLDERS:
        for path in sorted((package / folder).rglob("*.py")):
            if folder == "evaluation" and path.name in NOT_SCORING_IN_EVALUATION:
                continue
            files.append(path)
    return files


def scoring_digest(package: Path | None = None) -> str:
    """A sha256 over the paths and sources of `scoring_files(package)` (default: this adlib).

    Any edit of a scoring module - a bug fix, a moved function, a docstring - changes it, and with it
    every result key.
    """
    folder = Path(package) if package is not None else Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in scoring_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def relative_path(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (the absolute path when it is not under `root`)."""
    path = Path(path)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()  # not under the root (hand-made samples): the absolute path


def data_fingerprint(train: Sequence, test: Sequence, root: Path) -> str:
    """A sha256 of the training and test samples: path relative to `root`, label, defect type, and the
    content digests of the image and its masks, and a transformed copy's transform and seed. Moving the
    data root keeps it; changing a file, or which files are in either set, changes it."""

    def entry(sample) -> list:
        fields = [
            relative_path(sample.image, root),
            int(sample.label),
            sample.defect,
            content_digest(sample.image),
            [content_digest(mask) for mask in sample.masks],
        ]
        transform = sample.transform
        return fields if transform is None else [*fields, transform.name, int(transform.seed)]

    text = json.dumps({"train": [entry(s) for s in train], "test": [entry(s) for s in test]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_json(request: Mapping[str, object]) -> str:
    """The request as JSON with sorted keys and no whitespace: equal requests give equal text."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class StoredResult:
    """One evaluation's metrics, per-image scores and pixel statistics (and maps when they were kept)."""

    metrics: dict[str, float]
    images: tuple[str, ...]  # paths relative to the data root
    labels: np.ndarray  # [N] int64, 0 good / 1 defective
    defects: tuple[str, ...]  # defect type per image ('good' for good ones)
    scores: np.ndarray  # [N] float32 image scores
    maps: np.ndarray | None = None  # [N, crop, crop] float16 anomaly maps, when kept
    pixel_stats: PixelStats | None = None  # histograms for the pixel metrics' bootstrap, images in this order

    def __post_init__(self) -> None:
        n = len(self.images)
        if not len(self.labels) == len(self.defects) == len(self.scores) == n:
            raise ValueError(f"a stored result needs one label, defect and score per image ({n} images)")
        if self.maps is not None and len(self.maps) != n:
            raise ValueError(f"a stored result needs one map per image ({len(self.maps)} maps for {n} images)")
        if self.pixel_stats is not None and self.pixel_stats.images != tuple(self.images):
            raise ValueError("a stored result's pixel statistics must name its images, in the same order")


def default_store_root(cache_dir: Path | None = None) -> Path:
    """`$ADLIB_STORE_DIR`, else `<cache_dir>/results` (cache_dir: the given one, else `$ADLIB_CACHE_DIR`,
    else `~/.cache/adlib`)."""
    env = os.environ.get("ADLIB_STORE_DIR")
    if env:
        return Path(env)
    if cache_dir is None:
        cache = os.environ.get("ADLIB_CACHE_DIR")
        cache_dir = Path(cache) if cache else Path.home() / ".cache" / "adlib"
    return Path(cache_dir) / "results"


class ResultStore:
    """Evaluation results on disk, by content-addressed key. Picklable: workers open the same folder.

    `keep_maps`: also keep anomaly maps (float16); an entry without maps then counts as a miss, and
    is recomputed with them. `scoring_version`: the scoring code's digest (default `scoring_digest()`).
    """

    def __init__(self, root: Path | None = None, keep_maps: bool = False, scoring_version: str | None = None):
        self.root = Path(root) if root is not None else default_store_root()
        self.keep_maps = keep_maps
        self._given_version = scoring_version
        self._computed_version: str | None = None

    @property
    def scoring_version(self) -> str:
        """The given version, else the digest of the scoring code that this process runs (computed on
        first use and never pickled, so that each worker keys by its own code)."""
        if self._given_version is not None:
            return self._given_version
        if self._computed_version is None:
            self._computed_version = scoring_digest()
        return self._computed_version

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_computed_version": None}

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r}, keep_maps={self.keep_maps})"

    def key(self, request: Mapping[str, object]) -> str:
        """The sha256 of the request (what decides the result), with the format and scoring version."""
        full = {"format": FORMAT, "scoring": self.scoring_version, "request": dict(request)}
        return hashlib.sha256(canonical_json(full).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.result"

    def get(self, key: str) -> StoredResult | None:
        """The stored result, or None on a miss (no entry; no maps when maps are kept; a broken entry,
        which is reported and deleted so that it is recomputed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            result = self._read(path, key)
        except Exception as error:  # any unreadable entry is rebuilt, never trusted
            warnings.warn(f"result store entry {path} is broken ({error}); recomputing it", stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        if self.keep_maps and result.maps is None:
            return None
        return result

    def put(self, key: str, request: Mapping[str, object], result: StoredResult) -> None:
        """Writes the entry atomically (maps only when this store keeps them)."""
        maps = result.maps if self.keep_maps else None
        payload = {
            "format": FORMAT,
            "key": key,
            "request": canonical_json(request),
            "metrics": json.dumps(result.metrics, allow_nan=True),
            "images": list(result.images),
            "defects": list(result.defects),
            "labels": torch.from_numpy(np.asarray(result.labels, dtype=np.int64)),
            "scores": torch.from_numpy(np.asarray(result.scores, dtype=np.float32)),
            "maps": None if maps is None else torch.from_numpy(np.asarray(maps, dtype=np.float16)),
            "pixel_stats": None
            if result.pixel_stats is None
            else {
                name: torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
                for name, value in result.pixel_stats.to_dict().items()
            },
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(self.path(key), MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)

    @staticmethod
    def _read(path: Path, key: str) -> StoredResult:
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError("not a result entry")
        checksum, _, payload = data[len(MAGIC) :].partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != checksum:
            raise ValueError("checksum mismatch (a partial or corrupt file)")
        entry = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        if entry["format"] != FORMAT or entry["key"] != key:
            raise ValueError("entry belongs to another key or format")
        maps = entry["maps"]
        return StoredResult(
            metrics=json.loads(entry["metrics"]),
            images=tuple(entry["images"]),
            labels=entry["labels"].numpy(),
            defects=tuple(entry["defects"]),
            scores=entry["scores"].numpy(),
            maps=None if maps is None else maps.numpy(),
            pixel_stats=None if entry["pixel_stats"] is None else PixelStats.from_dict(entry["pixel_stats"]),
        )
