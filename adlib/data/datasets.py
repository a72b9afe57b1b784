"""MVTec-format data sets and the PatchCore preprocessing: listing, loading, image and mask reading.

Three folder layouts are read (auto-detected per category, or forced with ``layout=``):

- ``mvtec`` (MVTec AD and any folder in its layout)::

      <cat>/train/good/*.png
      <cat>/test/<type>/*.png                      # type 'good' = normal
      <cat>/ground_truth/<type>/<stem>_mask.png    # any image extension

- ``loco`` (MVTec LOCO AD): like ``mvtec`` but each anomalous test image has a folder of masks,
  ``ground_truth/<type>/<stem>/*.png``, whose union is its mask (auto-detected by these folders).
  LOCO's ``validation/good`` folder is ignored (it is neither training nor test data).
- ``btad`` (BTAD): ``train/ok``, ``test/ok``, ``test/ko``, ``ground_truth/ko/<stem>.<ext>``; 'ok' is
  read as label 0 / defect 'good', 'ko' as label 1 / defect 'ko'. Masks match images by stem, whatever
  the extension.

Image files are ``.png .jpg .jpeg .bmp .tif .tiff`` (any case); hidden files (``._000.png`` from macOS
archives) and other files are skipped; files are sorted by name so every listing is deterministic.

Only torch, numpy and PIL are imported: the geometry is PIL's own resize and crop, which is what
torchvision's ``Resize``/``CenterCrop`` (used by the official PatchCore code) call on PIL images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from adlib.data.transforms import NoiseTransform, apply_to_image, apply_to_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUTS = ("mvtec", "loco", "btad")

# Sub-folders each layout expects, for error messages.
_EXPECTED = {
    "mvtec": "train/good/*.png, test/<type>/*.png ('good' = normal), ground_truth/<type>/<stem>_mask.png",
    "loco": "train/good/*.png, test/<type>/<idx>.png, ground_truth/<type>/<idx>/*.png (mask union)",
    "btad": "train/ok/*, test/ok/*, test/ko/*, ground_truth/ko/<stem>.png|.bmp",
}
_NORMAL_FOLDER = {"mvtec": "good", "loco": "good", "btad": "ok"}

T = TypeVar("T")


class DataError(ValueError):
    """A data set on disk that cannot be used as it is (empty, corrupt, inconsistent)."""


# --------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to `resize` (bilinear, antialias like PIL), centre-crop `crop`, normalise.

    The defaults are PatchCore's official geometry (256 -> 224, ImageNet mean/std).
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Preprocessing.{name}={value!r}: use a positive integer number of pixels")
        if self.crop > self.resize:
            raise ValueError(
                f"Preprocessing.crop={self.crop} is larger than Preprocessing.resize={self.resize}: the centre "
                f"crop must fit inside the resized image; use crop <= resize (PatchCore: resize=256, crop=224)"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ValueError(f"Preprocessing.{name}={value!r}: give three finite numbers, one per RGB channel")
        if min(self.std) <= 0:
            raise ValueError(f"Preprocessing.std={self.std!r}: every channel's std must be > 0 (it divides)")


@dataclass(frozen=True)
class Sample:
    """One image: its absolute path, its mask files, label (0 good, 1 anomalous) and defect type.

    `transform`: None for the file as it is; else the image is a transformed copy of the file, made in memory
    when it is read (`adlib.data.transforms`; SP Table 10's transformed overlap)."""

    image: Path
    masks: tuple[Path, ...]
    label: int
    defect: str
    transform: NoiseTransform | None = None


@dataclass(frozen=True)
class Category:
    """One category of a data set: its folder, layout, and training and test samples (sorted)."""

    name: str
    root: Path
    layout: str
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]


# --------------------------------------------------------------------------------------------------
# Listing


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; [] when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders of `folder`, sorted by name; [] when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _check_root(root: Path | str) -> Path:
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data root {path} does not exist or is not a folder: pass the folder that holds the category "
            f"folders (e.g. the MVTec AD folder with bottle/, cable/, ...)"
        )
    return path


def list_categories(root: Path | str) -> list[str]:
    """Names of the category folders under `root` (those with a `train` or `test` folder), sorted."""
    path = _check_root(root)
    return [p.name for p in _subfolders(path) if (p / "train").is_dir() or (p / "test").is_dir()]


def require_categories(root: Path | str) -> list[str]:
    """`list_categories(root)`, or a DataError that says what the root holds when it has no category folder."""
    categories = list_categories(root)
    if categories:
        return categories
    path = _check_root(root)
    found = ", ".join(p.name for p in sorted(path.iterdir()) if not p.name.startswith(".")) or "nothing"
    hint = (
        f"; {path} itself looks like a category folder: pass its parent"
        if (path / "train").is_dir() or (path / "test").is_dir()
        else ""
    )
    raise DataError(
        f"no category folder under {path} (found: {found}): a data root holds one folder per category, each with "
        f"train/ and test/ in the MVTec layout (e.g. bottle/train/good){hint}. To download MVTec AD: python -m adlib "
        "fetch mvtec_ad --to DIR"
    )


