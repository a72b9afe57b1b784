"""The experimental protocols on a loaded category: low-shot draws, SoftPatch's noisy training sets, and
seeded test subsets. Each is a pure function of (category, setting, seed): the same seed always gives
the same images, and what was moved or kept is recorded. `Protocol` is the settings together, as
one value an evaluation carries and applies in one fixed order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from adlib.data.datasets import Category, Sample
from adlib.data.transforms import NoiseTransform, check_noise_transform


@dataclass(frozen=True)
class NoiseRecord:
    """Which anomalous test images `add_training_noise` moved into the training set, and how."""

    ratio: float
    overlap: bool
    seed: int
    moved: tuple[Path, ...]
    transform: str | None = None


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: use a non-negative integer")


def low_shot(category: Category, shots: int, seed: int | None = None) -> Category:
    """Keep `shots` training images: the first ones (sorted) if seed is None, else a seeded random subset.

    The subset keeps the training set's order; the test set is unchanged.
    """
    available = len(category.train)
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or not 1 <= shots <= available:
        raise ValueError(
            f"shots={shots!r} for category {category.name!r}: use an integer from 1 to {available} "
            f"(the number of training images)"
        )
    if seed is None:
        return replace(category, train=category.train[:shots])
    _check_seed(seed)
    chosen = np.sort(np.random.default_rng(seed).choice(available, size=int(shots), replace=False))
    return replace(category, train=tuple(category.train[i] for i in chosen))


def _anomalous_test(category: Category) -> list[Sample]:
    """The anomalous test samples in sorted path order, the pool the noise is drawn from."""
    return sorted((s for s in category.test if s.label == 1), key=lambda s: str(s.image))


def _noise_limit(category: Category, overlap: bool) -> int:
    """How many anomalous test images may move: all of them with overlap, all but one without."""
    pool = len(_anomalous_test(category))
    return pool if overlap else max(pool - 1, 0)


def check_noise_ratio(ratio: object, name: str = "ratio") -> None:
    """Refuses a noise ratio that is not a finite number in [0, 1), naming it as `name`."""
    number = isinstance(ratio, (int, float, np.integer, np.floating)) and not isinstance(ratio, bool)
    if not number or not math.isfinite(ratio) or not 0.0 <= ratio < 1.0:
        raise ValueError(
            f"{name}={ratio!r}: the noise ratio must be in [0, 1), a finite number (SoftPatch uses 0 to 0.15)"
        )


def max_noise_ratio(category: Category, overlap: bool) -> float:
    """The largest noise ratio this category can give: limit / len(train), where limit is the number of
    anomalous test images (minus one without overlap, so that one stays in the test set).

    add_training_noise accepts every ratio up to this one (and below 1). Experiments use it to skip the
    ratios a category cannot give instead of crashing.
    """
    return _noise_limit(category, overlap) / len(category.train)


def add_training_noise(
    category: Category, ratio: float, overlap: bool, seed: int, transform: str | None = None
) -> tuple[Category, NoiseRecord]:
    """SoftPatch's noisy training set: move int(ratio * len(train)) anomalous test images into train.

    They are drawn with numpy.random.default_rng(seed) from the anomalous test images in sorted path
    order, so the same settings always move the same images. Moved samples keep label 1 and their masks
    and are appended to train (sorted by path). overlap=False removes them from the test set;
    overlap=True leaves them there as well. The category must not already hold noise.

    `transform` (overlap only; SP Table 10): the training copies become transformed copies
    (`adlib.data.transforms`, one of TRANSFORMS), each with its own seed drawn with
    numpy.random.default_rng([seed, 2]) in the moved order; the test images stay as they are.
    """
    check_noise_ratio(ratio)
    _check_seed(seed)
    check_noise_transform(transform, "transform")
    if transform is not None and not overlap:
        raise ValueError(
            f"transform={transform!r} changes the training copies of overlapping test images: use it with "
            "overlap=True (without overlap the moved images are not in the test set)"
        )
    if any(s.label == 1 for s in category.train):
        raise ValueError(
            f"category {category.name!r} already has anomalous training images: add noise to the clean category"
        )
    pool = _anomalous_test(category)
    count = int(ratio * len(category.train))
    limit = _noise_limit(category, overlap)
    if count > limit:
        keep = " and one must stay in the test set (overlap=False)" if not overlap else ""
        largest = math.floor(max_noise_ratio(category, overlap) * 1e4 + 1e-9) / 1e4
        raise ValueError(
            f"ratio={ratio} needs int({ratio} * {len(category.train)} training images) = {count} anomalous "
            f"images for category {category.name!r}, but its test set has {len(pool)}{keep}; the largest ratio "
            f"that works is {largest} ({limit} images)"
        )
    drawn = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    moved = sorted((pool[i] for i in drawn), key=lambda s: str(s.image))
    moved_set = set(moved)
    test = category.test if overlap else tuple(s for s in category.test if s not in moved_set)
    copies = moved
    if transform is not None:
        seeds = np.random.default_rng([int(seed), 2]).integers(0, 2**31 - 1, size=len(moved))
        copies = [replace(s, transform=NoiseTransform(transform, int(k))) for s, k in zip(moved, seeds)]
    noisy = replace(category, train=category.train + tuple(copies), test=test)
    moved_paths = tuple(s.image for s in moved)
    record = NoiseRecord(ratio=float(ratio), overlap=overlap, seed=int(seed), moved=moved_paths, transform=transform)
    return noisy, record


def subsample_test(category: Category, count: int, seed: int) -> Category:
    """Keep a seeded random subset of `count` test images, stratified: good and defective images keep
    their shares (rounded; each class keeps at least one image when `count` >= 2 and it has one).

    Drawn with numpy.random.default_rng([seed, 1]) (a stream apart from `low_shot`'s and the noise's),
    per class from the test set's order, which the subset keeps; the training set is unchanged.
    """
    available = len(category.test)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= available:
        raise ValueError(
            f"test_images={count!r} for category {category.name!r}: use an integer from 1 to {available} "
            f"(the number of test images)"
        )
    _check_seed(seed)
    good = [i for i, sample in enumerate(category.test) if sample.label == 0]
    defective = [i for i, sample in enumerate(category.test) if sample.label == 1]
    n_defective = int(round(count * len(defective) / available))
    if count >= 2 and good and defective:
        n_defective = min(max(n_defective, 1), count - 1)
    n_defective = min(max(n_defective, count - len(good)), len(defective))
    rng = np.random.default_rng([int(seed), 1])
    chosen = [
        *rng.choice(defective, size=n_defective, replace=False),
        *rng.choice(good, size=count - n_defective, replace=False),
    ]
    return replace(category, test=tuple(category.test[i] for i in sorted(int(i) for i in chosen)))


@dataclass(frozen=True)
class Protocol:
    """How one evaluation's training and test sets are drawn from a clean category, seeded per seed.

    `noise_ratio` > 0 moves int(ratio * |train|) anomalous test images into the training set
    (`add_training_noise`; they stay in the test set too when `noise_overlap`); `shots` then keeps a
    seeded subset of that many training images (`low_shot`; noisy images may be drawn); `test_images`
    keeps a seeded, stratified subset of the test set (`subsample_test`). None keeps everything.
    `noise_transform` (with overlap; SP Table 10) makes the training copies of the overlapping images
    transformed copies (`adlib.data.transforms`); None keeps them as they are.
    """

    noise_ratio: float = 0.0
    noise_overlap: bool = False
    shots: int | None = None
    test_images: int | None = None
    noise_transform: str | None = None

    def __post_init__(self) -> None:
        check_noise_ratio(self.noise_ratio, "noise_ratio")
        if self.noise_overlap and self.noise_ratio == 0:
            raise ValueError("noise_overlap=True only acts with noise_ratio > 0: set a noise ratio or drop the overlap")
        check_noise_transform(self.noise_transform)
        if self.noise_transform is not None and not self.noise_overlap:
            raise ValueError(
                f"noise_transform={self.noise_transform!r} transforms the training copies of overlapping test "
                "images: it needs noise_ratio > 0 and noise_overlap=True"
            )
        for name in ("shots", "test_images"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name}={value!r}: use a positive integer, or None to keep every image")

    def apply(self, clean: Category, seed: int) -> tuple[Category, dict[str, object]]:
        """The category with this protocol applied for `seed`, and the protocol columns of its result rows.

        The order is fixed: noise, then the low-shot draw, then the test subset, so every method of a
        (category, seed) sees the same images.
        """
        category, moved = clean, 0
        if self.noise_ratio > 0:
            category, record = add_training_noise(
                clean, self.noise_ratio, self.noise_overlap, seed, self.noise_transform
            )
            moved = len(record.moved)
        if self.shots is not None:
            category = low_shot(category, self.shots, seed)
        if self.test_images is not None:
            category = subsample_test(category, self.test_images, seed)
        columns: dict[str, object] = {
            "noise_ratio": self.noise_ratio,
            "noise_overlap": self.noise_overlap,
            "noise_moved": moved,
            "shots": len(category.train),
        }
        if self.test_images is not None:
            columns["test_images"] = len(category.test)
        if self.noise_transform is not None:
            columns["noise_transform"] = self.noise_transform
        return category, columns

    def to_dict(self) -> dict[str, object]:
        """The settings as JSON values (what a result-store key records); `noise_transform` only when set,
        so the keys of untransformed protocols stay as they were."""
        values: dict[str, object] = {
            "noise_ratio": self.noise_ratio,
            "noise_overlap": self.noise_overlap,
            "shots": self.shots,
            "test_images": self.test_images,
        }
        if self.noise_transform is not None:
            values["noise_transform"] = self.noise_transform
        return values


def protocols(
    noise_ratio: float = 0.0,
    noise_overlap: bool = False,
    shots: int | Sequence[int] | None = None,
    test_images: int | None = None,
    noise_transform: str | None = None,
) -> list[Protocol]:
    """One `Protocol` per training-set size in `shots` (a single size or None gives one)."""
    sizes = [shots] if shots is None or isinstance(shots, (int, np.integer)) else list(shots)
    return [Protocol(noise_ratio, noise_overlap, size, test_images, noise_transform) for size in sizes]
