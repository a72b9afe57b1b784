"""Tests for adlib.data.datasets: layouts, preprocessing geometry, errors, low-shot subsets and the noise protocol.

Every data set here is a tiny folder written into tmp_path with PIL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlib.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Category,
    DataError,
    Preprocessing,
    Sample,
    list_categories,
    load_category,
    read_batch,
    read_image,
    read_mask,
)
from adlib.data.protocol import add_training_noise, low_shot, max_noise_ratio, subsample_test

SIZE = (40, 30)  # (width, height) of the fixture images


# --------------------------------------------------------------------------------------------------
# Fixture writers


def _noise_image(path: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> None:
    """A random RGB image, so that geometry mistakes show up as value differences."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _square_mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = SIZE) -> None:
    """A binary mask (0/255) with the box (left, top, right, bottom; right/bottom exclusive) set."""
    pixels = np.zeros((size[1], size[0]), dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _mvtec(
    root: Path, name: str = "widget", n_train: int = 4, defects: dict[str, int] | None = None, n_good: int = 2
) -> Path:
    """A category in the MVTec AD layout; returns its folder."""
    folder = root / name
    for i in range(n_train):
        _noise_image(folder / "train" / "good" / f"{i:03d}.png", seed=i)
    for i in range(n_good):
        _noise_image(folder / "test" / "good" / f"{i:03d}.png", seed=100 + i)
    for defect, count in (defects if defects is not None else {"crack": 3, "scratch": 2}).items():
        for i in range(count):
            _noise_image(folder / "test" / defect / f"{i:03d}.png", seed=200 + i)
            _square_mask(folder / "ground_truth" / defect / f"{i:03d}_mask.png", (4, 4, 12, 12))
    return folder


# --------------------------------------------------------------------------------------------------
# Layouts


def test_mvtec_layout_labels_masks_and_order(tmp_path: Path) -> None:
    folder = _mvtec(tmp_path)
    # Write out of order and add things the loader must skip.
    _noise_image(folder / "train" / "good" / "010.png", seed=9)
    _noise_image(folder / "train" / "good" / "._005.png", seed=9)  # macOS archive residue
    (folder / "train" / "good" / "notes.txt").write_text("not an image")
    (tmp_path / "readme.txt").write_text("licence")
    (tmp_path / "not_a_category").mkdir()

    assert list_categories(tmp_path) == ["widget"]
    category = load_category(tmp_path, "widget")
    assert category.layout == "mvtec" and category.name == "widget" and category.root == folder.resolve()
    assert [s.image.name for s in category.train] == ["000.png", "001.png", "002.png", "003.png", "010.png"]
    assert all(s.label == 0 and s.defect == "good" and s.masks == () for s in category.train)
    assert all(s.image.is_absolute() for s in category.train + category.test)

    summary = [(s.defect, s.image.name, s.label, tuple(m.name for m in s.masks)) for s in category.test]
    assert summary == [
        ("crack", "000.png", 1, ("000_mask.png",)),
        ("crack", "001.png", 1, ("001_mask.png",)),
        ("crack", "002.png", 1, ("002_mask.png",)),
        ("good", "000.png", 0, ()),
        ("good", "001.png", 0, ()),
        ("scratch", "000.png", 1, ("000_mask.png",)),
        ("scratch", "001.png", 1, ("001_mask.png",)),
    ]
    for sample in category.test:
        for mask in sample.masks:
            assert mask.parent.name == sample.defect and mask.parent.parent.name == "ground_truth"


def test_loco_layout_unites_several_mask_files(tmp_path: Path) -> None:
    folder = tmp_path / "juice"
    for i in range(3):
        _noise_image(folder / "train" / "good" / f"{i:03d}.png", seed=i)
    _noise_image(folder / "validation" / "good" / "000.png", seed=50)
    _noise_image(folder / "test" / "good" / "000.png", seed=60)
    _noise_image(folder / "test" / "logical_anomalies" / "000.png", seed=70)
    _noise_image(folder / "test" / "structural_anomalies" / "000.png", seed=80)
    _square_mask(folder / "ground_truth" / "logical_anomalies" / "000" / "000.png", (2, 2, 8, 8))
    _square_mask(folder / "ground_truth" / "logical_anomalies" / "000" / "001.png", (20, 10, 30, 20))
    _square_mask(folder / "ground_truth" / "structural_anomalies" / "000" / "000.png", (5, 5, 9, 9))

    category = load_category(tmp_path, "juice")
    assert category.layout == "loco"
    assert len(category.train) == 3  # validation/good is not mixed into train
    assert all("validation" not in s.image.parts for s in category.train + category.test)
    logical = next(s for s in category.test if s.defect == "logical_anomalies")
    assert logical.label == 1 and [m.name for m in logical.masks] == ["000.png", "001.png"]

    # Crop == resize == the shorter side: the geometry is the identity apart from the horizontal crop.
    prep = Preprocessing(resize=30, crop=30)
    mask = read_mask(logical, prep).numpy()
    expected = np.zeros((30, 40), dtype=bool)
    expected[2:8, 2:8] = True
    expected[10:20, 20:30] = True
    assert np.array_equal(mask, expected[:, 5:35])


def test_btad_layout_matches_masks_by_stem_across_extensions(tmp_path: Path) -> None:
    folder = tmp_path / "01"
    for i in range(3):
        _noise_image(folder / "train" / "ok" / f"{i:04d}.bmp", seed=i)
    _noise_image(folder / "test" / "ok" / "0000.bmp", seed=10)
    _noise_image(folder / "test" / "ko" / "0000.bmp", seed=11)
    _noise_image(folder / "test" / "ko" / "0001.PNG", seed=12)  # upper-case extension
    _square_mask(folder / "ground_truth" / "ko" / "0000.png", (0, 0, 5, 5))
    _square_mask(folder / "ground_truth" / "ko" / "0001.bmp", (5, 5, 10, 10))

    category = load_category(tmp_path, "01")
    assert category.layout == "btad"
    assert [s.image.name for s in category.train] == ["0000.bmp", "0001.bmp", "0002.bmp"]
    summary = [(s.defect, s.label, s.image.name, tuple(m.name for m in s.masks)) for s in category.test]
    assert summary == [
        ("ko", 1, "0000.bmp", ("0000.png",)),
        ("ko", 1, "0001.PNG", ("0001.bmp",)),
        ("good", 0, "0000.bmp", ()),
    ]
    assert read_mask(category.test[1], Preprocessing(resize=30, crop=30))[5:10, 0:5].all()


def test_forced_layout(tmp_path: Path) -> None:
    _mvtec(tmp_path)
    assert load_category(tmp_path, "widget", layout="mvtec").layout == "mvtec"
    with pytest.raises(FileNotFoundError, match=r"train[/\\]ok") as error:
        load_category(tmp_path, "widget", layout="btad")
    assert "train/good" in str(error.value)  # says what it did find
    with pytest.raises(ValueError, match="layout='voc'"):
        load_category(tmp_path, "widget", layout="voc")


# --------------------------------------------------------------------------------------------------
# Preprocessing geometry


def _reference_image(path: Path, resize: int, crop: int) -> np.ndarray:
    """Independent reference: PIL resize of the shorter side, manual centre crop, manual normalisation."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    scale = resize / min(width, height)
    new = (resize, int(resize * height / width)) if width <= height else (int(resize * width / height), resize)
    assert abs(new[0] - width * scale) < 1 and abs(new[1] - height * scale) < 1
    pixels = np.asarray(image.resize(new, Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    top = int(round((new[1] - crop) / 2))
    left = int(round((new[0] - crop) / 2))
    pixels = pixels[top : top + crop, left : left + crop]
    return ((pixels - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(2, 0, 1)


@pytest.mark.parametrize("size", [(40, 30), (30, 40), (37, 23)])
@pytest.mark.parametrize(("resize", "crop"), [(20, 16), (20, 15), (23, 23)])
def test_read_image_matches_independent_geometry(tmp_path: Path, size: tuple[int, int], resize: int, crop: int) -> None:
    path = tmp_path / "image.png"
    _noise_image(path, size=size, seed=3)
    tensor = read_image(path, Preprocessing(resize=resize, crop=crop))
    assert tensor.dtype == torch.float32 and tensor.shape == (3, crop, crop)
    np.testing.assert_allclose(tensor.numpy(), _reference_image(path, resize, crop), atol=1e-5)


def test_read_image_matches_torchvision_official_pipeline(tmp_path: Path) -> None:
    """The official PatchCore transform: Resize(256), CenterCrop(224), ToTensor, Normalize."""
    from torchvision import transforms

    path = tmp_path / "image.png"
    _noise_image(path, size=(300, 263), seed=4)
    official = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )(Image.open(path).convert("RGB"))
    torch.testing.assert_close(read_image(path, Preprocessing()), official, atol=1e-5, rtol=0)


def _square_pair(tmp_path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> Sample:
    """An image that is black with a white box and the same box as its mask."""
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = 255
    Image.fromarray(pixels).save(tmp_path / "image.png")
    _square_mask(tmp_path / "mask.png", box, size=size)
    return Sample(image=tmp_path / "image.png", masks=(tmp_path / "mask.png",), label=1, defect="square")


def _unnormalised_red(tensor: torch.Tensor) -> np.ndarray:
    return (tensor[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]).numpy()


def test_mask_geometry_aligns_with_image_exact_scale(tmp_path: Path) -> None:
    # Scale 1/2 exactly, box on even coordinates: the bilinear image thresholded at one half and the
    # nearest-neighbour mask must agree pixel for pixel; any crop offset between them would break this.
    sample = _square_pair(tmp_path, (48, 40), (10, 8, 30, 24))
    prep = Preprocessing(resize=20, crop=16)
    mask = read_mask(sample, prep)
    image = read_image(sample.image, prep)
    assert mask.dtype == torch.bool and mask.shape == (16, 16)
    assert mask.any() and not mask.all()
    assert np.array_equal(mask.numpy(), _unnormalised_red(image) > 0.5)
    # Independent: PIL nearest resize + manual crop + > 0.
    reference = np.asarray(Image.open(tmp_path / "mask.png").resize((24, 20), Image.Resampling.NEAREST)) > 0
    assert np.array_equal(mask.numpy(), reference[2:18, 4:20])


def test_mask_geometry_aligns_with_image_odd_scale(tmp_path: Path) -> None:
    sample = _square_pair(tmp_path, (37, 29), (9, 6, 21, 19))
    prep = Preprocessing(resize=17, crop=13)
    mask = read_mask(sample, prep).numpy()
    bright = _unnormalised_red(read_image(sample.image, prep))
    rows, cols = np.nonzero(mask)
    weights = bright.clip(0, 1)
    grid_r, grid_c = np.mgrid[0:13, 0:13]
    # Centroids of the mask and of the image's brightness agree to within half a pixel.
    assert abs(rows.mean() - (grid_r * weights).sum() / weights.sum()) < 0.5
    assert abs(cols.mean() - (grid_c * weights).sum() / weights.sum()) < 0.5
    assert np.all(bright[mask] > 0.25)  # every mask pixel lies on the (blurred) white box


def test_mask_is_nearest_resized_and_binarised_above_zero(tmp_path: Path) -> None:
    # A speckled mask with values 1..255 tells NEAREST + '> 0' apart from bilinear or '> 127'.
    rng = np.random.default_rng(5)
    values = rng.integers(1, 256, size=(29, 37)) * (rng.random((29, 37)) < 0.4)
    Image.fromarray(values.astype(np.uint8)).save(tmp_path / "mask.png")
    _noise_image(tmp_path / "image.png", size=(37, 29))
    sample = Sample(image=tmp_path / "image.png", masks=(tmp_path / "mask.png",), label=1, defect="speckle")
    mask = read_mask(sample, Preprocessing(resize=17, crop=13)).numpy()
    binary = Image.fromarray(((values > 0) * 255).astype(np.uint8))
    reference = np.asarray(binary.resize((21, 17), Image.Resampling.NEAREST)) > 0  # 37x29 -> 21x17
    assert np.array_equal(mask, reference[2:15, 4:17])


def test_good_sample_mask_is_all_false(tmp_path: Path) -> None:
    _mvtec(tmp_path)
    good = next(s for s in load_category(tmp_path, "widget").test if s.label == 0)
    mask = read_mask(good, Preprocessing(resize=20, crop=16))
    assert mask.dtype == torch.bool and mask.shape == (16, 16) and not mask.any()


def test_read_batch_stacks_in_order(tmp_path: Path) -> None:
    category = load_category(_mvtec(tmp_path).parent, "widget")
    prep = Preprocessing(resize=20, crop=16)
    batch = read_batch(category.train[:3], prep)
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == torch.float32
    for i, sample in enumerate(category.train[:3]):
        assert torch.equal(batch[i], read_image(sample.image, prep))
    with pytest.raises(ValueError, match="no samples"):
        read_batch([], prep)


@pytest.mark.parametrize("mode", ["L", "1", "P", "I;16", "LA", "RGBA", "CMYK"])
def test_any_mode_loads_as_three_channels(tmp_path: Path, mode: str) -> None:
    path = tmp_path / ("image.tif" if mode == "CMYK" else "image.png")
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8))
    if mode == "I;16":
        Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257).save(path)
    else:
        rgb.convert(mode).save(path)
    tensor = read_image(path, Preprocessing(resize=12, crop=12))
    assert tensor.shape == (3, 12, 12)
    if mode in ("L", "1", "I;16", "LA"):  # grayscale: three equal channels after un-normalising
        channels = [tensor[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c] for c in range(3)]
        torch.testing.assert_close(channels[0], channels[1], atol=1e-5, rtol=0)
        torch.testing.assert_close(channels[0], channels[2], atol=1e-5, rtol=0)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    tensor = read_image(tmp_path / "deep.png", Preprocessing(resize=2, crop=2))
    red = tensor[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    torch.testing.assert_close(red, torch.tensor([[0, 100], [200, 255]]) / 255.0, atol=1e-5, rtol=0)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[..., 0] = 200  # red under a fully transparent alpha: kept as is, not composited on black
    Image.fromarray(pixels).save(tmp_path / "rgba.png")
    tensor = read_image(tmp_path / "rgba.png", Preprocessing(resize=4, crop=4))
    red = tensor[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    torch.testing.assert_close(red, torch.full((4, 4), 200 / 255.0), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"resize": 200, "crop": 224}, ["crop=224", "resize=200", "crop <= resize"]),
        ({"resize": 0, "crop": 0}, ["resize=0", "positive"]),
        ({"std": (0.2, 0.0, 0.2)}, ["std=", "> 0"]),
        ({"mean": (0.5, 0.5)}, ["mean=", "three"]),
    ],
)
def test_preprocessing_validates(settings: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        Preprocessing(**settings)
    for word in words:
        assert word in str(error.value)


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for call in (lambda: list_categories(missing), lambda: load_category(missing, "bottle")):
        with pytest.raises(FileNotFoundError, match="does not exist") as error:
            call()
        assert str(missing) in str(error.value)


def test_missing_category_lists_existing_ones(tmp_path: Path) -> None:
    _mvtec(tmp_path, "bottle")
    _mvtec(tmp_path, "cable")
    with pytest.raises(FileNotFoundError) as error:
        load_category(tmp_path, "botle")
    message = str(error.value)
    assert str(tmp_path / "botle") in message and "bottle, cable" in message
    assert "train/good" in message and "ground_truth" in message


def test_root_that_is_a_category_gets_a_hint(tmp_path: Path) -> None:
    folder = _mvtec(tmp_path, "bottle")
    with pytest.raises(FileNotFoundError, match="pass its parent as root"):
        load_category(folder, "bottle")


def test_folder_in_no_known_layout(tmp_path: Path) -> None:
    (tmp_path / "odd" / "images").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        load_category(tmp_path, "odd")
    message = str(error.value)
    assert "found: images" in message and "train/good" in message and "train/ok" in message


def test_training_folder_missing_or_empty(tmp_path: Path) -> None:
    folder = _mvtec(tmp_path, n_train=0)
    (folder / "train" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images") as error:
        load_category(tmp_path, "widget")
    assert str(folder / "train" / "good") in str(error.value)
    (folder / "train" / "good").rmdir()
    with pytest.raises(FileNotFoundError) as error:
        load_category(tmp_path, "widget")
    assert str(folder / "train" / "good") in str(error.value)
    assert "load_category(..., layout=...)" in str(error.value)  # Python's way, not advised as a CLI option
    assert "the command line detects the layout" in str(error.value)


def test_missing_mask_names_image_and_expected_path(tmp_path: Path) -> None:
    folder = _mvtec(tmp_path)
    (folder / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_category(tmp_path, "widget")
    message = str(error.value)
    assert str(folder / "test" / "crack" / "001.png") in message
    assert str(folder / "ground_truth" / "crack" / "001_mask.png") in message


def test_missing_loco_mask_folder(tmp_path: Path) -> None:
    folder = tmp_path / "juice"
    _noise_image(folder / "train" / "good" / "000.png")
    _noise_image(folder / "validation" / "good" / "000.png")
    _noise_image(folder / "test" / "logical_anomalies" / "000.png")
    with pytest.raises(FileNotFoundError) as error:
        load_category(tmp_path, "juice")
    message = str(error.value)
    assert str(folder / "test" / "logical_anomalies" / "000.png") in message
    assert str(folder / "ground_truth" / "logical_anomalies" / "000") in message


def test_missing_btad_mask(tmp_path: Path) -> None:
    folder = tmp_path / "02"
    _noise_image(folder / "train" / "ok" / "0000.bmp")
    _noise_image(folder / "test" / "ko" / "0007.bmp")
    with pytest.raises(FileNotFoundError) as error:
        load_category(tmp_path, "02")
    assert "0007.bmp" in str(error.value) and str(folder / "ground_truth" / "ko" / "0007") in str(error.value)


def test_two_masks_for_one_image_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "03"
    _noise_image(folder / "train" / "ok" / "0000.bmp")
    _noise_image(folder / "test" / "ko" / "0001.bmp")
    _square_mask(folder / "ground_truth" / "ko" / "0001.png", (0, 0, 4, 4))
    _square_mask(folder / "ground_truth" / "ko" / "0001.bmp", (0, 0, 4, 4))
    with pytest.raises(DataError, match="several masks") as error:
        load_category(tmp_path, "03")
    assert "0001.png" in str(error.value) and "0001.bmp" in str(error.value)


@pytest.mark.parametrize("content", [b"this is not a png", "truncated"])
def test_corrupt_image_names_the_file(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "broken.png"
    if content == "truncated":
        _noise_image(tmp_path / "good.png", size=(64, 64))
        data = (tmp_path / "good.png").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_image(path, Preprocessing(resize=8, crop=8))
    assert str(path) in str(error.value) and "re-download" in str(error.value)


def _bomb_png(path: Path, width: int = 30000, height: int = 30000) -> None:
    """A valid 1 x 1 PNG whose header (IHDR, with a correct CRC) claims `width` x `height` pixels."""
    import struct
    import zlib

    _noise_image(path, size=(1, 1))
    data = bytearray(path.read_bytes())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    path.write_bytes(bytes(data))


def test_an_image_whose_header_claims_a_huge_size_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _bomb_png(path)
    with pytest.raises(DataError) as error:
        read_image(path, Preprocessing(resize=8, crop=8))
    message = str(error.value)
    assert str(path) in message and "more pixels than PIL decodes safely" in message and "\n" not in message
    with pytest.raises(DataError, match="bomb.png"):
        load_category_image_size(path)


def load_category_image_size(path: Path) -> tuple[int, int]:
    """The header read the loader does before decoding (mask checks), through the same error path."""
    from adlib.data.datasets import _image_size

    return _image_size(path)


def test_missing_image_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_image(tmp_path / "gone.png", Preprocessing(resize=8, crop=8))


def test_mask_size_mismatch_names_both_files_and_sizes(tmp_path: Path) -> None:
    _noise_image(tmp_path / "image.png", size=(40, 30))
    _square_mask(tmp_path / "mask.png", (0, 0, 4, 4), size=(20, 15))
    sample = Sample(image=tmp_path / "image.png", masks=(tmp_path / "mask.png",), label=1, defect="x")
    with pytest.raises(DataError) as error:
        read_mask(sample, Preprocessing(resize=8, crop=8))
    message = str(error.value)
    assert str(tmp_path / "image.png") in message and str(tmp_path / "mask.png") in message
    assert "40x30" in message and "20x15" in message


def test_anomalous_sample_without_mask_files(tmp_path: Path) -> None:
    _noise_image(tmp_path / "image.png")
    sample = Sample(image=tmp_path / "image.png", masks=(), label=1, defect="x")
    with pytest.raises(DataError, match="no mask files"):
        read_mask(sample, Preprocessing(resize=8, crop=8))


# --------------------------------------------------------------------------------------------------
# Low-shot subsets


def _synthetic_category(n_train: int, n_anomalous: int, n_good_test: int = 3) -> Category:
    """A category that exists only as paths (for the subset and noise logic, which reads no pixels)."""
    root = Path("/data/cat")
    train = tuple(Sample(root / "train" / "good" / f"{i:03d}.png", (), 0, "good") for i in range(n_train))
    good = tuple(Sample(root / "test" / "good" / f"{i:03d}.png", (), 0, "good") for i in range(n_good_test))
    bad = tuple(
        Sample(
            root / "test" / defect / f"{i:03d}.png", (root / "ground_truth" / defect / f"{i:03d}_mask.png",), 1, defect
        )
        for defect, count in (("crack", n_anomalous // 2), ("hole", n_anomalous - n_anomalous // 2))
        for i in range(count)
    )
    return Category(
        name="cat",
        root=root,
        layout="mvtec",
        train=train,
        test=bad[: n_anomalous // 2] + good + bad[n_anomalous // 2 :],
    )


def test_low_shot_first_k() -> None:
    category = _synthetic_category(30, 10)
    subset = low_shot(category, 5)
    assert subset.train == category.train[:5] and subset.test == category.test
    assert low_shot(category, 30).train == category.train


def test_low_shot_seeded_subsets() -> None:
    category = _synthetic_category(30, 10)
    first = low_shot(category, 10, seed=0)
    assert first == low_shot(category, 10, seed=0)  # deterministic
    assert len(first.train) == 10 and len(set(first.train)) == 10
    order = {sample: i for i, sample in enumerate(category.train)}
    assert [order[s] for s in first.train] == sorted(order[s] for s in first.train)  # keeps train order
    assert first.test == category.test
    assert first.train != category.train[:10]
    assert len({low_shot(category, 10, seed=s).train for s in range(5)}) == 5  # seeds differ


@pytest.mark.parametrize("shots", [0, 31, -1])
def test_low_shot_rejects_bad_shots(shots: int) -> None:
    with pytest.raises(ValueError, match=f"shots={shots}.*from 1 to 30"):
        low_shot(_synthetic_category(30, 10), shots)


def test_low_shot_rejects_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed=-3"):
        low_shot(_synthetic_category(30, 10), 3, seed=-3)


# --------------------------------------------------------------------------------------------------
# Test subsets


@pytest.mark.parametrize(("count", "defective"), [(1, 1), (2, 1), (6, 5), (7, 5), (12, 9), (13, 10)])
def test_test_subset_is_seeded_stratified_and_ordered(count: int, defective: int) -> None:
    category = _synthetic_category(30, 10)  # 10 defective, 3 good test images
    subset = subsample_test(category, count, seed=4)
    assert subset == subsample_test(category, count, seed=4) and subset.train == category.train
    assert len(subset.test) == count and len(set(subset.test)) == count
    assert sum(s.label for s in subset.test) == defective  # round(count * 10 / 13), one of each class when >= 2
    order = {sample: i for i, sample in enumerate(category.test)}
    assert [order[s] for s in subset.test] == sorted(order[s] for s in subset.test)
    if count < 13:
        assert len({subsample_test(category, count, seed=s).test for s in range(6)}) > 1  # seeds differ


@pytest.mark.parametrize("count", [0, 14, True])
def test_test_subset_rejects_bad_counts(count: int) -> None:
    with pytest.raises(ValueError, match="test_images=.*from 1 to 13"):
        subsample_test(_synthetic_category(30, 10), count, seed=0)


# --------------------------------------------------------------------------------------------------
# Noisy training sets


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 0), (0.05, 1), (0.1, 3), (0.15, 4), (0.29, 8)])
def test_noise_count_is_int_ratio_times_train(ratio: float, expected: int) -> None:
    category = _synthetic_category(30, 12)
    noisy, record = add_training_noise(category, ratio, overlap=False, seed=0)
    assert expected == int(ratio * 30)
    assert len(record.moved) == expected and len(noisy.train) == 30 + expected


def test_noise_without_overlap_moves_images_out_of_test() -> None:
    category = _synthetic_category(30, 12)
    noisy, record = add_training_noise(category, 0.2, overlap=False, seed=1)
    moved = [s for s in category.test if s.image in record.moved]
    assert len(moved) == 6 == len(record.moved)
    assert noisy.train == category.train + tuple(sorted(moved, key=lambda s: str(s.image)))
    assert all(s.label == 1 and s.masks for s in noisy.train[30:])
    assert noisy.test == tuple(s for s in category.test if s.image not in record.moved)
    assert record.ratio == 0.2 and record.overlap is False and record.seed == 1
    assert noisy.name == category.name and noisy.root == category.root


def test_noise_with_overlap_keeps_test_set() -> None:
    category = _synthetic_category(30, 12)
    noisy, record = add_training_noise(category, 0.2, overlap=True, seed=1)
    assert noisy.test == category.test
    assert {s.image for s in noisy.train[30:]} == set(record.moved) <= {s.image for s in category.test}
    # The draw does not depend on overlap: the same images move either way.
    assert record.moved == add_training_noise(category, 0.2, overlap=False, seed=1)[1].moved


def test_noise_is_deterministic_and_seed_dependent() -> None:
    category = _synthetic_category(30, 12)
    draws = [add_training_noise(category, 0.2, overlap=False, seed=s) for s in (0, 0, 1, 2, 3)]
    assert draws[0] == draws[1]
    assert len({record.moved for _, record in draws}) == 4
    # The protocol pinned: default_rng(seed).choice over the anomalous test images in sorted path order.
    pool = sorted((s.image for s in category.test if s.label == 1), key=str)
    picks = np.random.default_rng(7).choice(len(pool), size=6, replace=False)
    assert add_training_noise(category, 0.2, False, 7)[1].moved == tuple(sorted((pool[i] for i in picks), key=str))


def test_noise_does_not_depend_on_test_order() -> None:
    category = _synthetic_category(30, 12)
    shuffled = Category(category.name, category.root, category.layout, category.train, category.test[::-1])
    assert add_training_noise(category, 0.2, True, 5)[1] == add_training_noise(shuffled, 0.2, True, 5)[1]


def test_noise_ratio_beyond_the_category_explains_the_limit() -> None:
    category = _synthetic_category(30, 4)
    assert len(add_training_noise(category, 0.15, overlap=True, seed=0)[1].moved) == 4  # all 4 may move
    with pytest.raises(ValueError) as error:
        add_training_noise(category, 0.2, overlap=True, seed=0)
    message = str(error.value)
    assert "= 6 anomalous" in message and "has 4" in message and "largest ratio that works is 0.1333" in message
    add_training_noise(category, 0.1333, overlap=True, seed=0)  # the suggested ratio works

    with pytest.raises(ValueError) as error:  # no overlap: one anomalous image must stay in the test set
        add_training_noise(category, 0.15, overlap=False, seed=0)
    message = str(error.value)
    assert "= 4 anomalous" in message and "has 4" in message and "stay in the test set" in message
    assert "largest ratio that works is 0.1 " in message
    assert max_noise_ratio(category, overlap=False) == pytest.approx(0.1)
    noisy, _ = add_training_noise(category, max_noise_ratio(category, overlap=False), overlap=False, seed=0)
    assert sum(s.label for s in noisy.test) == 1


def test_noise_errors_on_bad_settings() -> None:
    category = _synthetic_category(30, 12)
    for ratio in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="ratio=.*must be in \\[0, 1\\)"):
            add_training_noise(category, ratio, overlap=False, seed=0)
    with pytest.raises(ValueError, match="seed="):
        add_training_noise(category, 0.1, overlap=False, seed=-1)
    noisy, _ = add_training_noise(category, 0.1, overlap=True, seed=0)
    with pytest.raises(ValueError, match="already has anomalous training images"):
        add_training_noise(noisy, 0.1, overlap=True, seed=0)


def test_noise_on_a_loaded_category(tmp_path: Path) -> None:
    _mvtec(tmp_path, n_train=10, defects={"crack": 3, "scratch": 3})
    category = load_category(tmp_path, "widget")
    noisy, record = add_training_noise(category, 0.3, overlap=False, seed=0)
    assert len(record.moved) == 3 and all(p.exists() for p in record.moved)
    moved = noisy.train[10:]
    assert all(read_mask(s, Preprocessing(resize=20, crop=16)).any() for s in moved)  # masks travel along