# --------------------------------------------------------------------------------------------------
# Loading a category


def _detect_layout(folder: Path) -> str:
    """Guess the layout from the sub-folders: BTAD's 'ok'/'ko', LOCO's per-image mask folders, else MVTec."""
    if any((folder / sub).is_dir() for sub in ("train/ok", "test/ok", "test/ko")):
        return "btad"
    if any(_subfolders(t) for t in _subfolders(folder / "ground_truth")):
        return "loco"
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return "mvtec"
    expected = "; ".join(f"{name}: {subs}" for name, subs in _EXPECTED.items())
    found = ", ".join(p.name for p in _subfolders(folder)) or "nothing"
    raise DataError(
        f"{folder} is not a category folder in a known layout (found: {found}). Expected sub-folders, "
        f"by layout - {expected}"
    )


def _category_folder(root: Path, category: str, layout: str) -> Path:
    folder = root / category
    if folder.is_dir():
        return folder
    existing = list_categories(root)
    hint = f"categories under {root}: {', '.join(existing)}" if existing else f"no category folders under {root}"
    if (root / "train").is_dir() or (root / "test").is_dir():
        hint += f"; {root} itself looks like a category folder: pass its parent as root"
    raise FileNotFoundError(
        f"category {category!r} not found: expected the folder {folder} (with {_EXPECTED[layout]}); {hint}"
    )


def _train_samples(folder: Path, layout: str) -> tuple[Sample, ...]:
    train = folder / "train" / _NORMAL_FOLDER[layout]
    if not train.is_dir():
        found = ", ".join(f"train/{p.name}" for p in _subfolders(folder / "train")) or "no train sub-folders"
        raise FileNotFoundError(
            f"no training folder {train} (layout {layout!r}, found {found}); the layout expects "
            f"{_EXPECTED[layout]}. Fix the folder; from Python, load_category(..., layout=...) forces another "
            "layout (the command line detects the layout of each category)."
        )
    images = _images(train)
    if not images:
        raise DataError(f"the training folder {train} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return tuple(Sample(image=p, masks=(), label=0, defect="good") for p in images)


def _mask_index(folder: Path, suffix: str) -> dict[str, list[Path]]:
    """Mask files in `folder` by the image stem they belong to: files named `<stem><suffix>.<ext>`."""
    index: dict[str, list[Path]] = {}
    for path in _images(folder):
        if path.stem.endswith(suffix):
            index.setdefault(path.stem[: len(path.stem) - len(suffix)], []).append(path)
    return index


def _masks_by_stem(image: Path, index: dict[str, list[Path]], expected: Path) -> tuple[Path, ...]:
    """MVTec / BTAD: exactly one mask file per anomalous image, matched by stem."""
    masks = index.get(image.stem, [])
    if not masks:
        raise FileNotFoundError(f"no mask for the anomalous test image {image}: expected {expected}")
    if len(masks) > 1:
        raise DataError(f"several masks for the test image {image}: {', '.join(map(str, masks))}; keep exactly one")
    return (masks[0],)


def _masks_loco(image: Path, gt_type: Path) -> tuple[Path, ...]:
    """MVTec LOCO: every image file in ground_truth/<type>/<stem>/ (their union is the mask)."""
    masks = tuple(_images(gt_type / image.stem))
    if not masks:
        raise FileNotFoundError(
            f"no mask for the anomalous test image {image}: expected a folder {gt_type / image.stem} "
            f"holding one or more mask images (their union is the mask)"
        )
    return masks


def _mask_finder(layout: str, gt_type: Path) -> Callable[[Path], tuple[Path, ...]]:
    """A function from an anomalous test image to its mask files, for one defect type's ground truth."""
    if layout == "loco":
        return lambda image: _masks_loco(image, gt_type)
    suffix = "_mask" if layout == "mvtec" else ""
    index = _mask_index(gt_type, suffix)
    return lambda image: _masks_by_stem(image, index, gt_type / f"{image.stem}{suffix}.png")


def _test_samples(folder: Path, layout: str) -> tuple[Sample, ...]:
    test = folder / "test"
    types = _subfolders(test)
    if not types:
        raise FileNotFoundError(f"no test folders in {test} (layout {layout!r} expects {_EXPECTED[layout]})")
    samples: list[Sample] = []
    for type_dir in types:
        if type_dir.name == _NORMAL_FOLDER[layout]:
            samples += [Sample(image=p, masks=(), label=0, defect="good") for p in _images(type_dir)]
            continue
        masks_of = _mask_finder(layout, folder / "ground_truth" / type_dir.name)
        samples += [Sample(image=p, masks=masks_of(p), label=1, defect=type_dir.name) for p in _images(type_dir)]
    if not samples:
        raise DataError(f"the test folders under {test} hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    return tuple(samples)


def load_category(root: Path | str, category: str, layout: str = "auto") -> Category:
    """List one category's training and test samples, with masks paired to anomalous test images.

    Checks the folder structure and that every anomalous test image has its mask file(s); image contents
    are read (and checked) later, by `read_image` / `read_mask`.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: use 'auto' or one of {', '.join(LAYOUTS)}")
    folder = _category_folder(_check_root(root), category, "mvtec" if layout == "auto" else layout)
    layout = _detect_layout(folder) if layout == "auto" else layout
    return Category(
        name=category,
        root=folder,
        layout=layout,
        train=_train_samples(folder, layout),
        test=_test_samples(folder, layout),
    )


# --------------------------------------------------------------------------------------------------
# Reading images and masks


def _decode(path: Path, what: str, convert: Callable[[Image.Image], T]) -> T:
    """Open, decode and convert an image file, naming it in the error when it is missing or unreadable.

    The conversion runs while the file is open, so no file handle outlives the call.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return convert(image)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise _unreadable(path, what, error) from error


def _unreadable(path: Path, what: str, error: Exception) -> DataError:
    """The one-line error for an image file PIL cannot or will not decode."""
    if isinstance(error, Image.DecompressionBombError):
        return DataError(
            f"the {what} {path} claims more pixels than PIL decodes safely ({error}); it is corrupt or not a "
            f"real image: replace it (for a real image that large, raise PIL.Image.MAX_IMAGE_PIXELS)"
        )
    return DataError(
        f"cannot read the {what} {path} ({error}); the file is corrupt or not an image: re-create or re-download it"
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: grayscale is replicated, 16-bit integer images are scaled by 1/257, alpha is dropped.

    Dropping alpha keeps the colour values under transparent pixels as they are (no compositing);
    MVTec-style data sets carry no meaningful transparency.
    """
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        values = np.asarray(image).astype(np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif image.mode == "P":
        image = image.convert("RGBA")  # palette transparency -> alpha, then dropped below
    return image.convert("RGB")


def _resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """Size with the shorter side at `short`, as torchvision's Resize(int) computes it (long side floored)."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def _geometry(image: Image.Image, prep: Preprocessing, resample: Image.Resampling) -> Image.Image:
    """Resize the shorter side to prep.resize, then centre-crop prep.crop (torchvision's rounding)."""
    image = image.resize(_resized_size(*image.size, prep.resize), resample)
    width, height = image.size
    top = int(round((height - prep.crop) / 2.0))
    left = int(round((width - prep.crop) / 2.0))
    return image.crop((left, top, left + prep.crop, top + prep.crop))


def read_image(path: Path, prep: Preprocessing, transform: NoiseTransform | None = None) -> torch.Tensor:
    """Read an image as a normalised float32 tensor [3, crop, crop] (any mode is converted to RGB first);
    `transform` makes the transformed copy first, at the file's own resolution."""
    image = _decode(Path(path), "image", _to_rgb)
    if transform is not None:
        image = Image.fromarray(apply_to_image(np.asarray(image), transform))
    image = _geometry(image, prep, Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(3, 1, 1)
    return ((pixels - mean) / std).contiguous()


def read_batch(samples: Sequence[Sample], prep: Preprocessing) -> torch.Tensor:
    """Read the samples' images as one float32 batch [B, 3, crop, crop], in the given order."""
    if not samples:
        raise ValueError("read_batch got no samples: pass at least one Sample")
    return torch.stack([read_image(sample.image, prep, sample.transform) for sample in samples])


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise _unreadable(path, "image", error) from error


def _binary(mask: Image.Image) -> np.ndarray:
    """A mask image as a bool array [H, W]: any non-zero value (in any colour channel, alpha ignored)."""
    if mask.mode in ("1", "L", "I", "F") or mask.mode.startswith("I;16"):
        return np.asarray(mask) > 0
    return np.asarray(mask.convert("RGB")).any(axis=2)


def read_mask(sample: Sample, prep: Preprocessing) -> torch.Tensor:
    """The sample's ground-truth mask as bool [crop, crop]: all False for good images.

    Several mask files (MVTec LOCO) are united. Each mask must have its image's size. The mask gets the
    image's geometry with NEAREST interpolation and is binarised as `> 0`, so a pixel is anomalous when
    its nearest source pixel is (a transformed copy's mask is warped like its image first). The official
    PatchCore code instead resizes masks bilinearly and casts
    with `astype(int)`, which keeps only pixels fully covered by the defect: its masks are slightly
    thinner at defect borders (and a one-pixel-wide defect can vanish).
    """
    if not sample.masks:
        if sample.label == 1:
            raise DataError(f"the anomalous sample {sample.image} has no mask files; give it its mask(s)")
        return torch.zeros(prep.crop, prep.crop, dtype=torch.bool)
    width, height = _image_size(sample.image)
    union = np.zeros((height, width), dtype=bool)
    for path in sample.masks:
        pixels = _decode(path, "mask", _binary)
        if pixels.shape != union.shape:
            raise DataError(
                f"the mask {path} is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but its image {sample.image} is "
                f"{width}x{height}: masks must have their image's size; re-create the mask"
            )
        union |= pixels
    if sample.transform is not None:
        union = apply_to_mask(union, sample.transform)
    image = Image.fromarray(union.astype(np.uint8) * 255)
    return torch.from_numpy(np.asarray(_geometry(image, prep, Image.Resampling.NEAREST)) > 0)
